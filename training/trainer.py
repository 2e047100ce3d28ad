"""Building, compiling and fitting a model from a TrainConfig."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models import ConfusionMatrixAccuracy, build_model, unfreeze_top
from training import callbacks as tb
from training.config import TrainConfig
from training.export import save_keras_atomic
from training.loop import fit_distributed

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
    "rmsprop": keras.optimizers.RMSprop,
}


def create_model(config: TrainConfig, num_classes: int, local_size: int | None) -> keras.Model:
    options = {"local_shape": (local_size, local_size, 3), "shared_branches": config.shared_branches} \
        if local_size else {"train_backbone": config.train_backbone}
    return build_model(config.model, num_classes, (config.image_size, config.image_size, 3),
                       weights=config.weights, **options)


def compile_model(model: keras.Model, optimizer: str, learning_rate, jit: bool = False) -> None:
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
                 keras.metrics.F1Score(average="macro", name="f1_macro")],
        jit_compile=jit)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model with the lowest validation loss so far, atomically.

    The best value is kept in ``state_path`` too, so a resumed run keeps the best model of
    the epochs before the interruption.
    """

    def __init__(self, path: Path, state_path: Path, monitor: str = "val_loss"):
        super().__init__()
        self.path, self.state_path, self.monitor = path, state_path, monitor
        self.best = json.loads(state_path.read_text())["best"] if state_path.is_file() else np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = float(value)
            save_keras_atomic(self.model, self.path)
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.state_path.write_text(json.dumps({"best": self.best, "epoch": epoch}))


def fit(model: keras.Model, config: TrainConfig, train, val, callbacks: list[keras.callbacks.Callback],
        backup_dir: Path, jit: bool = False, strategy=None) -> int:
    """Trains for ``config.epochs``, then, if asked, fine-tunes the top backbone layers.

    Each phase backs its state up in ``backup_dir`` at every epoch's end, before any other
    callback writes, so a killed run started again resumes after its last complete epoch
    (Keras' BackupAndRestore). Under MultiWorkerMirroredStrategy, where ``model.fit``
    fails, :func:`training.loop.fit_distributed` runs the same steps and callbacks.
    Returns the number of epochs of both phases.
    """
    compile_model(model, config.optimizer, first_phase_learning_rate(config, int(train.cardinality())), jit)
    run_phase = _phase_runner(model, train, val, progress_verbosity(), strategy)
    run_phase(0, config.epochs, [backup_callback(backup_dir / "phase1")] + callbacks)
    if not (config.fine_tune_layers and config.fine_tune_epochs):
        return config.epochs
    count = unfreeze_top(model, config.fine_tune_layers)
    print(f"Fine-tuning the top {count} backbone layers at lr={config.fine_tune_lr}", flush=True)
    compile_model(model, config.optimizer, config.fine_tune_lr, jit)
    total = config.epochs + config.fine_tune_epochs
    run_phase(config.epochs, total, [backup_callback(backup_dir / "phase2")] + callbacks)
    return total


def first_phase_learning_rate(config: TrainConfig, steps_per_epoch: int):
    """``config.lr``, or a cosine decay from it to 0 over all of the first phase's steps."""
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=max(config.epochs * steps_per_epoch, 1))
    return config.lr


def progress_verbosity() -> int:
    """A progress bar on a terminal, one line per epoch in a log file."""
    return 1 if sys.stdout.isatty() else 2


def _phase_runner(model, train, val, verbose, strategy):
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return lambda first, last, callbacks: fit_distributed(model, strategy, train, val, last, callbacks, first,
                                                              verbose)
    return lambda first, last, callbacks: model.fit(  # the dataset shuffles itself, seeded
        train, validation_data=val, initial_epoch=first, epochs=last, verbose=verbose, shuffle=False,
        callbacks=callbacks)


def backup_callback(folder: Path) -> keras.callbacks.BackupAndRestore:
    """Backs the training state up at each epoch's end, so a killed run resumes from there."""
    return keras.callbacks.BackupAndRestore(str(folder), save_freq="epoch", delete_checkpoint=False,
                                            double_checkpoint=True)


def tensorboard_callbacks(config: TrainConfig, run_dir: Path, data) -> list[keras.callbacks.Callback]:
    """The TensorBoard callbacks the config switches on, around a fixed validation sample."""
    result = [tb.EpochScalars(run_dir)]
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
    return result + [tb.FlushSummaries(run_dir)]
