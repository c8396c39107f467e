"""Cartesian undersampling masks with fastMRI's exact semantics.

:class:`RandomMaskFunc` and :class:`EquispacedMaskFractionFunc` return, for the same
constructor arguments, call arguments and seed, bit for bit the masks of
``fastmri.data.subsample`` (fastmri 0.3.0), so either can be swapped for the
other; ``tests/test_masks.py`` checks this against reference masks generated with
that package. The conventions:

* ``mask_func(shape, offset=None, seed=None) -> (mask, num_low_frequencies)``;
  ``shape`` is a k-space shape in fastMRI's layout with the real/imaginary pair
  last, so the phase-encoding columns are ``shape[-2]``; the mask is a float32
  tensor with ``shape[-2]`` columns and ones elsewhere (``(1, 1, W, 1)`` for
  ``(1, H, W, 2)``).
* Each mask function owns a ``numpy.random.RandomState``; a ``seed`` given at call
  time reseeds it temporarily and restores its state afterwards. The global NumPy
  random state is never touched.
* The centre block has ``round(W * center_fraction)`` columns starting at
  ``(W - num_low + 1) // 2``.
* Validation/test masks are fixed per volume with fastMRI's seed
  ``tuple(map(ord, file_name))`` (:func:`volume_seed`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from oucr.errors import ConfigError

if TYPE_CHECKING:  # torch is imported only by the fastMRI-style call that returns a tensor, so
    import torch   # that the NumPy-only steps (masks, evaluation, CS) start without it

Seed = Optional[Union[int, Tuple[int, ...]]]


@contextlib.contextmanager
def _seeded(rng: np.random.RandomState, seed: Seed) -> Iterator[None]:
    """Reseed ``rng`` for the duration of the block when ``seed`` is given, then restore it."""
    if seed is None:
        yield
        return
    saved = rng.get_state()
    rng.seed(seed)
    try:
        yield
    finally:
        rng.set_state(saved)


class MaskFunc:
    """Column masks that fully sample the k-space centre and undersample the rest.

    Args:
        center_fractions: fraction of low-frequency columns always kept; one per
            acceleration unless ``allow_any_combination``.
        accelerations: nominal undersampling factors. When several are given, one
            (fraction, acceleration) pair is drawn uniformly per call.
        allow_any_combination: draw fraction and acceleration independently.
        seed: seed of the mask function's own random generator.
    """

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[int],
        allow_any_combination: bool = False,
        seed: Optional[int] = None,
    ) -> None:
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError(
                "center_fractions and accelerations must have the same length "
                "unless allow_any_combination is True"
            )
        if len(center_fractions) == 0 or len(accelerations) == 0:
            raise ValueError("at least one center fraction and one acceleration are needed")
        self.center_fractions = center_fractions
        self.accelerations = accelerations
        self.allow_any_combination = allow_any_combination
        self.rng = np.random.RandomState(seed)

    def __call__(
        self, shape: Sequence[int], offset: Optional[int] = None, seed: Seed = None
    ) -> Tuple["torch.Tensor", int]:
        """Draw a mask.

        Args:
            shape: k-space shape with the real/imaginary pair last (at least 3 dims).
            offset: first sampled column of equispaced masks (random when None).
            seed: seed for this call alone (the generator's state is restored after).

        Returns:
            ``(mask, num_low_frequencies)``: the float32 mask broadcastable to ``shape``
            and the number of fully sampled centre columns.
        """
        mask, num_low = self.columns(shape, offset, seed)
        return self._to_shape(mask, shape), num_low

    def columns(self, shape: Sequence[int], offset: Optional[int] = None, seed: Seed = None) -> Tuple[np.ndarray, int]:
        """The same draw as :meth:`__call__`, as a flat float32 NumPy ``(W,)`` column mask (no torch)."""
        if len(shape) < 3:
            raise ValueError("shape must have at least 3 dimensions (..., columns, 2)")
        with _seeded(self.rng, seed):
            num_cols = shape[-2]
            center_fraction, acceleration = self._draw_setting()
            num_low = int(round(num_cols * center_fraction))
            center = self._center_columns(num_cols, num_low)
            outer = self.acceleration_columns(num_cols, acceleration, offset, num_low)
        # float32 centre and float32 (equispaced) or boolean (random) outer columns: a float32 mask
        return np.maximum(center, outer), num_low

    def _draw_setting(self) -> Tuple[float, int]:
        # the order of the random draws is part of fastMRI's semantics
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        i = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[i], self.accelerations[i]

    @staticmethod
    def _center_columns(num_cols: int, num_low: int) -> np.ndarray:
        mask = np.zeros(num_cols, dtype=np.float32)
        start = (num_cols - num_low + 1) // 2
        mask[start : start + num_low] = 1
        return mask

    @staticmethod
    def _to_shape(mask: np.ndarray, shape: Sequence[int]) -> "torch.Tensor":
        import torch

        view = [1] * len(shape)
        view[-2] = shape[-2]
        return torch.from_numpy(mask.astype(np.float32).reshape(view))

    def acceleration_columns(
        self, num_cols: int, acceleration: int, offset: Optional[int], num_low: int
    ) -> np.ndarray:
        """Columns sampled outside the centre (subclasses define the pattern)."""
        raise NotImplementedError


class RandomMaskFunc(MaskFunc):
    """Centre block plus columns kept independently at random.

    Each column is kept with probability ``(W / acc - num_low) / (W - num_low)``, so
    that on average ``W / acc`` columns are sampled; the realised acceleration of one
    mask varies around the nominal one.
    """

    def acceleration_columns(
        self, num_cols: int, acceleration: int, offset: Optional[int], num_low: int
    ) -> np.ndarray:
        keep = (num_cols / acceleration - num_low) / (num_cols - num_low)
        # `<=` differs only when a uniform draw equals `keep` exactly (probability 0): equivalent
        return self.rng.uniform(size=num_cols) < keep  # pragma: no mutate


class EquispacedMaskFractionFunc(MaskFunc):
    """Centre block plus (approximately) equispaced columns matching the acceleration.

    The spacing ``acc * (num_low - W) / (num_low * acc - W)`` accounts for the centre
    block so that about ``W / acc`` columns are sampled in total. Positions are
    rounded, so the spacing is not always exactly even (as in fastMRI).
    """

    def acceleration_columns(
        self, num_cols: int, acceleration: int, offset: Optional[int], num_low: int
    ) -> np.ndarray:
        spacing = (acceleration * (num_low - num_cols)) / (num_low * acceleration - num_cols)
        if offset is None:
            offset = self.rng.randint(0, high=round(spacing))
        mask = np.zeros(num_cols, dtype=np.float32)
        positions = np.around(np.arange(offset, num_cols - 1, spacing)).astype(np.uint)
        mask[positions] = 1.0
        return mask


MASK_TYPES = {"random": RandomMaskFunc, "equispaced_fraction": EquispacedMaskFractionFunc}


def create_mask_for_mask_type(
    mask_type: str, center_fractions: Sequence[float], accelerations: Sequence[int], seed: Optional[int] = None
) -> MaskFunc:
    """Build a mask function by name (``random`` or ``equispaced_fraction``).

    Raises:
        ConfigError: for an unknown mask type.
    """
    if mask_type not in MASK_TYPES:
        raise ConfigError(f"unknown mask type {mask_type!r}; known: {', '.join(MASK_TYPES)}")
    return MASK_TYPES[mask_type](center_fractions, accelerations, seed=seed)


def volume_seed(volume: str) -> Tuple[int, ...]:
    """fastMRI's fixed per-volume seed: the character codes of the file name.

    fastMRI's data module seeds validation/test masks with ``tuple(map(ord, fname))``
    where ``fname`` is the HDF5 file name; a prepared volume ``<volume>`` comes from
    (and is stored as) ``<volume>.h5``, so fastMRI volumes keep their original seeds.

    Args:
        volume: a volume identifier (``"file1000001"``) or file name (``"file1000001.h5"``);
            ``.h5`` is appended when missing.

    Returns:
        the seed tuple, e.g. ``(102, 105, ..., 104, 53)`` for ``file1000001``.
    """
    name = volume if volume.endswith(".h5") else f"{volume}.h5"
    return tuple(map(ord, name))


def column_mask(mask_func: MaskFunc, num_cols: int, seed: Seed = None) -> Tuple[np.ndarray, int]:
    """A flat ``(W,)`` uint8 column mask and its number of centre columns.

    Args:
        mask_func: the mask function.
        num_cols: number of k-space columns ``W``.
        seed: seed for this draw (e.g. :func:`volume_seed`).
    """
    # only the column count matters: changing the other sizes of the shape is an equivalent mutant
    mask, num_low = mask_func.columns((1, 1, num_cols, 2), seed=seed)  # pragma: no mutate
    return mask.astype(np.uint8), num_low


def realised_acceleration(mask: Union[np.ndarray, "torch.Tensor"]) -> float:
    """Number of k-space locations divided by the number sampled.

    Works for column masks of any broadcastable shape (only the count of sampled
    columns over all columns matters) and for full 2-D masks.

    Raises:
        ValueError: for a mask that samples nothing.
    """
    m = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    sampled = int(np.count_nonzero(m))
    if sampled == 0:
        raise ValueError("the mask samples no k-space location")
    return m.size / sampled
