"""Strategies: mirrored over two logical CPUs against the default, two real multi-worker
processes, and the refusals."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from datasets.synthetic import write_dataset
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
def test_mirrored_over_two_logical_cpus_matches_the_default_strategy(tmp_path):
    """One global batch holds the whole training set (2 replicas x 6 against 12), so the order
    tf.data shuffles in (which differs under MirroredStrategy) cannot matter, on a model with
    neither batch normalisation nor dropout and no augmentation: the replicas' summed step
    is the single device's step, and the trained weights and every score agree to float
    rounding. SGD, whose step is linear in the gradient (Adam's normalised step turns the
    rounding of a near-zero gradient into a whole step). A split smaller than one global
    batch is refused by name. Break tried: the global batch not multiplied by the replicas
    (two steps of 6)."""
    manifest = write_dataset("sigma_clasts", tmp_path / "data", n=36, seed=0, size=64)
    table = pd.read_csv(manifest)
    table["split"] = ["train", "val", "test"] * 12
    table.to_csv(manifest, index=False)
    plain = ["--model", "vgg19", "--weights", "none", "--train-backbone", "--dropout", "0", "--no-augment",
             "--optimizer", "sgd", "--lr", "0.01", "--epochs", "2"]
    out, mirrored = _train(manifest, tmp_path, "mirrored", *plain, "--strategy", "mirrored", "--logical-cpus", "2",
                           "--batch-size", "6")
    assert "MirroredStrategy over 2 replica(s); global batch 12" in out
    out, default = _train(manifest, tmp_path, "default", *plain, "--strategy", "default", "--batch-size", "12")
    assert "_DefaultDistributionStrategy over 1 replica(s); global batch 12" in out
    weights = [keras.saving.load_model(tmp_path / name / "model.keras", compile=False).get_weights()
               for name in ("mirrored", "default")]
    for trained_mirrored, trained_default in zip(*weights):
        np.testing.assert_allclose(trained_mirrored, trained_default, rtol=1e-5, atol=1e-7)
    for split in ("train", "val", "test"):
        assert mirrored[split]["loss"] == pytest.approx(default[split]["loss"], rel=1e-4), split
        assert mirrored[split]["accuracy"] == default[split]["accuracy"], split
    refused = subprocess.run([sys.executable, "-m", "training.run", "--data", str(manifest), *TINY_MIRRORED, *plain,
                              "--logdir", str(tmp_path), "--strategy", "mirrored", "--logical-cpus", "2",
                              "--batch-size", "7"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2
    assert ("The train split has 12 images, fewer than one global batch of 14 (2 replicas); lower --batch-size "
            "or add images.") in refused.stderr


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
    """Both workers end on the same weights, which moved from their initial values, and each
    trained on its own half of the training set. Breaks tried: test_step run in place of
    train_step (fingerprints unchanged); sharding turned off (each worker reads the whole set)."""
    results = _train_two_workers(["--data", str(sigma_set), *TINY_MIRRORED, "--epochs", "2"], tmp_path)
    initial, final = (_printed(results, f"{moment} weights fingerprint: ") for moment in ("Initial", "Final"))
    assert final[0] == final[1]  # identical weights on both workers ...
    assert initial[0] != final[0] and initial[1] != final[1]  # ... that training moved
    train_images = int((pd.read_csv(tmp_path / "cluster" / "split.csv")["split"] == "train").sum())
    shards = [int(line.split()[0]) for line in _printed(results, "This worker's shard: ")]
    global_batch = 2 * 2
    assert shards[0] == shards[1] and sum(shards) == train_images // global_batch * global_batch
    assert "CollectiveAllReduceStrategy over 2 replica(s)" in results[0][0]  # MultiWorkerMirroredStrategy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster"]  # the chief's run folder alone
    run_dir = tmp_path / "cluster"
    assert (run_dir / "export" / "saved_model.pb").is_file() and (run_dir / "metrics.json").is_file()
    assert any((run_dir / "train").glob("events.out.tfevents.*"))
    worker_dir = next(line.split()[-1] for line in results[1][0].splitlines() if line.startswith("Run folder:"))
    assert not worker_dir.startswith(str(tmp_path))
    shutil.rmtree(worker_dir, ignore_errors=True)


def _train_two_workers(argv: list[str], logdir: Path) -> list[tuple[str, str]]:
    """``python -m training.run ARGV`` as two real worker processes of one cluster on this
    machine, into ``LOGDIR/cluster``; what each printed (stdout, stderr), both checked to succeed."""
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    command = [sys.executable, "-m", "training.run", *argv, "--logdir", str(logdir), "--run-name", "cluster",
               "--strategy", "multiworker", "--workers", workers]
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
    return results


@pytest.mark.slow
def test_two_worker_processes_train_a_segmentation_run(tmp_path):
    """--task segment under MultiWorkerMirroredStrategy: the validation scores each epoch are
    predicted on each worker alone (model.predict would spread them over the cluster and fails
    there). Break tried: SectionScores through model.predict again; the workers then stop with
    a collective-op error."""
    write_dataset("seismic_salt", tmp_path / "data", n=6, seed=0, size=64)
    results = _train_two_workers(["--task", "segment", "--data", str(tmp_path / "data" / "manifest.csv"),
                                  "--patch-size", "32", "--stride", "16", "--encoder-width", "8", "--epochs", "2",
                                  "--batch-size", "2", "--tb-gradcam-images", "1"], tmp_path / "logs")
    initial, final = (_printed(results, f"{moment} weights fingerprint: ") for moment in ("Initial", "Final"))
    assert final[0] == final[1] and initial[0] != final[0]
    metrics = json.loads((tmp_path / "logs" / "cluster" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["dice"] <= 1
    worker_dir = next(line.split()[-1] for line in results[1][0].splitlines() if line.startswith("Run folder:"))
    shutil.rmtree(worker_dir, ignore_errors=True)


def _printed(results: list[tuple[str, str]], prefix: str) -> list[str]:
    """What each worker printed after ``prefix``, one line per worker."""
    lines = [line.removeprefix(prefix) for out, _ in results for line in out.splitlines() if line.startswith(prefix)]
    assert len(lines) == len(results), prefix
    return lines


def test_a_tf_config_that_is_not_json_stops_training_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert main(["--logdir", str(tmp_path)]) == 2
    assert "error: TF_CONFIG is not JSON" in capsys.readouterr().err
