"""``--task detect``: train the sigma-clast detector and evaluate it.

The data become boxes in memory (one split per image, never per box), training flips images
and boxes with the chirality-aware :class:`datasets.detection.ChiralBoxFlip`, the model with
the lowest validation loss is kept, and every split is scored with pycocotools. The run
folder gets ``metrics.json`` (``map50``, ``map50_95`` of the test split, and each split's
scores), ``detections_<split>.png`` (truth in green, detections coloured by class) and the
same pictures in TensorBoard, next to each epoch's validation mAP, and ``export/``, a SavedModel
that returns decoded boxes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.augment import mirror_permutation
from datasets.detection import (BoxArrays, ImageBoxes, check_boxes_inside, detection_dataset, load_box_arrays,
                                load_detection_table)
from datasets.tables import SPLITS, DataError, check_images, stratified_split, write_bad_files
from explain.overlay import draw_boxes
from models import MODELS
from models.detector import detect
from training import summaries as tb
from training.tasks.detect.metrics import coco_map
from training.export import export_detector_atomic
from training.config import TaskOptions, TrainConfig, option
from training.tasks import Task, chiral_pairs, register_task

SYNTHETIC_CLASS = "sigma_clast"
TRUTH_COLOUR = (0, 200, 0)
CLASS_COLOURS = [(230, 60, 40), (40, 110, 240), (240, 180, 0), (180, 60, 220), (0, 190, 190)]
SHOW_SCORE = 0.3  # pictures show detections above this score; mAP uses every detection


@dataclass
class DetectionData:
    """The splits in memory, the box classes and the label pairs a mirror swaps."""

    splits: dict[str, BoxArrays]
    class_names: list[str]
    mirror_pairs: list[tuple[str, str]]

    def dataset(self, split: str, config: TrainConfig, training: bool = False, replicas: int = 1) -> tf.data.Dataset:
        """Batches of one split; detection trains on one device, so ``replicas`` is always 1."""
        mirror = mirror_permutation(self.class_names, self.mirror_pairs) if config.augment and training else None
        return detection_dataset(self.splits[split], config.batch_size, training, mirror, config.seed)


def prepare_detection_data(config: TrainConfig, source: Path, run_dir: Path) -> DetectionData:
    """Reads the boxes, sets unreadable images aside (bad_files.csv), splits by image
    (split.csv) and decodes every split at ``config.image_size``.

    Raises:
        DataError: no boxes at all, a box beyond its image, or an empty split.
    """
    table, class_names = load_detection_table(source)
    if config.options.detect_classes == "one":
        name = SYNTHETIC_CLASS if config.data.startswith("synthetic:") else (
            class_names[0] if len(class_names) == 1 else "object")
        table = table.assign(box_label=table["box_label"].where(table["box_label"].isna(), name))
        class_names = [name]
    if not class_names:
        raise DataError(f"{source} holds no box; a detector needs labelled objects.")
    images = table.drop_duplicates("path")[["path"]]
    checked = check_images(images, MODELS[config.model].min_input_size)
    print(write_bad_files(checked.bad_files, run_dir / "bad_files.csv"), flush=True)
    table = table.merge(checked.table[["path", "height", "width"]], on="path")
    check_boxes_inside(table)
    table = split_by_image(table, config)
    table.drop(columns=["height", "width"]).to_csv(run_dir / "split.csv", index=False)
    pairs = chiral_pairs(class_names, config.options.mirror_pairs)
    splits = {s: load_box_arrays(table[table["split"] == s], class_names, config.image_size) for s in SPLITS}
    counts = {s: f"{len(a.paths)} images/{int((a.classes >= 0).sum())} boxes" for s, a in splits.items()}
    print(f"{table['path'].nunique()} images, {int(table['xmin'].notna().sum())} boxes, classes {class_names}; "
          f"split {counts}", flush=True)
    return DetectionData(splits, class_names, pairs)


def split_by_image(table: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """Adds a ``split`` column so that all boxes of an image share one split.

    A manifest's own split column wins. Otherwise images are stratified by their first box
    label (images without boxes form their own stratum; strata under 3 images join the
    largest), seeded.

    Raises:
        DataError: a split ends up without images.
    """
    if "split" in table.columns and table["split"].notna().all():
        split = table.groupby("path", sort=False)["split"].first()
    else:
        images = table.groupby("path", sort=False)["box_label"].first().fillna("(no objects)")
        counts = images.value_counts()
        strata = images.where(images.map(counts) >= 3, counts.idxmax())
        split = stratified_split(pd.DataFrame({"path": images.index, "label": strata.to_numpy()}),
                                 config.split_fractions(), config.seed).set_index("path")["split"]
    missing = [s for s in SPLITS if not (split == s).any()]
    if missing:
        raise DataError(f"The {'/'.join(missing)} split(s) hold no image; add images or fix the split column.")
    return table.drop(columns="split", errors="ignore").assign(split=table["path"].map(split))


def detection_picture(arrays: BoxArrays, detections: list[ImageBoxes], class_names: list[str],
                      count: int = 8, scale: int = 3) -> np.ndarray:
    """A grid of the first ``count`` images: truth boxes green, detections (score >= 0.3) in
    their class colour with class and score."""
    tiles = []
    for image, truth, found in zip(arrays.images[:count], arrays.truth()[:count], detections[:count]):
        keep = found.scores >= SHOW_SCORE
        boxes = [*truth.boxes, *found.boxes[keep]]
        captions = [""] * len(truth.boxes) + [f"{class_names[c]} {s:.2f}" for c, s in
                                               zip(found.classes[keep], found.scores[keep])]
        colours = [TRUTH_COLOUR] * len(truth.boxes) + [CLASS_COLOURS[c % len(CLASS_COLOURS)] for c in found.classes[keep]]
        tiles.append(draw_boxes(image, boxes, captions, colours, scale))
    columns = min(4, len(tiles))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


class ValidationDetections(tb.SummaryCallback):
    """Every ``freq`` epochs: the validation mAP, added to the epoch's logs as ``val_map50`` and
    ``val_map50_95`` (so :class:`training.summaries.EpochScalars`, placed after it, writes them),
    and a picture of the fixed first validation images."""

    def __init__(self, log_dir, arrays: BoxArrays, class_names: list[str], freq: int = 1, count: int = 8):
        super().__init__(log_dir)
        self.arrays, self.class_names, self.freq, self.count = arrays, class_names, freq, count

    def on_epoch_end(self, epoch, logs=None):
        if not self.active or self.freq < 1 or epoch % self.freq:
            return
        detections = detect(self.model, self.arrays.images)
        scores = coco_map(self.arrays.truth(), detections, self.class_names)
        picture = detection_picture(self.arrays, detections, self.class_names, self.count)
        with self.writer("validation").as_default(step=epoch):
            tf.summary.image("detections", picture[None], description="Truth green; detections >= 0.3 by class.")
        if logs is not None:
            logs.update(val_map50=scores["map50"], val_map50_95=scores["map50_95"])


@dataclass
class DetectOptions(TaskOptions):
    """``--task detect``'s own options."""

    detect_classes: str = option("one", "one (every box is one class, e.g. sigma_clast) or labels (the box labels, "
                                        "e.g. cw/ccw: the detector predicts shear sense too)", choices=("one", "labels"))
    mirror_pairs: str = option("auto", "class pairs a mirror flip swaps, a:b,c:d; auto finds cw:ccw and "
                                       "dextral:sinistral; none")


class DetectTask(Task):
    name = "detect"
    description = "find objects (boxes) with the RetinaNet detector; data are YOLO folders or box manifests"
    defaults = {"model": "detector", "image_size": 128, "batch_size": 8, "lr": 1e-3, "epochs": 12}
    strategies = ("auto", "default")  # keras-hub's box encoding and NMS run on one device here
    speed_switches = False
    synthetic_options = {"sigma_clasts": {"max_clasts": 3}}
    options = DetectOptions

    def prepare_data(self, config: TrainConfig, run_dir: Path) -> DetectionData:
        return prepare_detection_data(config, self.resolve_source(config), run_dir)

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                jit: bool) -> None:
        """keras-hub's RetinaNet brings its own focal and box losses."""
        model.compile(optimizer=optimizer)

    def epoch_metrics(self, config: TrainConfig, run_dir: Path, data: DetectionData) -> list:
        if not config.tb_gradcam_freq:
            return []
        return [ValidationDetections(run_dir, data.splits["val"], data.class_names, config.tb_gradcam_freq,
                                     config.tb_gradcam_images)]

    def evaluate(self, model: keras.Model, config: TrainConfig, data: DetectionData, run_dir: Path) -> dict:
        """Scores every split with pycocotools; writes metrics.json, the pictures and the test
        picture to TensorBoard."""
        metrics = {"class_names": data.class_names}
        for split, arrays in data.splits.items():
            detections = detect(model, arrays.images)
            scores = coco_map(arrays.truth(), detections, data.class_names)
            (run_dir / f"coco_{split}.txt").write_text(scores.pop("summary"))
            metrics[split] = {**scores, "images": len(arrays.paths), "boxes": int((arrays.classes >= 0).sum())}
            picture = detection_picture(arrays, detections, data.class_names)
            keras.utils.save_img(run_dir / f"detections_{split}.png", picture, scale=False)
            if split == "test" and tb.is_chief():
                with tb.writer_for(run_dir / "validation").as_default(step=0):
                    tf.summary.image("detections_test", picture[None], description="Final model on the test split.")
        metrics.update(map50=metrics["test"]["map50"], map50_95=metrics["test"]["map50_95"])
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def final_scalars(self, metrics: dict) -> dict[str, float]:
        return {f"{split}_{key}": metrics[split][key] for split in SPLITS for key in ("map50", "map50_95")}

    def export(self, model: keras.Model, config: TrainConfig, path: Path) -> None:
        export_detector_atomic(model, path, config.image_size)

    def export_note(self) -> str:
        return "serving_default: one image, decoded boxes"

    def headline(self, metrics: dict) -> str:
        return f"Test mAP@0.5 {metrics['map50']:.3f}, mAP@[.5:.95] {metrics['map50_95']:.3f}."

    def report_lines(self, run_dir: Path) -> list[tuple[str, str]]:
        return [("metrics", f"{run_dir / 'metrics.json'} (pycocotools; COCO tables in coco_<split>.txt)"),
                ("example detections", f"{run_dir}/detections_{{train,val,test}}.png")]


register_task(DetectTask())
