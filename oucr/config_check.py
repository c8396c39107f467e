"""``oucr check-config``: every problem of a configuration, one short line each, before any job runs.

:func:`check_config` returns one message per problem, each starting with the key
path it is about, e.g.::

    datasets.my-brain.slice_per_volume: unknown key; did you mean slices_per_volume?
    training.epochs: must be a positive integer, got 'ten'
    methods: must contain OUCR (the reference of the significance tests and of Fig. 1)

Three layers, in this order:

1. **Keys and types** (:mod:`oucr.config_schema`) come from
   ``workflow/schemas/config.schema.yaml``, the one definition of the configuration,
   walked so that unknown keys get a did-you-mean and a ``datasets.<name>`` section
   is checked against the branch its ``format`` selects.
2. **Rules between keys** (:func:`oucr.config_rules.cross_key_problems`,
   ``config/README.md`` lists them).
3. **Model arguments** (:func:`oucr.config_rules.model_problems`): the
   ``models.<Method>`` keys against the constructors, one build of each network, the
   dataset sizes against the pooling depths. This layer imports torch (inside the
   function: importing this module stays torch-free, the Snakefile imports it).

:func:`validate_or_exit` is the Snakefile's entry: it raises one
:class:`~oucr.errors.ConfigError` listing every problem, then fills in the
schema's top-level defaults (as Snakemake's ``validate`` did).
"""

from __future__ import annotations

import argparse
import copy
from typing import Any, Dict, List, Mapping, Optional, Union

from oucr.config import load_config
from oucr.config_rules import configured_accelerations, cross_key_problems, model_problems
from oucr.config_schema import PathLike, apply_defaults, load_schema, quote_value, schema_problems
from oucr.errors import ConfigError
from oucr.names import CS

#: optional sections and what happens without them (also printed by ``oucr check-config``)
OPTIONAL_SECTIONS: Dict[str, str] = {
    "demo_data": "no demo data are built (datasets must point at existing data)",
    "models": "every network has the paper widths (its constructor defaults)",
    "training": "the paper schedule (oucr.config.TrainingConfig defaults)",
    "replicates": "one training per network",
    "ablation": "no Table 2 trainings; table2.* is written without rows",
    "iterations_sweep": "no J sweep and no iterations figure",
    "robustness": "no robustness table",
    "cs": "CS uses the oucr cs-tune defaults, one chunk per dataset x acceleration",
    "evaluation": "band_fraction 0.25",
    "figures": "datasets appear in the config's order",
    "resources": "training, reconstruction, preparation, CS and demo-data jobs ask for 1 thread, 4000 MB, 2 h, no GPU",
}


# Entry points --------------------------------------------------------------------------------


def check_config(config: Mapping[str, Any], schema: Optional[Union[PathLike, Mapping[str, Any]]] = None,
                 models: bool = True) -> List[str]:
    """Every problem of a configuration, one short message each (see the module docstring).

    Args:
        config: the configuration (not modified).
        schema: the schema, or its path (default :data:`oucr.config_schema.SCHEMA_PATH`).
        models: also check the model arguments (imports torch).

    Returns:
        the messages, each starting with the key path it is about; empty when the config is valid.

    Raises:
        ConfigError: if the schema cannot be read.
    """
    if not isinstance(config, Mapping):
        return [f"the configuration must be a mapping of keys, got {quote_value(config)}"]
    schema = schema if isinstance(schema, Mapping) else load_schema(schema)
    config = copy.deepcopy(dict(config))
    problems, flagged = schema_problems(config, schema)
    problems += cross_key_problems(config, flagged)
    if models:
        problems += model_problems(config, flagged)
    return list(dict.fromkeys(problems))


def validate_or_exit(config: Dict[str, Any], source: str,
                     schema: Optional[Union[PathLike, Mapping[str, Any]]] = None) -> None:
    """Stop with every problem of ``config`` at once; otherwise fill in the schema's defaults.

    Args:
        config: the configuration; the schema's top-level defaults are added to it in place.
        source: where it came from (the config file names), for the first line of the message.
        schema: the schema or its path (default :data:`oucr.config_schema.SCHEMA_PATH`).

    Raises:
        ConfigError: ``config <source> has N problem(s):`` and then one problem per line.
    """
    schema = schema if isinstance(schema, Mapping) else load_schema(schema)
    problems = check_config(config, schema)
    if problems:
        raise ConfigError(f"config {source} has {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))
    apply_defaults(config, schema)


def summary(config: Mapping[str, Any]) -> List[str]:
    """What a valid config runs, in a few lines (``oucr check-config``)."""
    from oucr.runs import networks, trainings

    datasets = list(config.get("datasets") or {})
    accs = sorted(configured_accelerations(config))
    jobs = trainings(config)
    replicates = int(config.get("replicates", 1))
    lines = [
        f"{len(jobs)} trainings on {len(datasets)} dataset(s) ({', '.join(datasets)}) x {len(accs)} "
        f"acceleration(s) ({', '.join(f'{a}x' for a in accs)}): {len(networks(config))} Table 1 networks"
        f"{' and CS' if CS in (config.get('methods') or []) else ''}, "
        f"{len((config.get('ablation') or {}).get('variants') or [])} ablation variants, "
        f"{len((config.get('iterations_sweep') or {}).get('values') or [])} J values, "
        f"{replicates} replicate(s)",
    ]
    absent = [f"  {key}: {effect}" for key, effect in OPTIONAL_SECTIONS.items() if config.get(key) is None]
    if absent:
        lines.append("left out (defaults apply):")
        lines += absent
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr check-config``."""
    parser.add_argument("config", help="YAML config file (or inline JSON) to check")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted.key=value override applied before the check (repeatable)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr check-config``: print what the config runs, or raise with every problem (exit 2)."""
    from oucr.config import with_overrides

    config = with_overrides(load_config(args.config), args.overrides)
    validate_or_exit(config, str(args.config))
    lines = summary(config)
    print(f"config {args.config} OK: {lines[0]}")
    for line in lines[1:]:
        print(line)
    return 0
