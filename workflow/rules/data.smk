# Raw data -> prepared store -> fixed validation/test masks.


if config.get("demo_data"):

    rule demo_data:
        """Build the embedded demo datasets from the MNI152 anatomy that nilearn ships."""
        conda:
            CONDA_ENV
        output:
            brain=directory(f"{R}/demo_data/demo-brain"),
            fastmri=directory(f"{R}/demo_data/demo-fastmri"),
        params:
            cfg=cfg_json("demo_data", "seed"),
            out=lambda w, output: os.path.dirname(output.brain),
        log:
            f"{R}/logs/demo_data.log",
        benchmark:
            f"{R}/benchmarks/demo_data.tsv"
        threads: 1
        resources:
            mem_mb=res("default")["mem_mb"],
            runtime=res("default")["runtime"],
        shell:
            "python -m oucr demo-data --config {params.cfg:q} --out {params.out} > {log} 2>&1"


rule prepare:
    """Read one raw dataset into the prepared store (k-space at recon size, targets, splits)."""
    conda:
        CONDA_ENV
    input:
        dataset_inputs,
    output:
        directory(f"{R}/prepared/{{dataset}}"),
    params:
        cfg=lambda w: cfg_json("datasets", "seed"),
    log:
        f"{R}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{dataset}}.tsv"
    threads: 1
    resources:
        mem_mb=res("prepare")["mem_mb"],
        runtime=res("prepare")["runtime"],
    shell:
        "python -m oucr prepare --config {params.cfg:q} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule masks:
    """Fixed validation/test masks of one dataset and acceleration (its configured mask type)."""
    conda:
        CONDA_ENV
    input:
        f"{R}/prepared/{{dataset}}",
    output:
        h5=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
        csv=f"{R}/masks/{{dataset}}/x{{acc}}.csv",
    params:
        center_fraction=lambda w: center_fraction_of(w.acc),
        mask_type=lambda w: mask_type_of(w.acc),
    log:
        f"{R}/logs/masks/{{dataset}}/x{{acc}}.log",
    threads: 1
    shell:
        "python -m oucr masks --store {input} --acceleration {wildcards.acc} "
        "--center-fraction {params.center_fraction} --mask-type {params.mask_type} "
        "--out {output.h5} > {log} 2>&1"


rule masks_equispaced:
    """Equispaced masks at one acceleration (the robustness table's change of sampling pattern)."""
    conda:
        CONDA_ENV
    input:
        f"{R}/prepared/{{dataset}}",
    output:
        h5=f"{R}/masks/{{dataset}}/x{{acc}}-equispaced.h5",
        csv=f"{R}/masks/{{dataset}}/x{{acc}}-equispaced.csv",
    params:
        center_fraction=lambda w: center_fraction_of(w.acc),
    log:
        f"{R}/logs/masks/{{dataset}}/x{{acc}}-equispaced.log",
    threads: 1
    shell:
        "python -m oucr masks --store {input} --acceleration {wildcards.acc} "
        "--center-fraction {params.center_fraction} --mask-type equispaced_fraction "
        "--out {output.h5} > {log} 2>&1"
