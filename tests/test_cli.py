"""The `oucr` command line: help for every subcommand and option, examples, exit codes."""

from __future__ import annotations

import argparse

import pytest

from oucr.cli import SUBCOMMANDS, build_parser, main


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _undocumented(parser: argparse.ArgumentParser, where: str) -> list:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                missing += _undocumented(child, f"{where} {name}")
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_and_option_has_help_text(name):
    parser = _subparser(name)
    assert parser.description, f"oucr {name} has no description"
    assert not _undocumented(parser, f"oucr {name}")


def test_top_level_help_ends_with_examples_and_points_to_the_workflow(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    examples = out.split("examples:", 1)[1]
    assert sum(line.strip().startswith("oucr ") for line in examples.splitlines()) == 3
    assert "snakemake --cores all" in examples
    for name in SUBCOMMANDS:
        assert name in out


def test_train_help_states_the_default_paths_the_code_uses(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "<results>/prepared/DATASET" in out and "<results>/models/DATASET/xACC/RUN/rREPLICATE" in out


def test_errors_give_exit_status_2_and_one_line(capsys, tmp_path):
    assert main(["params", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.yaml" in err[0] and err[0].startswith("oucr params: error:")
