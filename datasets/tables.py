"""Image tables: class folders or CSV manifests to one pandas DataFrame, checked and split.

A table has one row per image and the columns ``path`` (absolute), ``label``, optionally
``split`` (train/val/test), the box of the image's distinguishing object ``xmin, ymin, xmax,
ymax`` in source pixels (NaN when unknown), and any further manifest columns (mask paths).

A manifest may list an image on several rows, one per box (the usual detection CSV layout);
:func:`load_table` keeps one row per image, with its largest box.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from datasets.images import IMAGE_EXTENSIONS, UnreadableImageError, read_each, read_image

AMPLITUDE_EXTENSIONS = (".npy", ".sgy", ".segy")  # seismic patches besides grey images (datasets.seismic.read_patch)
BOX_COLUMNS = ["xmin", "ymin", "xmax", "ymax"]
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data problem the user must fix before training; the message says what and where."""


def load_table(source: str | os.PathLike) -> pd.DataFrame:
    """Loads a class-folder tree (``root/<class>/<image>``) or a CSV manifest.

    Rows that cannot be used (a file type OpenCV does not read, a manifest row without a label
    or with an impossible box) are kept with their reason in the ``problem`` column;
    :func:`check_images` lists them in ``bad_files.csv``.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"Data path does not exist: {source}. Pass a folder of class "
                        "sub-folders, a CSV manifest, or synthetic:NAME.")
    if source.is_dir():
        return _checked_labels(_one_row_per_image(scan_class_folders(source)), source)
    if source.suffix.lower() == ".csv":
        return _checked_labels(_one_row_per_image(read_manifest(source)), source)
    raise DataError(f"Data path {source} is neither a folder nor a .csv manifest.")


def list_images(source: str | os.PathLike) -> pd.DataFrame:
    """Lists images to explain or predict: class folders, a flat folder or a manifest.

    Unlike :func:`load_table`, labels are optional (``label`` is None when unknown) and one
    class is fine. Read the rows with :func:`read_listed`, which refuses the unusable ones.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"Image path does not exist: {source}")
    if source.is_file() and source.suffix.lower() == ".csv":
        return _one_row_per_image(read_manifest(source, require_label=False))
    if source.is_file():
        return _one_row_per_image(pd.DataFrame({"path": [os.path.abspath(source)], "label": [None]}))
    flat = _listed_files(p for p in source.iterdir() if not p.is_dir())
    if len(flat) and flat["problem"].isna().any():
        return _one_row_per_image(flat.assign(label=None))
    return _one_row_per_image(scan_class_folders(source))


def scan_class_folders(root: Path) -> pd.DataFrame:
    """Lists ``root/<class>/**`` as Keras' image_dataset_from_directory does; files of a type
    OpenCV does not read are listed with that problem, hidden files are ignored."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not class_dirs:
        raise DataError(f"No class folders in {root}: expected {root}/<class>/<image> "
                        f"with images of type {', '.join(IMAGE_EXTENSIONS)}.")
    tables = []
    for class_dir in class_dirs:
        files = _listed_files(p for p in class_dir.rglob("*") if not p.is_dir())
        if not files["problem"].isna().any():
            raise DataError(f"Class folder {class_dir} holds no images "
                            f"({', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder.")
        tables.append(files.assign(label=class_dir.name))
    return pd.concat(tables, ignore_index=True)


def _listed_files(paths: Iterable[Path]) -> pd.DataFrame:
    """Absolute paths (links are not followed: a link loop is reported when read) of the
    non-hidden files, each with the problem of an unsupported type or NaN."""
    files = sorted(p for p in paths if not p.name.startswith("."))
    problems = [np.nan if p.suffix.lower() in IMAGE_EXTENSIONS + AMPLITUDE_EXTENSIONS else
                f"unsupported file type {p.suffix or '(no extension)'!r}; images are {', '.join(IMAGE_EXTENSIONS)}, "
                f"seismic patches also {', '.join(AMPLITUDE_EXTENSIONS)}" for p in files]
    return pd.DataFrame({"path": [os.path.abspath(p) for p in files], "problem": pd.Series(problems, dtype=object)})


def read_manifest(csv_path: Path, require_label: bool = True) -> pd.DataFrame:
    """Reads a CSV manifest with columns path, label and optionally split and box columns.

    Relative paths are taken relative to the manifest's folder. A row without a label (when
    ``require_label``) or with an impossible box gets its reason in the ``problem`` column,
    naming its line of the file.
    """
    try:
        table = pd.read_csv(csv_path, dtype={"path": str, "label": str}, encoding_errors="surrogateescape")
    except pd.errors.EmptyDataError as err:
        raise DataError(f"Manifest {csv_path} is empty: write a header line path,label[,split] and one row "
                        "per image.") from err
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"Manifest {csv_path} is not a readable CSV file ({str(err).strip()}): write a header "
                        "line path,label[,split] and one row per image.") from err
    if not require_label and "label" not in table.columns:
        table["label"] = None
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DataError(f"Manifest {csv_path} lacks the column(s) {sorted(missing)}; "
                        f"it has {list(table.columns)}.")
    if table.empty:
        raise DataError(f"Manifest {csv_path} lists no images.")
    if table["path"].isna().any():
        lines = (table.index[table["path"].isna()] + 2).tolist()
        raise DataError(f"Manifest {csv_path}: line(s) {lines[:10]} have no path.")
    table["path"] = [os.path.abspath(csv_path.parent / p) for p in table["path"]]
    if "split" in table.columns:
        unknown = sorted(set(table["split"].dropna()) - set(SPLITS))
        if unknown:
            raise DataError(f"Manifest {csv_path}: unknown split value(s) {unknown}; use {SPLITS}.")
    table["line"] = [f"{csv_path.name} line {i + 2}" for i in table.index]
    return table.assign(problem=_row_problems(table, require_label))


def _row_problems(table: pd.DataFrame, require_label: bool) -> pd.Series:
    """Why each manifest row cannot be used (NaN when it can): no label, or a box that is
    incomplete, empty or inverted, or starts left of or above the image."""
    problems = pd.Series(np.nan, index=table.index, dtype=object)
    if require_label:
        no_label = table["label"].isna() | (table["label"].astype(str).str.strip() == "")
        problems[no_label] = "no label"
    present = [c for c in BOX_COLUMNS if c in table.columns]
    if present:
        boxes = table.reindex(columns=BOX_COLUMNS).apply(pd.to_numeric, errors="coerce")
        given = boxes.notna().any(axis=1)
        bad = given & (boxes.isna().any(axis=1) | (boxes["xmax"] <= boxes["xmin"])
                       | (boxes["ymax"] <= boxes["ymin"]) | (boxes[["xmin", "ymin"]] < 0).any(axis=1))
        for index in table.index[bad & problems.isna()]:
            problems[index] = (f"box {tuple(table.loc[index, present].tolist())} is incomplete, empty, inverted "
                               "or starts outside the image; box columns are xmin < xmax, ymin < ymax in pixels")
    return (table["line"] + ": " + problems).where(problems.notna())


def _one_row_per_image(table: pd.DataFrame) -> pd.DataFrame:
    """One row per path: its largest usable box (a usable row before a problem row). An image
    whose rows disagree on its label is a problem, never resolved by picking one row."""
    for column in BOX_COLUMNS + ["problem"]:
        if column not in table.columns:
            table[column] = np.nan
    table = table.assign(problem=table["problem"].where(table["problem"].notna(), _label_conflicts(table)))
    area = (table["xmax"] - table["xmin"]) * (table["ymax"] - table["ymin"])
    table = table.assign(_rank=area.fillna(-1.0).where(table["problem"].isna(), -np.inf))
    table = table.sort_values("_rank", ascending=False, kind="stable")
    return table.drop_duplicates("path").drop(columns="_rank").sort_index().reset_index(drop=True)


def _label_conflicts(table: pd.DataFrame) -> pd.Series:
    """For every row of an image listed on several rows (the detection layout: a row per box)
    whose labels differ, or which are labelled on some rows and not on others: the lines and
    labels, and what to write instead (NaN for every other row)."""
    if "line" not in table.columns or table["label"].isna().all():
        return pd.Series(np.nan, index=table.index, dtype=object)
    label = table["label"].astype(str).str.strip().where(table["label"].notna(), "")
    problems = pd.Series(np.nan, index=table.index, dtype=object)
    for _, rows in label.groupby(table["path"], sort=False):
        if len(rows) < 2 or rows.nunique() < 2:
            continue
        manifest = table.at[rows.index[0], "line"].rsplit(" line ", 1)[0]
        lines = ", ".join(table.at[i, "line"].rsplit(" ", 1)[-1] for i in rows.index)
        labels = ", ".join(repr(value) if value else "none" for value in rows)
        problems[rows.index] = (f"{manifest} lines {lines} give this image the labels {labels}: a classifier takes "
                                "one label per image; give each of its rows the same label")
    return problems


def _checked_labels(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    classes = sorted(table.loc[table["problem"].isna(), "label"].unique())
    if len(classes) < 2:
        raise DataError(f"{source} holds {f'a single class ({classes[0]!r})' if classes else 'no labelled image'}: "
                        "a classifier needs at least two classes.")
    return table


def read_listed(row, min_size: int = 1, read: Callable[[str], np.ndarray] = read_image) -> np.ndarray:
    """Reads one listed image (a row of :func:`load_table` or :func:`list_images`) with ``read``:
    RGB uint8 by default, or e.g. seismic amplitudes (``datasets.pipeline.read_source``).

    Raises:
        UnreadableImageError: the row has a problem, the file cannot be decoded, the image is
            smaller than ``min_size`` pixels a side, or its box reaches beyond the image.
    """
    problem = getattr(row, "problem", np.nan)
    if isinstance(problem, str):
        raise UnreadableImageError(problem)
    image = read(row.path)
    height, width = image.shape[:2]
    if min(height, width) < min_size:
        raise UnreadableImageError(f"{width}x{height} px is smaller than this model's minimum of "
                                   f"{min_size}x{min_size} px")
    box = [getattr(row, c, np.nan) for c in BOX_COLUMNS]
    if not np.isnan(box).any() and (box[2] > width or box[3] > height):
        where = getattr(row, "line", np.nan)
        raise UnreadableImageError(f"{where + ': ' if isinstance(where, str) else ''}box {tuple(box)} reaches "
                                   f"beyond the {width}x{height} image; box columns are pixels of the source image")
    return image


@dataclass
class ImageCheck:
    """The result of decoding every image once: the usable table and the files left out."""

    table: pd.DataFrame
    bad_files: pd.DataFrame  # columns path, reason


def check_images(table: pd.DataFrame, min_size: int, read: Callable[[str], np.ndarray] = read_image) -> ImageCheck:
    """Decodes each image once with ``read`` (see :func:`read_listed`); unusable files and images
    smaller than ``min_size`` pixels a side are set aside with their reason.

    Adds the columns ``height`` and ``width`` (source pixels).

    Raises:
        DataError: no usable image is left.
    """
    bad = []
    sizes = {row.Index: image.shape[:2]
             for row, image in read_each(table.itertuples(), bad, read=partial(read_listed, min_size=min_size,
                                                                                 read=read))}
    good = table.loc[list(sizes)].assign(height=[s[0] for s in sizes.values()],
                                         width=[s[1] for s in sizes.values()]).reset_index(drop=True)
    if good.empty:
        raise DataError(f"None of the {len(table)} images can be used; the reasons: "
                        + "; ".join(f"{b['path']}: {b['reason']}" for b in bad[:3]))
    return ImageCheck(good, pd.DataFrame(bad, columns=["path", "reason"]))


def stratified_split(table: pd.DataFrame, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                     seed: int = 0) -> pd.DataFrame:
    """Adds a ``split`` column (train/val/test), stratified by label and seeded.

    A manifest's own ``split`` column is kept when every row has one. The default 6:2:2 is
    the SedNet paper's.
    """
    if "split" in table.columns and table["split"].notna().all():
        return table
    counts = table["label"].value_counts()
    if counts.min() < 3:
        raise DataError(f"Class {counts.idxmin()!r} has only {counts.min()} usable image(s); "
                        "a stratified train/val/test split needs at least 3 per class.")
    train_fraction, val_fraction, test_fraction = (f / sum(fractions) for f in fractions)
    index = table.index.to_numpy()
    try:
        train, rest = train_test_split(index, train_size=train_fraction, random_state=seed,
                                       stratify=table["label"])
        val, test = train_test_split(rest, test_size=test_fraction / (val_fraction + test_fraction),
                                     random_state=seed, stratify=table.loc[rest, "label"])
    except ValueError as err:  # scikit-learn: a part too small to hold every class
        raise DataError(f"{len(table)} images of {len(counts)} classes (the smallest, {counts.idxmin()!r}, has "
                        f"{counts.min()}) cannot be split train/val/test {':'.join(f'{f:g}' for f in fractions)} "
                        f"with every class in each part ({err}). Add images to the small classes, or give the "
                        "manifest a split column.") from err
    split = pd.Series("train", index=table.index)
    split[val], split[test] = "val", "test"
    return table.assign(split=split)


def write_split(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes ``split.csv`` (path, label, split, and box columns when known): a valid manifest."""
    columns = ["path", "label", "split"] + [c for c in BOX_COLUMNS if table[c].notna().any()]
    write_csv(table[columns], path)


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes a table of file names as UTF-8 CSV; a name that is not valid UTF-8 keeps its
    bytes (surrogate escapes), so the CSV reads back to the same file."""
    table.to_csv(path, index=False, errors="surrogateescape")


def write_bad_files(bad: pd.DataFrame | list[dict], path: str | os.PathLike) -> str:
    """Writes ``bad_files.csv`` (path, reason) and returns the one-line summary for stdout."""
    bad_files = pd.DataFrame(bad, columns=["path", "reason"])
    write_csv(bad_files, path)
    if bad_files.empty:
        return "All images decoded."
    unsupported = int(bad_files["reason"].str.startswith("unsupported file type").sum())
    note = f" ({unsupported} of a file type OpenCV does not read)" if unsupported else ""
    return f"Skipped {len(bad_files)} file(s) that cannot be used{note}; each is listed with its reason in {path}"
