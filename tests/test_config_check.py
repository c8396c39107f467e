"""oucr.config_check: one short, keyed message per configuration problem, before any job runs."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from oucr.cli import main
from oucr.config import LOSSES, TrainingConfig
from oucr.config_check import OPTIONAL_SECTIONS, check_config, validate_or_exit
from oucr.config_schema import load_schema
from oucr.errors import ConfigError
from oucr.names import ABLATION_VARIANTS, OUCR_FULL, TABLE1_METHODS, TABLE1_NETWORKS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["config/config.yaml", "config/paper.yaml", "config/tiny.yaml"]


@pytest.fixture(scope="module")
def schema() -> Dict[str, Any]:
    return load_schema()


def demo() -> Dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def rename(section: Dict[str, Any], old: str, new: str) -> None:
    section[new] = section.pop(old)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_have_no_problem(name, schema):
    assert check_config(yaml.safe_load((ROOT / name).read_text()), schema) == []


# (edit of config/config.yaml, the one message it must give)
MISTAKES: Dict[str, tuple] = {
    "dataset key typo": (
        lambda c: rename(c["datasets"]["demo-brain"], "slices_per_volume", "slice_per_volume"),
        "datasets.demo-brain.slice_per_volume: unknown key; did you mean slices_per_volume?"),
    "model argument typo": (
        lambda c: rename(c["models"]["OUCR"], "oc_features", "oc_feature"),
        "models.OUCR.oc_feature: unknown argument of OUCR; did you mean oc_features?"),
    "methods without OUCR": (
        lambda c: c.update(methods=["CS", "UNet"]),
        "methods: must contain OUCR (the reference of the significance tests and of Fig. 1)"),
    "ablation on an unknown dataset": (
        lambda c: c["ablation"].update(dataset="demo-brian"),
        "ablation.dataset: 'demo-brian' is not a configured dataset; did you mean demo-brain?"),
    "HPKS without stand_in": (
        lambda c: c["datasets"]["demo-brain"].pop("stand_in"),
        "datasets.demo-brain: paper_dataset 'HPKS' on magnitude data is compared with the paper only when declared "
        "`stand_in: true` (HPKS is private: any other data merely stands in for it); or set paper_dataset: none"),
    "wrong type": (
        lambda c: c["training"].update(epochs="ten"),
        "training.epochs: must be a positive integer, got 'ten'"),
    "unknown top-level key": (
        lambda c: rename(c, "training", "trainig"),
        "trainig: unknown key; did you mean training?"),
    "number read as text": (
        lambda c: c["training"].update(lr="1e-3"),
        "training.lr: must be a positive number, got '1e-3' (YAML reads 1e-3 as text: write it with a decimal "
        "point, e.g. 1.0e-3)"),
    "format typo": (
        lambda c: c["datasets"]["demo-brain"].update(format="magnitde"),
        "datasets.demo-brain.format: must be one of magnitude, fastmri, got 'magnitde'; did you mean magnitude?"),
    "key of the other format": (
        lambda c: c["datasets"]["demo-brain"].pop("input"),
        "datasets.demo-brain.input: missing (required with format: magnitude)"),
    "val_fraction and val_subjects": (
        lambda c: c["datasets"]["demo-fastmri"].update(val_subjects=2),
        "datasets.demo-fastmri: give val_fraction or val_subjects, not both"),
    "centre wider than the acceleration": (
        lambda c: c["accelerations"][8].update(center_fraction=0.2),
        "accelerations.8.center_fraction: 0.2 must be below 1/8 = 0.125 (the fully sampled centre alone would "
        "exceed the 8x sampling budget)"),
    "sweep at an unconfigured acceleration": (
        lambda c: c["iterations_sweep"].update(acceleration=6),
        "iterations_sweep.acceleration: 6 is not a configured acceleration (accelerations: 4, 8)"),
    "robustness shift that is no shift": (
        lambda c: c["robustness"].update(shifted_acceleration=4),
        "robustness.shifted_acceleration: 4 must differ from robustness.acceleration (4): the networks are "
        "evaluated off the acceleration they were trained at"),
    "robustness on an unknown dataset": (
        lambda c: c["robustness"].update(datasets=["fastmri"]),
        "robustness.datasets[0]: 'fastmri' is not a configured dataset; did you mean demo-fastmri?"),
    "figure order with an unknown dataset": (
        lambda c: c["figures"].update(dataset_order=["demo-brain", "demo_fastmri"]),
        "figures.dataset_order[1]: 'demo_fastmri' is not a configured dataset; did you mean demo-fastmri?"),
    "training override of an unknown method": (
        lambda c: c["training"]["methods"].update({"Kiunet": {"epochs": 3}}),
        "training.methods.Kiunet: unknown key; did you mean Kiu-net?"),
    "training override with a key typo": (
        lambda c: c["training"]["methods"]["Kiu-net"].update(epoch=3),
        "training.methods.Kiu-net.epoch: unknown key; did you mean epochs?"),
    "more processes than the global batch": (
        lambda c: c["training"].update(nproc=8),
        "training.batch_size (4) is the global batch, split over training.nproc (8) processes: it must be at least "
        "nproc"),
    "an override's batch below nproc": (
        lambda c: (c["training"].update(nproc=2), c["training"]["methods"]["Kiu-net"].update(batch_size=1)),
        "training.methods.Kiu-net.batch_size (1) is the global batch, split over training.nproc (2) processes: it "
        "must be at least nproc"),
    "Kiu-net widths not three numbers": (
        lambda c: c["models"]["Kiu-net"].update(widths=[4, 8]),
        "models.Kiu-net: KiUNet needs three positive widths, got (4, 8)"),
    "a model argument of the wrong type": (
        lambda c: c["models"]["UNet"].update(levels="four"),
        "models.UNet.levels: must be an integer (like the default 5), got 'four'"),
    "a size the pooling cannot take": (
        lambda c: (c["models"]["UNet"].update(levels=7), c["datasets"]["demo-brain"].update(size=[96, 96])),
        "datasets.demo-brain.size: 96 x 96 is not divisible by 64, which UNet needs (its pooling depth, set by "
        "models.UNet)"),
    "demo paths without demo_data": (
        lambda c: (c.pop("demo_data"), c["datasets"].pop("demo-fastmri"), c["figures"].pop("dataset_order")),
        "datasets.demo-brain.input: lies under results/demo_data, which only the demo_data section builds; add "
        "demo_data or point it at your data"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_mistake_gives_its_one_keyed_message(case, schema):
    edit, message = MISTAKES[case]
    config = demo()
    edit(config)
    assert check_config(config, schema) == [message]


def test_check_config_does_not_modify_the_config(schema):
    config = demo()
    rename(config["datasets"]["demo-brain"], "slices_per_volume", "slice_per_volume")
    before = copy.deepcopy(config)
    check_config(config, schema)
    assert config == before


@pytest.mark.parametrize("section", list(OPTIONAL_SECTIONS))
def test_optional_sections_may_be_left_out_or_empty(section, schema, tmp_path):
    config = demo()
    if section == "demo_data":  # without it the datasets must point at existing data
        config["datasets"]["demo-brain"]["input"] = str(tmp_path / "brain")
        config["datasets"]["demo-fastmri"].update(train_input=str(tmp_path / "train"), test_input=str(tmp_path / "v"))
    without = copy.deepcopy(config)
    without.pop(section)
    assert check_config(without, schema, models=section == "models") == []
    if section != "replicates":  # a section written empty (YAML `robustness:`) is the same as none
        assert check_config({**without, section: None}, schema, models=section == "models") == []


def test_only_the_three_required_keys_are_required(schema):
    config = demo()
    minimal = {k: config[k] for k in ("datasets", "accelerations", "methods", "demo_data")}
    assert check_config(minimal, schema, models=False) == []
    assert check_config({"datasets": config["datasets"], "demo_data": config["demo_data"]}, schema,
                        models=False) == [
        "accelerations: missing (required)", "methods: missing (required)"]


def test_several_mistakes_give_one_line_each_and_no_schema_dump(schema):
    config = demo()
    rename(config["datasets"]["demo-brain"], "slices_per_volume", "slice_per_volume")
    config["training"]["epochs"] = "ten"
    config["methods"] = ["UNet"]
    problems = check_config(config, schema, models=False)
    assert len(problems) == 3
    assert all("\n" not in p and len(p) < 200 for p in problems)
    assert not any("Failed validating" in p or "is not valid under any" in p for p in problems)


def test_validate_or_exit_lists_every_problem_then_fills_defaults(schema):
    config = demo()
    config["training"]["epochs"] = "ten"
    config["ablation"]["dataset"] = "demo-brian"
    with pytest.raises(ConfigError) as info:
        validate_or_exit(config, "my.yaml", schema)
    assert str(info.value).splitlines() == [
        "config my.yaml has 2 problem(s):",
        "  training.epochs: must be a positive integer, got 'ten'",
        "  ablation.dataset: 'demo-brian' is not a configured dataset; did you mean demo-brain?",
    ]
    good = demo()
    del good["seed"], good["mask_type"]
    validate_or_exit(good, "my.yaml", schema)
    assert good["seed"] == 0 and good["mask_type"] == "random"  # the schema defaults, as Snakemake's validate set


def test_check_config_command(tmp_path, capsys):
    assert main(["check-config", str(ROOT / "config" / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"config {ROOT / 'config' / 'config.yaml'} OK: 31 trainings on 2 dataset(s)")
    config = demo()
    config.pop("iterations_sweep")
    config["training"]["epochs"] = "ten"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"config {bad} has 1 problem(s):" in err and "training.epochs: must be a positive integer" in err


def test_importing_the_module_does_not_import_torch():
    code = "import sys, oucr.config_check; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_schema_names_what_the_code_names(schema):
    definitions, properties = schema["definitions"], schema["properties"]
    assert set(definitions["training_settings"]["properties"]) == {f.name for f in fields(TrainingConfig)}
    assert definitions["training_settings"]["properties"]["loss"]["enum"] == list(LOSSES)
    assert definitions["method"]["enum"] == TABLE1_METHODS
    assert definitions["variant"]["enum"] == ABLATION_VARIANTS
    assert list(properties["models"]["properties"]) == TABLE1_NETWORKS
    overridable = properties["training"]["properties"]["methods"]["propertyNames"]["enum"]
    assert overridable == TABLE1_NETWORKS + [v for v in ABLATION_VARIANTS if v != OUCR_FULL]


def test_schema_is_a_valid_json_schema_that_means_the_same(schema):
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def errors(config):
        config["accelerations"] = {str(k): v for k, v in config["accelerations"].items()}  # JSON keys are text
        return list(validator.iter_errors(config))

    for name in SHIPPED:
        assert errors(yaml.safe_load((ROOT / name).read_text())) == [], name
    for edit in (MISTAKES["training override with a key typo"][0], MISTAKES["dataset key typo"][0],
                 MISTAKES["wrong type"][0], MISTAKES["unknown top-level key"][0]):
        config = demo()
        edit(config)
        assert errors(config)


def test_snakemake_dry_run_shows_the_messages_and_no_schema_dump(tmp_path):
    config = demo()
    config["results"] = str(tmp_path / "results")
    rename(config["datasets"]["demo-brain"], "slices_per_volume", "slice_per_volume")
    rename(config["models"]["OUCR"], "oc_features", "oc_feature")
    del config["resources"], config["iterations_sweep"]  # both optional: no message
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"config {bad} has 2 problem(s):" in out
    assert "datasets.demo-brain.slice_per_volume: unknown key; did you mean slices_per_volume?" in out
    assert "models.OUCR.oc_feature: unknown argument of OUCR; did you mean oc_features?" in out
    assert "Failed validating" not in out and "is not valid under any" not in out
    mentions = [line for line in out.splitlines() if "slice_per_volume" in line or "oc_feature" in line
                or "problem" in line or "schema" in line.lower()]
    assert len(mentions) < 15
