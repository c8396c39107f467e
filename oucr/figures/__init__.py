"""``oucr figures``: the paper's figures drawn from files the pipeline wrote.

Subcommands (each writes a PNG and a PDF beside it), one module each:

- ``fig3`` (:mod:`oucr.figures.fig3`): one test slice per dataset x acceleration:
  reference, every method, and error maps on one stated scale per row, with the
  slice's PSNR/SSIM under each panel;
- ``fig4`` (:mod:`oucr.figures.fig4`): k-space band analysis, box plots of per-slice
  PSNR/SSIM of the low- and high-frequency restricted images per method;
- ``fig1`` (:mod:`oucr.figures.fig1`): recurrent-cell outputs of the UC and OC
  branches and their measured effective receptive fields (files of ``oucr inspect``);
- ``iterations`` (:mod:`oucr.figures.iterations`): PSNR and SSIM against the number
  of CRNN iterations J;
- ``convergence`` (:mod:`oucr.figures.convergence`): validation PSNR against epoch
  for every trained method (histories of ``oucr train``).

Each module separates reading the files from drawing (``draw_*`` functions take
arrays or tables and return the figure), and every figure is written by
:func:`save_figure`. Figures showing several datasets order them by
``config["figures"]["dataset_order"]``, then the config's dataset order.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from oucr.figures.common import (
    DEMO_LABEL,
    compose_figure,
    dataset_order,
    finish_figure,
    method_colours,
    method_order,
    save_figure,
)
from oucr.figures.convergence import draw_convergence, figure_convergence, read_histories
from oucr.figures.fig1 import draw_fig1, figure1, read_receptive_fields
from oucr.figures.fig3 import Fig3Panel, MethodSlice, draw_fig3, figure3, pick_slice, read_fig3_panels
from oucr.figures.fig4 import draw_fig4, figure4
from oucr.figures.iterations import draw_iterations, figure_iterations, iterations_summary
from oucr.names import ZERO_FILLED

__all__ = [
    "DEMO_LABEL", "ZERO_FILLED", "Fig3Panel", "MethodSlice", "add_arguments", "compose_figure", "dataset_order",
    "draw_convergence", "draw_fig1", "draw_fig3", "draw_fig4", "draw_iterations", "figure1", "figure3", "figure4",
    "figure_convergence", "figure_iterations", "finish_figure", "iterations_summary", "method_colours",
    "method_order", "pick_slice", "read_fig3_panels", "read_histories", "read_receptive_fields", "run",
    "save_figure",
]

log = logging.getLogger(__name__)

#: subcommand -> what it draws (the help of ``oucr figures``)
FIGURES = {
    "fig3": "Fig. 3: one test slice per dataset x acceleration: reference, every method's reconstruction with "
            "the slice's PSNR/SSIM, and |error| / max(reference) maps on one colour scale per row",
    "fig4": "Fig. 4: box plots of per-slice PSNR/SSIM of the low- and high-frequency k-space bands per method",
    "fig1": "Fig. 1c/d: recurrent-cell outputs of the UC and OC branches and their effective receptive fields",
    "iterations": "PSNR and SSIM of OUCR against the number of CRNN iterations J (mean with SD error bars)",
    "convergence": "validation PSNR against training epoch, one panel per dataset x acceleration, one line per "
                   "method (mean over replicates, min-max band)",
}
CONFIG_HELP = "YAML config file or inline JSON object (keys read: demo, methods, datasets, accelerations, figures, ...)"
OUT_HELP = "PNG path; the PDF is written beside it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr figures``."""
    parser.description = "Draw the paper's figures from the pipeline's files; each writes a PNG and the PDF beside it."
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE", title="figures",
                                help="the figure to draw")
    p3 = sub.add_parser("fig3", help=FIGURES["fig3"], description=FIGURES["fig3"])
    p3.add_argument("--config", required=True,
                    help=CONFIG_HELP + "; reads the prepared stores and replicate 0 of every reconstruction under "
                                       "the config's results folder (cs.chunks: CS chunk folders)")
    p3.add_argument("--out", type=Path, required=True, help=OUT_HELP)
    p4 = sub.add_parser("fig4", help=FIGURES["fig4"], description=FIGURES["fig4"])
    p4.add_argument("--config", required=True, help=CONFIG_HELP)
    p4.add_argument("--slices", nargs="+", type=Path, required=True,
                    help="per-slice metric CSVs of `oucr evaluate` (columns psnr_low, ssim_low, psnr_high, ssim_high)")
    p4.add_argument("--out", type=Path, required=True, help=OUT_HELP)
    p1 = sub.add_parser("fig1", help=FIGURES["fig1"], description=FIGURES["fig1"])
    p1.add_argument("--config", required=True, help=CONFIG_HELP)
    p1.add_argument("--features", type=Path, required=True, help="features HDF5 file of `oucr inspect`")
    p1.add_argument("--receptive-field", type=Path, required=True,
                    help="receptive-field table (CSV or JSON) of `oucr inspect`")
    p1.add_argument("--out", type=Path, required=True, help=OUT_HELP)
    pi = sub.add_parser("iterations", help=FIGURES["iterations"], description=FIGURES["iterations"])
    pi.add_argument("--config", required=True, help=CONFIG_HELP + " (models.OUCR.iterations: J of plain OUCR)")
    pi.add_argument("--volumes", nargs="+", type=Path, required=True,
                    help="per-volume metric CSVs of `oucr evaluate` of OUCR and its 'OUCR J=<n>' sweep runs")
    pi.add_argument("--out", type=Path, required=True, help=OUT_HELP)
    pc = sub.add_parser("convergence", help=FIGURES["convergence"], description=FIGURES["convergence"])
    pc.add_argument("--config", required=True, help=CONFIG_HELP)
    pc.add_argument("--histories", nargs="+", type=Path, required=True,
                    help="history.csv files of `oucr train`, one per trained replicate")
    pc.add_argument("--all-runs", action="store_true",
                    help="also draw ablation variants and iteration-sweep runs (default: Table 1 methods only)")
    pc.add_argument("--out", type=Path, required=True, help=OUT_HELP)


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr figures``."""
    from oucr.config import load_config
    from oucr.metric_files import read_metric_files

    config = load_config(args.config)
    if args.figure == "fig3":
        figure3(config, args.out)
    elif args.figure == "fig4":
        figure4(config, read_metric_files(args.slices), args.out)
    elif args.figure == "fig1":
        figure1(config, args.features, args.receptive_field, args.out)
    elif args.figure == "iterations":
        figure_iterations(config, read_metric_files(args.volumes), args.out)
    else:
        figure_convergence(config, read_histories(args.histories), args.out, all_runs=args.all_runs)
    log.info("wrote %s and its PDF", args.out)
    return 0
