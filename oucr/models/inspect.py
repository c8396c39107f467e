"""What the OC and UC branches of OUCR see: cell feature maps and receptive fields (paper Fig. 1).

Two measurements, usable from Python and through ``oucr inspect``:

* **Recurrent-cell feature maps** (:func:`record_cells`, :func:`cell_feature_maps`):
  forward hooks on each branch's residual-block cell and on its PReLU merge record,
  per iteration, the cell output ``cell(h_{j-1})`` (paper Fig. 1c/d, "output from
  ResBlock") and the hidden state ``h_j``. The OC maps are larger than the image
  (4x per axis at depth 2), the UC maps smaller.
* **Effective receptive field** (:func:`receptive_field`): the gradient of one centre
  output pixel of a branch with respect to its input image, the data-consistency
  layers left out (DC mixes every pixel through the FFT, so with it every receptive
  field is the whole image). ``|d out_c(centre) / d x|`` is summed over the output
  channels ``c`` and the input channels, normalised to unit mass, and summarised by

  - ``radius``: the smallest Euclidean radius of a disc around the centre pixel
    holding ``fraction`` (default 95 %) of the mass;
  - ``area``: the fewest pixels holding ``fraction`` of the mass;
  - ``extent``: the half-width (Chebyshev) of the support, i.e. the theoretical
    receptive field; ``clipped`` says the support reached the window's border.

  ``iterations = 1`` is one encoder - decoder pass (the first iteration has no
  recurrent term; the paper's Fig. 1a/b); ``iterations = k`` unrolls the branch
  ``k`` times without DC, so that the cell acts on the hidden state ``k - 1`` times. ``init = "fresh"`` measures
  freshly initialised twins of the branch (one per seed, averaged): a property of
  the architecture; ``init = "trained"`` measures the branch's own weights. The
  overcomplete branch's radius comes out smaller, as the paper argues.

``oucr inspect`` writes (every file atomically):

``--out-features`` (HDF5)::

    input            float32 (H, W)     |zero-filled input|, normalised
    output           float32 (H, W)     |model output|, normalised
    target           float32 (H, W)     |reference| (store slices only)
    <b>              float32 (C, h, w)  cell output cell(h_{J-1}) at the last iteration J,
                                        C channels (those with the largest spatial std)
    <b>_hidden       float32 (C, h, w)  hidden state h_J, the same channels
    <b>_channels     int64   (C,)       the channel indices
    <b>_erf          float32 (S, S)     mean normalised |gradient| map of the first
                                        receptive-field row of branch <b>
    attrs: source ("store" or "synthetic"), store, volume, slice, method, checkpoint,
           model_kwargs (JSON), iterations (J), acceleration, center_fraction, mask_type

  with ``<b>`` in ``oc``, ``uc`` (the branches the model has); ``h = 4H`` for OC
  and ``H / 4`` for UC at the paper's depth 2. :func:`read_features` returns
  ``{"input", "oc", "uc"}`` as the figure module expects.

``--out-receptive-field`` (CSV, or JSON records if the name ends in ``.json``),
one row per branch, weights and iteration count, a branch's ``trained`` rows
(when a checkpoint is given) before its ``fresh`` ones::

    branch,init,iterations,size,fraction,seeds,radius,radius_sd,area,extent,clipped,hidden_size

``radius``, ``radius_sd``, ``extent`` in input pixels, ``area`` in pixels, ``size``
the side of the square input window, ``hidden_size`` the side of the branch's
hidden state for that window. ``fresh`` rows average ``seeds`` twins, each fed
Gaussian noise (the architecture's field, as in Luo et al. 2016); ``trained``
rows feed the trained weights the centre crop of the inspected slice.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from oucr.errors import ConfigError
from oucr.models.crnn import CRNN
from oucr.physics import SingleCoilMRI

log = logging.getLogger(__name__)

#: default share of the gradient mass that the receptive-field radius holds
ERF_FRACTION = 0.95

Inspectable = Union[nn.Module, CRNN]


def branches_of(model_or_branch: Inspectable) -> Dict[str, CRNN]:
    """The CRNN branches of an OUCR model (``{"oc": ..., "uc": ...}``), or ``{name: branch}``.

    Raises:
        TypeError: for a module that is neither an OUCR model nor a CRNN branch.
    """
    if isinstance(model_or_branch, CRNN):
        return {model_or_branch.branch: model_or_branch}
    branches = getattr(model_or_branch, "branches", None)
    if isinstance(branches, Mapping) and all(isinstance(b, CRNN) for b in branches.values()):
        return dict(branches)
    raise TypeError(f"expected an OUCR model or a CRNN branch, got {type(model_or_branch).__name__}")


# Feature maps ------------------------------------------------------------------------------


@dataclass
class CellRecord:
    """What one branch's recurrent cell produced (oldest first).

    Attributes:
        cell: ``cell(h_{j-1})``, the residual blocks' output ``(B, nf, h, w)``, one entry per
            iteration from the second on (the first iteration has no recurrent term).
        hidden: ``h_j = PReLU(enc(y_j) + cell(h_{j-1}))`` ``(B, nf, h, w)``, one entry per iteration.
    """

    cell: List[torch.Tensor] = field(default_factory=list)
    hidden: List[torch.Tensor] = field(default_factory=list)


@contextlib.contextmanager
def record_cells(model_or_branch: Inspectable, last_only: bool = False) -> Iterator[Dict[str, CellRecord]]:
    """Record the recurrent-cell outputs and hidden states of every branch while inside.

    Forward hooks on ``branch.cell`` and ``branch.merge`` copy (detach) each
    iteration's tensors; they are removed on exit. Run the forward pass under
    ``torch.no_grad()`` or without checkpointing: checkpointing recomputes the
    iterations in the backward pass, which would record them twice.

    Args:
        model_or_branch: an OUCR model or one CRNN branch.
        last_only: keep only the latest iteration (saves memory at paper scale,
            where one OC hidden state is 420 MB).

    Yields:
        ``{branch name: CellRecord}``, filled as the model runs.
    """
    records = {name: CellRecord() for name in branches_of(model_or_branch)}
    handles = []

    def keeper(store: List[torch.Tensor]):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if last_only:
                store.clear()
            store.append(output.detach())

        return hook

    for name, branch in branches_of(model_or_branch).items():
        handles.append(branch.cell.register_forward_hook(keeper(records[name].cell)))
        handles.append(branch.merge.register_forward_hook(keeper(records[name].hidden)))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def cell_feature_maps(
    model: nn.Module, image: torch.Tensor, physics: SingleCoilMRI, last_only: bool = False
) -> Tuple[torch.Tensor, Dict[str, CellRecord]]:
    """Run ``model(image, physics)`` and return its output and every branch's cell record.

    Args:
        model: an OUCR model (any variant).
        image: ``(B, 2, H, W)`` zero-filled image.
        physics: the acquisition.
        last_only: keep only the last iteration of each branch.

    Returns:
        ``(output (B, 2, H, W), {branch: CellRecord})``.
    """
    with record_cells(model, last_only=last_only) as records:
        output = model(image, physics)
    return output, records


def strongest_channels(maps: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` channels of ``maps`` ``(C, h, w)`` with the largest spatial std, sorted."""
    std = maps.float().flatten(1).std(dim=1)
    top = torch.topk(std, k=min(count, maps.shape[0])).indices
    return torch.sort(top).values


# Receptive field ----------------------------------------------------------------------------


@dataclass
class ReceptiveField:
    """Effective receptive field of one branch (module docstring).

    Attributes:
        branch: ``"oc"`` or ``"uc"``.
        init: ``"fresh"`` (re-initialised twins) or ``"trained"`` (the given weights).
        iterations: unrolled iterations without DC.
        size: side of the square input window.
        fraction: mass share that ``radius`` and ``area`` hold.
        seeds: number of measurements averaged (seeds whose centre gradient is
            zero everywhere, all paths switched off, are left out).
        radius: mean over seeds of the radius (pixels) of the centred disc holding ``fraction``.
        radius_sd: its standard deviation over seeds.
        area: mean over seeds of the fewest pixels holding ``fraction``.
        extent: half-width (pixels, Chebyshev) of the non-zero gradient, over all seeds.
        clipped: the non-zero gradient reached the window's border (window too small).
        hidden_size: side of the hidden state for this window.
        gradient: ``(size, size)`` mean of the unit-mass gradient maps.
    """

    branch: str
    init: str
    iterations: int
    size: int
    fraction: float
    seeds: int
    radius: float
    radius_sd: float
    area: float
    extent: int
    clipped: bool
    hidden_size: int
    gradient: np.ndarray

    def row(self) -> Dict[str, Any]:
        """The summary without the gradient map (one CSV row)."""
        out = asdict(self)
        out.pop("gradient")
        return out


def unrolled_without_dc(branch: CRNN, image: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """``branch`` unrolled ``iterations`` times from a zero hidden state, DC layers left out."""
    hidden: Optional[torch.Tensor] = None
    x = image
    for _ in range(iterations):
        x, hidden = branch.iteration(x, hidden, None)
    return x


def centre_gradient(branch: CRNN, image: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """``sum_c |d out_c(centre) / d image|`` summed over input channels, ``(H, W)``.

    Args:
        branch: a CRNN branch.
        image: ``(1, 2, H, W)`` input.
        iterations: unrolled iterations without DC.
    """
    if image.ndim != 4 or image.shape[:2] != (1, 2):
        raise ValueError(f"expected one two-channel image (1, 2, H, W), got {tuple(image.shape)}")
    x = image.detach().float().clone().requires_grad_(True)
    with torch.enable_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        out = unrolled_without_dc(branch, x, iterations)
        cy, cx = out.shape[-2] // 2, out.shape[-1] // 2
        total = torch.zeros(x.shape[-2:], device=x.device)
        for c in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[0, c, cy, cx], x, retain_graph=c + 1 < out.shape[1])
            total += grad[0].abs().sum(dim=0)
    return total.detach()


def radius_holding(grad: np.ndarray, fraction: float = ERF_FRACTION) -> float:
    """Smallest radius (pixels) of a disc around the centre pixel holding ``fraction`` of ``grad``'s mass."""
    h, w = grad.shape
    yy, xx = np.mgrid[:h, :w]
    distance = np.hypot(yy - h // 2, xx - w // 2).ravel()
    order = np.argsort(distance, kind="stable")
    cumulative = np.cumsum(grad.ravel()[order], dtype=np.float64)
    if cumulative[-1] <= 0:
        return float("nan")
    index = min(int(np.searchsorted(cumulative, fraction * cumulative[-1])), len(order) - 1)
    return float(distance[order][index])


def area_holding(grad: np.ndarray, fraction: float = ERF_FRACTION) -> int:
    """Fewest pixels of ``grad`` holding ``fraction`` of its mass."""
    values = np.sort(grad.ravel())[::-1].astype(np.float64)
    cumulative = np.cumsum(values)
    if cumulative[-1] <= 0:
        return 0
    return min(int(np.searchsorted(cumulative, fraction * cumulative[-1])) + 1, values.size)


def support_half_width(grad: np.ndarray) -> int:
    """Chebyshev half-width around the centre pixel of the non-zero entries of ``grad``."""
    h, w = grad.shape
    ys, xs = np.nonzero(grad > 0)
    if ys.size == 0:
        return 0
    return int(max(np.abs(ys - h // 2).max(), np.abs(xs - w // 2).max()))


def hidden_side(branch: CRNN, size: int) -> int:
    """Side of ``branch``'s hidden state for a ``size`` x ``size`` image."""
    factor = 2**branch.depth
    return size * factor if branch.branch == "oc" else size // factor


def fresh_twin(branch: CRNN, seed: int) -> CRNN:
    """A newly initialised CRNN with ``branch``'s configuration (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = CRNN(**branch.config)
    return twin.to(next(branch.parameters()).device)


def receptive_field(
    model_or_branch: Inspectable,
    size: int = 64,
    fraction: float = ERF_FRACTION,
    seeds: Sequence[int] = (0, 1, 2),
    iterations: int = 1,
    init: str = "fresh",
    image: Optional[torch.Tensor] = None,
) -> Dict[str, ReceptiveField]:
    """Effective receptive field of each branch (module docstring).

    Args:
        model_or_branch: an OUCR model (every branch is measured) or one CRNN branch.
        size: side of the square input window (ignored when ``image`` is given).
        fraction: mass share for ``radius`` and ``area``.
        seeds: one measurement per seed: the seed draws the twin's weights
            (``init="fresh"``) and the Gaussian-noise input (when ``image`` is None).
        iterations: unrolled iterations without DC (1: one encoder-cell-decoder pass).
        init: ``"fresh"`` for re-initialised twins, ``"trained"`` for the given weights.
        image: optional ``(1, 2, S, S)`` input used for every seed instead of noise
            (e.g. a centre crop of a real slice).

    Returns:
        ``{branch name: ReceptiveField}``.

    Raises:
        ValueError: for a bad ``init``, ``fraction``, ``iterations``, no seeds, a
            non-square image, or a size the UC pooling cannot handle.
    """
    if init not in ("fresh", "trained"):
        raise ValueError(f"init must be 'fresh' or 'trained', got {init!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("give at least one seed")
    if image is not None:
        if image.ndim != 4 or image.shape[:2] != (1, 2) or image.shape[-1] != image.shape[-2]:
            raise ValueError(f"image must be one square two-channel image (1, 2, S, S), got {tuple(image.shape)}")
        size = int(image.shape[-1])
        if init == "trained":
            seeds = seeds[:1]  # same weights and same input: one measurement says it all
    results: Dict[str, ReceptiveField] = {}
    for name, branch in branches_of(model_or_branch).items():
        multiple = 2**branch.depth if branch.branch == "uc" else 1
        if size % multiple or size < 1:
            raise ValueError(f"the {name.upper()} branch needs a window size divisible by {multiple}, got {size}")
        device = next(branch.parameters()).device
        maps: List[np.ndarray] = []
        for seed in seeds:
            net = fresh_twin(branch, seed) if init == "fresh" else branch
            if image is None:
                g = torch.Generator().manual_seed(int(seed))
                x = torch.randn(1, 2, size, size, generator=g).to(device)
            else:
                x = image.to(device)
            grad = centre_gradient(net, x, iterations).cpu().numpy().astype(np.float64)
            mass = grad.sum()
            if mass > 0:  # zero when every path to the centre pixel is switched off (ReLU, max-pool)
                maps.append(grad / mass)
        if not maps:
            log.warning("%s branch: the centre pixel's gradient is zero for every seed", name.upper())
            maps = [np.zeros((size, size))]
            radii = np.array([np.nan])
        else:
            radii = np.array([radius_holding(m, fraction) for m in maps])
        mean_map = np.mean(maps, axis=0)
        extent = support_half_width(mean_map)
        results[name] = ReceptiveField(
            branch=name,
            init=init,
            iterations=iterations,
            size=size,
            fraction=fraction,
            seeds=int(np.isfinite(radii).sum()),
            radius=float(radii.mean()),
            radius_sd=float(radii.std()),
            area=float(np.mean([area_holding(m, fraction) for m in maps])),
            extent=extent,
            clipped=bool(extent >= size // 2 - (1 - size % 2)),
            hidden_size=hidden_side(branch, size),
            gradient=mean_map.astype(np.float32),
        )
    return results


def inspect_model(
    model: nn.Module,
    example: Mapping[str, Any],
    channels: int = 4,
    rf_size: Optional[int] = None,
    rf_seeds: Sequence[int] = (0, 1, 2),
    rf_fraction: float = ERF_FRACTION,
    rf_iterations: Sequence[int] = (1,),
    trained: bool = False,
) -> Tuple[Dict[str, np.ndarray], List[ReceptiveField]]:
    """Feature maps of the last iteration and receptive fields of every branch.

    Args:
        model: an OUCR model (any variant).
        example: from :func:`load_example`.
        channels: channels kept per branch.
        rf_size: receptive-field window; default the largest size up to 64 that
            the pooling accepts. Fresh twins see Gaussian noise of that size (one
            draw per seed), the trained weights the centre crop of the example image.
        rf_seeds: seeds of the fresh-initialisation measurements.
        rf_fraction: mass share of the radius.
        rf_iterations: iteration counts to measure.
        trained: also measure the model's own weights (rows ``init="trained"``, first).

    Returns:
        ``(arrays for the features file, receptive-field results)``.
    """
    from oucr.fft import center_crop

    image, physics = example["image"], example["physics"]
    output, records = cell_feature_maps(model, image, physics, last_only=True)
    arrays: Dict[str, np.ndarray] = {
        "input": image[0].float().norm(dim=0).numpy(),
        "output": output[0].float().norm(dim=0).numpy(),
    }
    if example.get("target") is not None:
        arrays["target"] = np.abs(example["target"]).astype(np.float32)
    for name, rec in records.items():
        if not rec.cell:
            raise ConfigError(f"the {name.upper()} cell acts from the second iteration on; "
                              "inspecting it needs a model with at least 2 iterations")
        cell, hidden = rec.cell[-1][0], rec.hidden[-1][0]
        keep = strongest_channels(cell, channels)
        arrays[name] = cell[keep].float().numpy()
        arrays[f"{name}_hidden"] = hidden[keep].float().numpy()
        arrays[f"{name}_channels"] = keep.numpy().astype(np.int64)

    side = min(image.shape[-2:])
    multiple = getattr(model, "size_multiple", 1)
    if rf_size is None:
        rf_size = min(64, side) // multiple * multiple
    if rf_size > side or rf_size < 1:
        raise ConfigError(f"receptive-field window {rf_size} does not fit the {side}-pixel image")
    window = center_crop(image, (rf_size, rf_size)).contiguous()
    found: List[ReceptiveField] = []
    for name, branch in branches_of(model).items():
        for its in rf_iterations if trained else ():
            found.append(receptive_field(branch, fraction=rf_fraction, iterations=its, init="trained",
                                         image=window)[name])
        for its in rf_iterations:
            found.append(receptive_field(branch, size=rf_size, fraction=rf_fraction, seeds=rf_seeds,
                                         iterations=its, init="fresh")[name])
    for name in branches_of(model):
        arrays[f"{name}_erf"] = next(rf.gradient for rf in found if rf.branch == name)
    return arrays, found
