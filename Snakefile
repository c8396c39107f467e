# The OUCR benchmark: raw data -> prepared store -> masks -> training -> reconstruction
# -> evaluation -> paired statistics -> tables and figures, all under `results/`.
#
#   snakemake --cores all                                  # embedded demo (config/config.yaml)
#   snakemake --cores all results/figures/fig3.png         # one figure
#   snakemake --workflow-profile profiles/slurm --configfile config/paper.yaml   # the paper on SLURM
#
# Rules stay thin: each calls one `oucr` subcommand. See workflow/rules/*.smk.

from snakemake.utils import min_version

from oucr.config_check import validate_or_exit

min_version("9.20")


# The embedded demo is the default. A --configfile replaces it rather than being merged
# into it, so that a paper run never inherits the demo's datasets.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate_or_exit(config, ", ".join(map(str, workflow.configfiles)) or "config/config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
