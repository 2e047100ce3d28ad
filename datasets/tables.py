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
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from datasets.images import IMAGE_EXTENSIONS, UnreadableImageError, read_image

BOX_COLUMNS = ["xmin", "ymin", "xmax", "ymax"]
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data problem the user must fix before training; the message says what and where."""


def load_table(source: str | os.PathLike) -> pd.DataFrame:
    """Loads a class-folder tree (``root/<class>/<image>``) or a CSV manifest."""
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
    class is fine.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"Image path does not exist: {source}")
    if source.is_file() and source.suffix.lower() == ".csv":
        return _one_row_per_image(read_manifest(source, require_label=False))
    if source.is_file():
        return _one_row_per_image(pd.DataFrame({"path": [str(source.resolve())], "label": [None]}))
    flat = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if flat:
        return _one_row_per_image(pd.DataFrame({"path": [str(p.resolve()) for p in flat], "label": None}))
    return _one_row_per_image(scan_class_folders(source))


def scan_class_folders(root: Path) -> pd.DataFrame:
    """Lists ``root/<class>/*.{jpg,jpeg,png,tif,tiff,bmp}``, as Keras' image_dataset_from_directory."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not class_dirs:
        raise DataError(f"No class folders in {root}: expected {root}/<class>/<image> "
                        f"with images of type {', '.join(IMAGE_EXTENSIONS)}.")
    rows = []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"Class folder {class_dir} holds no images "
                            f"({', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder.")
        rows += [{"path": str(f.resolve()), "label": class_dir.name} for f in files]
    return pd.DataFrame(rows)


def read_manifest(csv_path: Path, require_label: bool = True) -> pd.DataFrame:
    """Reads a CSV manifest with columns path, label and optionally split and box columns.

    Relative paths are taken relative to the manifest's folder.
    """
    table = pd.read_csv(csv_path, dtype={"path": str, "label": str})
    if not require_label and "label" not in table.columns:
        table["label"] = None
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DataError(f"Manifest {csv_path} lacks the column(s) {sorted(missing)}; "
                        f"it has {list(table.columns)}.")
    if table.empty:
        raise DataError(f"Manifest {csv_path} lists no images.")
    table["path"] = [str((csv_path.parent / p).resolve()) for p in table["path"]]
    if "split" in table.columns:
        unknown = sorted(set(table["split"].dropna()) - set(SPLITS))
        if unknown:
            raise DataError(f"Manifest {csv_path}: unknown split value(s) {unknown}; use {SPLITS}.")
    return table


def _one_row_per_image(table: pd.DataFrame) -> pd.DataFrame:
    for column in BOX_COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    area = (table["xmax"] - table["xmin"]) * (table["ymax"] - table["ymin"])
    table = table.assign(_area=area.fillna(-1.0)).sort_values("_area", ascending=False, kind="stable")
    return table.drop_duplicates("path").drop(columns="_area").sort_index().reset_index(drop=True)


def _checked_labels(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    classes = sorted(table["label"].unique())
    if len(classes) < 2:
        raise DataError(f"{source} holds a single class ({classes[0]!r}): a classifier needs "
                        "at least two classes.")
    return table


@dataclass
class ImageCheck:
    """The result of decoding every image once: the usable table and the files left out."""

    table: pd.DataFrame
    bad_files: pd.DataFrame  # columns path, reason


def check_images(table: pd.DataFrame, min_size: int) -> ImageCheck:
    """Decodes each image once; unusable files are set aside, too-small images are an error.

    Adds the columns ``height`` and ``width`` (source pixels).

    Raises:
        DataError: no usable image is left, or an image is smaller than ``min_size`` pixels.
    """
    sizes, bad = [], []
    for path in table["path"]:
        try:
            sizes.append(read_image(path).shape[:2])
        except UnreadableImageError as err:
            sizes.append((0, 0))
            bad.append({"path": path, "reason": str(err)})
    checked = table.assign(height=[s[0] for s in sizes], width=[s[1] for s in sizes])
    bad_files = pd.DataFrame(bad, columns=["path", "reason"])
    good = checked[~checked["path"].isin(bad_files["path"])].reset_index(drop=True)
    if good.empty:
        raise DataError(f"None of the {len(table)} images could be read; see the reasons: "
                        + "; ".join(f"{b['path']}: {b['reason']}" for b in bad[:3]))
    _raise_if_too_small(good, min_size)
    return ImageCheck(good, bad_files)


def _raise_if_too_small(table: pd.DataFrame, min_size: int) -> None:
    small = table[(table["height"] < min_size) | (table["width"] < min_size)]
    if small.empty:
        return
    examples = ", ".join(f"{r.path} ({r.width}x{r.height})" for r in small.head(3).itertuples())
    raise DataError(f"{len(small)} image(s) are smaller than the model's minimum input of "
                    f"{min_size}x{min_size} px, e.g. {examples}. Remove them, or choose a "
                    "model with a smaller minimum input.")


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
    train, rest = train_test_split(index, train_size=train_fraction, random_state=seed,
                                   stratify=table["label"])
    val, test = train_test_split(rest, test_size=test_fraction / (val_fraction + test_fraction),
                                 random_state=seed, stratify=table.loc[rest, "label"])
    split = pd.Series("train", index=table.index)
    split[val], split[test] = "val", "test"
    return table.assign(split=split)


def write_split(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes ``split.csv`` (path, label, split, and box columns when known): a valid manifest."""
    columns = ["path", "label", "split"] + [c for c in BOX_COLUMNS if table[c].notna().any()]
    table[columns].to_csv(path, index=False)


def write_bad_files(bad_files: pd.DataFrame, path: str | os.PathLike) -> str:
    """Writes ``bad_files.csv`` and returns the one-line summary for stdout."""
    bad_files.to_csv(path, index=False)
    if bad_files.empty:
        return "All images decoded."
    return f"Skipped {len(bad_files)} unreadable image(s); see {path}"
