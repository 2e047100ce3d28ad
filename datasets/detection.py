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
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.images import IMAGE_EXTENSIONS, UnreadableImageError, read_image, resize
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
    columns = DETECTION_COLUMNS + (["split"] if "split" in table.columns else [])
    return table[columns], sorted(table["box_label"].dropna().unique())


class ChiralBoxFlip:
    """Random horizontal and vertical mirror flips of images and their ``xyxy`` pixel boxes.

    Keras' box-aware ``RandomFlip`` draws each flip per image and moves the boxes with it.
    A mirror changes the sense of shear, so each flip also sends a flipped image's class
    indices through ``mirror`` (see ``datasets.augment.mirror_permutation``): a clockwise
    clast becomes counter-clockwise, and one flipped both ways (a 180-degree turn) keeps its
    label. Padding entries (class -1) are left alone. Build it once, outside ``tf.data.map``
    (its random state is a variable), and call it on batches.
    """

    def __init__(self, mirror: np.ndarray, seed: int | None = None):
        self.mirror = keras.ops.convert_to_tensor(mirror, "int32")
        self.flips = [keras.layers.RandomFlip(mode, bounding_box_format="xyxy",
                                              seed=None if seed is None else seed + offset)
                      for offset, mode in enumerate(("horizontal", "vertical"))]

    def __call__(self, images, boxes, classes):
        """Returns the flipped ``(images, boxes, classes)`` as tensors."""
        for flip in self.flips:
            data = {"images": images, "bounding_boxes": {"boxes": boxes, "labels": classes}}
            transformation = flip.get_random_transformation(data, training=True)
            images = flip.transform_images(images, transformation, training=True)
            boxes = flip.transform_bounding_boxes(dict(data["bounding_boxes"]), transformation, training=True)["boxes"]
            flipped = keras.ops.reshape(transformation["flips"], (-1, 1)) & (classes >= 0)
            classes = keras.ops.where(flipped, keras.ops.take(self.mirror, keras.ops.maximum(classes, 0)), classes)
        return images, boxes, classes


def load_detection_table(source: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """The box table and class names of ``--data`` for detection.

    ``source`` is a YOLO folder (``classes.txt``, ``images/``, ``labels/``), a folder holding
    a ``manifest.csv`` with box columns (what the synthetic generator writes), or a box CSV.

    Raises:
        DataError: the path does not exist or is none of these layouts.
    """
    source = Path(source).expanduser()
    if source.is_dir() and (source / "classes.txt").is_file():
        return read_yolo_dataset(source)
    if source.is_dir() and (source / "manifest.csv").is_file():
        return read_box_manifest(source / "manifest.csv")
    if source.is_file() and source.suffix.lower() == ".csv":
        return read_box_manifest(source)
    what = "does not exist" if not source.exists() else "is neither a YOLO folder nor a box manifest"
    raise DataError(f"Detection data {source} {what}. Pass a folder with classes.txt, images/ and labels/ "
                    "(YOLO text labels), or a CSV with path, box_label, xmin, ymin, xmax, ymax.")


def check_boxes_inside(table: pd.DataFrame) -> None:
    """Raises DataError for a box reaching beyond its image (needs ``width``/``height`` columns):
    usually normalised coordinates or swapped x and y in a manifest."""
    tolerance = 1.0
    outside = table[(table["xmax"] > table["width"] + tolerance) | (table["ymax"] > table["height"] + tolerance)
                    | (table["xmin"] < -tolerance) | (table["ymin"] < -tolerance)]
    if not outside.empty:
        row = outside.iloc[0]
        raise DataError(f"{row['path']}: the box ({row['xmin']:g}, {row['ymin']:g}, {row['xmax']:g}, "
                        f"{row['ymax']:g}) reaches beyond the {row['width']}x{row['height']} image "
                        f"({len(outside)} such box(es) in all). Box columns are pixels of the source image.")


@dataclass
class ImageBoxes:
    """The boxes of one image (``xyxy`` pixels) with class indices and, for detections, scores."""

    boxes: np.ndarray  # (K, 4)
    classes: np.ndarray  # (K,)
    scores: np.ndarray | None = None  # (K,), None for ground truth


@dataclass
class BoxArrays:
    """A detection split in memory: images resized to a square, boxes in its pixels."""

    paths: list[str]
    images: np.ndarray  # uint8 (N, S, S, 3)
    boxes: np.ndarray  # float32 (N, M, 4) xyxy, padding rows 0
    classes: np.ndarray  # int32 (N, M), padding -1

    def truth(self) -> list[ImageBoxes]:
        """Each image's true boxes and classes, padding left out."""
        return [ImageBoxes(boxes[classes >= 0], classes[classes >= 0])
                for boxes, classes in zip(self.boxes, self.classes)]


def load_box_arrays(table: pd.DataFrame, class_names: list[str], size: int) -> BoxArrays:
    """Decodes the images of a box table (one or more rows per path) and resizes them and
    their boxes to ``size`` x ``size``."""
    index = {name: i for i, name in enumerate(class_names)}
    groups = list(table.groupby("path", sort=False))
    most = max(1, max(int(rows["xmin"].notna().sum()) for _, rows in groups))
    images = np.zeros((len(groups), size, size, 3), np.uint8)
    boxes = np.zeros((len(groups), most, 4), np.float32)
    classes = np.full((len(groups), most), -1, np.int32)
    for i, (path, rows) in enumerate(groups):
        image = read_image(path)
        images[i] = resize(image, size)
        rows = rows.dropna(subset=BOX_COLUMNS)
        scale = np.array([image.shape[1], image.shape[0]] * 2, np.float32) / size
        boxes[i, :len(rows)] = rows[BOX_COLUMNS].to_numpy(np.float32) / scale
        classes[i, :len(rows)] = rows["box_label"].map(index).to_numpy(np.int32)
    return BoxArrays([path for path, _ in groups], images, boxes, classes)


def detection_dataset(arrays: BoxArrays, batch_size: int, training: bool = False,
                      mirror: np.ndarray | None = None, seed: int = 0) -> tf.data.Dataset:
    """Batches of ``(images, {"boxes", "labels"})`` as keras-hub detectors take them.

    Training shuffles (seeded, every epoch) and, when ``mirror`` is given, flips with
    :class:`ChiralBoxFlip`.
    """
    dataset = tf.data.Dataset.from_tensor_slices((arrays.images, arrays.boxes, arrays.classes))
    if training:
        dataset = dataset.shuffle(len(arrays.images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(lambda i, b, c: (tf.cast(i, tf.float32), b, c))
    if training and mirror is not None:
        dataset = dataset.map(ChiralBoxFlip(mirror, seed))
    return dataset.map(lambda i, b, c: (i, {"boxes": b, "labels": c})).prefetch(tf.data.AUTOTUNE)
