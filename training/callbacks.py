"""Keras callbacks that write what a geoscientist inspects in TensorBoard.

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

import io
import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

import explain
from explain.overlay import overlay
from explain.views import resolve_layers

ACTIVATION_LAYERS = ("features", "whole_features", "local_features")


def is_chief() -> bool:
    """Whether this process writes logs: True without a cluster, else for the chief (or worker 0)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = config.get("task", {}), config.get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


_WRITERS: dict[str, tf.summary.SummaryWriter] = {}


def writer_for(directory: str | Path) -> tf.summary.SummaryWriter:
    """One summary writer per folder, shared by all callbacks, so each folder gets one event file."""
    key = str(Path(directory).resolve())
    if key not in _WRITERS:
        _WRITERS[key] = tf.summary.create_file_writer(key)
    return _WRITERS[key]


class _Writer(keras.callbacks.Callback):
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


@keras.saving.register_keras_serializable(package="geoxai")
class ConfusionMatrixAccuracy(keras.metrics.Metric):
    """Accuracy that keeps the whole confusion matrix (rows: true class, columns: predicted).

    Its ``result()`` is the accuracy, so it logs as one scalar; :class:`ClassScores` reads
    the matrix itself for per-class scores.
    """

    def __init__(self, num_classes: int, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_variable((num_classes, num_classes), initializer="zeros", name="matrix",
                                        dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = keras.ops.argmax(y_true, axis=-1)
        predicted = keras.ops.argmax(y_pred, axis=-1)
        pairs = keras.ops.one_hot(true * self.num_classes + predicted, self.num_classes ** 2)
        self.matrix.assign_add(keras.ops.reshape(keras.ops.sum(pairs, axis=0), (self.num_classes, self.num_classes)))

    def result(self):
        return keras.ops.divide_no_nan(keras.ops.trace(self.matrix), keras.ops.sum(self.matrix))

    def reset_state(self):
        self.matrix.assign(keras.ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


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


class ClassScores(_Writer):
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

    def on_test_begin(self, logs=None):
        if self.active and self._train_matrix is None:
            self._train_matrix = _find_confusion_metric(self.model).matrix.numpy().copy()

    def on_epoch_end(self, epoch, logs=None):
        if not self.active:
            return
        validation = _find_confusion_metric(self.model).matrix.numpy()
        for subdir, matrix in (("train", self._train_matrix), ("validation", validation)):
            if matrix is not None:
                self._write(subdir, matrix, epoch)

    def _write(self, subdir: str, matrix: np.ndarray, step: int) -> None:
        scores = scores_from_confusion(matrix)
        with self.writer(subdir).as_default(step=step):
            for kind, values in scores.items():
                tf.summary.scalar(f"scores/{kind}_macro", float(values.mean()))
                for name, value in zip(self.class_names, values):
                    tf.summary.scalar(f"scores_per_class/{kind}_{name}", float(value))
            tf.summary.image("confusion_matrix", confusion_image(matrix, self.class_names)[None])


def confusion_image(matrix: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """The confusion matrix drawn by scikit-learn, as an RGB uint8 array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    side = 2.5 + 0.6 * len(class_names)
    figure, axes = plt.subplots(figsize=(side, side))
    ConfusionMatrixDisplay(matrix.astype(int), display_labels=class_names).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return tf.image.decode_png(buffer.getvalue(), channels=3).numpy()


def _model_inputs(images: dict[str, np.ndarray]):
    return images if len(images) > 1 else next(iter(images.values()))


class GradCamImages(_Writer):
    """Grad-CAM overlays of fixed validation images every ``freq`` epochs.

    One tag per image and input (``gradcam/<input>/<nn>_<true class>``), so TensorBoard's
    step slider shows how the evidence moves during training; the predicted class and its
    probability are written into the image. The maps come from ``explain.gradcam``: one
    batched, compiled call per write.
    """

    def __init__(self, log_dir, images: dict[str, np.ndarray], labels: Sequence[int],
                 class_names: Sequence[str], freq: int = 1):
        super().__init__(log_dir)
        self.images, self.labels, self.class_names, self.freq = images, np.asarray(labels), list(class_names), freq

    def on_epoch_end(self, epoch, logs=None):
        if not self.active or self.freq < 1 or epoch % self.freq:
            return
        inputs = _model_inputs(self.images)
        maps = explain.gradcam(self.model, inputs)
        maps = maps if isinstance(maps, dict) else {next(iter(self.images)): maps}
        probabilities = tf.nn.softmax(self.model(inputs, training=False)).numpy()
        with self.writer("validation").as_default(step=epoch):
            for name, heatmaps in maps.items():
                for i, heatmap in enumerate(heatmaps):
                    predicted = int(probabilities[i].argmax())
                    truth = self.class_names[self.labels[i]]
                    picture = _annotate(overlay(self.images[name][i].astype(np.uint8), heatmap),
                                        f"true {truth} | pred {self.class_names[predicted]} {probabilities[i, predicted]:.2f}",
                                        correct=predicted == self.labels[i])
                    tf.summary.image(f"gradcam/{name}/{i:02d}_{truth}", picture[None],
                                     description=f"Grad-CAM of the predicted class; true class {truth}.")


def _annotate(image: np.ndarray, text: str, correct: bool) -> np.ndarray:
    """Upscales small images for legibility and writes ``text`` in a bar at the top."""
    scale = max(1, 192 // image.shape[0])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    bar = np.full((18, image.shape[1], 3), (0, 110, 0) if correct else (150, 0, 0), np.uint8)
    cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


class Histograms(_Writer):
    """Weights and biases of every trainable layer (train run) and activations of the
    ``features`` layers on the fixed validation images (validation run), every ``freq`` epochs."""

    def __init__(self, log_dir, images: dict[str, np.ndarray], freq: int = 1):
        super().__init__(log_dir)
        self.images, self.freq = images, freq
        self._activations = None

    def set_model(self, model):
        super().set_model(model)
        names = [n for n in ACTIVATION_LAYERS if any(layer.name == n for layer in model.layers)]
        names = names or sorted(set(resolve_layers(model).values()))
        self._activations = keras.Model(model.inputs, {n: model.get_layer(n).output for n in names})

    def on_epoch_end(self, epoch, logs=None):
        if not self.active or self.freq < 1 or epoch % self.freq:
            return
        with self.writer("train").as_default(step=epoch):
            for weight in self.model.trainable_weights:
                tf.summary.histogram(f"weights/{weight.path}", weight.value)
        activations = self._activations(_as_list(self.model, self.images), training=False)
        with self.writer("validation").as_default(step=epoch):
            for name, values in activations.items():
                tf.summary.histogram(f"activations/{name}", values)


def _as_list(model: keras.Model, images: dict[str, np.ndarray]):
    return [images[t.name] for t in model.inputs]


class HParams(_Writer):
    """The run's hyperparameters, for TensorBoard's HParams dashboard, written at the start."""

    def __init__(self, log_dir, hyperparameters: dict, run_name: str):
        super().__init__(log_dir)
        self.hyperparameters = {k: v for k, v in hyperparameters.items() if isinstance(v, (bool, int, float, str))}
        self.run_name = run_name

    def on_train_begin(self, logs=None):
        if self.active:
            with self.writer().as_default():
                hparams_api.hparams(self.hyperparameters, trial_id=self.run_name)


def write_final_metrics(log_dir: str | Path, metrics: dict, step: int) -> None:
    """The final train/val/test scores as ``final/<split>_<metric>`` scalars next to the
    HParams summary, so the HParams dashboard can compare runs by them."""
    if not is_chief():
        return
    writer = writer_for(log_dir)
    with writer.as_default(step=step):
        for split in ("train", "val", "test"):
            for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"):
                tf.summary.scalar(f"final/{split}_{key}", metrics[split][key])
    writer.flush()


class ModelSummary(_Writer):
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
