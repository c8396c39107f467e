"""PyTorch dataset of undersampled slices over a prepared store.

Each item is a dict (docs/ARCHITECTURE.md): the masked k-space, the column mask,
the zero-filled image and the target, all divided by the slice's normalisation
factor (mean magnitude of the zero-filled image, the OUCR lineage's scaling),
plus the factor, the volume's maximum, and the volume/slice identifiers.

Masks: validation and test slices use one fixed mask per volume, read from the
masks file of ``oucr masks`` or, equivalently, drawn with fastMRI's per-volume
seed; training slices draw a fresh mask per example with the seed
``(seed, epoch, index)``, so a given epoch sees the same masks in every run,
interrupted or not (call :meth:`SliceDataset.set_epoch`).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from oucr.data.store import SPLITS, PreparedStore
from oucr.errors import DataError
from oucr.fft import complex_to_channels
from oucr.masks import MaskFunc, column_mask, volume_seed
from oucr.physics import noise_seed, normalised_measurement, zero_filled


class SliceDataset(Dataset):
    """Undersampled slices of one split of a prepared store.

    Args:
        store: a :class:`PreparedStore` or its folder.
        split: ``train``, ``val`` or ``test``.
        mask_func: draws training masks, and val/test masks when no file is given.
        masks_file: fixed masks of ``oucr masks`` (used for val/test).
        seed: base seed of the training masks.
        fixed: use fixed per-volume masks; default True except for ``train``.
        open_files: how many volume files to keep open (an LRU), so that a large
            store is never loaded whole.
        noise_snr_db: add complex Gaussian noise at this SNR to the measured k-space
            (:func:`oucr.physics.measurement_noise`; the draw is fixed per volume and
            slice, the same for every method), or None.
    """

    def __init__(
        self,
        store: Union[PreparedStore, str, Path],
        split: str,
        mask_func: Optional[MaskFunc],
        masks_file: Optional[Union[str, Path]] = None,
        seed: int = 0,
        fixed: Optional[bool] = None,
        open_files: int = 16,
        noise_snr_db: Optional[float] = None,
    ) -> None:
        if open_files < 1:
            raise ValueError(f"open_files must be at least 1, got {open_files}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.store = store if isinstance(store, PreparedStore) else PreparedStore(store)
        self.split = split
        self.mask_func = mask_func
        self.seed = int(seed)
        self.fixed = (split != "train") if fixed is None else fixed
        self.epoch = 0
        self.masks_file = Path(masks_file) if masks_file is not None else None
        self.noise_snr_db = noise_snr_db
        self.slice_index: List[Tuple[str, int]] = self.store.slices(split)
        self._files: "OrderedDict[str, h5py.File]" = OrderedDict()
        self._open_files = open_files
        self._fixed_masks: Dict[str, np.ndarray] = {}
        if self.fixed:
            if masks_file is not None:
                from oucr.data.fixed_masks import read_fixed_masks

                self._fixed_masks = read_fixed_masks(masks_file)
                missing = sorted({v for v, _ in self.slice_index} - set(self._fixed_masks))
                if missing:
                    raise DataError(masks_file, f"no fixed mask for volume(s) {', '.join(missing[:5])}"
                                    + (" ..." if len(missing) > 5 else ""))
            elif mask_func is None:
                raise ValueError("fixed masks need a masks_file or a mask_func")
        elif mask_func is None:
            raise ValueError("training masks need a mask_func")

    def set_epoch(self, epoch: int) -> None:
        """Select the training masks of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.slice_index)

    def _file(self, volume: str) -> h5py.File:
        f = self._files.pop(volume, None)
        if f is None:
            path = self.store.path(volume)
            try:
                f = h5py.File(path, "r")
            except OSError as err:
                raise DataError(path, f"unreadable prepared volume ({err})") from err
            if len(self._files) >= self._open_files:
                _, old = self._files.popitem(last=False)
                old.close()
        self._files[volume] = f
        return f

    def mask_for(self, volume: str, index: int, width: int, epoch: Optional[int] = None) -> np.ndarray:
        """The ``(W,)`` uint8 column mask of item ``index`` (a slice of ``volume``).

        Args:
            epoch: the training epoch whose mask to draw (default :attr:`epoch`).

        Raises:
            DataError: if a fixed mask does not have ``width`` columns.
        """
        if self.fixed:
            mask = self._fixed_masks.get(volume)
            if mask is None:
                mask, _ = column_mask(self.mask_func, width, seed=volume_seed(volume))
                self._fixed_masks[volume] = mask
        else:
            epoch = self.epoch if epoch is None else int(epoch)
            mask, _ = column_mask(self.mask_func, width, seed=(self.seed, epoch, int(index)))
        if mask.shape != (width,):
            where = self.masks_file if self.masks_file is not None else self.store.path(volume)
            raise DataError(where, f"the mask of {volume} has shape {mask.shape} but the k-space has {width} columns")
        return mask

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Dict[str, object]:
        """One slice; ``item`` is an index, or ``(index, epoch)`` to draw that epoch's training mask.

        The pair form lets a sampler carry the epoch to DataLoader workers, which hold
        their own copies of the dataset (persistent workers never see :meth:`set_epoch`).
        """
        index, epoch = (item if isinstance(item, tuple) else (item, None))
        volume, s = self.slice_index[index]
        f = self._file(volume)
        try:
            kspace = torch.from_numpy(f["kspace"][s].astype(np.complex64))
            target = torch.from_numpy(f["target"][s].astype(np.complex64))
            vmax = float(f.attrs["max"])
        except (OSError, KeyError, RuntimeError, ValueError) as err:
            raise DataError(self.store.path(volume), f"unreadable prepared volume (slice {s}): {err}") from err
        mask = torch.from_numpy(self.mask_for(volume, index, kspace.shape[-1], epoch).astype(np.float32)).reshape(1, -1)
        noise = None if self.noise_snr_db is None else (self.noise_snr_db, noise_seed(volume, s))
        measured, norm = normalised_measurement(kspace, mask, noise)
        image = zero_filled(measured)
        return {
            "masked_kspace": measured,
            "mask": mask,
            "image": complex_to_channels(image.unsqueeze(0))[0],
            "target": complex_to_channels((target / norm).unsqueeze(0))[0],
            "norm": torch.tensor(norm, dtype=torch.float32),
            "max": torch.tensor(vmax, dtype=torch.float32),
            "volume": volume,
            "slice": s,
        }

    def close(self) -> None:
        """Close the open volume files."""
        while self._files:
            _, f = self._files.popitem()
            f.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict:
        # open HDF5 handles cannot cross process boundaries (DataLoader workers)
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        return state
