"""Detection labels as one table, one row per object box in source pixels, and box-aware flips.

Two layouts are read: YOLO text labels (``images/`` and ``labels/`` folders with one ``.txt``
per image, lines ``class cx cy w h`` normalised to [0, 1], class names in ``classes.txt``),
which is what detection users already have, and a CSV manifest with one row per box
(``path, box_label, xmin, ymin, xmax, ymax``), which the synthetic sigma-clast generator
writes. An image without objects keeps one row with an empty box, so it is listed, never
dropped silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from datasets.images import IMAGE_EXTENSIONS, UnreadableImageError, read_image
from datasets.tables import BOX_COLUMNS, DataError

DETECTION_COLUMNS = ["path", "box_label", *BOX_COLUMNS]


def parse_yolo_labels(label_path: str | os.PathLike, class_names: list[str], width: int,
                      height: int) -> list[dict]:
    """The boxes of one YOLO label file, in the pixels of a ``width`` x ``height`` image.

    Blank lines are skipped; an empty file means an image without objects.

    Raises:
        DataError: a line that is not ``class cx cy w h`` with a known class index and
            coordinates in [0, 1]; the message names the file and the line number.
    """
    boxes = []
    for number, line in enumerate(Path(label_path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            index, cx, cy, w, h = int(fields[0]), *(float(f) for f in fields[1:])
            if len(fields) != 5 or not 0 <= index < len(class_names):
                raise ValueError
            if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{label_path}, line {number}: expected 'class cx cy w h' with a class index below "
                            f"{len(class_names)} and coordinates in [0, 1] (normalised YOLO format); got "
                            f"{line.strip()!r}.") from None
        boxes.append({"box_label": class_names[index],
                      "xmin": max(0.0, (cx - w / 2) * width), "ymin": max(0.0, (cy - h / 2) * height),
                      "xmax": min(float(width), (cx + w / 2) * width), "ymax": min(float(height), (cy + h / 2) * height)})
    return boxes


def read_class_names(root: Path) -> list[str]:
    """Class names of a YOLO data set, one per line of ``classes.txt`` (index = line)."""
    names_file = root / "classes.txt"
    if not names_file.is_file():
        raise DataError(f"{root} has no classes.txt: write the class names one per line, in the order of "
                        "the YOLO class indices.")
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"{names_file} lists no class name.")
    return names


def read_yolo_dataset(root: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Reads ``root/images/*`` with ``root/labels/<stem>.txt``; returns the box table and the classes.

    An image without a label file is an image without objects, as in YOLO's own tools.
    """
    root = Path(root)
    class_names = read_class_names(root)
    images = sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"No images under {root / 'images'} ({', '.join(IMAGE_EXTENSIONS)}).")
    rows = []
    for image_path in images:
        label_path = root / "labels" / image_path.relative_to(root / "images").with_suffix(".txt")
        try:
            height, width = read_image(image_path).shape[:2]
        except UnreadableImageError as err:
            raise DataError(f"{image_path}: {err}.") from err
        boxes = parse_yolo_labels(label_path, class_names, width, height) if label_path.is_file() else []
        rows += [{"path": str(image_path.resolve()), **box} for box in boxes] or [{"path": str(image_path.resolve())}]
    return pd.DataFrame(rows).reindex(columns=DETECTION_COLUMNS), class_names


def read_box_manifest(csv_path: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Reads a CSV with one row per box (``path, box_label, xmin, ymin, xmax, ymax``; a row with
    empty box columns is an image without objects); returns the table and the sorted classes."""
    csv_path = Path(csv_path)
    table = pd.read_csv(csv_path, dtype={"path": str, "box_label": str})
    missing = set(DETECTION_COLUMNS) - set(table.columns)
    if missing:
        raise DataError(f"Box manifest {csv_path} lacks the column(s) {sorted(missing)}; it has "
                        f"{list(table.columns)}.")
    table["path"] = [str((csv_path.parent / p).resolve()) for p in table["path"]]
    boxes = table[BOX_COLUMNS]
    bad = table[boxes.notna().all(axis=1) & ((boxes["xmax"] <= boxes["xmin"]) | (boxes["ymax"] <= boxes["ymin"]))]
    if not bad.empty:
        raise DataError(f"Box manifest {csv_path}, row {bad.index[0] + 2}: xmax must exceed xmin and ymax ymin.")
    return table[DETECTION_COLUMNS], sorted(table["box_label"].dropna().unique())


def flip_with_labels(images, boxes, classes, mirror: np.ndarray, seed: int | None = None):
    """Random horizontal flips of images and their ``xyxy`` pixel boxes, chirality-aware.

    Keras' box-aware ``RandomFlip`` draws one flip per image and moves the boxes with it; a
    flipped image's class indices then go through ``mirror`` (see
    ``datasets.augment.mirror_permutation``), so a clockwise clast becomes counter-clockwise.
    Padding entries (class -1) are left alone.

    Returns:
        ``(images, boxes, classes)`` as tensors.
    """
    flip = keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy", seed=seed)
    data = {"images": images, "bounding_boxes": {"boxes": boxes, "labels": classes}}
    transformation = flip.get_random_transformation(data, training=True)
    flipped_images = flip.transform_images(images, transformation, training=True)
    flipped_boxes = flip.transform_bounding_boxes(dict(data["bounding_boxes"]), transformation, training=True)
    flips = keras.ops.reshape(transformation["flips"], (-1, 1))
    mirrored = keras.ops.take(keras.ops.convert_to_tensor(mirror, "int32"), keras.ops.maximum(classes, 0))
    swapped = keras.ops.where(flips & (classes >= 0), mirrored, classes)
    return flipped_images, flipped_boxes["boxes"], swapped
