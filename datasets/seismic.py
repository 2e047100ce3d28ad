"""Seismic sections and salt masks: reading, checking, splitting by section, patches.

A section is a float32 (H, W) array, rows are time (or depth) samples and columns traces. It
is read from SEG-Y through ``segyio`` (a 2D line, or one inline of a 3D cube), from ``.npy``,
or from an 8/16-bit PNG/TIFF. A salt mask is PNG or ``.npy`` of the same size holding two
values (0/1 or 0/255). Sections come in a CSV manifest ``section,mask[,split][,inline]``
(relative paths are read from the manifest's folder); a section without a mask can be
predicted but not trained on.

Sections are split as wholes, never by patch: overlapping patches of one section would leak
into each other's splits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from datasets.images import UnreadableImageError, decode_file, read_each
from datasets.tables import SPLITS, DataError
from datasets.tiles import cut_tiles

SEGY_SUFFIXES = (".sgy", ".segy")
NORMALIZATIONS = ("patch", "section")


@dataclass
class LabelledSection:
    name: str  # the section's path as the manifest gives it
    amplitude: np.ndarray  # float32 (H, W), NaN samples set to 0
    salt: np.ndarray  # bool (H, W)
    split: str

    @property
    def truth(self) -> np.ndarray:
        return self.salt


def write_segy(path: str | os.PathLike, section: np.ndarray, dt_us: int = 2000) -> None:
    """Writes an (H, W) section as a 2D SEG-Y file (IEEE floats), one trace per column."""
    import segyio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    segyio.tools.from_array2D(str(path), np.ascontiguousarray(section.T, np.float32), dt=dt_us,
                              format=segyio.SegySampleFormat.IEEE_FLOAT_4_BYTE)


def read_segy(path: str | os.PathLike, inline: int | None = None) -> np.ndarray:
    """One section from a SEG-Y file: every trace of a 2D line, or one inline of a 3D cube
    (``inline``, by its number; the middle one when not given).

    Raises:
        UnreadableImageError: not a readable SEG-Y file, or no such inline.
    """
    import segyio

    try:
        with segyio.open(str(path), strict=False) as segy:
            if segy.unstructured or len(segy.ilines) == 1:
                return segyio.tools.collect(segy.trace[:]).T.astype(np.float32)
            numbers = list(segy.ilines)
            chosen = numbers[len(numbers) // 2] if inline is None else int(inline)
            if chosen not in numbers:
                raise UnreadableImageError(f"has no inline {chosen}; its inlines run {numbers[0]}..{numbers[-1]}")
            return np.asarray(segy.iline[chosen], np.float32).T
    except (OSError, RuntimeError, ValueError) as err:
        if isinstance(err, UnreadableImageError):
            raise
        raise UnreadableImageError(f"is not a readable SEG-Y file ({err})") from err


def read_section(path: str | os.PathLike, inline: int | None = None) -> np.ndarray:
    """A float32 (H, W) section from SEG-Y, ``.npy`` or an 8/16-bit grayscale image.

    Raises:
        UnreadableImageError: the file cannot be read, or is not two-dimensional.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SEGY_SUFFIXES:
        section = read_segy(path, inline)
    elif suffix == ".npy":
        section = load_npy(path)
    else:
        section = _read_gray(path)
    if section.ndim != 2 or min(section.shape) < 1:
        raise UnreadableImageError(f"is not a 2D section (shape {section.shape})")
    return section.astype(np.float32)


def read_binary_mask(path: str | os.PathLike) -> np.ndarray:
    """A boolean (H, W) mask (salt, ice, ...) from PNG/TIFF or ``.npy``.

    Raises:
        UnreadableImageError: unreadable, or not binary (more than two values, or two values
            other than 0 and 1 or 0 and 255).
    """
    path = Path(path)
    mask = load_npy(path) if path.suffix.lower() == ".npy" else _read_gray(path)
    if mask.ndim != 2:
        raise UnreadableImageError(f"is not a 2D mask (shape {mask.shape})")
    values = np.unique(mask)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise UnreadableImageError(f"is not a binary mask: it holds {len(values)} values ({shown}); a mask holds "
                                   "0 (background) and 1 or 255 (salt, ice, ...)")
    return mask > 0


def load_npy(path: Path) -> np.ndarray:
    """An array from ``.npy`` (never unpickled).

    Raises:
        UnreadableImageError: not a readable ``.npy`` file.
    """
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UnreadableImageError(f"is not a readable .npy array ({err})") from err


def _read_gray(path: Path) -> np.ndarray:
    return decode_file(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE)


def read_section_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """The manifest's rows with absolute ``section`` and ``mask`` paths (``mask`` may be empty).

    Raises:
        DataError: no such file, or no ``section`` column.
    """
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix.lower() != ".csv":
        raise DataError(f"{path}: segmentation data are a CSV manifest with columns section,mask[,split][,inline] "
                        "(paths relative to the manifest's folder), or synthetic:seismic_salt.")
    if not path.is_file():
        raise DataError(f"Manifest not found: {path}")
    table = pd.read_csv(path, dtype={"section": str, "mask": str, "split": str})
    if "section" not in table.columns:
        raise DataError(f"{path} has no 'section' column; its columns are {list(table.columns)}.")
    for column in ("section", "mask"):
        if column in table.columns:
            table[column] = [str(path.parent / p) if isinstance(p, str) and p else None for p in table[column]]
    if "mask" not in table.columns:
        table["mask"] = None
    return table


def read_labelled_section(section: str | os.PathLike, mask: str | os.PathLike,
                          inline: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A section and its salt mask, checked to be of the same size.

    Raises:
        UnreadableImageError: either file cannot be used, or the sizes differ (both named).
    """
    amplitude = read_section(section, inline)
    try:
        salt = read_binary_mask(mask)
    except UnreadableImageError as err:
        raise UnreadableImageError(f"its mask {mask} {err}") from err
    if salt.shape != amplitude.shape:
        raise UnreadableImageError(f"the section is {amplitude.shape[0]} x {amplitude.shape[1]} (samples x traces) "
                                   f"but its mask {mask} is {salt.shape[0]} x {salt.shape[1]}")
    return amplitude, salt


def without_nan(amplitude: np.ndarray, name: str) -> np.ndarray:
    """NaN samples set to 0, with their count on stdout."""
    nan = np.isnan(amplitude)
    if not nan.any():
        return amplitude
    print(f"note: {name}: {int(nan.sum())} NaN samples set to 0", flush=True)
    return np.where(nan, 0, amplitude).astype(np.float32)


def load_labelled_sections(table: pd.DataFrame, bad: list[dict]) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Reads every section that has a mask; each one that cannot be used goes to ``bad`` with
    the reason (unreadable, mask unreadable or not binary, sizes differing) and is skipped.
    NaN samples are set to 0 and counted on stdout. Returns ``(row, amplitude, salt)`` with
    ``row`` the manifest's row as a named tuple."""
    labelled = table[table["mask"].notna()].itertuples(index=False)
    return [(row, without_nan(amplitude, row.section), salt)
            for row, (amplitude, salt) in read_each(labelled, bad, lambda r: r.section,
                                                    lambda r: read_labelled_section(r.section, r.mask, _inline(r)))]


def section_image(amplitude: np.ndarray) -> np.ndarray:
    """A section as an RGB uint8 picture, amplitudes clipped at three standard deviations."""
    clipped = np.clip(amplitude / (3 * amplitude.std() + 1e-6), -1, 1)
    return np.repeat(((clipped + 1) * 127.5).astype(np.uint8)[..., None], 3, axis=-1)


def _inline(row) -> int | None:
    value = getattr(row, "inline", None)
    return None if value is None or pd.isna(value) else int(value)


def split_sections(given: list[str | None], fractions: tuple[float, float, float], seed: int) -> list[str]:
    """A split per section: the manifest's where given, else a seeded draw by ``fractions``
    (validation and test get at least one section each, train the rest).

    Raises:
        DataError: a split value that is not train/val/test, or a split left without a section.
    """
    wrong = sorted({g for g in given if g is not None and g not in SPLITS})
    if wrong:
        raise DataError(f"Unknown split value(s) {wrong} in the manifest; use {', '.join(SPLITS)}.")
    free = [i for i, g in enumerate(given) if g is None]
    share = np.array(fractions) / sum(fractions)
    val, test = (max(1, int(share[k] * len(free))) for k in (1, 2))
    splits = list(given)
    for position, index in enumerate(np.random.default_rng(seed).permutation(free)):
        splits[index] = "val" if position < val else "test" if position < val + test else "train"
    empty = [s for s in SPLITS if s not in splits]
    if empty:
        raise DataError(f"The {'/'.join(empty)} split(s) get no section from {len(given)} usable labelled "
                        "section(s); add sections (at least 3) or fix the manifest's split column.")
    return splits


def zscore(values: np.ndarray, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """(x - mean) / std over ``axes``; a constant block becomes zeros, never NaN."""
    mean = values.mean(axis=axes, keepdims=True)
    std = values.std(axis=axes, keepdims=True)
    return np.where(std > 1e-6, (values - mean) / np.maximum(std, 1e-6), 0).astype(np.float32)


def section_patches(amplitude: np.ndarray, patch: int, stride: int, normalize: str,
                    salt: np.ndarray | None = None):
    """Overlapping patches of one section, z-scored per patch or per section (``normalize``).

    Returns:
        ``(patches (N, patch, patch, 1) float32, origins, salt patches (N, patch, patch, 1)
        float32 or None)``. A section smaller than a patch is mirror-padded, and so is its mask.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r} is not one of {NORMALIZATIONS}")
    source = zscore(amplitude) if normalize == "section" else amplitude
    patches, origins = cut_tiles(source[..., None], patch, stride)
    if normalize == "patch":
        patches = zscore(patches, axes=(1, 2, 3))
    masks = None if salt is None else cut_tiles(salt[..., None].astype(np.float32), patch, stride)[0]
    return patches, origins, masks
