# Training of every network run: Table 1 methods, Table 2 variants and the J sweep.
# Checkpoints live under results/checkpoints/, which is not a declared output: Snakemake
# deletes a failed job's outputs, and an interrupted training resumes from the checkpoint.


rule train:
    """Train one method on one dataset at one acceleration."""
    conda:
        CONDA_ENV
    wildcard_constraints:
        run=NETWORK_RUNS_RE,
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        model=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/model.pt",
        history=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/history.csv",
    params:
        method=lambda w: RUNS[w.run]["method"],
        sets=lambda w: " ".join(f"--set {s}" for s in RUNS[w.run]["sets"]),
        cfg=train_cfg,
        checkpoints=lambda w: f"{R}/checkpoints/{w.dataset}/x{w.acc}/{w.run}",
    log:
        f"{R}/logs/train/{{dataset}}/x{{acc}}/{{run}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{dataset}}/x{{acc}}/{{run}}.tsv"
    threads: res("train")["threads"]
    resources:
        gpu=res("train").get("gpu", 0),
        mem_mb=res("train")["mem_mb"],
        runtime=res("train")["runtime"],
    shell:
        "python -m oucr train --config {params.cfg:q} --method {params.method:q} {params.sets} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --run-name {wildcards.run} "
        "--store {input.store} --masks {input.masks} --out $(dirname {output.model}) "
        "--checkpoint-dir {params.checkpoints} --threads {threads} > {log} 2>&1"
