# Reconstruction of the test volumes by every method, with the same fixed test masks, and the
# robustness conditions (other acceleration, equispaced masks, measurement noise).


rule reconstruct_network:
    """Reconstruct the test volumes with one replicate of a trained network."""
    conda:
        CONDA_ENV
    wildcard_constraints:
        run=NETWORK_RUNS_RE,
    input:
        model=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}/model.pt",
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        directory(f"{R}/recon/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}"),
    log:
        f"{R}/logs/reconstruct/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.log",
    benchmark:
        f"{R}/benchmarks/reconstruct/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.tsv"
    threads: res("reconstruct")["threads"]
    resources:
        gpu=res("reconstruct").get("gpu", 0),
        mem_mb=res("reconstruct")["mem_mb"],
        runtime=res("reconstruct")["runtime"],
    shell:
        "python -m oucr reconstruct --model {input.model} --store {input.store} --masks {input.masks} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --out {output} "
        "--gpus {resources.gpu} --threads {threads} > {log} 2>&1"


rule reconstruct_zero_filled:
    """The zero-filled reference reconstruction."""
    conda:
        CONDA_ENV
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        directory(f"{R}/recon/{{dataset}}/x{{acc}}/zero-filled/r0"),
    log:
        f"{R}/logs/reconstruct/{{dataset}}/x{{acc}}/zero-filled.log",
    threads: 1
    shell:
        "python -m oucr reconstruct --zero-filled --store {input.store} --masks {input.masks} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --out {output} "
        "--device cpu --threads {threads} > {log} 2>&1"


rule cs_tune:
    """Choose the CS regularisation weight on validation slices."""
    conda:
        CONDA_ENV
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
    output:
        f"{R}/cs/{{dataset}}/x{{acc}}/lambda.json",
    params:
        args=cs_tune_args,
    log:
        f"{R}/logs/cs_tune/{{dataset}}/x{{acc}}.log",
    benchmark:
        f"{R}/benchmarks/cs_tune/{{dataset}}/x{{acc}}.tsv"
    threads: 1
    resources:
        mem_mb=res("cs")["mem_mb"],
        runtime=res("cs")["runtime"],
    shell:
        "python -m oucr cs-tune --store {input.store} --masks {input.masks} --out {output} "
        "{params.args} > {log} 2>&1"


rule cs_reconstruct:
    """Reconstruct one chunk of the test volumes with CS (chunks run in parallel)."""
    conda:
        CONDA_ENV
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=f"{R}/masks/{{dataset}}/x{{acc}}.h5",
        lamda=f"{R}/cs/{{dataset}}/x{{acc}}/lambda.json",
    output:
        directory(f"{R}/recon/{{dataset}}/x{{acc}}/cs/r0/part{{chunk}}"),
    params:
        chunks=CS_CHUNKS,
    log:
        f"{R}/logs/cs_reconstruct/{{dataset}}/x{{acc}}/{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/cs_reconstruct/{{dataset}}/x{{acc}}/{{chunk}}.tsv"
    threads: 1
    resources:
        mem_mb=res("cs")["mem_mb"],
        runtime=res("cs")["runtime"],
    shell:
        "python -m oucr cs-reconstruct --store {input.store} --masks {input.masks} --lambda-file {input.lamda} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} "
        "--chunk {wildcards.chunk} --chunks {params.chunks} --out {output} > {log} 2>&1"


rule robustness_network:
    """A network trained at x{acc} reconstructs its test volumes under one robustness condition."""
    conda:
        CONDA_ENV
    wildcard_constraints:
        run=NETWORK_RUNS_RE,
    input:
        model=f"{R}/models/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}/model.pt",
        store=f"{R}/prepared/{{dataset}}",
        masks=condition_masks,
    output:
        directory(f"{R}/robustness/{{condition}}/recon/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}"),
    params:
        extra=condition_args,
    log:
        f"{R}/logs/robustness/{{condition}}/{{dataset}}/x{{acc}}/{{run}}/r{{rep}}.log",
    threads: res("reconstruct")["threads"]
    resources:
        gpu=res("reconstruct").get("gpu", 0),
        mem_mb=res("reconstruct")["mem_mb"],
        runtime=res("reconstruct")["runtime"],
    shell:
        "python -m oucr reconstruct --model {input.model} --store {input.store} --masks {input.masks} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --out {output} --force {params.extra} "
        "--gpus {resources.gpu} --threads {threads} > {log} 2>&1"


rule robustness_zero_filled:
    """The zero-filled reference under one robustness condition."""
    conda:
        CONDA_ENV
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=condition_masks,
    output:
        directory(f"{R}/robustness/{{condition}}/recon/{{dataset}}/x{{acc}}/zero-filled/r0"),
    params:
        extra=condition_args,
    log:
        f"{R}/logs/robustness/{{condition}}/{{dataset}}/x{{acc}}/zero-filled.log",
    threads: 1
    shell:
        "python -m oucr reconstruct --zero-filled --store {input.store} --masks {input.masks} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --out {output} {params.extra} "
        "--device cpu --threads {threads} > {log} 2>&1"


rule robustness_cs:
    """CS (its weight tuned at x{acc}) under one robustness condition, one chunk."""
    conda:
        CONDA_ENV
    input:
        store=f"{R}/prepared/{{dataset}}",
        masks=condition_masks,
        lamda=f"{R}/cs/{{dataset}}/x{{acc}}/lambda.json",
    output:
        directory(f"{R}/robustness/{{condition}}/recon/{{dataset}}/x{{acc}}/cs/r0/part{{chunk}}"),
    params:
        chunks=CS_CHUNKS,
        extra=condition_args,
    log:
        f"{R}/logs/robustness/{{condition}}/{{dataset}}/x{{acc}}/cs-{{chunk}}.log",
    threads: 1
    resources:
        mem_mb=res("cs")["mem_mb"],
        runtime=res("cs")["runtime"],
    shell:
        "python -m oucr cs-reconstruct --store {input.store} --masks {input.masks} --lambda-file {input.lamda} "
        "--dataset {wildcards.dataset} --acceleration {wildcards.acc} --force {params.extra} "
        "--chunk {wildcards.chunk} --chunks {params.chunks} --out {output} > {log} 2>&1"
