"""Two-source samples for fusion segmentation: a SAR scene, its coarse radiometer grid, its mask.

A manifest CSV has the columns ``sar,mwr,mask[,split]`` (paths relative to the manifest's
folder). ``sar`` is an ``.npy`` array (H, W, C) (or (H, W): one channel), ``mwr`` an ``.npy``
array (H/s, W/s, K) on a grid s times coarser along both sides, ``mask`` a binary PNG/TIFF or
``.npy`` of H x W. Values enter the model as they are, so scale them to about unit range
beforehand (AI4Arctic's ready-to-train files are; ``python -m datasets.synthetic sea_ice``
writes them so). Every sample must have the sizes of the first usable one; one that does not,
or whose sources disagree, goes to ``bad_files.csv`` with both shapes named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from datasets.images import UnreadableImageError, read_each
from datasets.seismic import finite_samples, load_npy, read_binary_mask
from datasets.tables import DataError

COLUMNS = ("sar", "mwr", "mask")


@dataclass
class FusionSample:
    name: str  # the SAR file as the manifest gives it
    sar: np.ndarray  # float32 (H, W, C)
    mwr: np.ndarray  # float32 (H/s, W/s, K)
    truth: np.ndarray  # bool (H, W)
    split: str | None = None
    valid: np.ndarray | None = None  # bool (H, W): pixels with a truth (not land, not no-data); None: all
    concentration: np.ndarray | None = None  # float32 (H, W): the chart's ice concentration, 0-1, where there is one

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        return {"sar": self.sar, "mwr": self.mwr}

    def target(self, kind: str = "ice") -> np.ndarray:
        """The float32 target of a model: (H, W, 1), or (H, W, 2) with the valid pixels second
        (``models.losses.IgnoringInvalid``); its first channel the ice mask, or for ``kind`` "sic"
        the chart's concentration.

        Raises:
            DataError: a SIC target asked of a sample without a chart's concentration.
        """
        values = self.concentration if kind == "sic" else self.truth
        if values is None:
            raise DataError(f"{self.name} has no SIC chart: a concentration target needs AI4Arctic NetCDF scenes; "
                            "a mask manifest trains the ice/water target")
        stacked = values[..., None] if self.valid is None else np.stack([values, self.valid], axis=-1)
        return stacked.astype(np.float32)

    def load(self) -> FusionSample:
        """Itself: its arrays are in memory (a ``datasets.ai4arctic.ScenePatch`` reads its own)."""
        return self


def read_fusion_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """The manifest's rows with absolute ``sar``, ``mwr`` and ``mask`` paths.

    Raises:
        DataError: no such file, not a CSV, or a missing column (the columns it has are named).
    """
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix.lower() != ".csv":
        raise DataError(f"{path}: two-source data are a CSV manifest with columns sar,mwr,mask[,split] (.npy arrays, "
                        "paths relative to the manifest's folder), or synthetic:sea_ice.")
    if not path.is_file():
        raise DataError(f"Manifest not found: {path}")
    table = pd.read_csv(path, dtype={column: str for column in (*COLUMNS, "split")})
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise DataError(f"{path} has no {', '.join(repr(c) for c in missing)} column(s); its columns are "
                        f"{list(table.columns)}. A two-source manifest has sar,mwr,mask[,split].")
    for column in COLUMNS:
        table[column] = [str(path.parent / p) if isinstance(p, str) and p else None for p in table[column]]
    return table


def read_fusion_sample(sar_path: str, mwr_path: str, mask_path: str | None) -> FusionSample:
    """One sample, its sources checked against each other.

    Raises:
        UnreadableImageError: a file cannot be read, or the sizes disagree (both shapes named).
    """
    sar = _array(sar_path, "SAR")
    try:
        mwr = _array(mwr_path, "radiometer")
    except UnreadableImageError as err:
        raise UnreadableImageError(f"its radiometer file {mwr_path} {err}") from err
    rows, cols = sar.shape[:2]
    scale = rows // mwr.shape[0] if mwr.shape[0] else 0
    if not scale or mwr.shape[0] * scale != rows or mwr.shape[1] * scale != cols:
        raise UnreadableImageError(
            f"the SAR is {rows} x {cols} but its radiometer grid {mwr_path} is {mwr.shape[0]} x {mwr.shape[1]}: both "
            "sides must be the SAR's divided by one whole factor (SAR pixels per radiometer pixel)")
    truth = None
    if mask_path:
        try:
            truth = read_binary_mask(mask_path)
        except UnreadableImageError as err:
            raise UnreadableImageError(f"its mask {mask_path} {err}") from err
        if truth.shape != (rows, cols):
            raise UnreadableImageError(f"the SAR is {rows} x {cols} but its mask {mask_path} is "
                                       f"{truth.shape[0]} x {truth.shape[1]}")
    return FusionSample(sar_path, finite_samples(sar, sar_path), finite_samples(mwr, mwr_path), truth)


def _array(path: str, what: str) -> np.ndarray:
    array = load_npy(Path(path))
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or min(array.shape) < 1:
        raise UnreadableImageError(f"is not a {what} array (H, W, channels): its shape is {array.shape}")
    return array.astype(np.float32)


def usable_samples(table: pd.DataFrame, bad: list[dict], masks: bool = True) -> Iterator[FusionSample]:
    """Every sample of the manifest that can be used, with its split (and, with ``masks``, only
    the labelled ones, masks read); the others go to ``bad`` with the reason, as does a sample
    whose sizes differ from the first usable one's (a batch needs one size)."""
    rows = table[table["mask"].notna()] if masks else table
    first = None
    for row, sample in read_each(rows.itertuples(index=False), bad, lambda r: r.sar,
                                 lambda r: read_fusion_sample(r.sar, r.mwr, r.mask if masks else None)):
        split = getattr(row, "split", None)
        sample.split = split if isinstance(split, str) else None
        first = first or sample
        if (sample.sar.shape, sample.mwr.shape) != (first.sar.shape, first.mwr.shape):
            bad.append({"path": row.sar, "reason": (
                f"its SAR is {_shape(sample.sar)} and its radiometer {_shape(sample.mwr)}, but the first sample "
                f"{first.name} has {_shape(first.sar)} and {_shape(first.mwr)}; every sample needs the same sizes")})
            continue
        yield sample


def load_fusion_samples(table: pd.DataFrame, bad: list[dict]) -> list[FusionSample]:
    """Every labelled sample that can be used (see :func:`usable_samples`)."""
    return list(usable_samples(table, bad))


def stack_sources(samples: list[FusionSample]) -> dict[str, np.ndarray]:
    """The samples' SAR and radiometer arrays as a batch keyed by input name."""
    return {name: np.stack([getattr(s, name) for s in samples]) for name in ("sar", "mwr")}


def _shape(array: np.ndarray) -> str:
    return " x ".join(str(n) for n in array.shape)
