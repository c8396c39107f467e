"""``oucr plan``: the cost of a configuration's trainings, printed before they are launched.

The paper protocol trains 34 networks at 320 x 320, OUCR alone for about a GPU-day;
this command says what that costs on the hardware a bench was measured on, job by
job, before a cluster is asked for it. Nothing is trained and no data are read
beyond file headers.

One row per training job (:mod:`oucr.engine.plan_cost`: the columns and their
arithmetic, the totals, the greedy schedule on ``--gpus``), with slice counts from the
prepared store, the raw folders or ``--slices`` (:mod:`oucr.data.slice_counts`) and
times and memory from an ``oucr bench`` CSV or ``--measure`` (:mod:`oucr.engine.plan_bench`).
This module prints the plan (aligned text, Markdown or CSV, each assumption a numbered
note under the table, then the totals) and writes ``--out``. No torch at import.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from oucr.config import load_config, with_overrides
from oucr.engine.plan_bench import read_bench
from oucr.engine.plan_cost import Plan, make_plan
from oucr.errors import ConfigError
from oucr.io import atomic_path

FORMATS = ("text", "csv", "md")


def parse_given_slices(values: Sequence[str]) -> Dict[str, Tuple[int, int, int]]:
    """``--slices NAME=TRAIN:VAL[:TEST]`` -> ``{name: (train, val, test)}``.

    Raises:
        ConfigError: for a malformed value.
    """
    out = {}
    for value in values:
        name, _, counts = value.partition("=")
        parts = counts.split(":")
        if not name or not 2 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"--slices {value!r} must look like NAME=TRAIN:VAL or NAME=TRAIN:VAL:TEST (counts)")
        nums = [int(p) for p in parts] + [0] * (3 - len(parts))
        if nums[0] < 1:
            raise ConfigError(f"--slices {value!r}: the training count must be positive")
        out[name] = (nums[0], nums[1], nums[2])
    return out



# ------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------
DISPLAY = [  # (header, column, format)
    ("dataset", "dataset", "{}"), ("acc", "acceleration", "x{}"), ("run", "display", "{}"), ("rep", "replicate", "{}"),
    ("nproc", "nproc", "{}"), ("slices", "train_slices", "{:,}"), ("val", "val_slices", "{:,}"),
    ("source", "source", "{}"), ("epochs", "epochs", "{}"), ("batch", None, ""), ("steps", "steps", "{:,}"),
    ("s/step", "s_per_step", "{:.3g}"), ("val s/ep", "val_s_per_epoch", "{:.3g}"), ("hours", "hours", "hours"),
    ("GPU-h", "gpu_hours", "hours"), ("mem GB", "peak_mem_gb", "{:.2f}"), ("fits", "fits", "{}"),
    ("notes", None, ""),
]
TEXT_COLUMNS = {"dataset", "run", "source", "notes"}


def _cells(plan: Plan) -> List[List[str]]:
    out = []
    for (_, r), marks in zip(plan.table.iterrows(), plan.row_notes, strict=True):
        cells = []
        for header, column, fmt in DISPLAY:
            if header == "batch":
                cells.append(f"{r['batch_size']}x{r['accumulate']}" if r["accumulate"] != 1 else str(r["batch_size"]))
            elif header == "notes":
                cells.append(",".join(map(str, marks)))
            else:
                v = r[column]
                if isinstance(v, float) and math.isnan(v):
                    cells.append("?")
                elif fmt == "hours":  # 3 significant digits, no exponent
                    cells.append(f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
                else:
                    cells.append(fmt.format(v))
        out.append(cells)
    return out


def format_plan(plan: Plan, fmt: str = "text") -> str:
    """The plan as aligned text, Markdown or CSV; text and Markdown end with the notes and totals."""
    if fmt == "csv":
        return plan.table.to_csv(index=False, float_format="%.6g")
    headers = [h for h, _, _ in DISPLAY]
    cells = _cells(plan)
    if fmt == "md":
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if h in TEXT_COLUMNS else "---:" for h in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        body = "\n".join(lines) + "\n\n" + "\n".join(f"{i}. {t}" for i, t in enumerate(plan.notes, 1))
        return body + "\n\n" + "\n".join(f"- {t}" for t in plan.totals) + "\n"
    if fmt != "text":
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if h in TEXT_COLUMNS else v.rjust(w)
                         for v, w, h in zip(values, widths, headers, strict=True)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells]
    lines += [""] + [f"[{i}] {t}" for i, t in enumerate(plan.notes, 1)] + [""] + plan.totals
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr plan``."""
    parser.add_argument("--config", required=True, help="YAML config (or inline JSON)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. training.epochs=10 (repeatable)")
    parser.add_argument("--bench", type=Path, help="`oucr bench` CSV measured at the datasets' image sizes")
    parser.add_argument("--gpu-memory", type=float, metavar="GB", help="memory of one GPU (GiB) for the fits column")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs of the wall-time schedule (default 1)")
    parser.add_argument("--measure", action="store_true",
                        help="benchmark methods the bench lacks here, on --device (takes minutes at 320 x 320)")
    parser.add_argument("--device", default="auto", help="device of --measure")
    parser.add_argument("--threads", type=int, help="CPU threads of --measure")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each --measure measurement this long")
    parser.add_argument("--slices", action="append", default=[], metavar="NAME=TRAIN:VAL[:TEST]",
                        help="slice counts of a dataset, instead of its store or raw folders (repeatable)")
    parser.add_argument("--cpus", type=int, help="CPU cores of the CS estimate (default: this machine's)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="table on standard output: aligned text (default), csv or md, then notes and totals")
    parser.add_argument("--out", type=Path, help="also write the table as CSV here")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr plan``."""
    config = with_overrides(load_config(args.config), args.overrides)
    bench = read_bench(args.bench) if args.bench else None
    if args.gpu_memory is not None and not args.gpu_memory > 0:
        raise ConfigError(f"--gpu-memory must be positive, got {args.gpu_memory}")
    plan = make_plan(config, bench, args.bench, args.gpus, args.gpu_memory, args.measure, args.device,
                     args.threads, args.min_seconds, parse_given_slices(args.slices), args.cpus)
    if args.out:
        with atomic_path(args.out) as tmp:
            plan.table.to_csv(tmp, index=False, float_format="%.6g")
    sys.stdout.write(format_plan(plan, args.format))
    return 0
