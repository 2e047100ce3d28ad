"""``python -m training.run --task detect``: train the sigma-clast detector and evaluate it.

The data become boxes in memory (one split per image, never per box), training flips images
and boxes with the chirality-aware :class:`datasets.detection.ChiralBoxFlip`, the model with
the lowest validation loss is kept, and every split is scored with pycocotools. The run
folder gets ``metrics.json`` (``map50``, ``map50_95`` of the test split, and each split's
scores), ``detections_<split>.png`` (truth in green, detections coloured by class) and the
same pictures in TensorBoard, next to each epoch's validation mAP, and ``export/``, a SavedModel
that returns decoded boxes.
"""

from __future__ import annotations

import dataclasses
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
from models import MODELS, build_model
from models.detector import detect
from training import callbacks as tb
from training.config import TrainConfig
from training.data import chiral_pairs
from training.detection_metrics import coco_map
from training.export import export_detector_atomic
from training.trainer import (OPTIMIZERS, BestModelCheckpoint, backup_callback, first_phase_learning_rate,
                              progress_verbosity)

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

    def dataset(self, split: str, config: TrainConfig, training: bool = False) -> tf.data.Dataset:
        mirror = mirror_permutation(self.class_names, self.mirror_pairs) if config.augment and training else None
        return detection_dataset(self.splits[split], config.batch_size, training, mirror, config.seed)


def prepare_detection_data(config: TrainConfig, source: Path, run_dir: Path) -> DetectionData:
    """Reads the boxes, sets unreadable images aside (bad_files.csv), splits by image
    (split.csv) and decodes every split at ``config.image_size``.

    Raises:
        DataError: no boxes at all, a box beyond its image, or an empty split.
    """
    table, class_names = load_detection_table(source)
    if config.detect_classes == "one":
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
    pairs = chiral_pairs(class_names, config)
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
    ``val_map50_95`` (so :class:`training.callbacks.EpochScalars`, placed after it, writes them),
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


def train_detector(config: TrainConfig, data: DetectionData, run_dir: Path, model: keras.Model,
                   backup_dir: Path) -> None:
    """Fits the detector; the best model (lowest validation loss) goes to ``model.keras``."""
    train, val = data.dataset("train", config, training=True), data.dataset("val", config)
    model.compile(optimizer=OPTIMIZERS[config.optimizer](
        learning_rate=first_phase_learning_rate(config, int(train.cardinality()))))
    callbacks = [backup_callback(backup_dir / "phase1"), tb.EpochScalars(run_dir)]
    if config.tb_gradcam_freq:
        callbacks.insert(1, ValidationDetections(run_dir, data.splits["val"], data.class_names, config.tb_gradcam_freq,
                                                 config.tb_gradcam_images))
    if config.tb_hparams:
        callbacks.append(tb.HParams(run_dir, dataclasses.asdict(config), run_dir.name))
    if config.tb_model_summary:
        callbacks.append(tb.ModelSummary(run_dir))
    callbacks += [tb.FlushSummaries(run_dir), BestModelCheckpoint(run_dir / "model.keras", backup_dir / "best.json")]
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=progress_verbosity(),
              shuffle=False)


def evaluate_detector(model: keras.Model, data: DetectionData, run_dir: Path) -> dict:
    """Scores every split with pycocotools; writes metrics.json, the pictures and the test
    picture to TensorBoard. Returns the metrics."""
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


def train_and_report_detector(config: TrainConfig, source: Path, run_dir: Path, backup_dir: Path) -> dict:
    """Data, model, training, evaluation for ``--task detect``; returns the metrics."""
    keras.utils.set_random_seed(config.seed)
    data = prepare_detection_data(config, source, run_dir)
    model = build_model(config.model, len(data.class_names), (config.image_size, config.image_size, 3),
                        weights=config.weights)
    train_detector(config, data, run_dir, model, backup_dir)
    best = keras.saving.load_model(run_dir / "model.keras", compile=False)
    metrics = evaluate_detector(best, data, run_dir)
    export_detector_atomic(best, run_dir / "export", config.image_size)
    return metrics


def print_detection_summary(run_dir: Path, metrics: dict, seconds: float, logdir: str) -> None:
    print(f"\nDone in {seconds / 60:.1f} min. Test mAP@0.5 {metrics['map50']:.3f}, "
          f"mAP@[.5:.95] {metrics['map50_95']:.3f}.")
    print(f"Run folder:          {run_dir}")
    print(f"  best detector:     {run_dir / 'model.keras'} (lowest validation loss)")
    print(f"  SavedModel:        {run_dir / 'export'} (serving_default: one image, decoded boxes)")
    print(f"  metrics:           {run_dir / 'metrics.json'} (pycocotools; COCO tables in coco_<split>.txt)")
    print(f"  example detections: {run_dir}/detections_{{train,val,test}}.png")
    print(f"  split, bad files:  {run_dir / 'split.csv'}, {run_dir / 'bad_files.csv'}")
    print(f"  resolved config:   {run_dir / 'config.yaml'}")
    print(f"View in TensorBoard: tensorboard --logdir {logdir}")
