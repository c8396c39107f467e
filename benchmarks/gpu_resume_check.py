"""Resume, determinism and multi-process equality of ``oucr train`` on one device (part of gpu_check.sh).

    python benchmarks/gpu_resume_check.py --device cuda --out OUT            # resume + determinism
    python benchmarks/gpu_resume_check.py --device cuda --nproc 4 --out OUT  # DDP vs one process

On a small prepared store built from the embedded demo data, it trains OUCR (narrow widths)
through the command line, as a user would, and writes ``OUT/summary.md``:

* resume: a run killed (SIGKILL) after its first checkpoint and rerun ends with weights equal,
  bit for bit, to an uninterrupted run;
* determinism: two ``training.deterministic: true`` runs are bit-identical; two ``false`` runs,
  the largest weight and output differences and the validation-PSNR difference between them;
* ``--nproc N``: the N-process run against the one-process run at the same global batch
  (output difference, validation PSNR difference).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

WIDTHS = ["--set", "models.OUCR.oc_features=8", "--set", "models.OUCR.uc_features=16",
          "--set", "models.OUCR.iterations=2"]


def build_store(root: Path, size: int = 64, subjects: int = 8, slices: int = 4) -> dict:
    from oucr.config import with_overrides
    from oucr.data.demo import build_demo_data
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.prepare import prepare_dataset

    config = {
        "seed": 0, "demo_data": {"seed": 0, "demo-brain": {"subjects": subjects, "slices": slices, "size": size}},
        "datasets": {"check": {"paper_dataset": "none", "format": "magnitude", "input": None, "size": [size, size],
                               "slices_per_volume": slices,
                               "split": {"train": subjects - 3, "val": 1, "test": 2}}},
        "accelerations": {4: {"center_fraction": 0.08}}, "mask_type": "random",
        "models": {"OUCR": {"oc_depth": 1}}, "training": {"batch_size": 4, "lr": 1e-3},
    }
    build_demo_data(config, root / "raw", kinds=("demo-brain",))
    config = with_overrides(config, [f"datasets.check.input={root / 'raw' / 'demo-brain'}"])
    prepare_dataset(config["datasets"]["check"], root / "store", seed=0, name="check")
    write_fixed_masks(root / "store", root / "masks.h5", 4, 0.08)
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return {"config": root / "config.yaml", "store": root / "store", "masks": root / "masks.h5"}


def command(data: dict, out: Path, device: str, epochs: int, nproc: int = 1, deterministic: bool = True) -> list:
    return [sys.executable, "-m", "oucr", "train", "--config", str(data["config"]), "--method", "OUCR",
            "--dataset", "check", "--acceleration", "4", "--store", str(data["store"]), "--masks", str(data["masks"]),
            "--out", str(out / "out"), "--checkpoint-dir", str(out / "ckpt"), "--device", device,
            "--nproc", str(nproc), "--set", f"training.epochs={epochs}",
            "--set", f"training.deterministic={'true' if deterministic else 'false'}", *WIDTHS]


def run(cmd: list) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")


def weights(out: Path) -> dict:
    return torch.load(out / "out" / "model.pt", weights_only=False, map_location="cpu")["state_dict"]


def history(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "out" / "history.csv")


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def killed_and_resumed(cmd: list, out: Path) -> float:
    """Kill a run after its first checkpoint, rerun it; returns the seconds until the kill."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while not (out / "ckpt" / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.time() - t0
    if (out / "out" / "model.pt").exists():
        raise SystemExit("the run finished before it could be killed: raise --epochs")
    run(cmd)
    return killed_after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each training")
    parser.add_argument("--nproc", type=int, default=1, help="compare N processes with one (N > 1)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="resume check only, no determinism reruns (the CPU dry run: CPU kernels are deterministic)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # the CPU dry run of gpu_check.sh wants the code paths, not the numbers: a smaller store
    data = build_store(args.out, *((32, 6, 2) if args.device == "cpu" else (64, 8, 4)))
    lines = [f"\n### `oucr train` on {args.device}: " + ("resume and determinism" if args.nproc == 1
                                                         else f"{args.nproc} processes against one") + "\n"]
    if args.nproc == 1:
        ref, resumed = args.out / "reference", args.out / "resumed"
        run(command(data, ref, args.device, args.epochs))
        killed = killed_and_resumed(command(data, resumed, args.device, args.epochs), resumed)
        equal = all(torch.equal(a, b) for a, b in zip(weights(ref).values(), weights(resumed).values()))
        lines.append(f"- killed after {killed:.1f} s, rerun: weights {'bit-identical' if equal else 'DIFFER'} "
                     f"(max |diff| {max_difference(weights(ref), weights(resumed)):.3g})")
        if args.quick:
            (args.out / "summary.md").write_text("\n".join(lines) + "\n")
            print("\n".join(lines))
            return 0
        again = args.out / "deterministic-again"
        run(command(data, again, args.device, args.epochs))
        lines.append(f"- deterministic rerun: max |weight diff| {max_difference(weights(ref), weights(again)):.3g}, "
                     f"val PSNR diff {abs(history(ref)['val_psnr'] - history(again)['val_psnr']).max():.3g} dB")
        fast = [args.out / f"fast-{i}" for i in (1, 2)]
        for out in fast:
            run(command(data, out, args.device, args.epochs, deterministic=False))
        lines.append(f"- non-deterministic reruns: max |weight diff| {max_difference(*map(weights, fast)):.3g}, "
                     f"val PSNR diff {abs(history(fast[0])['val_psnr'] - history(fast[1])['val_psnr']).max():.3g} dB")
    else:
        one, many = args.out / "one", args.out / f"nproc{args.nproc}"
        run(command(data, one, args.device, args.epochs))
        run(command(data, many, args.device, args.epochs, nproc=args.nproc))
        # (the weight difference includes the last convolutions' biases, which data consistency cancels:
        # their gradients are round-off, so compare the validation PSNR first)
        lines.append(f"- max |weight diff| {max_difference(weights(one), weights(many)):.3g}; "
                     f"val PSNR diff {abs(history(one)['val_psnr'] - history(many)['val_psnr']).max():.3g} dB; "
                     f"epoch seconds {history(one)['seconds'].mean():.2f} (1) vs "
                     f"{history(many)['seconds'].mean():.2f} ({args.nproc})")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
