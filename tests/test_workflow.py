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
    for rule in ("stats", "tables", "params", "inspect", "figure_fig1", "figure_fig3", "figure_fig4",
                 "figure_iterations", "all"):
        assert stats[rule] == 1, rule


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
    # 24 Table 1 trainings + 5 ablation variants + 5 extra J values (1, 2, 3, 4, 6)
    assert stats["train"] == 34
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
    assert len(train) == 34
    assert all("gpu=1" in b and "runtime=2880" in b for b in train)
    assert others and not any("gpu=1" in b for b in others)


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
    assert "trainig" in out and "validat" in out.lower()

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["training"]["epochs"] = "ten"
    bad.write_text(yaml.safe_dump(config))
    res = run_snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert res.returncode != 0 and "epochs" in res.stderr + res.stdout


def test_lint_passes():
    res = run_snakemake("--lint")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_tiny_configuration_runs_end_to_end(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    results = tmp_path / "results"
    config["results"] = str(results)  # the demo data paths follow through their {results} placeholder
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    res = run_snakemake("--cores", "2", "--configfile", str(path), timeout=900)
    assert res.returncode == 0, res.stderr[-5000:]

    tables = results / "tables"
    t1 = pd.read_csv(tables / "table1.csv")
    required = ["method", "params", "dataset", "acceleration", "psnr_mean", "psnr_sd", "ssim_mean", "ssim_sd",
                "paper_psnr", "paper_ssim"]
    assert set(required) <= set(t1.columns)
    assert set(t1["method"]) == {"Zero-filled", "CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR"}
    assert len(t1) == 8 * 2  # methods x datasets (one acceleration)
    assert t1["psnr_mean"].between(5, 80).all() and t1["ssim_mean"].between(0, 1).all()
    assert (t1["label"] == "demo").all()
    assert t1.loc[t1["method"] == "OUCR", "paper_psnr"].notna().all()
    assert "DEMO" in (tables / "table1.md").read_text()
    t2 = pd.read_csv(tables / "table2.csv")
    assert len(t2) == 6
    sig = pd.read_csv(tables / "significance.csv")
    assert set(sig["method"]) == {"Zero-filled", "CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN"}
    assert sig[["t_p_holm", "wilcoxon_p_holm"]].stack().between(0, 1).all()
    for name in ("fig3", "fig4", "fig1_features", "iterations"):
        for ext in ("png", "pdf"):
            f = results / "figures" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 5000, f
    params = pd.read_csv(tables / "params.csv")
    assert params.loc[params["method"] == "OUCR", "params"].iloc[0] > 0

    # a figure is rebuilt alone by naming it, without retraining anything
    (results / "figures" / "fig4.png").unlink()
    # (the target goes first: --configfile takes several values)
    res = run_snakemake(str(results / "figures" / "fig4.png"), "--cores", "1", "--configfile", str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rule train" not in res.stdout + res.stderr
    assert (results / "figures" / "fig4.png").is_file()
