"""The Snakemake workflow: dry runs, schema validation, lint, SLURM profile, and a tiny end-to-end run."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(*args, env=None, timeout=600):
    return subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def job_stats(output: str) -> dict:
    """The 'Job stats' table of a dry run as {rule: count}."""
    stats = {}
    block = output.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        stats[m.group(1)] = int(m.group(2))
    return stats


def test_demo_dry_run_schedules_every_job(tmp_path):
    res = run_snakemake("-n", "--cores", "1", "--config", f"results={tmp_path}/results")
    assert res.returncode == 0, res.stderr + res.stdout
    stats = job_stats(res.stdout)
    # 6 networks x 2 datasets x 2 accelerations + 5 ablation variants + 2 extra J values
    assert stats["train"] == 31
    assert stats["reconstruct_network"] == 31
    assert stats["prepare"] == 2 and stats["masks"] == 4 and stats["demo_data"] == 1
    assert stats["cs_tune"] == 4 and stats["cs_reconstruct"] == 8
    assert stats["reconstruct_zero_filled"] == 4
    assert stats["evaluate"] == 31 + 4 + 4
    # robustness: 3 conditions x 1 dataset (the demo's robustness.datasets) x (6 networks + zero-filled
    # + 2 CS chunks); equispaced masks
    assert stats["robustness_network"] == 3 * 1 * 6 and stats["robustness_cs"] == 3 * 1 * 2
    assert stats["evaluate_robustness"] == 3 * 1 * 8 and stats["masks_equispaced"] == 1
    for rule in ("stats", "tables", "params", "inspect", "figure_fig1", "figure_fig3", "figure_fig4",
                 "figure_iterations", "figure_convergence", "robustness_table", "all"):
        assert stats[rule] == 1, rule


def test_replicates_are_jobs_of_their_own_and_one_can_be_rebuilt_by_target(tmp_path):
    res = run_snakemake("-n", "--cores", "1", "--config", f"results={tmp_path}/results", "replicates=3")
    assert res.returncode == 0, res.stderr + res.stdout
    stats = job_stats(res.stdout)
    # Table 1 and Table 2 networks three times, the two extra J values once
    assert stats["train"] == 3 * (24 + 5) + 2
    assert stats["reconstruct_network"] == stats["train"]
    target = f"{tmp_path}/results/models/demo-brain/x4/oucr/r2/model.pt"
    res = run_snakemake(target, "-n", "--cores", "1", "--config", f"results={tmp_path}/results", "replicates=3")
    assert res.returncode == 0, res.stderr + res.stdout
    one = job_stats(res.stdout)
    assert one["train"] == 1 and "reconstruct_network" not in one
    assert "replicate 2" in res.stdout or "rep=2" in res.stdout


@pytest.fixture
def paper_standin(tmp_path):
    """config/paper.yaml with stand-in (empty) data folders."""
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for section, keys in (("brain", ["input"]), ("fastmri", ["train_input", "test_input"])):
        for key in keys:
            folder = tmp_path / "data" / section / key
            folder.mkdir(parents=True)
            config["datasets"][section][key] = str(folder)
    config["results"] = str(tmp_path / "results")
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_paper_dry_run_schedules_every_job_without_demo_data(paper_standin):
    res = run_snakemake("-n", "--cores", "1", "--configfile", str(paper_standin))
    assert res.returncode == 0, res.stderr + res.stdout
    stats = job_stats(res.stdout)
    assert "demo_data" not in stats, "a --configfile must replace the demo config, not extend it"
    # 3 replicates of 24 Table 1 trainings and 5 ablation variants, + 5 extra J values (1, 2, 3, 4, 6) once
    assert stats["train"] == 3 * (24 + 5) + 5
    assert stats["cs_reconstruct"] == 4 * 50
    assert stats["prepare"] == 2


def test_slurm_profile_requests_a_gpu_for_training(paper_standin, tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("sbatch", "squeue", "sacct", "sinfo", "scancel"):
        script = fake / name
        script.write_text("#!/bin/sh\necho 'Submitted batch job 1'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    res = run_snakemake("-n", "--workflow-profile", "profiles/slurm", "--configfile", str(paper_standin),
                        env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert res.returncode == 0, res.stderr + res.stdout
    blocks = res.stdout.split("\n\n")
    train = [b for b in blocks if "rule train:" in b]
    others = [b for b in blocks if "rule prepare:" in b or "rule evaluate:" in b]
    assert len(train) == 3 * (24 + 5) + 5
    assert all("gpu=1" in b and "runtime=2880" in b for b in train)
    assert others and not any("gpu=1" in b for b in others)
    # a training over two GPUs asks SLURM for two
    config = yaml.safe_load(paper_standin.read_text())
    config["training"]["methods"]["D5C5"] = {"nproc": 2}
    paper_standin.write_text(yaml.safe_dump(config, sort_keys=False))
    res = run_snakemake("-n", "--workflow-profile", "profiles/slurm", "--configfile", str(paper_standin),
                        env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert res.returncode == 0, res.stderr + res.stdout
    d5c5 = [b for b in res.stdout.split("\n\n") if "rule train:" in b and "run=d5c5" in b]
    assert d5c5 and all("gpu=2" in b for b in d5c5)


def test_workstation_profile_counts_gpus_and_passes_them_to_the_jobs(paper_standin):
    res = run_snakemake("-n", "-p", "--workflow-profile", "profiles/workstation", "--configfile", str(paper_standin),
                        "--resources", "gpu=2")
    assert res.returncode == 0, res.stderr + res.stdout
    train = [b for b in res.stdout.split("\n\n") if "rule train:" in b]
    assert train and all("--gpus 1" in b for b in train)  # each job claims the GPU it was granted


def test_no_default_profile_can_override_the_cluster_profile():
    assert not (ROOT / "profiles" / "default").exists()
    assert not (ROOT / "workflow" / "profiles" / "default").exists()


def test_config_typo_is_rejected_with_a_clear_message(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["trainig"] = config.pop("training")
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump(config))
    res = run_snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert res.returncode != 0
    out = res.stderr + res.stdout
    assert f"config {bad} has 1 problem(s):" in out
    assert "trainig: unknown key; did you mean training?" in out
    assert "Failed validating" not in out


def test_lint_passes():
    res = run_snakemake("--lint")
    assert res.returncode == 0, res.stdout + res.stderr


def _tiny_config(tmp_path, name):
    config = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    results = tmp_path / name / "results"
    config["results"] = str(results)  # the demo data paths follow through their {results} placeholder
    path = tmp_path / name / "tiny.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, results


REPRODUCIBLE = ("table1.csv", "table2.csv", "significance.csv")
#: wall-clock measurements (Table 1's cost columns): the only cells a rerun may change
MEASURED_TIMES = ("train_hours", "infer_ms_per_slice")


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_tiny_configuration_runs_end_to_end_and_a_second_run_gives_the_same_numbers(tmp_path):
    path, results = _tiny_config(tmp_path, "a")
    res = run_snakemake("--cores", "2", "--configfile", str(path), timeout=1200)
    assert res.returncode == 0, res.stderr[-5000:]

    tables = results / "tables"
    t1 = pd.read_csv(tables / "table1.csv")
    required = ["method", "params", "params_used", "dataset", "acceleration", "psnr_mean", "psnr_sd", "ssim_mean",
                "ssim_sd", "haarpsi_mean", "vif_mean", "paper_psnr", "paper_ssim", "train_hours", "train_device",
                "infer_ms_per_slice", "n_replicates"]
    assert set(required) <= set(t1.columns)
    assert set(t1["method"]) == {"Zero-filled", "CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR"}
    assert len(t1) == 8  # methods x one dataset x one acceleration
    assert t1["psnr_mean"].between(5, 80).all() and t1["ssim_mean"].between(0, 1).all()
    assert (t1["label"] == "demo").all()
    assert t1.loc[t1["method"] == "OUCR", "paper_psnr"].notna().all()
    networks = t1[~t1["method"].isin(["Zero-filled", "CS"])]
    assert (networks["train_hours"] > 0).all() and (networks["infer_ms_per_slice"] > 0).all()
    assert "DEMO" in (tables / "table1.md").read_text() and "stand-in for HPKS" in (tables / "table1.md").read_text()
    t2 = pd.read_csv(tables / "table2.csv")
    assert len(t2) == 3
    sig = pd.read_csv(tables / "significance.csv")
    assert set(sig["method"]) >= {"Zero-filled", "CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN"}
    assert "n = 2 test volumes" in (tables / "significance.md").read_text()
    robustness = pd.read_csv(tables / "robustness.csv")
    assert set(robustness["condition"]) == {"acceleration", "equispaced", "noise"}
    for name in ("fig3", "fig4", "fig1_features", "iterations", "convergence"):
        for ext in ("png", "pdf"):
            f = results / "figures" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 5000, f
    params = pd.read_csv(tables / "params.csv")
    assert params.loc[params["method"] == "OUCR", "params"].iloc[0] > 0
    metrics = pd.read_csv(results / "metrics" / "demo-brain" / "x4" / "oucr" / "r0.volumes.csv")
    assert not metrics["git_commit"].str.startswith("unknown").any()  # run from this clone: its commit

    # a figure is rebuilt alone by naming it, without retraining anything
    (results / "figures" / "fig4.png").unlink()
    # (the target goes first: --configfile takes several values)
    res = run_snakemake(str(results / "figures" / "fig4.png"), "--cores", "1", "--configfile", str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rule train" not in res.stdout + res.stderr
    assert (results / "figures" / "fig4.png").is_file()

    # the report of every table and figure, grouped as the README says
    res = run_snakemake("--report", str(results / "report.html"), "--configfile", str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    report = (results / "report.html").read_text(errors="replace")
    assert all(group in report for group in ("Paper artifacts", "Beyond the paper", "Provenance"))

    # same seed, same numbers: a second run into another folder writes byte-identical tables
    path_b, results_b = _tiny_config(tmp_path, "b")
    targets = [str(results_b / "tables" / name) for name in REPRODUCIBLE]
    res = run_snakemake(*targets, "--cores", "2", "--configfile", str(path_b), timeout=1200)
    assert res.returncode == 0, res.stderr[-5000:]
    for name in REPRODUCIBLE:
        a, b = (pd.read_csv(r / "tables" / name, dtype=str, keep_default_na=False) for r in (results, results_b))
        assert list(a.columns) == list(b.columns), name
        timed = [c for c in MEASURED_TIMES if c in a.columns]
        if not timed:
            assert (results_b / "tables" / name).read_bytes() == (tables / name).read_bytes(), name
        # every other cell is the same text, character for character
        pd.testing.assert_frame_equal(a.drop(columns=timed), b.drop(columns=timed), check_exact=True, obj=name)


def test_a_per_acceleration_mask_type_reaches_the_masks_job(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["accelerations"][4]["mask_type"] = "equispaced_fraction"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    res = run_snakemake("-n", "-p", "--cores", "1", "--configfile", str(path))
    assert res.returncode == 0, res.stderr + res.stdout
    masks = [b for b in res.stdout.split("\n\n") if "oucr masks" in b and "-equispaced.h5" not in b]
    x4 = [b for b in masks if "--acceleration 4 " in b]
    x8 = [b for b in masks if "--acceleration 8 " in b]
    assert x4 and all("--mask-type equispaced_fraction" in b for b in x4)
    assert x8 and all("--mask-type random" in b for b in x8)


@pytest.mark.slow
def test_the_gpu_check_runs_in_its_cpu_dry_mode(tmp_path):
    res = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry", str(tmp_path / "check")], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = (tmp_path / "check" / "summary.md").read_text()
    steps = [line for line in summary.splitlines() if line.startswith("- step")]
    assert len(steps) >= 7 and all(": ok in" in line for line in steps), summary
    assert "weights bit-identical" in summary and "max |weight diff|" in summary  # resume; DDP vs one process


def test_the_main_install_has_what_the_report_needs():
    """`snakemake --report` needs pygments, which `pip install -e .` (no test extra) must bring."""
    from importlib.metadata import requires

    assert any(r.split(">")[0].split("=")[0].strip().lower() == "pygments" for r in requires("oucr-benchmark"))
