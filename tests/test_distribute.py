"""Strategies: MirroredStrategy over two logical CPUs against the default, and the refusals."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from training.distribute import StrategyError, make_strategy, read_tf_config
from training.run import main

TINY_MIRRORED = ["--epochs", "3", "--image-size", "32", "--local-size", "16", "--batch-size", "2",
                 "--tb-gradcam-freq", "0", "--tb-histogram-freq", "0"]


def _train(sigma_set, logdir, name, *extra):
    result = subprocess.run([sys.executable, "-m", "training.run", "--data", str(sigma_set), *TINY_MIRRORED,
                             "--logdir", str(logdir), "--run-name", name, *extra],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads((logdir / name / "metrics.json").read_text())


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_the_default_strategy(sigma_set, tmp_path):
    """Same data, seed and global batch (2 replicas x 2 = 4 against 4): the runs differ only
    in how batch statistics are split across replicas, so the final metrics agree within
    0.15 in loss and 0.2 in accuracy on this tiny set."""
    out, mirrored = _train(sigma_set, tmp_path, "mirrored", "--strategy", "mirrored", "--logical-cpus", "2")
    assert "MirroredStrategy over 2 replica(s); global batch 4" in out
    out, default = _train(sigma_set, tmp_path, "default", "--strategy", "default", "--batch-size", "4")
    assert "_DefaultDistributionStrategy over 1 replica(s); global batch 4" in out
    for split in ("train", "val", "test"):
        assert abs(mirrored[split]["loss"] - default[split]["loss"]) <= 0.15, split
        assert abs(mirrored[split]["accuracy"] - default[split]["accuracy"]) <= 0.2, split


def test_mirrored_with_one_device_falls_back_with_a_warning(capsys):
    assert make_strategy("mirrored").num_replicas_in_sync == 1
    assert "needs two or more devices and found one; training with the default strategy" in capsys.readouterr().out


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs TF_CONFIG"),
    ("{not json", "TF_CONFIG is malformed"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is malformed"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "is not in its cluster"),
])
def test_malformed_tf_config_is_named(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(StrategyError, match=message):
        read_tf_config()


def test_multiworker_is_refused_with_the_reason(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(StrategyError, match="keras-team/keras#20585"):
        make_strategy("multiworker")


def test_unknown_strategy_and_missing_tpu(tmp_path, capsys):
    assert main(["--strategy", "horovod", "--logdir", str(tmp_path)]) == 2
    assert "strategy='horovod' is not one of" in capsys.readouterr().err
    with pytest.raises(StrategyError, match="--strategy tpu found no TPU"):
        make_strategy("tpu")
