# Evaluation (PSNR, SSIM, NMSE, realised acceleration, k-space bands) of every reconstruction.


rule evaluate:
    """Per-volume and per-slice metrics of one method against the prepared targets."""
    conda:
        CONDA_ENV
    input:
        recon=lambda w: recon_dirs(w.dataset, w.acc, w.run),
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        volumes=f"{R}/metrics/{{dataset}}/x{{acc}}/{{run}}.volumes.csv",
        slices=f"{R}/metrics/{{dataset}}/x{{acc}}/{{run}}.slices.csv",
    params:
        method=lambda w: display_name(w.run),
        band_fraction=(config.get("evaluation") or {}).get("band_fraction", 0.25),
    log:
        f"{R}/logs/evaluate/{{dataset}}/x{{acc}}/{{run}}.log",
    threads: 1
    shell:
        "python -m oucr evaluate --recon {input.recon} --store {input.store} --masks {input.masks} "
        "--method {params.method:q} --dataset {wildcards.dataset} --acceleration {wildcards.acc} "
        "--band-fraction {params.band_fraction} "
        "--out-volumes {output.volumes} --out-slices {output.slices} > {log} 2>&1"
