"""``--task classify``: one label per image (SedNet, the transfer-learned backbones).

Data are class folders or a manifest, checked image by image and split stratified by class:
RGB photographs, or one-channel seismic patches (grey PNG/TIFF, ``.npy`` or SEG-Y, read as
amplitudes and z-scored; ``--input-kind``); the model is trained on cross-entropy of
logits, with accuracy (which keeps the confusion matrix) and macro F1. TensorBoard gets Grad-CAM overlays, histograms and per-class scores;
the report is the SedNet paper's table 2 (``metrics.json``) and its figure 4 (confusion
matrices).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, confusion_matrix, precision_recall_fscore_support

from datasets.augment import mirror_permutation
from datasets.pipeline import INPUT_KINDS, InputSpec, load_example, make_dataset, read_source
from datasets.seismic import read_patch
from datasets.synthetic import GENERATORS
from datasets.tables import (AMPLITUDE_EXTENSIONS, BOX_COLUMNS, SPLITS, DataError, check_images, load_table,
                             stratified_split, write_bad_files, write_split)
from models import MODELS, ConfusionMatrixAccuracy
from training import summaries as tb
from training.config import Preset, TaskOptions, TrainConfig, option
from training.tasks import Task, chiral_pairs, global_batch, register_task
from training.tasks.classify.callbacks import ClassScores, GradCamImages

SCORES = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss")


@dataclass
class ClassificationData:
    """The split table, the class names and what the model's inputs look like."""

    table: pd.DataFrame  # one row per usable image, with a split column
    class_names: list[str]
    spec: InputSpec
    mirror_pairs: list[tuple[str, str]]

    def split_table(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def fixed_validation_sample(self, count: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Up to ``count`` validation images, classes taken in turn: the model inputs and labels."""
        table = self.split_table("val")
        order = table.groupby("label").cumcount().sort_values(kind="stable").index[:count]
        rows = table.loc[order]
        examples = [load_example(r.path, np.array([getattr(r, c) for c in BOX_COLUMNS], np.float32), self.spec)
                    for r in rows.itertuples()]
        images = {name: np.stack([e[i] for e in examples]).astype(np.float32)
                  for i, name in enumerate(self.spec.input_names)}
        return images, label_indices(rows, self.class_names)

    def dataset(self, split: str, config: TrainConfig, training: bool = False, replicas: int = 1) -> tf.data.Dataset:
        table = self.split_table(split)
        batch = global_batch(split, len(table), "images", config, replicas, "add images")
        return make_dataset(table, label_indices(table, self.class_names), self.spec, batch,
                            num_classes=len(self.class_names), training=training, augment=config.augment,
                            mirror=mirror_permutation(self.class_names, self.mirror_pairs), seed=config.seed,
                            cache=config.cache, drop_remainder=replicas > 1)


def label_indices(table: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return table["label"].map(index).to_numpy(np.int64)


def input_kind(config: TrainConfig, table: pd.DataFrame) -> str:
    """``--input-kind``, with ``auto`` resolved: a synthetic set's own kind, seismic when most
    listed files are ``.npy`` or SEG-Y (the others are then read as grey patches, and a colour
    one is listed as bad), else photographs. Grey PNG patches are seismic only when asked:
    grey photomicrographs and SEM images are photographs."""
    choice = config.options.input_kind
    if choice != "auto":
        return choice
    if config.data.startswith("synthetic:"):
        return GENERATORS[config.data.split(":", 1)[1]].input_kind
    amplitude_files = table["path"].str.lower().str.endswith(AMPLITUDE_EXTENSIONS)
    return "seismic" if amplitude_files.mean() > 0.5 else "photo"


def amplitude_stats(paths: Sequence[str]) -> tuple[float, float]:
    """The mean and standard deviation of every sample of the files (the training split's), for
    ``--seismic-normalize dataset``."""
    count = total = squares = 0.0
    for path in paths:
        amplitude = read_patch(path).astype(np.float64)
        count, total, squares = count + amplitude.size, total + amplitude.sum(), squares + (amplitude ** 2).sum()
    mean = total / count
    return float(mean), float(np.sqrt(max(squares / count - mean ** 2, 0.0)))


def note_sizes(table: pd.DataFrame, image_size: int) -> None:
    """Says on stdout when the patches are not all of one size: every one is resized to the model's input."""
    sizes = (table["height"].astype(str) + " x " + table["width"].astype(str)).value_counts()
    if len(sizes) > 1:
        listed = ", ".join(f"{size}: {count}" for size, count in sizes.head(4).items())
        print(f"note: the patches come in {len(sizes)} sizes ({listed}{', ...' if len(sizes) > 4 else ''}); each is "
              f"resized to {image_size} x {image_size}", flush=True)


def input_spec(config: TrainConfig, kind: str, table: pd.DataFrame) -> InputSpec:
    """What the model eats; for seismic patches, with the training split's amplitude statistics
    when ``--seismic-normalize dataset``."""
    entry = MODELS[config.model]
    local_size = config.local_size if len(entry.input_names) > 1 else None
    if kind == "photo":
        return InputSpec(config.image_size, local_size, entry.input_names)
    stats = None
    if config.options.seismic_normalize == "dataset":
        stats = amplitude_stats(table.loc[table["split"] == "train", "path"].tolist())
    normalised = "per patch" if stats is None else f"with the training set's mean {stats[0]:.4g} and std {stats[1]:.4g}"
    print(f"Inputs: one-channel seismic patches, z-scored {normalised}; augmented by left-right flips only",
          flush=True)
    note_sizes(table, config.image_size)
    return InputSpec(config.image_size, local_size, entry.input_names, channels=1, amplitude_stats=stats)


def prepare_classification_data(source: Path, config: TrainConfig, run_dir: Path) -> ClassificationData:
    """Loads, checks and splits the data and writes split.csv and bad_files.csv.

    Raises:
        DataError: missing path, no images, empty class folder, a single class, too few
            images per class for the split, or images smaller than the model's minimum input.
    """
    entry = MODELS[config.model]
    table = load_table(source)
    kind = input_kind(config, table)
    probe = InputSpec(config.image_size, channels=1 if kind == "seismic" else 3)
    checked = check_images(table, entry.min_input_size, read=partial(read_source, spec=probe))
    print(write_bad_files(checked.bad_files, run_dir / "bad_files.csv"), flush=True)
    table = stratified_split(checked.table, config.split_fractions(), config.seed)
    missing = [s for s in SPLITS if not (table["split"] == s).any()]
    if missing:
        raise DataError(f"The {'/'.join(missing)} split(s) hold no usable image; add images or fix the "
                        "manifest's split column.")
    write_split(table, run_dir / "split.csv")
    class_names = sorted(table["label"].unique())
    pairs = chiral_pairs(class_names, config.options.mirror_pairs)
    spec = input_spec(config, kind, table)
    counts = table.groupby("split")["label"].count().reindex(list(SPLITS)).to_dict()
    print(f"{len(table)} images, {len(class_names)} classes {class_names}; split {counts}", flush=True)
    return ClassificationData(table, class_names, spec, pairs)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def split_metrics(y_true: np.ndarray, logits: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, macro precision/recall/F1, mean cross-entropy and per-class scores."""
    y_pred = logits.argmax(axis=1)
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    loss = -log_softmax(logits)[np.arange(len(y_true)), y_true].mean()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "loss": float(loss),
        "count": int(len(y_true)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1, support)},
    }


def write_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                           out_stem: Path, title: str) -> None:
    """Writes ``<stem>.csv`` (rows: true class, columns: predicted) and ``<stem>.png``."""
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names)))
    frame = pd.DataFrame(matrix, index=pd.Index(class_names, name="true"), columns=class_names)
    frame.to_csv(out_stem.with_suffix(".csv"))
    side = 2.5 + 0.6 * len(class_names)
    figure = Figure(figsize=(side, side))  # no pyplot: leaves the user's matplotlib backend alone
    axes = figure.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(out_stem.with_suffix(".png"), dpi=120)


@dataclass
class ClassifyOptions(TaskOptions):
    """``--task classify``'s own options."""

    mirror_pairs: str = option("auto", "class pairs a mirror flip swaps, a:b,c:d; auto finds cw:ccw and "
                                       "dextral:sinistral; none")
    tb_scores: bool = option(True, "TensorBoard: per-class precision/recall/F1 and the confusion matrix each epoch")
    input_kind: str = option("auto", "photo: RGB photographs in [0, 255], flipped and turned; seismic: one-channel "
                                     "amplitude patches (grey PNG/TIFF, .npy, SEG-Y), z-scored, flipped left-right "
                                     "only; auto: a synthetic set's kind, seismic when most files are .npy or SEG-Y, "
                                     "else photo", choices=("auto", *INPUT_KINDS))
    seismic_normalize: str = option("patch", "seismic patches: z-score each patch, or all with the training split's "
                                             "mean and deviation", choices=("patch", "dataset"))
    encoder_width: int = option(64, "resnet34_classifier: filters of the encoder's first stage (64 is ResNet34); "
                                    "the U-Net's, to start from a segmentation run")

    def value_problems(self) -> list[str]:
        return [f"encoder_width={self.encoder_width} must be >= 8"] if self.encoder_width < 8 else []


class ClassifyTask(Task):
    name = "classify"
    description = ("one label per image: SedNet, a transfer-learned backbone or the salt thesis's ResNet34 "
                   "classifier; data are class folders or a manifest of RGB photographs or one-channel seismic "
                   "patches")
    options = ClassifyOptions
    presets = {"salt-encoder": Preset(
        "the salt thesis's patch classifier started from a segmentation run's encoder (pass --weights RUN, a "
        "--task segment run of the same --encoder-width): the head learns alone with the encoder frozen, then "
        "every layer at a tenth of the learning rate",
        {"model": "resnet34_classifier", "input_kind": "seismic", "train_backbone": False, "fine_tune_layers": 1000,
         "fine_tune_epochs": 10, "fine_tune_lr": 2e-4})}

    def prepare_data(self, config: TrainConfig, run_dir: Path) -> ClassificationData:
        return prepare_classification_data(self.resolve_source(config), config, run_dir)

    def input_channels(self, data: ClassificationData) -> int:
        return data.spec.channels

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                jit: bool) -> None:
        """Cross-entropy on logits; accuracy (which keeps the confusion matrix for the
        per-class scores) and macro F1, written to TensorBoard as ``epoch_*``."""
        num_classes = int(model.outputs[0].shape[-1])
        model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=[ConfusionMatrixAccuracy(num_classes, name="accuracy"),
                               keras.metrics.F1Score(average="macro", name="f1_macro")],
                      jit_compile=jit)

    def summaries(self, config: TrainConfig, run_dir: Path, data: ClassificationData) -> list:
        images, labels = data.fixed_validation_sample(config.tb_gradcam_images)
        callbacks = []
        if config.tb_gradcam_freq:
            callbacks.append(GradCamImages(run_dir, images, labels, data.class_names, config.tb_gradcam_freq))
        if config.tb_histogram_freq:
            callbacks.append(tb.Histograms(run_dir, images, config.tb_histogram_freq))
        if config.options.tb_scores:
            callbacks.append(ClassScores(run_dir, data.class_names))
        return callbacks

    def evaluate(self, model: keras.Model, config: TrainConfig, data: ClassificationData, run_dir: Path) -> dict:
        """Predicts every split, writes metrics.json and the confusion matrices."""
        metrics = {}
        for split in SPLITS:
            y_true = label_indices(data.split_table(split), data.class_names)
            logits = model.predict(data.dataset(split, config), verbose=0)
            metrics[split] = split_metrics(y_true, logits, data.class_names)
            write_confusion_matrix(y_true, logits.argmax(axis=1), data.class_names,
                                   run_dir / f"confusion_matrix_{split}", f"{config.model}: {split}")
        inputs = {"channels": data.spec.channels, "amplitude_stats": data.spec.amplitude_stats}
        (run_dir / "metrics.json").write_text(json.dumps({"class_names": data.class_names, "inputs": inputs,
                                                          **metrics}, indent=2))
        return metrics

    def final_scalars(self, metrics: dict) -> dict[str, float]:
        return {f"{split}_{key}": metrics[split][key] for split in SPLITS for key in SCORES}

    def headline(self, metrics: dict) -> str:
        test = metrics["test"]
        return f"Test accuracy {test['accuracy']:.3f}, macro F1 {test['f1_macro']:.3f}."

    def report_lines(self, run_dir: Path) -> list[tuple[str, str]]:
        return [("metrics", f"{run_dir / 'metrics.json'} (train/val/test)"),
                ("confusion matrices", f"{run_dir}/confusion_matrix_{{train,val,test}}.{{csv,png}}")]


register_task(ClassifyTask())
