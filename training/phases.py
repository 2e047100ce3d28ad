"""Fitting a model from a TrainConfig: optimizers, schedules, phases, resume, best-model checkpoints.

Task-independent: the task compiles the model (its loss and metrics) through the
``compile`` callable that :func:`fit` is given.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import keras
import numpy as np
import tensorflow as tf

from models import unfreeze_top
from training.export import save_keras_atomic
from training.distributed_fit import fit_distributed

if TYPE_CHECKING:
    from training.config import TrainConfig

OPTIMIZER_FACTORIES = {  # by training.config.OPTIMIZERS' names
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": lambda **options: keras.optimizers.SGD(momentum=0.9, nesterov=True, **options),
    "rmsprop": keras.optimizers.RMSprop,
}


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


class TrainingDiverged(RuntimeError):
    """The loss turned NaN or infinite; the message names the epoch and what to try."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops a run the moment its training loss turns NaN or infinite (or, at an epoch's end,
    its weights or validation loss do), before anything saves or backs up the broken weights:
    the best model and the backup of the last complete epoch stay as they were. Keras' own
    ``TerminateOnNaN`` only ends ``fit`` on a NaN loss, and the run then fails further on for
    want of a best model; weights can overflow while the loss still reads finite."""

    def __init__(self, run_dir: Path, learning_rate: float):
        super().__init__()
        self.run_dir, self.learning_rate, self.epoch = run_dir, learning_rate, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise TrainingDiverged(f"The training loss became {loss} in epoch {self.epoch + 1} (batch {batch + 1}). "
                                   + self._advice())

    def on_epoch_end(self, epoch, logs=None):
        if not all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in self.model.weights):
            raise TrainingDiverged(f"The weights became infinite or NaN in epoch {epoch + 1}. " + self._advice())
        loss = float((logs or {}).get("val_loss", 0.0))
        if not math.isfinite(loss):
            raise TrainingDiverged(f"The validation loss is {loss} after epoch {epoch + 1} while the training loss is "
                                   "finite: a validation input holds values the model cannot take. " + self._advice())

    def _advice(self) -> str:
        kept = ("no epoch had completed" if not (self.run_dir / "model.keras").is_file() else
                f"the best model of the complete epochs is {self.run_dir / 'model.keras'}, and the same command "
                "resumes after the last of them")
        return (f"Try a lower --lr (this run: {self.learning_rate:g}) or look for extreme values in the data; "
                f"{kept}.")


Compile = Callable[[keras.Model, keras.optimizers.Optimizer], None]


def fit(model: keras.Model, config: TrainConfig, train, val, callbacks: list[keras.callbacks.Callback],
        backup_dir: Path, compile: Compile, best: BestModelCheckpoint, strategy=None) -> int:
    """Trains for ``config.epochs``, then, if asked, fine-tunes the top backbone layers.

    ``compile(model, optimizer)`` compiles the model for its task before each phase.

    At every epoch's end the best model is saved first (``best``), then the phase's state is
    backed up in ``backup_dir``, then the other callbacks write, so a killed run started again
    resumes after its last complete epoch (Keras' BackupAndRestore) with that epoch already
    weighed for the best model, and writes no epoch twice. Under MultiWorkerMirroredStrategy,
    where ``model.fit`` fails, :func:`training.distributed_fit.fit_distributed` runs the same steps and
    callbacks. Returns the number of epochs of both phases.
    """
    compile(model, make_optimizer(config.optimizer, first_phase_learning_rate(config, int(train.cardinality())),
                                  config.weight_decay))
    run_phase = _phase_runner(model, train, val, progress_verbosity(), strategy)
    guard = StopOnNonFiniteLoss(best.path.parent, config.lr)
    run_phase(0, config.epochs, [guard, best, backup_callback(backup_dir / "phase1"), *callbacks])
    if not (config.fine_tune_layers and config.fine_tune_epochs):
        return config.epochs
    count = unfreeze_top(model, config.fine_tune_layers)
    print(f"Fine-tuning the top {count} backbone layers at lr={config.fine_tune_lr}", flush=True)
    compile(model, make_optimizer(config.optimizer, config.fine_tune_lr, config.weight_decay))
    total = config.epochs + config.fine_tune_epochs
    guard.learning_rate = config.fine_tune_lr
    run_phase(config.epochs, total, [guard, best, backup_callback(backup_dir / "phase2"), *callbacks])
    return total


def make_optimizer(name: str, learning_rate, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """``--optimizer`` at a float or ``LearningRateSchedule`` learning rate, with Keras'
    decoupled weight decay when ``weight_decay`` > 0."""
    options = {"weight_decay": weight_decay} if weight_decay else {}  # AdamW keeps its own default otherwise
    return OPTIMIZER_FACTORIES[name](learning_rate=learning_rate, **options)


def first_phase_learning_rate(config: TrainConfig, steps_per_epoch: int):
    """``config.lr``, or a decay from it over all of the first phase's steps: cosine to 0, or
    exponential to a tenth (the material-strength paper's schedule)."""
    steps = max(config.epochs * steps_per_epoch, 1)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=steps)
    if config.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(config.lr, decay_steps=steps, decay_rate=0.1)
    return config.lr


def progress_verbosity() -> int:
    """A progress bar on a terminal, one line per epoch in a log file."""
    return 1 if sys.stdout.isatty() else 2


def _phase_runner(model, train, val, verbose, strategy):
    def run_phase(first: int, last: int, callbacks: list) -> None:
        # Keras' BackupAndRestore leaves the epoch it restored in model._initial_epoch, which fit
        # prefers to its initial_epoch: cleared, or the second phase of a resumed run would start
        # at the epoch its first phase was resumed from.
        model._initial_epoch = None
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            fit_distributed(model, strategy, train, val, last, callbacks, first, verbose)
        else:
            model.fit(train, validation_data=val, initial_epoch=first, epochs=last, verbose=verbose,
                      shuffle=False, callbacks=callbacks)  # the dataset shuffles itself, seeded

    return run_phase


def backup_callback(folder: Path) -> keras.callbacks.BackupAndRestore:
    """Backs the training state up at each epoch's end, so a killed run resumes from there."""
    return keras.callbacks.BackupAndRestore(str(folder), save_freq="epoch", delete_checkpoint=False,
                                            double_checkpoint=True)
