"""The command line of ``oucr reconstruct-file`` (:mod:`oucr.engine.reconstruct_file`): options, help, examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from oucr.engine.reconstruct_file import reconstruct_files
from oucr.engine.reconstruct_file_inputs import MaskRequest
from oucr.masks import MASK_TYPES

EPILOG = """examples:
  # a fastMRI single-coil test file: its own mask, no reference, so no metrics
  oucr reconstruct-file results/models/fastmri/x4/oucr/r0/model.pt file1000022.h5 --out my_recon

  # brain NIfTI volumes at 8x with simulated fastMRI masks, metrics against the inputs
  oucr reconstruct-file results/models/brain/x8/oucr/r0/model.pt sub-01_T1w.nii.gz sub-02_T1w.nii.gz \\
      --acceleration 8 --out my_recon
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr reconstruct-file``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Reconstruct your own files with a trained model: fastMRI single-coil HDF5 (with its own\n"
        "mask, or a simulated one) or magnitude volumes (NIfTI, or HDF5 with an 'image' dataset;\n"
        "k-space simulated by the FFT of each slice). Writes into --out <name>.h5 (fastMRI layout),\n"
        "<name>.nii.gz for NIfTI inputs, and metrics.csv (PSNR, SSIM, NMSE, HaarPSI, VIF against the\n"
        "reference: reconstruction_esc of fastMRI files, the input itself for magnitude volumes).")
    parser.epilog = EPILOG
    parser.add_argument("model", type=Path, metavar="MODEL.pt", help="model.pt written by `oucr train`")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                        help="fastMRI single-coil .h5, magnitude .h5, .nii or .nii.gz files")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--acceleration", type=int,
                        help="simulate a fastMRI mask at this acceleration (required for files without a mask)")
    parser.add_argument("--center-fraction", type=float,
                        help="fully sampled centre of the simulated mask (default 0.32 / acceleration: 0.08 at 4x)")
    parser.add_argument("--mask-type", default="random", choices=sorted(MASK_TYPES),
                        help="simulated mask type (default random)")
    parser.add_argument("--seed", type=int,
                        help="seed of the simulated mask (default fastMRI's per-file seed of the volume name)")
    parser.add_argument("--simulate-mask", action="store_true",
                        help="replace a fastMRI test file's own mask by a simulated one (needs --acceleration)")
    parser.add_argument("--slices", metavar="SPEC",
                        help="source slices to reconstruct: indices and start:stop ranges, stop exclusive, "
                             "e.g. 0,3,10:20 (default all)")
    parser.add_argument("--recon-size", type=int, nargs=2, metavar=("H", "W"),
                        help="fastMRI inputs: reconstruction size (default the header's reconSpace, 320 320 for knee)")
    parser.add_argument("--h5-key", default="image", help="dataset of magnitude HDF5 inputs (default image)")
    parser.add_argument("--dataset", help="what the inputs are, recorded in the files; a model trained on another "
                                          "dataset gets a warning")
    parser.add_argument("--no-pad", action="store_true",
                        help="refuse sizes that are not multiples of the model's size multiple instead of extending "
                             "them (rows with zeros in image space, columns with unsampled k-space columns)")
    parser.add_argument("--amp", choices=["none", "bf16"],
                        help="precision (default: the one the model was trained and validated in)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per forward pass (default 4)")
    parser.add_argument("--threads", type=int, help="CPU threads to use")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr reconstruct-file``."""
    from oucr.engine.gpu_slots import claim_gpus
    from oucr.engine.runtime import gpus_wanted, set_threads

    set_threads(args.threads)
    request = MaskRequest(acceleration=args.acceleration, center_fraction=args.center_fraction,
                          mask_type=args.mask_type, seed=args.seed, simulate=args.simulate_mask)
    with claim_gpus(gpus_wanted(args.device, 1)):
        reconstruct_files(args.model, args.inputs, args.out, request, slices=args.slices, size=args.recon_size,
                          h5_key=args.h5_key, dataset=args.dataset, pad=not args.no_pad, device=args.device,
                          batch_size=args.batch_size, amp=args.amp)
    return 0
