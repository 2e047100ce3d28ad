"""Seismic sections and salt masks: reading, checking, splitting by section, patches.

A section is a float32 (H, W) array, rows are time (or depth) samples and columns traces. It
is read from SEG-Y through ``segyio`` (a 2D line, one inline or crossline of a 3D survey, or
one chosen from a cube; :func:`read_segy`), from ``.npy``, or from an 8/16-bit PNG/TIFF of any
size. A salt mask is PNG, TIFF or ``.npy`` of the same size holding two values (0/1, 0/255 or
0/65535). Sections come in a CSV manifest ``section,mask[,split][,inline][,crossline]``
(relative paths are read from the manifest's folder) or a folder in the TGS salt layout
(``images/``, ``masks/``); a section without a mask can be predicted but not trained on.

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
    amplitude: np.ndarray  # float32 (H, W), NaN and infinite samples set to 0
    salt: np.ndarray  # bool (H, W)
    split: str
    valid = None  # every pixel of a section has its truth

    @property
    def truth(self) -> np.ndarray:
        return self.salt


def write_segy(path: str | os.PathLike, section: np.ndarray, dt_us: int = 2000) -> None:
    """Writes an (H, W) section as a 2D SEG-Y file (IEEE floats), one trace per column."""
    import segyio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    segyio.tools.from_array2D(str(path), np.ascontiguousarray(section.T, np.float32), dt=dt_us,
                              format=segyio.SegySampleFormat.IEEE_FLOAT_4_BYTE)


@dataclass(frozen=True)
class SegyHeaders:
    """Where a SEG-Y file's trace headers keep the inline and crossline numbers: bytes 189 and
    193 by the standard (segyio's ``iline`` and ``xline``); older surveys use others (e.g. 9 and
    21, or 5 and 17)."""

    iline: int = 189
    xline: int = 193


def add_segy_arguments(parser) -> None:
    """The flags that choose what is read from a SEG-Y file, for commands that read sections."""
    group = parser.add_argument_group("SEG-Y", "which section of a SEG-Y file is read (a 2D line, or one inline or "
                                               "crossline of a 3D survey, is read whole)")
    group.add_argument("--inline", type=int, help="3D cube: the inline to read (default: the middle one)")
    group.add_argument("--crossline", type=int, help="3D cube: the crossline to read, instead of an inline")
    group.add_argument("--iline-byte", type=int, help="trace-header byte of the inline number (default: the run's, "
                                                      "else 189)")
    group.add_argument("--xline-byte", type=int, help="trace-header byte of the crossline number (default: the "
                                                      "run's, else 193)")


def headers_from(args, setting) -> SegyHeaders:
    """The header bytes given by :func:`add_segy_arguments`' flags, else ``setting(name, default)``'s
    (a run's saved settings), else the standard's."""
    return SegyHeaders(args.iline_byte or setting("iline_byte", 189), args.xline_byte or setting("xline_byte", 193))


def read_segy(path: str | os.PathLike, inline: int | None = None, crossline: int | None = None,
              headers: SegyHeaders = SegyHeaders()) -> tuple[np.ndarray, str]:
    """One section from a SEG-Y file as surveys export it, and a phrase saying what was read.

    - a 2D line, or one inline or one crossline of a 3D survey: every trace, in file order;
    - a 3D cube: inline ``inline`` or crossline ``crossline`` by its number (the middle
      inline when neither is given), traces ordered by the other number;
    - traces whose geometry cannot be inferred (unsorted, or a cube with a missing trace):
      the traces of ``inline`` or ``crossline`` when given, else every trace, in file order.

    IBM and IEEE floats alike; dead (all-zero) traces are kept and counted.

    Raises:
        UnreadableImageError: not a readable SEG-Y file, traces of differing lengths, or no
            such inline or crossline (its range named).
    """
    import segyio

    try:
        with segyio.open(str(path), iline=headers.iline, xline=headers.xline, strict=False) as segy:
            _check_trace_lengths(segy)
            ilines = segy.attributes(headers.iline)[:].astype(np.int64)
            xlines = segy.attributes(headers.xline)[:].astype(np.int64)
            chosen, layout = _chosen_traces(ilines, xlines, inline, crossline, segy.unstructured)
            traces = np.stack([np.asarray(segy.trace.raw[int(i)], np.float32) for i in chosen], axis=1)
    except (OSError, RuntimeError, ValueError) as err:
        if isinstance(err, UnreadableImageError):
            raise
        raise UnreadableImageError(f"is not a readable SEG-Y file ({err})") from err
    dead = int((~traces.any(axis=0)).sum())
    return traces, layout + (f"; {dead} dead (all-zero) trace(s) kept" if dead else "")


def _check_trace_lengths(segy) -> None:
    """Every trace header that states its length states the binary header's (segyio reads them all
    at that length, so a longer or shorter trace would shift every one after it)."""
    import segyio

    counts = segy.attributes(segyio.TraceField.TRACE_SAMPLE_COUNT)[:]
    stated = counts[counts > 0]
    if len(stated) and (stated != len(segy.samples)).any():
        first = int(np.flatnonzero((counts > 0) & (counts != len(segy.samples)))[0])
        raise UnreadableImageError(f"has traces of differing lengths: trace {first} says {int(counts[first])} "
                                   f"samples, the file's binary header {len(segy.samples)}; export it again with "
                                   "one trace length")


def _chosen_traces(ilines: np.ndarray, xlines: np.ndarray, inline: int | None, crossline: int | None,
                   unstructured: bool) -> tuple[np.ndarray, str]:
    """The trace indices of the section asked for, and what they are."""
    if inline is not None and crossline is not None:
        raise UnreadableImageError("was asked for an inline and a crossline at once; choose one")
    in_file_order = np.arange(len(ilines))
    cube = len(np.unique(ilines)) > 1 and len(np.unique(xlines)) > 1
    irregular = cube and (unstructured or not _sorted_geometry(ilines, xlines))
    if inline is None and crossline is None:
        if not cube:
            kind = ("one inline" if len(np.unique(ilines)) == 1 and len(np.unique(xlines)) > 1 else
                    "one crossline" if len(np.unique(xlines)) == 1 and len(np.unique(ilines)) > 1 else "a 2D line")
            return in_file_order, f"{kind}: all {len(ilines)} traces"
        if irregular:
            return in_file_order, (f"geometry not inferred (traces unsorted or missing): all {len(ilines)} traces in "
                                   "file order")
        numbers = np.unique(ilines)
        inline = int(numbers[len(numbers) // 2])
        chosen = _line(ilines, xlines, inline, "inline")
        return chosen, (f"inline {inline}, the middle one of the cube's inlines {numbers[0]}..{numbers[-1]} "
                        "(choose with --inline or --crossline)")
    number, own, other, kind = ((inline, ilines, xlines, "inline") if inline is not None
                                else (crossline, xlines, ilines, "crossline"))
    chosen = _line(own, other, int(number), kind)
    return chosen, f"{kind} {number}" + (" (geometry not inferred: its traces in file order)" if irregular else "")


def _line(own: np.ndarray, other: np.ndarray, number: int, kind: str) -> np.ndarray:
    chosen = np.flatnonzero(own == number)
    if not len(chosen):
        numbers = np.unique(own)
        raise UnreadableImageError(f"has no {kind} {number}; its {kind}s run {numbers[0]}..{numbers[-1]} "
                                   f"({len(numbers)} of them)")
    return chosen[np.argsort(other[chosen], kind="stable")]


def _sorted_geometry(ilines: np.ndarray, xlines: np.ndarray) -> bool:
    """Whether the traces run in order of (inline, crossline) or of (crossline, inline)."""
    def ordered(major: np.ndarray, minor: np.ndarray) -> bool:
        key = major * (int(minor.max()) - int(minor.min()) + 1) + (minor - minor.min())
        return bool((np.diff(key) > 0).all() or (np.diff(key) < 0).all())

    return len(ilines) < 2 or ordered(ilines, xlines) or ordered(xlines, ilines)


def read_section(path: str | os.PathLike, inline: int | None = None, crossline: int | None = None,
                 headers: SegyHeaders = SegyHeaders()) -> np.ndarray:
    """A float32 (H, W) section, samples x traces, from SEG-Y (:func:`read_segy`, whose
    choice is said on stdout with the section's shape, so a one-trace surprise cannot pass
    unseen), ``.npy`` or an 8/16-bit grayscale image.

    Raises:
        UnreadableImageError: the file cannot be read, or is not two-dimensional.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SEGY_SUFFIXES:
        section, layout = read_segy(path, inline, crossline, headers)
        print(f"{path.name}: {section.shape[0]} samples x {section.shape[1]} traces ({layout})", flush=True)
    elif suffix == ".npy":
        section = load_npy(path)
    else:
        section = _read_gray(path)
    if section.ndim != 2 or min(section.shape) < 1:
        raise UnreadableImageError(f"is not a 2D section (shape {section.shape})")
    return section.astype(np.float32)


def read_binary_mask(path: str | os.PathLike) -> np.ndarray:
    """A boolean (H, W) mask (salt, ice, ...) from PNG/TIFF or ``.npy``: 0 and 1, 0 and 255
    (8-bit), or 0 and 65535 (16-bit).

    Raises:
        UnreadableImageError: unreadable, or not binary (more than two values, or two values
            other than these).
    """
    path = Path(path)
    mask = load_npy(path) if path.suffix.lower() == ".npy" else _read_gray(path)
    if mask.ndim != 2:
        raise UnreadableImageError(f"is not a 2D mask (shape {mask.shape})")
    values = np.unique(mask)
    if not any(set(values.tolist()) <= {0, high} for high in (1, 255, 65535)):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise UnreadableImageError(f"is not a binary mask: it holds {len(values)} values ({shown}); a mask holds "
                                   "0 (background) and 1, 255 or 65535 (salt, ice, ...)")
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


def read_patch(path: str | os.PathLike) -> np.ndarray:
    """A one-channel seismic patch as float32 amplitudes (H, W, 1), read quietly (a data set has
    thousands): a grey 8/16-bit PNG or TIFF, ``.npy``, or a SEG-Y file whose traces are its
    columns. NaN and infinite samples are set to 0.

    Raises:
        UnreadableImageError: unreadable, not two-dimensional, or a colour image (its channels
            differ: a photograph or a rendered figure among amplitude patches).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SEGY_SUFFIXES:
        amplitude = read_segy(path)[0]
    elif suffix == ".npy":
        amplitude = load_npy(path)
        amplitude = amplitude[..., 0] if amplitude.ndim == 3 and amplitude.shape[-1] == 1 else amplitude
    else:
        amplitude = _grey_channel(decode_file(path, cv2.IMREAD_UNCHANGED))
    if amplitude.ndim != 2 or min(amplitude.shape) < 1:
        raise UnreadableImageError(f"is not a 2D seismic patch (shape {amplitude.shape})")
    amplitude = amplitude.astype(np.float32)
    return np.where(np.isfinite(amplitude), amplitude, 0)[..., None]


def _grey_channel(image: np.ndarray) -> np.ndarray:
    """The one channel of a grey image, also when it is stored as equal RGB(A) channels."""
    if image.ndim == 2:
        return image
    colour = image[..., :3]
    if (colour != colour[..., :1]).any():
        raise UnreadableImageError(f"is a colour image ({image.shape[-1]} channels that differ) among one-channel "
                                   "seismic patches; convert it to grey amplitudes or remove it")
    return image[..., 0]


def read_section_manifest(path: str | os.PathLike, bad: list[dict] | None = None) -> pd.DataFrame:
    """The sections to read, with absolute ``section`` and ``mask`` paths (``mask`` may be empty):
    a CSV manifest ``section,mask[,split][,inline][,crossline]``, or a folder in the TGS salt
    layout (``images/`` and ``masks/`` holding files of the same names), whose images without a
    mask go to ``bad``.

    Raises:
        DataError: no such file or folder, no ``section`` column, or a folder of neither layout.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return read_section_folder(path, bad if bad is not None else [])
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: segmentation data are a CSV manifest with columns "
                        "section,mask[,split][,inline][,crossline] (paths relative to the manifest's folder), a folder "
                        "holding images/ and masks/ (the TGS salt layout), or synthetic:seismic_salt.")
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


def read_section_folder(root: Path, bad: list[dict]) -> pd.DataFrame:
    """The TGS salt layout: ``root/images/NAME`` with its mask ``root/masks/NAME``. An image
    without its mask is listed in ``bad`` and left out. The layout has no split column, so the
    sections are split by the run's seed.

    Raises:
        DataError: ``root`` lacks ``images/`` or ``masks/``, or no image has its mask.
    """
    images, masks = root / "images", root / "masks"
    if not (images.is_dir() and masks.is_dir()):
        raise DataError(f"{root} is a folder without images/ and masks/; segmentation data are a CSV manifest "
                        "section,mask[,split] or a folder holding images/ and masks/ with files of the same names.")
    files = sorted(p for p in images.iterdir() if p.is_file() and not p.name.startswith("."))
    paired = [p for p in files if (masks / p.name).is_file()]
    bad += [{"path": str(p), "reason": f"has no mask {masks / p.name}"} for p in files if p not in paired]
    if not paired:
        raise DataError(f"None of the {len(files)} file(s) in {images} has a mask of the same name in {masks}.")
    if len(paired) < len(files):
        print(f"note: {len(files) - len(paired)} of {len(files)} images in {images} have no mask in {masks} and are "
              "left out (listed in bad_files.csv)", flush=True)
    return pd.DataFrame({"section": [str(p) for p in paired], "mask": [str(masks / p.name) for p in paired]})


def read_labelled_section(section: str | os.PathLike, mask: str | os.PathLike, inline: int | None = None,
                          crossline: int | None = None,
                          headers: SegyHeaders = SegyHeaders()) -> tuple[np.ndarray, np.ndarray]:
    """A section (:func:`read_section`) and its salt mask, checked to be of the same size.

    Raises:
        UnreadableImageError: either file cannot be used, or the sizes differ (both named).
    """
    amplitude = read_section(section, inline, crossline, headers)
    try:
        salt = read_binary_mask(mask)
    except UnreadableImageError as err:
        raise UnreadableImageError(f"its mask {mask} {err}") from err
    if salt.shape != amplitude.shape:
        raise UnreadableImageError(f"the section is {amplitude.shape[0]} x {amplitude.shape[1]} (samples x traces) "
                                   f"but its mask {mask} is {salt.shape[0]} x {salt.shape[1]}")
    return amplitude, salt


def finite_samples(amplitude: np.ndarray, name: str) -> np.ndarray:
    """NaN and infinite samples set to 0 (a dead sample, not a value), with their count on
    stdout: one infinity turns a z-score, and then the loss, into NaN."""
    bad = ~np.isfinite(amplitude)
    if not bad.any():
        return amplitude
    infinite = int(np.isinf(amplitude).sum())
    kinds = {"NaN": int(bad.sum()) - infinite, "infinite": infinite}
    counts = " and ".join(f"{count} {kind}" for kind, count in kinds.items() if count)
    print(f"note: {name}: {counts} samples set to 0", flush=True)
    return np.where(bad, 0, amplitude).astype(np.float32)


def load_labelled_sections(table: pd.DataFrame, bad: list[dict],
                           headers: SegyHeaders = SegyHeaders()) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Reads every section that has a mask; each one that cannot be used goes to ``bad`` with
    the reason (unreadable, mask unreadable or not binary, sizes differing) and is skipped.
    NaN and infinite samples are set to 0 and counted on stdout. Returns ``(row, amplitude, salt)`` with
    ``row`` the manifest's row as a named tuple."""
    labelled = table[table["mask"].notna()].itertuples(index=False)
    return [(row, finite_samples(amplitude, row.section), salt)
            for row, (amplitude, salt) in read_each(labelled, bad, lambda r: r.section,
                                                    lambda r: read_labelled_section(r.section, r.mask, _number(r, "inline"),
                                                                                    _number(r, "crossline"), headers))]


def section_image(amplitude: np.ndarray) -> np.ndarray:
    """A section as an RGB uint8 picture in grey levels scaled from the data's own centre (the
    median) and spread (the 99th percentile of the distance from it), so raw SEG-Y amplitudes,
    z-scored arrays and 8-bit PNGs (centred near 128) all show their reflectors."""
    centre = float(np.median(amplitude))
    spread = float(np.percentile(np.abs(amplitude - centre), 99)) or float(np.abs(amplitude - centre).max()) or 1.0
    clipped = np.clip((amplitude - centre) / spread, -1, 1)
    return np.repeat(np.round((clipped + 1) * 127.5).astype(np.uint8)[..., None], 3, axis=-1)


def _number(row, column: str) -> int | None:
    """The manifest row's ``inline`` or ``crossline``, when it has one."""
    value = getattr(row, column, None)
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
