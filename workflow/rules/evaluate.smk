# Evaluation (PSNR, SSIM, NMSE, HaarPSI, VIF, realised acceleration, k-space bands) of every
# reconstruction, nominal and under the robustness conditions.


rule evaluate:
    """Per-volume and per-slice metrics of one replicate of a method against the prepared targets."""
    conda:
        CONDA_ENV
    input:
        recon=lambda w: recon_dirs(w.dataset, w.acc, w.run, w.rep),
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        volumes=f"{R}/metrics/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.volumes.csv",
        slices=f"{R}/metrics/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.slices.csv",
    params:
        method=lambda w: display_name(w.run),
        band_fraction=(config.get("evaluation") or {}).get("band_fraction", 0.25),
    log:
        f"{R}/logs/evaluate/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.log",
    threads: 1
    shell:
        "python -m oucr evaluate --recon {input.recon} --store {input.store} --masks {input.masks} "
        "--method {params.method:q} --dataset {wildcards.dataset} --acceleration {wildcards.acc} "
        "--replicate {wildcards.rep} --band-fraction {params.band_fraction} "
        "--out-volumes {output.volumes} --out-slices {output.slices} > {log} 2>&1"


rule evaluate_robustness:
    """Metrics of one replicate of a method under one robustness condition."""
    conda:
        CONDA_ENV
    input:
        recon=lambda w: recon_dirs(w.dataset, w.acc, w.run, w.rep, w.condition),
        store=f"{R}/prepared/{{dataset}}",
        masks=condition_masks,
    output:
        volumes=f"{R}/robustness/{{condition}}/metrics/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.volumes.csv",
        slices=f"{R}/robustness/{{condition}}/metrics/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.slices.csv",
    params:
        method=lambda w: display_name(w.run),
        band_fraction=(config.get("evaluation") or {}).get("band_fraction", 0.25),
    log:
        f"{R}/logs/evaluate_robustness/{{condition}}/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.log",
    threads: 1
    shell:
        "python -m oucr evaluate --recon {input.recon} --store {input.store} --masks {input.masks} "
        "--method {params.method:q} --dataset {wildcards.dataset} --acceleration {wildcards.acc} "
        "--replicate {wildcards.rep} --condition {wildcards.condition} --band-fraction {params.band_fraction} "
        "--out-volumes {output.volumes} --out-slices {output.slices} > {log} 2>&1"
