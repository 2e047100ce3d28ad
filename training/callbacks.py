"""Keras callbacks that write what a geoscientist inspects in TensorBoard.

- :class:`EpochScalars`: loss, accuracy, macro F1 and learning rate per epoch.
- :class:`GradCamImages`: Grad-CAM overlays of a fixed, class-balanced set of validation
  images, annotated with the true and predicted class (SedNet: ``whole`` and ``local``).
- :class:`Histograms`: every trainable weight and bias, and the activations of the
  ``features`` layers on the fixed validation images.
- :class:`ClassScores`: per-class and macro precision, recall and F1 for train and
  validation, and the confusion matrix as an image, from the confusion matrix that the
  :class:`ConfusionMatrixAccuracy` metric accumulates anyway: no extra pass over the data.
- :class:`HParams`: the run's hyperparameters for TensorBoard's HParams dashboard.
- :class:`ModelSummary`: the model's architecture as text (Keras 3 writes no graph TensorBoard can show).

Only the chief of a ``tf.distribute`` cluster writes (:func:`is_chief`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.histogram import metadata as histogram_metadata

from datasets.pipeline import for_model
from explain.cam import gradcam_with_logits
from explain.overlay import overlay
from explain.views import DEFAULT_LAYER, resolve_layers
from models.metrics import ConfusionMatrixAccuracy
from training.distribute import is_chief

_WRITERS: dict[str, tf.summary.SummaryWriter] = {}


def writer_for(directory: str | Path) -> tf.summary.SummaryWriter:
    """One summary writer per folder, shared by all callbacks, so each folder gets one event file."""
    key = str(Path(directory).resolve())
    if key not in _WRITERS:
        _WRITERS[key] = tf.summary.create_file_writer(key)
    return _WRITERS[key]


def close_writers(run_dir: str | Path) -> None:
    """Closes the summary writers of ``run_dir`` and its sub-folders, so a process that trains
    several runs (``training.compare``) keeps no file open per finished run."""
    root = Path(run_dir).resolve()
    for key in [k for k in _WRITERS if Path(k) == root or root in Path(k).parents]:
        _WRITERS.pop(key).close()


class SummaryCallback(keras.callbacks.Callback):
    """A callback that writes summaries into ``log_dir/<subdir>``, on the chief only."""

    def __init__(self, log_dir: str | Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.active = is_chief()

    def writer(self, subdir: str = "") -> tf.summary.SummaryWriter:
        return writer_for(self.log_dir / subdir)

    def on_train_end(self, logs=None):
        for subdir in ("", "train", "validation"):
            writer_for(self.log_dir / subdir).flush()


class EpochScalars(SummaryCallback):
    """Every scalar of the epoch's logs as ``epoch_<name>``: train to ``train/``, ``val_*`` to
    ``validation/`` (the layout of Keras' TensorBoard callback)."""

    def on_epoch_end(self, epoch, logs=None):
        if not self.active:
            return
        for key, value in (logs or {}).items():
            subdir, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if np.ndim(value) == 0:
                with self.writer(subdir).as_default(step=epoch):
                    tf.summary.scalar(f"epoch_{name}", float(value))


class FlushSummaries(SummaryCallback):
    """Flushes the run's summary writers at each epoch's end (put it after the other
    writers), so a killed run loses no step it had finished."""

    def on_epoch_end(self, epoch, logs=None):
        if self.active:
            self.on_train_end()


def scores_from_confusion(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (0 where undefined)."""
    true_positives = np.diag(matrix)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def _find_confusion_metric(model: keras.Model) -> ConfusionMatrixAccuracy:
    stack = list(model.metrics)
    while stack:
        metric = stack.pop()
        if isinstance(metric, ConfusionMatrixAccuracy):
            return metric
        stack += getattr(metric, "metrics", [])
    raise ValueError("ClassScores needs a ConfusionMatrixAccuracy among the compiled metrics.")


class ClassScores(SummaryCallback):
    """Per-class and macro precision/recall/F1 for train and validation, and the confusion matrix.

    The train matrix is read when validation begins (before Keras resets the metrics), the
    validation matrix at the epoch's end.
    """

    def __init__(self, log_dir, class_names: Sequence[str]):
        super().__init__(log_dir)
        self.class_names = list(class_names)
        self._train_matrix = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._train_matrix = epoch, None

    # Every worker reads the matrices, the chief alone writes: under MultiWorkerMirroredStrategy
    # reading a metric variable is a collective operation that all workers must join.
    def on_test_begin(self, logs=None):
        if self._train_matrix is None:
            self._train_matrix = _find_confusion_metric(self.model).matrix.numpy().copy()

    def on_epoch_end(self, epoch, logs=None):
        validation = _find_confusion_metric(self.model).matrix.numpy()
        if not self.active:
            return
        for subdir, matrix in (("train", self._train_matrix), ("validation", validation)):
            if matrix is not None:
                self._write(subdir, matrix, epoch)

    def _write(self, subdir: str, matrix: np.ndarray, step: int) -> None:
        scores = {kind: tf.constant(values, tf.float32) for kind, values in scores_from_confusion(matrix).items()}
        self._write_scores(self.writer(subdir), tf.constant(step, tf.int64), scores,
                           confusion_image(matrix, self.class_names)[None])

    @tf.function
    def _write_scores(self, writer, step, scores, picture):
        with writer.as_default(step=step):
            for kind, values in scores.items():
                tf.summary.scalar(f"scores/{kind}_macro", tf.reduce_mean(values))
                for i, name in enumerate(self.class_names):
                    tf.summary.scalar(f"scores_per_class/{kind}_{name}", values[i])
            tf.summary.image("confusion_matrix", picture)


def confusion_image(matrix: np.ndarray, class_names: Sequence[str], cell: int = 56) -> np.ndarray:
    """The confusion matrix as an RGB uint8 picture: rows true, columns predicted, counts
    in blue cells (darker = more), class names on both axes. Drawn with OpenCV, since
    matplotlib would cost a large share of a small model's epoch."""
    count = len(class_names)
    left, top = 12 + 7 * max(len(name) for name in class_names), 20
    image = np.full((top + count * cell + 18, left + count * cell + 8, 3), 255, np.uint8)
    shares = matrix / max(matrix.max(), 1)
    for row in range(count):
        for column in range(count):
            x, y = left + column * cell, top + row * cell
            shade = int(235 - 180 * shares[row, column])
            cv2.rectangle(image, (x, y), (x + cell - 2, y + cell - 2), (shade, shade, 255), -1)
            ink = (255, 255, 255) if shares[row, column] > 0.5 else (0, 0, 0)
            cv2.putText(image, str(int(matrix[row, column])), (x + 6, y + cell // 2 + 5),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, ink, 1, cv2.LINE_AA)
    for i, name in enumerate(class_names):
        cv2.putText(image, name, (2, top + i * cell + cell // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
        label = np.full((14, cell, 3), 255, np.uint8)
        cv2.putText(label, name[: cell // 7], (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        bottom = top + count * cell
        image[bottom + 2:bottom + 16, left + i * cell:left + (i + 1) * cell] = label
    cv2.putText(image, "true \\ predicted", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
    return image


class GradCamImages(SummaryCallback):
    """Grad-CAM overlays of fixed validation images every ``freq`` epochs.

    One tag per image and input (``gradcam/<input>/<nn>_<true class>``), so TensorBoard's
    step slider shows how the evidence moves during training; the true and predicted class
    and its probability are written into the image. The maps come from the explain package's Grad-CAM
    (one batched, compiled call that also gives the logits) and all images of an epoch are written by one compiled call.
    """

    def __init__(self, log_dir, images: dict[str, np.ndarray], labels: Sequence[int],
                 class_names: Sequence[str], freq: int = 1):
        super().__init__(log_dir)
        self.images, self.labels, self.class_names, self.freq = images, np.asarray(labels), list(class_names), freq
        self._write = tf.function(self._write_images)

    def _write_images(self, step, pictures):
        with self.writer("validation").as_default(step=step):
            for name, batch in pictures.items():
                for i in range(len(self.labels)):
                    truth = self.class_names[self.labels[i]]
                    tf.summary.image(f"gradcam/{name}/{i:02d}_{truth}", batch[i:i + 1],
                                     description=f"Grad-CAM of the predicted class; true class {truth}.")

    def on_epoch_end(self, epoch, logs=None):
        if not self.active or self.freq < 1 or epoch % self.freq:
            return
        maps, logits = gradcam_with_logits(self.model, for_model(self.images))
        maps = maps if isinstance(maps, dict) else {next(iter(self.images)): maps}
        probabilities = tf.nn.softmax(logits).numpy()
        pictures = {}
        for name, heatmaps in maps.items():
            annotated = []
            for i, heatmap in enumerate(heatmaps):
                predicted = int(probabilities[i].argmax())
                annotated.append(_annotate(overlay(self.images[name][i].astype(np.uint8), heatmap),
                                           self.class_names[self.labels[i]], self.class_names[predicted],
                                           probabilities[i, predicted]))
            pictures[name] = np.stack(annotated)
        self._write(tf.constant(epoch, tf.int64), pictures)


def _annotate(image: np.ndarray, true_name: str, predicted_name: str, probability: float) -> np.ndarray:
    """Adds a two-line caption bar on top: green when right, red when wrong. Images under
    96 px are upscaled so the caption fits."""
    scale = max(1, 96 // image.shape[0])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    bar = np.full((24, image.shape[1], 3), (0, 110, 0) if true_name == predicted_name else (150, 0, 0), np.uint8)
    for line, text in enumerate((f"true {true_name}", f"pred {predicted_name} {probability:.2f}")):
        cv2.putText(bar, text, (2, 10 + 11 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def histogram_buckets(values: tf.Tensor, buckets: int = 30) -> tf.Tensor:
    """TensorBoard's histogram layout: a (buckets, 3) float64 tensor of [left, right, count].

    One ``tf.histogram_fixed_width`` over the tensor's range: no Python loop over elements,
    and far cheaper to trace than ``tf.summary.histogram``.
    """
    values = tf.reshape(tf.cast(values, tf.float64), [-1])
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    high = tf.where(high > low, high, low + 1.0)
    counts = tf.cast(tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=buckets), tf.float64)
    edges = tf.linspace(low, high, buckets + 1)
    return tf.stack([edges[:-1], edges[1:], counts], axis=1)


class Histograms(SummaryCallback):
    """Weights and biases of every trainable layer (train run) and activations of the
    ``features`` layers on the fixed validation images (validation run), every ``freq`` epochs.

    One compiled call computes and writes every histogram of an epoch (eager writes of some
    sixty tags cost SedNet's epoch about 30 ms more).
    """

    def __init__(self, log_dir, images: dict[str, np.ndarray], freq: int = 1):
        super().__init__(log_dir)
        self.images, self.freq = images, freq
        self._write = None

    def set_model(self, model):
        super().set_model(model)
        if not self.active:
            return
        names = set(resolve_layers(model).values())  # each input's explained layer, e.g. SedNet's branches
        names |= {layer.name for layer in model.layers if layer.name == DEFAULT_LAYER}
        activations = keras.Model(model.inputs, {n: model.get_layer(n).output for n in sorted(names)})
        inputs = [tf.constant(self.images[t.name]) for t in model.inputs]
        train, validation = self.writer("train"), self.writer("validation")

        @tf.function
        def write(step):
            with train.as_default(step=step):
                for weight in model.trainable_weights:
                    tf.summary.write(f"weights/{weight.path}", histogram_buckets(weight.value),
                                     metadata=_HISTOGRAM_METADATA)
            with validation.as_default(step=step):
                for name, values in activations(inputs, training=False).items():
                    tf.summary.write(f"activations/{name}", histogram_buckets(values), metadata=_HISTOGRAM_METADATA)

        self._write = write

    def on_epoch_end(self, epoch, logs=None):
        if self.active and self.freq >= 1 and epoch % self.freq == 0:
            self._write(tf.constant(epoch, tf.int64))


_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name=None, description=None)


class HParams(SummaryCallback):
    """The run's hyperparameters, for TensorBoard's HParams dashboard, written at the start."""

    def __init__(self, log_dir, hyperparameters: dict, run_name: str):
        super().__init__(log_dir)
        self.hyperparameters = {k: v for k, v in hyperparameters.items() if isinstance(v, (bool, int, float, str))}
        self.run_name = run_name

    def on_train_begin(self, logs=None):
        if self.active:
            with self.writer().as_default():
                hparams_api.hparams(self.hyperparameters, trial_id=self.run_name)


def write_final_metrics(log_dir: str | Path, scalars: dict[str, float], step: int) -> None:
    """The final scores as ``final/<name>`` scalars next to the HParams summary, so the
    HParams dashboard can compare runs by them."""
    if not is_chief():
        return
    writer = writer_for(log_dir)
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.scalar(f"final/{name}", value)
    writer.flush()


class ModelSummary(SummaryCallback):
    """``model.summary()`` and the model's JSON config as text under TensorBoard's *Text* tab."""

    def on_train_begin(self, logs=None):
        if not self.active:
            return
        lines = []
        self.model.summary(print_fn=lambda line, **kwargs: lines.append(line), line_length=110)
        config = json.dumps(json.loads(self.model.to_json()), indent=1)
        with self.writer().as_default(step=0):
            tf.summary.text("model/summary", "```\n" + "\n".join(lines) + "\n```")
            tf.summary.text("model/config", "```\n" + config[:200_000] + "\n```")
