"""What every task's training run shares: devices and strategy, the model, the callbacks in
their order, the training phases with resume, the best model, its evaluation and export, the
final HParams scores and the summary's frame. The task (:mod:`training.tasks`) supplies the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from datasets.tables import DataError
from models import WeightsError, start_from, trained_model_file
from models.saving import load_keras_file
from training import summaries as tb
from training.config import ConfigError, TrainConfig
from training.distribute import StrategyError, configure_devices, make_strategy, set_cluster, speed_switches
from training.phases import BestModelCheckpoint, TrainingDiverged, fit
from training.run_folders import BACKUP, make_run_dir
from training.tasks import TASKS, Task, TaskData

USER_ERRORS = (ConfigError, DataError, WeightsError, StrategyError, TrainingDiverged)  # one line, exit 2


@contextlib.contextmanager
def removed_on_error(run_dir: Path, state: str) -> Iterator[None]:
    """Removes a run folder this run created when a user error stops it, so no empty run is left."""
    try:
        yield
    except USER_ERRORS:
        if state == "new":
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def run_training(config: TrainConfig) -> tuple[Path, dict]:
    """One whole run: its folder (new, or the unfinished one resumed), the saved config, then
    :func:`train_and_report`. Returns the run folder and the metrics.

    Raises:
        ConfigError, DataError, WeightsError, StrategyError: each with a message for the user.
    """
    if config.workers:
        set_cluster(config.workers, config.task_index)
    run_dir, state = make_run_dir(config)
    config.to_yaml(run_dir / "config.yaml")
    print(f"{'Resuming the unfinished run in' if state == 'resume' else 'Run folder:'} {run_dir}", flush=True)
    return run_dir, train_and_report(config, run_dir, state)


def train_and_report(config: TrainConfig, run_dir: Path, state: str) -> dict:
    """Data, model, training, evaluation and export of one run of ``config.task``; returns the metrics."""
    task = TASKS[config.task]
    configure_devices(config.logical_cpus)
    with removed_on_error(run_dir, state):
        strategy = make_strategy(config.strategy)  # before any TF op: collective ops need that
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        jit = _jit_in_effect(config)
        data = task.prepare_data(config, run_dir)
        with strategy.scope():
            model = build_or_start_from(task, config, data)
    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multiworker:
        print(f"Initial weights fingerprint: {weights_fingerprint(model)}", flush=True)
    replicas = strategy.num_replicas_in_sync
    print(f"Strategy: {type(strategy).__name__} over {replicas} replica(s); global batch "
          f"{config.batch_size * replicas}", flush=True)
    if replicas > 1:
        print("Each epoch skips the last, partial global batch of the train and validation sets; the "
              "final metrics.json uses every image.", flush=True)
    with strategy.scope():
        total_epochs = fit(model, config, data.dataset("train", config, training=True, replicas=replicas),
                           data.dataset("val", config, replicas=replicas),
                           tensorboard_callbacks(task, config, run_dir, data),
                           best=BestModelCheckpoint(run_dir / "model.keras", run_dir / BACKUP / "best.json"),
                           backup_dir=run_dir / BACKUP,
                           compile=lambda m, optimizer: task.compile(m, optimizer, config, jit), strategy=strategy)
    if multiworker:
        print(f"Final weights fingerprint: {weights_fingerprint(model)}", flush=True)
    shutil.rmtree(run_dir / BACKUP)
    best = load_keras_file(run_dir / "model.keras")
    metrics = task.evaluate(best, config, data, run_dir)
    if config.tb_hparams:
        tb.write_final_metrics(run_dir, task.final_scalars(metrics), step=total_epochs)
    task.export(best, config, run_dir / "export")
    tb.close_writers(run_dir)
    return metrics


def tensorboard_callbacks(task: Task, config: TrainConfig, run_dir: Path,
                          data: TaskData) -> list[keras.callbacks.Callback]:
    """The run's TensorBoard callbacks in the one order that works: the task's epoch metrics add
    to the logs before :class:`~training.summaries.EpochScalars` writes them; the task's pictures,
    the HParams and the model summary follow; the flush comes after every writer. (The trainer
    puts the best-model checkpoint and then each phase's backup before these.)"""
    callbacks = [*task.epoch_metrics(config, run_dir, data), tb.EpochScalars(run_dir),
                 *task.summaries(config, run_dir, data)]
    if config.tb_hparams:
        callbacks.append(tb.HParams(run_dir, dataclasses.asdict(config), run_dir.name))
    if config.tb_model_summary:
        callbacks.append(tb.ModelSummary(run_dir))
    return callbacks + [tb.FlushSummaries(run_dir)]


def _jit_in_effect(config: TrainConfig) -> bool:
    _, jit = speed_switches(config.mixed_precision, config.jit)
    if jit and config.strategy == "multiworker":
        print("note: --jit is not applied under multiworker (XLA cannot compile its collective steps here).")
        return False
    return jit


def build_or_start_from(task: Task, config: TrainConfig, data: TaskData) -> keras.Model:
    """The task's model; with ``--weights`` naming a trained run, started from that run's weights
    (all but an output layer of another shape, see :func:`models.start_from`)."""
    trained = trained_model_file(config.weights)
    if trained is None:
        return task.build_model(config, data)
    model = task.build_model(dataclasses.replace(config, weights="none"), data)
    fresh = start_from(model, trained)
    copied = sum(1 for layer in model.layers if layer.weights) - len(fresh)
    print(f"Started from {trained}: {copied} layers copied"
          + (f", {', '.join(fresh)} initialised afresh (missing there, or of another shape)." if fresh else "."),
          flush=True)
    return model


def weights_fingerprint(model: keras.Model) -> str:
    """A digest of the learned weights, frozen or not, so that the digests before and after
    training compare; every worker of a multi-worker run must print the same (batch-norm
    moving statistics are each worker's own and are left out)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        if not weight.path.endswith(("moving_mean", "moving_variance")):
            digest.update(np.asarray(weight.numpy(), np.float32).round(5).tobytes())
    return digest.hexdigest()[:16]


def print_summary(task: Task, run_dir: Path, metrics: dict, seconds: float, logdir: str) -> None:
    """The closing lines: time and headline scores, then where each artefact is."""
    lines = [("best model", f"{run_dir / 'model.keras'} (lowest validation loss)"),
             ("SavedModel", f"{run_dir / 'export'} ({task.export_note()})"),
             *task.report_lines(run_dir),
             ("split, bad files", f"{run_dir / 'split.csv'}, {run_dir / 'bad_files.csv'}"),
             ("resolved config", str(run_dir / "config.yaml"))]
    width = max(len(what) for what, _ in lines) + 1
    print(f"\nDone in {seconds / 60:.1f} min. {task.headline(metrics)}".rstrip())
    print(f"Run folder: {run_dir}")
    for what, where in lines:
        print(f"  {what + ':':<{width}} {where}")
    print(f"View in TensorBoard: tensorboard --logdir {logdir}")
