# Parameter counts, paired statistics, tables and figures, each with a caption in the report.


rule params:
    """Parameter count of every method and ablation variant, next to the paper's."""
    conda:
        CONDA_ENV
    output:
        report(f"{R}/tables/params.csv", caption="../report/params.rst", category="Paper artifacts",
               subcategory="Tables"),
    params:
        cfg=cfg_json("methods", "ablation", "models"),
    log:
        f"{R}/logs/params.log",
    shell:
        "python -m oucr params --config {params.cfg:q} --out {output} > {log} 2>&1"


rule stats:
    """Paired tests of OUCR against every other method of Table 1 and Table 2 (volumes, and slices by bootstrap)."""
    conda:
        CONDA_ENV
    input:
        slices=list(dict.fromkeys(table1_metric_files("slices") + ablation_metric_files("slices"))),
        volumes=list(dict.fromkeys(table1_metric_files("volumes") + ablation_metric_files("volumes"))),
    output:
        report(f"{R}/tables/significance.csv", caption="../report/significance.rst", category="Paper artifacts",
               subcategory="Tables"),
    log:
        f"{R}/logs/stats.log",
    shell:
        "python -m oucr stats --slices {input.slices} --volumes {input.volumes} --out {output} > {log} 2>&1"


rule tables:
    """Table 1 (with cost), Table 2 and the significance summary (CSV, Markdown, LaTeX)."""
    conda:
        CONDA_ENV
    input:
        volumes=list(dict.fromkeys(table1_metric_files("volumes") + ablation_metric_files("volumes"))),
        params=f"{R}/tables/params.csv",
        significance=f"{R}/tables/significance.csv",
        train_benchmarks=train_benchmark_files(),
        train_info=train_info_files(),
        recon=recon_timing_dirs(),
    output:
        report(f"{R}/tables/table1.csv", caption="../report/table1.rst", category="Paper artifacts",
               subcategory="Tables"),
        report(f"{R}/tables/table1.md", caption="../report/table1.rst", category="Paper artifacts",
               subcategory="Tables"),
        f"{R}/tables/table1.tex",
        report(f"{R}/tables/table2.csv", caption="../report/table2.rst", category="Paper artifacts",
               subcategory="Tables"),
        report(f"{R}/tables/table2.md", caption="../report/table2.rst", category="Paper artifacts",
               subcategory="Tables"),
        f"{R}/tables/table2.tex",
        report(f"{R}/tables/significance.md", caption="../report/significance.rst", category="Paper artifacts",
               subcategory="Tables"),
        report(f"{R}/tables/provenance.md", caption="../report/provenance.rst", category="Provenance"),
    params:
        cfg=cfg_json("demo", "methods", "datasets", "accelerations", "ablation", "figures", "replicates"),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/tables.log",
    shell:
        "python -m oucr tables --config {params.cfg:q} --volumes {input.volumes} --params {input.params} "
        "--significance {input.significance} --train-benchmarks {input.train_benchmarks} "
        "--train-info {input.train_info} --recon-timing {input.recon} --out-dir {params.out_dir} > {log} 2>&1"


if ROBUSTNESS:

    rule robustness_table:
        """Networks trained at one acceleration, evaluated off their training conditions."""
        conda:
            CONDA_ENV
        input:
            nominal=robustness_nominal_files("volumes"),
            perturbed=robustness_metric_files("volumes"),
        output:
            csv=report(f"{R}/tables/robustness.csv", caption="../report/robustness.rst", category="Beyond the paper",
                       subcategory="Tables"),
            md=report(f"{R}/tables/robustness.md", caption="../report/robustness.rst", category="Beyond the paper",
                      subcategory="Tables"),
        params:
            cfg=cfg_json("demo", "methods", "datasets", "robustness", "figures"),
        log:
            f"{R}/logs/robustness_table.log",
        shell:
            "python -m oucr robustness --config {params.cfg:q} --nominal {input.nominal} "
            "--perturbed {input.perturbed} --out {output.csv} > {log} 2>&1"


rule inspect:
    """Feature maps and receptive fields of the trained OUCR's two branches (Fig. 1c/d)."""
    conda:
        CONDA_ENV
    input:
        model=lambda w: f"{R}/models/{inspect_dataset()}/x{inspect_acc()}/oucr/r0/model.pt",
        store=lambda w: f"{R}/prepared/{inspect_dataset()}",
        masks=lambda w: f"{R}/masks/{inspect_dataset()}/x{inspect_acc()}.h5",
    output:
        features=f"{R}/inspect/features.h5",
        receptive_field=f"{R}/inspect/receptive_field.csv",
    params:
        cfg=cfg_json("accelerations", "mask_type", "models"),
    log:
        f"{R}/logs/inspect.log",
    threads: 1
    shell:
        "python -m oucr inspect --config {params.cfg:q} --checkpoint {input.model} --store {input.store} "
        "--masks {input.masks} --split test --threads {threads} "
        "--out-features {output.features} --out-receptive-field {output.receptive_field} > {log} 2>&1"


rule figure_fig3:
    """Reference, every method and error maps on one test slice per dataset and acceleration."""
    conda:
        CONDA_ENV
    input:
        recon=[d for ds in DATASETS for a in ACCELERATIONS for run in references() + table1_runs()
               for d in recon_dirs(ds, a, run, 0)],
        stores=[f"{R}/prepared/{d}" for d in DATASETS],
    output:
        png=report(f"{R}/figures/fig3.png", caption="../report/fig3.rst", category="Paper artifacts",
                   subcategory="Figures"),
        pdf=f"{R}/figures/fig3.pdf",
    params:
        cfg=cfg_json("demo", "methods", "datasets", "accelerations", "results", "cs", "figures"),
    log:
        f"{R}/logs/figures/fig3.log",
    shell:
        "python -m oucr figures fig3 --config {params.cfg:q} --out {output.png} > {log} 2>&1"


rule figure_fig4:
    """K-space band analysis: box plots of low- and high-frequency PSNR/SSIM per method."""
    conda:
        CONDA_ENV
    input:
        slices=table1_metric_files("slices"),
    output:
        png=report(f"{R}/figures/fig4.png", caption="../report/fig4.rst", category="Paper artifacts",
                   subcategory="Figures"),
        pdf=f"{R}/figures/fig4.pdf",
    params:
        cfg=cfg_json("demo", "methods", "datasets", "accelerations", "figures"),
    log:
        f"{R}/logs/figures/fig4.log",
    shell:
        "python -m oucr figures fig4 --config {params.cfg:q} --slices {input.slices} --out {output.png} > {log} 2>&1"


rule figure_fig1:
    """Recurrent-cell feature maps and receptive fields of the OC and UC branches."""
    conda:
        CONDA_ENV
    input:
        features=f"{R}/inspect/features.h5",
        receptive_field=f"{R}/inspect/receptive_field.csv",
    output:
        png=report(f"{R}/figures/fig1_features.png", caption="../report/fig1.rst", category="Paper artifacts",
                   subcategory="Figures"),
        pdf=f"{R}/figures/fig1_features.pdf",
    params:
        cfg=cfg_json("demo"),
    log:
        f"{R}/logs/figures/fig1_features.log",
    shell:
        "python -m oucr figures fig1 --config {params.cfg:q} --features {input.features} "
        "--receptive-field {input.receptive_field} --out {output.png} > {log} 2>&1"


if SWEEP:

    rule figure_iterations:
        """PSNR and SSIM against the number of CRNN iterations J."""
        conda:
            CONDA_ENV
        input:
            volumes=sweep_metric_files("volumes"),
        output:
            png=report(f"{R}/figures/iterations.png", caption="../report/iterations.rst", category="Paper artifacts",
                       subcategory="Figures"),
            pdf=f"{R}/figures/iterations.pdf",
        params:
            cfg=cfg_json("demo", "iterations_sweep", "models"),
        log:
            f"{R}/logs/figures/iterations.log",
        shell:
            "python -m oucr figures iterations --config {params.cfg:q} --volumes {input.volumes} "
            "--out {output.png} > {log} 2>&1"


rule figure_convergence:
    """Validation PSNR against epoch for every method, one panel per dataset and acceleration."""
    conda:
        CONDA_ENV
    input:
        histories=history_files(),
    output:
        png=report(f"{R}/figures/convergence.png", caption="../report/convergence.rst", category="Beyond the paper",
                   subcategory="Figures"),
        pdf=f"{R}/figures/convergence.pdf",
    params:
        cfg=cfg_json("demo", "methods", "datasets", "accelerations", "figures"),
    log:
        f"{R}/logs/figures/convergence.log",
    shell:
        "python -m oucr figures convergence --config {params.cfg:q} --histories {input.histories} "
        "--out {output.png} > {log} 2>&1"
