"""``python -m training.run``: train, evaluate and export one model; see ``--help``.

With no arguments it generates (once, cached under the log root) a synthetic sigma-clast set
and trains SedNet on it; ``--task detect`` trains the sigma-clast detector instead
(:mod:`training.detect`). Everything a run writes goes into ``LOGDIR/RUN_NAME/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from datasets.tables import DataError
from models import WeightsError
from training.callbacks import is_chief
from training.config import ConfigError, TrainConfig, parse_config
from training.distribute import StrategyError, set_cluster

ARTEFACTS = ("model.keras", "export", "metrics.json", "config.yaml", "split.csv", "bad_files.csv")


BACKUP = "backup"


def make_run_dir(config: TrainConfig) -> tuple[Path, str]:
    """Creates or finds ``LOGDIR/RUN_NAME``; returns it and ``"new"``, ``"resume"`` or ``"reuse"``.

    A run folder holding an unfinished training's backup is resumed when the configuration
    is the same. Any other existing run folder is never overwritten: a numeric suffix is
    added, unless ``--overwrite`` asks to reuse it (and start its training over).

    Raises:
        ConfigError: the log root cannot be written, or an unfinished run of that name was
            started with another configuration.
    """
    root = Path(config.logdir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as err:
        raise ConfigError(f"The log root {root} cannot be written ({err.strerror or err}); "
                          "pass --logdir with a writable folder.") from err
    if not is_chief():  # other workers write where the user does not look, stable so a restart resumes
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        root = Path(tempfile.gettempdir()) / f"geoxai-{task['type']}-{task['index']}"
    name = config.run_name or _default_run_name(config)
    run_dir = root / name
    if (run_dir / BACKUP).is_dir() and not config.overwrite:
        _require_same_config(run_dir, config)
        return run_dir, "resume"
    suffix = 1
    while run_dir.exists() and not config.overwrite:
        suffix += 1
        run_dir = root / f"{name}-{suffix}"
    state = "reuse" if run_dir.exists() else "new"
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, state


def _default_run_name(config: TrainConfig) -> str:
    data = config.data.split(":", 1)[1] if config.data.startswith("synthetic:") else Path(config.data).stem
    return re.sub(r"[^\w.-]+", "_", f"{config.model}-{data}")


def config_changes(run_dir: Path, config: TrainConfig) -> list[str]:
    """The settings in which ``config`` differs from the one saved in ``run_dir`` (all, if none is)."""
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    current = dataclasses.asdict(config)
    return sorted(k for k in current if k != "overwrite" and saved.get(k) != current[k])


def _require_same_config(run_dir: Path, config: TrainConfig) -> None:
    changed = config_changes(run_dir, config)
    if changed:
        raise ConfigError(f"{run_dir} holds an unfinished run started with other values of {changed}. "
                          "Repeat its command to resume it, pass --overwrite to start it over, or choose "
                          "another --run-name.")


def train_and_report(config: TrainConfig, run_dir: Path, state: str) -> dict:
    """The heavy part: data, model, training, evaluation, export. Returns the metrics."""
    import keras

    from training.callbacks import write_final_metrics
    from training.data import prepare_data
    from training.distribute import configure_devices, make_strategy, speed_switches
    from training.evaluate import evaluate_splits
    from training.export import export_saved_model_atomic
    from training.trainer import BestModelCheckpoint, create_model, fit, tensorboard_callbacks

    configure_devices(config.logical_cpus)
    try:
        strategy = make_strategy(config.strategy)  # before any TF op: collective ops need that
        keras.utils.set_random_seed(config.seed)
        _, jit = speed_switches(config.mixed_precision, config.jit)
        if jit and config.strategy == "multiworker":
            print("note: --jit is not applied under multiworker (XLA cannot compile its collective steps here).")
            jit = False
        data = prepare_data(config, run_dir)
        data.replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            model = create_model(config, len(data.class_names), data.spec.local_size)
    except (DataError, WeightsError, ConfigError, StrategyError):
        if state == "new":
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    print(f"Strategy: {type(strategy).__name__} over {strategy.num_replicas_in_sync} replica(s); "
          f"global batch {config.batch_size * strategy.num_replicas_in_sync}", flush=True)
    if strategy.num_replicas_in_sync > 1:
        print("Each epoch skips the last, partial global batch of the train and validation sets; the "
              "final metrics.json uses every image.", flush=True)
    callbacks = tensorboard_callbacks(config, run_dir, data) + [
        BestModelCheckpoint(run_dir / "model.keras", run_dir / BACKUP / "best.json")]
    with strategy.scope():
        total_epochs = fit(model, config, data.dataset("train", config, training=True, distributed=True),
                           data.dataset("val", config, distributed=True), callbacks, backup_dir=run_dir / BACKUP,
                           jit=jit, strategy=strategy)
    if config.strategy == "multiworker":
        print(f"Final weights fingerprint: {weights_fingerprint(model)}", flush=True)
    shutil.rmtree(run_dir / BACKUP)
    best = keras.saving.load_model(run_dir / "model.keras", compile=False)
    metrics = evaluate_splits(best, data, config, run_dir)
    if config.tb_hparams:
        write_final_metrics(run_dir, metrics, step=total_epochs)
    export_saved_model_atomic(best, run_dir / "export")
    return metrics


def detect_and_report(config: TrainConfig, run_dir: Path, state: str) -> dict:
    """``--task detect``: the detector's data, training and evaluation (training.detect)."""
    from training.data import resolve_source
    from training.detect import train_and_report_detector

    try:
        metrics = train_and_report_detector(config, resolve_source(config), run_dir, run_dir / BACKUP)
    except (DataError, WeightsError, ConfigError):
        if state == "new":
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    return metrics


def weights_fingerprint(model) -> str:
    """A digest of the trainable weights; every worker of a multi-worker run must print the
    same (batch-norm moving statistics are each worker's own and are left out)."""
    digest = hashlib.sha256()
    for weight in model.trainable_weights:
        digest.update(np.asarray(weight.numpy(), np.float32).round(5).tobytes())
    return digest.hexdigest()[:16]


def print_summary(run_dir: Path, metrics: dict, seconds: float, logdir: str) -> None:
    test = metrics["test"]
    print(f"\nDone in {seconds / 60:.1f} min. Test accuracy {test['accuracy']:.3f}, "
          f"macro F1 {test['f1_macro']:.3f}.")
    print(f"Run folder:          {run_dir}")
    print(f"  best model:        {run_dir / 'model.keras'} (lowest validation loss)")
    print(f"  SavedModel:        {run_dir / 'export'} (tf.saved_model.load; signature serving_default)")
    print(f"  metrics:           {run_dir / 'metrics.json'} (train/val/test)")
    print(f"  confusion matrices: {run_dir}/confusion_matrix_{{train,val,test}}.{{csv,png}}")
    print(f"  split, bad files:  {run_dir / 'split.csv'}, {run_dir / 'bad_files.csv'}")
    print(f"  resolved config:   {run_dir / 'config.yaml'}")
    print(f"View in TensorBoard: tensorboard --logdir {logdir}")


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        config = parse_config(argv)
        if config.workers:
            set_cluster(config.workers, config.task_index)
        run_dir, state = make_run_dir(config)
        config.to_yaml(run_dir / "config.yaml")
        print(f"{'Resuming the unfinished run in' if state == 'resume' else 'Run folder:'} {run_dir}", flush=True)
        if config.task == "detect":
            metrics = detect_and_report(config, run_dir, state)
        else:
            metrics = train_and_report(config, run_dir, state)
    except (ConfigError, DataError, WeightsError, StrategyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if config.task == "detect":
        from training.detect import print_detection_summary

        print_detection_summary(run_dir, metrics, time.perf_counter() - started, config.logdir)
    else:
        print_summary(run_dir, metrics, time.perf_counter() - started, config.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
