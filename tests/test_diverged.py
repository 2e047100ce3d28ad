"""A run whose loss or weights turn NaN stops with one line naming the epoch and what to try
(exit 2), keeping its last complete epoch (issue 32, point 16)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import keras
from training.config import parse_config
from training.phases import BestModelCheckpoint, TrainingDiverged, fit
from training.run import main as run_main
from training.tasks import TASKS


def _data_turning_nan_in_epoch(epoch: int) -> tf.data.Dataset:
    """Four batches a pass of y = 2x; from the given (1-based) pass on, the inputs are NaN."""
    passes = iter(range(1, 100))

    def samples():
        bad = next(passes) >= epoch
        for x in np.linspace(-1, 1, 32, dtype=np.float32):
            yield np.array([np.nan if bad else x], np.float32), np.array([2 * x], np.float32)

    spec = (tf.TensorSpec((1,), tf.float32), tf.TensorSpec((1,), tf.float32))
    return tf.data.Dataset.from_generator(samples, output_signature=spec).batch(8).apply(
        tf.data.experimental.assert_cardinality(4))


def test_a_loss_that_turns_nan_stops_the_fit_and_keeps_the_last_complete_epoch(tmp_path):
    """Break tried: the guard placed after the best-model checkpoint and the backup (they then
    save the epoch that broke), and the guard left out (fit ends and the NaN model is kept)."""
    config = parse_config(["--task", "regress", "--epochs", "4", "--lr", "0.01", "--lr-schedule", "constant"], TASKS)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    val = tf.data.Dataset.from_tensor_slices((np.ones((8, 1), np.float32), 2 * np.ones((8, 1), np.float32))).batch(8)
    best = BestModelCheckpoint(tmp_path / "model.keras", tmp_path / "backup" / "best.json")
    with pytest.raises(TrainingDiverged) as stopped:
        fit(model, config, _data_turning_nan_in_epoch(3), val, [], tmp_path / "backup",
            lambda m, optimizer: m.compile(optimizer, "mse"), best)
    message = str(stopped.value)
    assert message.startswith("The training loss became nan in epoch 3 (batch 1).") and "\n" not in message
    assert "Try a lower --lr (this run: 0.01)" in message and str(tmp_path / "model.keras") in message
    kept = keras.saving.load_model(tmp_path / "model.keras")
    assert all(np.isfinite(w).all() for w in kept.get_weights())
    assert (tmp_path / "backup" / "best.json").read_text().count('"epoch": 1') == 1  # the second epoch, 0-based


def test_a_diverging_run_ends_in_one_line_and_exit_2(tmp_path, capsys):
    """A learning rate of 1e30 overflows the weights in the first epoch while the loss still
    reads finite. Break tried: no weights check at the epoch's end (the run then dies in the
    histogram callback with a TensorFlow traceback)."""
    code = run_main(["--task", "classify", "--data", "synthetic:sigma_clasts", "--synthetic-n", "24", "--epochs", "2",
                     "--image-size", "32", "--local-size", "16", "--batch-size", "8", "--lr", "1e30",
                     "--optimizer", "sgd", "--logdir", str(tmp_path), "--run-name", "wild"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert errors[-1] == ("error: The weights became infinite or NaN in epoch 1. Try a lower --lr (this run: 1e+30) "
                          "or look for extreme values in the data; no epoch had completed.")
    assert not (tmp_path / "wild" / "model.keras").exists() and (tmp_path / "wild" / "config.yaml").is_file()
