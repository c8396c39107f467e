"""The ``oucr`` command line: one entry, one subcommand per pipeline step.

Each subcommand lives in its own module, which provides::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

A module serving two subcommands names them ``add_<x>_arguments`` / ``run_<x>``
and declares ``<x>`` in :data:`SUBCOMMANDS`.

Only the module of the chosen subcommand is imported, so ``oucr --help`` stays
fast (importing torch takes seconds). Errors derived from
:class:`oucr.errors.OUCRError` are printed as one line on standard error and give
exit status 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Dict, List, Optional, Tuple

from oucr import __version__
from oucr.errors import OUCRError

# name -> (module, one-line help[, entry-point infix for modules serving two subcommands])
SUBCOMMANDS: Dict[str, Tuple[str, ...]] = {
    "check-config": ("oucr.config_check", "check a configuration and print every problem, one line each"),
    "demo-data": ("oucr.data.demo", "build the embedded demo datasets from bundled real anatomy"),
    "prepare": ("oucr.data.prepare", "read raw fastMRI or NIfTI/HDF5 volumes into a prepared store"),
    "masks": ("oucr.data.fixed_masks", "write the fixed validation/test masks of a prepared store"),
    "params": ("oucr.models.params", "print the parameter count of every method of a config"),
    "inspect": ("oucr.engine.inspect", "feature maps and receptive fields of the OUCR branches"),
    "train": ("oucr.engine.train_cli", "train one method on one dataset at one acceleration"),
    "reconstruct": ("oucr.engine.reconstruct", "reconstruct the test volumes with a trained method"),
    "reconstruct-file": ("oucr.engine.reconstruct_file_cli", "reconstruct your own fastMRI/NIfTI files with a model"),
    "cs-tune": ("oucr.engine.cs", "choose the CS regularisation weight on validation slices", "cs_tune"),
    "cs-reconstruct": ("oucr.engine.cs", "reconstruct test volumes with compressed sensing", "cs_reconstruct"),
    "evaluate": ("oucr.engine.evaluate", "PSNR, SSIM and NMSE of reconstructions against the targets"),
    "bench": ("oucr.engine.bench", "throughput, latency, memory and FLOP rate of every method"),
    "plan": ("oucr.engine.plan", "cost of every training of a config (steps, hours, memory) before launching it"),
    "stats": ("oucr.stats", "paired significance tests of OUCR against every other method"),
    "tables": ("oucr.tables", "write Table 1, Table 2 and the significance table"),
    "robustness": ("oucr.robustness", "the robustness table: methods off their training conditions"),
    "figures": ("oucr.figures", "draw the paper's figures from the pipeline's files"),
    "gpus": ("oucr.engine.gpu_holders", "list the GPUs of this machine and which jobs hold them"),
}


EPILOG = """examples:
  oucr check-config config/paper.yaml
  oucr train --config config/config.yaml --method OUCR --dataset demo-brain --acceleration 4
  oucr reconstruct-file results/models/demo-brain/x4/oucr/r0/model.pt my_t1.nii.gz --acceleration 4 --out my_recon

The whole pipeline runs through Snakemake: `snakemake --cores all` from the repository root
(README.md; the workflow calls these subcommands, one per job).
"""


def build_parser(chosen: Optional[str]) -> argparse.ArgumentParser:
    """Top-level parser; only ``chosen``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="oucr",
        description="Reproduce 'Over-and-Under Complete Convolutional RNN for MRI Reconstruction'. "
                    "Each pipeline step is a subcommand; `oucr COMMAND --help` describes one.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text, *infix) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            if infix:
                getattr(module, f"add_{infix[0]}_arguments")(p)
                p.set_defaults(_run=getattr(module, f"run_{infix[0]}"))
            else:
                module.add_arguments(p)
                p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command is None:
        parser.print_help()
        return 1
    args.argv = argv  # the command line as given (`oucr train --nproc N` relaunches itself with it)
    try:
        return int(args._run(args) or 0)
    except OUCRError as err:
        print(f"oucr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
