# Names, paths and per-job config subsets shared by the rules.
#
# Each job receives, as a JSON parameter, only the part of the config it depends on;
# Snakemake reruns a job when its parameters change, so editing one method's widths
# retrains that method alone.

import json
import os
import re

from oucr.config import resolve_results_placeholder

resolve_results_placeholder(config)
R = config.get("results", "results")
CONDA_ENV = "../envs/oucr.yaml"
DATASETS = list(config["datasets"])
ACCELERATIONS = sorted(int(a) for a in config["accelerations"])
NETWORKS = [m for m in config["methods"] if m != "CS"]
HAS_CS = "CS" in config["methods"]
OUCR_FULL = "UC-CRNN + OC-CRNN + RM (OUCR)"


def slug(name):
    """File-system name of a method (mirrors oucr.models.registry.method_slug)."""
    if name == OUCR_FULL:
        return "oucr"
    s = "".join(c if c.isalnum() else "-" for c in name.lower())
    while "--" in s:
        s = s.replace("--", "-")
    return s.strip("-")


def default_iterations():
    return int((config.get("models", {}).get("OUCR") or {}).get("iterations", 5))


# run name -> {"method": paper name, "display": name in tables, "sets": config overrides}
RUNS = {slug(m): {"method": m, "display": m, "sets": []} for m in NETWORKS}
_ablation = config.get("ablation") or {}
for _v in _ablation.get("variants") or []:
    if _v != OUCR_FULL:
        RUNS[slug(_v)] = {"method": _v, "display": _v, "sets": []}
_sweep = config.get("iterations_sweep") or {}
for _j in _sweep.get("values") or []:
    if int(_j) != default_iterations():
        RUNS[f"oucr-j{_j}"] = {
            "method": "OUCR",
            "display": f"OUCR J={_j}",
            "sets": [f"models.OUCR.iterations={int(_j)}"],
        }


def table1_runs():
    return [slug(m) for m in NETWORKS]


def ablation_runs():
    return [slug(v) for v in _ablation.get("variants") or []]


def sweep_runs():
    out = []
    for j in _sweep.get("values") or []:
        out.append("oucr" if int(j) == default_iterations() else f"oucr-j{j}")
    if "oucr" not in out and out:
        out.append("oucr")  # the default J is a point of the curve too
    return out


def runs_for(dataset, acc):
    """Every trained run needed for one dataset x acceleration."""
    runs = list(table1_runs())
    if _ablation and dataset == _ablation.get("dataset") and acc == int(_ablation.get("acceleration", 4)):
        runs += ablation_runs()
    if _sweep and dataset == _sweep.get("dataset") and acc == int(_sweep.get("acceleration", 4)):
        runs += sweep_runs()
    return list(dict.fromkeys(runs))


def display_name(run):
    if run == "zero-filled":
        return "Zero-filled"
    if run == "cs":
        return "CS"
    return RUNS[run]["display"]


def references_for(dataset, acc):
    """Every reconstruction evaluated for one dataset x acceleration."""
    return ["zero-filled"] + (["cs"] if HAS_CS else []) + runs_for(dataset, acc)


def res(name, default_threads=1):
    """resources section of the config for one rule kind (with `default` as fallback)."""
    section = dict((config.get("resources") or {}).get("default") or {})
    section.update((config.get("resources") or {}).get(name) or {})
    section.setdefault("threads", default_threads)
    return section


def cfg_json(*keys, **extra):
    """JSON of the named top-level config keys (plus extras), for a job's --config."""
    sub = {k: config[k] for k in keys if k in config}
    sub.update(extra)
    return json.dumps(sub, sort_keys=True)


def train_cfg(wildcards):
    """JSON of exactly the settings one training run depends on (so that only it reruns when they change)."""
    method = RUNS[wildcards.run]["method"]
    key = method if method in NETWORKS or method == "OUCR" else "OUCR"  # ablation variants use OUCR's widths
    training = {k: v for k, v in (config.get("training") or {}).items() if k != "methods"}
    training.update(((config.get("training") or {}).get("methods") or {}).get(method) or {})
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


def metric_files(kind, dataset, acc, runs):
    return [f"{R}/metrics/{dataset}/x{acc}/{run}.{kind}.csv" for run in runs]


def table1_metric_files(kind):
    return [
        f
        for d in DATASETS
        for a in ACCELERATIONS
        for f in metric_files(kind, d, a, ["zero-filled"] + (["cs"] if HAS_CS else []) + table1_runs())
    ]


def ablation_metric_files(kind):
    if not _ablation:
        return []
    return metric_files(kind, _ablation["dataset"], int(_ablation.get("acceleration", 4)), ablation_runs())


def sweep_metric_files(kind):
    if not _sweep:
        return []
    return metric_files(kind, _sweep["dataset"], int(_sweep.get("acceleration", 4)), sweep_runs())


TABLES = [
    f"{R}/tables/{name}"
    for name in (
        "table1.csv",
        "table1.md",
        "table1.tex",
        "table2.csv",
        "table2.md",
        "table2.tex",
        "significance.csv",
        "significance.md",
        "params.csv",
    )
]
FIGURES = [
    f"{R}/figures/{name}.{ext}"
    for name in ("fig3", "fig4", "fig1_features", "iterations")
    for ext in ("png", "pdf")
]


def all_targets():
    return TABLES + FIGURES


def acc_cfg(acc):
    accs = config["accelerations"]
    return accs.get(int(acc), accs.get(str(acc)))


def cs_chunks():
    return int((config.get("cs") or {}).get("chunks", 1))


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


def recon_dirs(dataset, acc, run):
    """Folders holding one method's reconstructions (CS is split into chunks)."""
    if run == "cs":
        return [f"{R}/recon/{dataset}/x{acc}/cs-parts/{i}" for i in range(cs_chunks())]
    return [f"{R}/recon/{dataset}/x{acc}/{run}"]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    acc=r"\d+",
    run="[a-z0-9-]+",
    chunk=r"\d+",


def inspect_dataset():
    return (config.get("ablation") or {}).get("dataset", DATASETS[0])


def inspect_acc():
    return int((config.get("ablation") or {}).get("acceleration", ACCELERATIONS[0]))


NETWORK_RUNS_RE = "|".join(map(re.escape, RUNS))
