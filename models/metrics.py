"""Metrics saved with the models, registered here so that ``import models`` is all a user
needs before ``keras.saving.load_model``."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="geoxai")
class ConfusionMatrixAccuracy(keras.metrics.Metric):
    """Accuracy that keeps the whole confusion matrix (rows: true class, columns: predicted).

    Its ``result()`` is the accuracy, so it logs as one scalar; ``training.summaries.ClassScores``
    reads the matrix itself for per-class scores.
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


@keras.saving.register_keras_serializable(package="geoxai")
class ValidPixelIoU(keras.metrics.BinaryIoU):
    """Keras' ``BinaryIoU`` of the first target channel, over the pixels the second marks valid
    when there is one (a sea-ice target's land and no-data left out)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        if y_true.shape[-1] == 2:
            y_true, sample_weight = y_true[..., :1], keras.ops.cast(y_true[..., 1:] > 0.5, self.dtype)
        return super().update_state(y_true, y_pred, sample_weight)
