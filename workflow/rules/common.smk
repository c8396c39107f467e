# Names, paths and per-job config subsets shared by the rules.
#
# Paths come from oucr.paths and method names from oucr.names (one map of results/ and one
# spelling of each method for the package and the workflow). Each job receives, as a JSON
# parameter, only the part of the config it depends on; Snakemake reruns a job when its
# parameters change, so editing one method's widths retrains that method alone.

import json
import os
import re

from oucr import paths as P
from oucr import runs as runs_lib
from oucr.config import ROBUSTNESS_DEFAULTS, resolve_results_placeholder
from oucr.names import CS, OUCR, ZERO_FILLED
from oucr.runs import run_registry

resolve_results_placeholder(config)
R = config.get("results", "results")
CONDA_ENV = "../envs/oucr.yaml"
DATASETS = list(config["datasets"])
ACCELERATIONS = sorted(int(a) for a in config["accelerations"])
NETWORKS = runs_lib.networks(config)
HAS_CS = CS in config["methods"]
ABLATION = config.get("ablation") or {}
SWEEP = config.get("iterations_sweep") or {}
ROBUSTNESS = {**ROBUSTNESS_DEFAULTS, **config["robustness"]} if config.get("robustness") else {}
CS_CHUNKS = int((config.get("cs") or {}).get("chunks", 1))
ZF_RUN, CS_RUN = P.ZERO_FILLED_RUN, P.CS_RUN
# resources a rule gets when the config's resources section leaves them out
DEFAULT_RESOURCES = {"threads": 1, "gpu": 0, "mem_mb": 4000, "runtime": "2h"}


RUNS = {name: {"method": r.method, "display": r.display, "sets": list(r.sets), "replicates": r.replicates}
        for name, r in run_registry(config).items()}


def replicates(run):
    """Replicate indices of a run (untrained references: the single replicate 0)."""
    return list(range(RUNS[run]["replicates"])) if run in RUNS else [0]


def display_name(run):
    if run == ZF_RUN:
        return ZERO_FILLED
    if run == CS_RUN:
        return CS
    return RUNS[run]["display"]


def table1_runs():
    return runs_lib.table1_runs(config)


def ablation_runs():
    return runs_lib.ablation_runs(config)


def sweep_runs():
    return runs_lib.sweep_runs(config)


def runs_for(dataset, acc):
    """Every trained run needed for one dataset x acceleration."""
    return runs_lib.runs_for(config, dataset, acc)


def references():
    """The untrained reconstructions evaluated beside the networks."""
    return [ZF_RUN] + ([CS_RUN] if HAS_CS else [])


def with_replicates(runs):
    return [(run, rep) for run in runs for rep in replicates(run)]


def metric_files(kind, dataset, acc, pairs, condition=None):
    return [str(P.metrics_file(R, dataset, acc, run, rep, kind, condition)) for run, rep in pairs]


def table1_metric_files(kind):
    pairs = with_replicates(references() + table1_runs())
    return [f for d in DATASETS for a in ACCELERATIONS for f in metric_files(kind, d, a, pairs)]


def ablation_metric_files(kind):
    if not ABLATION:
        return []
    return metric_files(kind, ABLATION["dataset"], int(ABLATION.get("acceleration", 4)),
                        with_replicates(ablation_runs()))


def sweep_metric_files(kind):
    if not SWEEP:
        return []
    return metric_files(kind, SWEEP["dataset"], int(SWEEP.get("acceleration", 4)), with_replicates(sweep_runs()))


def history_files():
    """Training histories of the Table 1 networks (every replicate): the convergence figure."""
    return [str(P.model_dir(R, d, a, run, rep) / "history.csv")
            for d in DATASETS for a in ACCELERATIONS for run, rep in with_replicates(table1_runs())]


def train_benchmark_files():
    return [str(P.benchmark_file(R, "train", d, a, run, rep))
            for d in DATASETS for a in ACCELERATIONS for run, rep in with_replicates(table1_runs())]


def train_info_files():
    return [str(P.model_dir(R, d, a, run, rep) / "info.json")
            for d in DATASETS for a in ACCELERATIONS for run, rep in with_replicates(table1_runs())]


def recon_timing_dirs():
    return [str(P.recon_dir(R, d, a, run, rep))
            for d in DATASETS for a in ACCELERATIONS for run, rep in with_replicates(table1_runs())]


# Robustness table: networks trained at one acceleration, evaluated off their training conditions.
ROBUSTNESS_CONDITIONS = list(P.ROBUSTNESS_CONDITIONS) if ROBUSTNESS else []


ROBUSTNESS_DATASETS = [d for d in DATASETS if d in ROBUSTNESS.get("datasets", DATASETS)]


def robustness_acc():
    return int(ROBUSTNESS["acceleration"])


def robustness_runs():
    """Zero-filled and the Table 1 methods of ``robustness.methods`` (default: every one)."""
    chosen = ROBUSTNESS.get("methods", config["methods"])
    return [ZF_RUN] + [run for run, method in ([(CS_RUN, CS)] if HAS_CS else []) + list(zip(table1_runs(), NETWORKS))
                       if method in chosen]


def robustness_metric_files(kind):
    pairs = with_replicates(robustness_runs())
    return [f for c in ROBUSTNESS_CONDITIONS for d in ROBUSTNESS_DATASETS
            for f in metric_files(kind, d, robustness_acc(), pairs, condition=c)]


def robustness_nominal_files(kind):
    pairs = with_replicates(robustness_runs())
    return [f for d in ROBUSTNESS_DATASETS for f in metric_files(kind, d, robustness_acc(), pairs)] if ROBUSTNESS else []


def condition_masks(wildcards):
    """The masks file a robustness condition reconstructs with."""
    if wildcards.condition == "acceleration":
        return str(P.masks_file(R, wildcards.dataset, int(ROBUSTNESS["shifted_acceleration"])))
    if wildcards.condition == "equispaced":
        return str(P.masks_file(R, wildcards.dataset, wildcards.acc, "equispaced"))
    return str(P.masks_file(R, wildcards.dataset, wildcards.acc))


def condition_args(wildcards):
    """Extra reconstruction arguments of a robustness condition."""
    if wildcards.condition == "noise":
        return f"--noise-snr {float(ROBUSTNESS['noise_snr_db'])}"
    return ""


def res(name, default_threads=1):
    """resources section of the config for one rule kind (``default`` and built-in values as fallback)."""
    section = dict(DEFAULT_RESOURCES, threads=default_threads)
    section.update((config.get("resources") or {}).get("default") or {})
    section.update((config.get("resources") or {}).get(name) or {})
    return section


def cfg_json(*keys, **extra):
    """JSON of the named top-level config keys (plus extras), for a job's --config."""
    sub = {k: config[k] for k in keys if k in config}
    sub.update(extra)
    return json.dumps(sub, sort_keys=True)


def _run_training(run):
    method = RUNS[run]["method"]
    training = {k: v for k, v in (config.get("training") or {}).items() if k != "methods"}
    training.update(((config.get("training") or {}).get("methods") or {}).get(method) or {})
    return method, training


def train_cfg(wildcards):
    """JSON of exactly the settings one training run depends on (so that only it reruns when they change)."""
    method, training = _run_training(wildcards.run)
    key = OUCR if method == OUCR or method not in NETWORKS + [OUCR] else method  # variants use OUCR's widths
    return json.dumps(
        {
            "models": {key: (config.get("models") or {}).get(key) or {}},
            "training": training,
            "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]},
            "accelerations": {str(wildcards.acc): acc_cfg(wildcards.acc)},
            "mask_type": config.get("mask_type", "random"),
            "seed": config.get("seed", 0),
        },
        sort_keys=True,
    )


def train_gpus(wildcards):
    """GPUs of one training job: one per process when the train resources ask for GPUs."""
    _, training = _run_training(wildcards.run)
    return int(res("train").get("gpu", 0)) * int(training.get("nproc", 1))


def dataset_inputs(wildcards):
    """Raw input folders of a dataset (the demo generator's outputs when configured)."""
    section = config["datasets"][wildcards.dataset]
    keys = ["input"] if section["format"] == "magnitude" else ["train_input", "test_input"]
    paths = []
    demo_root = os.path.normpath(f"{R}/demo_data")
    for k in keys:
        p = os.path.normpath(section[k])
        if config.get("demo_data") and p.startswith(demo_root + os.sep):
            # a folder inside a demo dataset: depend on the generator's output folder
            kind = os.path.relpath(p, demo_root).split(os.sep)[0]
            p = os.path.join(demo_root, kind)
        paths.append(p)
    return list(dict.fromkeys(paths))


TABLES = [
    f"{R}/tables/{name}"
    for name in ("table1.csv", "table1.md", "table1.tex", "table2.csv", "table2.md", "table2.tex",
                 "significance.csv", "significance.md", "params.csv", "provenance.md")
]
if ROBUSTNESS:
    TABLES += [f"{R}/tables/robustness.csv", f"{R}/tables/robustness.md"]
FIGURE_NAMES = ["fig3", "fig4", "fig1_features", "convergence"] + (["iterations"] if SWEEP else [])
FIGURES = [f"{R}/figures/{name}.{ext}" for name in FIGURE_NAMES for ext in ("png", "pdf")]


def all_targets():
    return TABLES + FIGURES


def acc_cfg(acc):
    accs = config["accelerations"]
    return accs.get(int(acc), accs.get(str(acc)))


def center_fraction_of(acc):
    """The configured centre fraction; the robustness table's shifted acceleration may have its own."""
    configured = acc_cfg(acc)
    if configured is not None:
        return configured["center_fraction"]
    if ROBUSTNESS and int(acc) == int(ROBUSTNESS["shifted_acceleration"]):
        return float(ROBUSTNESS.get("shifted_center_fraction", 0.32 / int(acc)))  # fastMRI's 0.08 at 4x, 0.04 at 8x
    raise ValueError(f"acceleration {acc} is not configured")


def mask_type_of(acc):
    return (acc_cfg(acc) or {}).get("mask_type", config.get("mask_type", "random"))


def cs_tune_args(wildcards):
    cs = config.get("cs") or {}
    args = []
    if "regulariser" in cs:
        args.append(f"--regulariser {cs['regulariser']}")
    if "max_iter" in cs:
        args.append(f"--max-iter {int(cs['max_iter'])}")
    if "lambdas" in cs:
        args.append("--lambdas " + " ".join(str(float(v)) for v in cs["lambdas"]))
    if "tune_slices" in cs:
        args.append(f"--slices {int(cs['tune_slices'])}")
    return " ".join(args)


def recon_dirs(dataset, acc, run, rep=0, condition=None):
    """Folders holding one replicate's reconstructions (CS is split into chunks)."""
    return [str(p) for p in P.recon_dirs(R, dataset, acc, run, rep, CS_CHUNKS, condition)]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    acc=r"\d+",
    rep=r"\d+",
    run="[a-z0-9-]+",
    chunk=r"\d+",
    condition="|".join(P.ROBUSTNESS_CONDITIONS),


def inspect_dataset():
    return ABLATION.get("dataset", DATASETS[0])


def inspect_acc():
    return int(ABLATION.get("acceleration", ACCELERATIONS[0]))


NETWORK_RUNS_RE = "|".join(map(re.escape, RUNS))
