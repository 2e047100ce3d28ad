"""Strategies: mirrored over two logical CPUs against the default, two real multi-worker
processes, and the refusals."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

from training.distribute import StrategyError, make_strategy, read_tf_config, set_cluster, speed_switches
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
    ("{not json", "TF_CONFIG is not JSON"),
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


def test_speed_switches_say_they_do_nothing_on_a_cpu(capsys):
    assert speed_switches(mixed_precision=True, jit=True) == (False, False)
    assert "no GPU, so --mixed-precision and --jit do nothing here" in capsys.readouterr().out
    assert speed_switches(mixed_precision=False, jit=False) == (False, False)
    assert capsys.readouterr().out == ""


def test_workers_flag_builds_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "")  # restored after the test, so later processes see no cluster
    set_cluster("10.0.0.1:2222,10.0.0.2:2222", 1)
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                                                   "task": {"type": "worker", "index": 1}}
    with pytest.raises(StrategyError, match="two or more host:port"):
        set_cluster("10.0.0.1:2222", 0)


def test_unknown_strategy_and_missing_tpu(tmp_path, capsys):
    assert main(["--strategy", "horovod", "--logdir", str(tmp_path)]) == 2
    assert "strategy='horovod' is not one of" in capsys.readouterr().err
    with pytest.raises(StrategyError, match="--strategy tpu found no TPU"):
        make_strategy("tpu")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_processes_train_together_and_only_the_chief_writes(sigma_set, tmp_path):
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    command = [sys.executable, "-m", "training.run", "--data", str(sigma_set), *TINY_MIRRORED, "--epochs", "2",
               "--logdir", str(tmp_path), "--run-name", "cluster", "--strategy", "multiworker", "--workers", workers]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = [subprocess.Popen([*command, "--task-index", str(i)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=environment) for i in range(2)]
    try:
        results = [process.communicate(timeout=600) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
    fingerprints = [line for out, _ in results for line in out.splitlines() if "weights fingerprint" in line]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]  # identical trainable weights
    assert "CollectiveAllReduceStrategy over 2 replica(s)" in results[0][0]  # MultiWorkerMirroredStrategy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster"]  # the chief's run folder alone
    run_dir = tmp_path / "cluster"
    assert (run_dir / "export" / "saved_model.pb").is_file() and (run_dir / "metrics.json").is_file()
    assert any((run_dir / "train").glob("events.out.tfevents.*"))
    worker_dir = next(line.split()[-1] for line in results[1][0].splitlines() if line.startswith("Run folder:"))
    assert not worker_dir.startswith(str(tmp_path))
    shutil.rmtree(worker_dir, ignore_errors=True)


def test_a_tf_config_that_is_not_json_stops_training_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert main(["--logdir", str(tmp_path)]) == 2
    assert "error: TF_CONFIG is not JSON" in capsys.readouterr().err
