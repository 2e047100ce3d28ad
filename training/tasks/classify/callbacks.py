"""The classifier's own TensorBoard callbacks.

- :class:`GradCamImages`: Grad-CAM overlays of a fixed, class-balanced set of validation
  images, annotated with the true and predicted class (SedNet: ``whole`` and ``local``).
- :class:`ClassScores`: per-class and macro precision, recall and F1 for train and
  validation, and the confusion matrix as an image, from the confusion matrix that the
  :class:`ConfusionMatrixAccuracy` metric accumulates anyway: no extra pass over the data.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf

from datasets.pipeline import for_model, picture
from explain.cam import gradcam_with_logits
from explain.overlay import overlay
from models.metrics import ConfusionMatrixAccuracy
from training.summaries import SummaryCallback


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
    """Grad-CAM overlays of fixed validation images every ``freq`` epochs (seismic patches on a
    grey variable-density display, :func:`datasets.pipeline.picture`).

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
                annotated.append(_annotate(overlay(picture(self.images[name][i]), heatmap),
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
