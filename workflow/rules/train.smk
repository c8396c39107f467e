# Training of every network run: Table 1 methods, Table 2 variants and the J sweep, one job per
# replicate (the same run from another initialisation seed on the same data stream).
# Checkpoints live under results/checkpoints/, which is not a declared output: Snakemake
# deletes a failed job's outputs, and an interrupted training resumes from the checkpoint.


rule train:
    """Train one replicate of one method on one dataset at one acceleration."""
    conda:
        CONDA_ENV
    wildcard_constraints:
        run=NETWORK_RUNS_RE,
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        model=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}/model.pt",
        history=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}/history.csv",
        info=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}/info.json",
    params:
        method=lambda w: RUNS[w.run]["method"],
        sets=lambda w: " ".join(f"--set {s}" for s in RUNS[w.run]["sets"]),
        cfg=train_cfg,
        checkpoints=lambda w: str(P.checkpoint_dir(R, w.dataset, w.acc, w.run, w.rep)),
    log:
        f"{R}/logs/train/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.tsv"
    threads: res("train")["threads"]
    resources:
        gpu=train_gpus,
        mem_mb=res("train")["mem_mb"],
        runtime=res("train")["runtime"],
    shell:
        "python -m oucr train --config {params.cfg:q} --method {params.method:q} {params.sets} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --run-name {wildcards.run} "
        "--replicate {wildcards.rep} --store {input.store} --masks {input.masks} "
        "--out $(dirname {output.model}) --checkpoint-dir {params.checkpoints} --gpus {resources.gpu} --threads {threads} > {log} 2>&1"
