"""Building, compiling and fitting a model from a TrainConfig."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np

from models import build_model, unfreeze_top
from training.callbacks import ConfusionMatrixAccuracy
from training.config import TrainConfig
from training.export import save_keras_atomic

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
    "rmsprop": keras.optimizers.RMSprop,
}


def create_model(config: TrainConfig, num_classes: int, local_size: int | None) -> keras.Model:
    options = {"local_shape": (local_size, local_size, 3), "shared_branches": config.shared_branches} \
        if local_size else {}
    return build_model(config.model, num_classes, (config.image_size, config.image_size, 3),
                       weights=config.weights, **options)


def compile_model(model: keras.Model, optimizer: str, learning_rate) -> None:
    """Cross-entropy on logits; accuracy (which keeps the confusion matrix for the per-class
    scores) and macro F1, written to TensorBoard as epoch_*.

    Args:
        learning_rate: a float or a ``keras.optimizers.schedules.LearningRateSchedule``.
    """
    num_classes = int(model.outputs[0].shape[-1])
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[ConfusionMatrixAccuracy(num_classes, name="accuracy"),
                 keras.metrics.F1Score(average="macro", name="f1_macro")])


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model with the lowest validation loss so far, atomically."""

    def __init__(self, path: Path, monitor: str = "val_loss"):
        super().__init__()
        self.path, self.monitor, self.best = path, monitor, np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = float(value)
            save_keras_atomic(self.model, self.path)


def fit(model: keras.Model, config: TrainConfig, train, val,
        callbacks: list[keras.callbacks.Callback]) -> keras.callbacks.History:
    """Trains for ``config.epochs``, then, if asked, fine-tunes the top backbone layers."""
    verbose = 1 if sys.stdout.isatty() else 2
    learning_rate = config.lr
    if config.lr_schedule == "cosine":
        steps = config.epochs * int(train.cardinality())
        learning_rate = keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=max(steps, 1))
    compile_model(model, config.optimizer, learning_rate)
    history = model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks,
                        verbose=verbose, shuffle=False)  # the dataset shuffles itself, seeded
    if config.fine_tune_layers and config.fine_tune_epochs:
        count = unfreeze_top(model, config.fine_tune_layers)
        print(f"Fine-tuning the top {count} backbone layers at lr={config.fine_tune_lr}", flush=True)
        compile_model(model, config.optimizer, config.fine_tune_lr)
        history = model.fit(train, validation_data=val, initial_epoch=config.epochs,
                            epochs=config.epochs + config.fine_tune_epochs, callbacks=callbacks,
                            verbose=verbose, shuffle=False)
    return history


def tensorboard_callbacks(config: TrainConfig, run_dir: Path, data) -> list[keras.callbacks.Callback]:
    """The TensorBoard callbacks the config switches on, around a fixed validation sample."""
    from training import callbacks as tb

    result = [keras.callbacks.TensorBoard(log_dir=str(run_dir), write_graph=False)]
    images, labels = data.fixed_validation_sample(config.tb_gradcam_images)
    if config.tb_gradcam_freq:
        result.append(tb.GradCamImages(run_dir, images, labels, data.class_names, config.tb_gradcam_freq))
    if config.tb_histogram_freq:
        result.append(tb.Histograms(run_dir, images, config.tb_histogram_freq))
    if config.tb_scores:
        result.append(tb.ClassScores(run_dir, data.class_names))
    if config.tb_hparams:
        result.append(tb.HParams(run_dir, dataclasses.asdict(config), run_dir.name))
    if config.tb_model_summary:
        result.append(tb.ModelSummary(run_dir))
    return result
