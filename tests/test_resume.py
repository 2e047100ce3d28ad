"""A training process killed with SIGKILL mid-run resumes where it stopped."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EPOCHS = 4


def _steps(folder, tag):
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0}, purge_orphaned_data=False).Reload()
    return [event.step for event in events.Tensors(tag)]


@pytest.mark.slow
def test_a_killed_run_resumes_after_its_last_complete_epoch(sigma_set, tmp_path):
    command = [sys.executable, "-m", "training.run", "--data", str(sigma_set), "--epochs", str(EPOCHS),
               "--image-size", "32", "--local-size", "16", "--batch-size", "4", "--logdir", str(tmp_path),
               "--run-name", "killed"]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=environment)
    try:
        for line in process.stdout:
            if line.startswith(f"Epoch 2/{EPOCHS}"):
                process.kill()  # SIGKILL: no handler, no cleanup
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    run_dir = tmp_path / "killed"
    assert (run_dir / "backup").is_dir() and (run_dir / "model.keras").is_file()
    assert not (run_dir / "metrics.json").exists()

    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming the unfinished run in {run_dir}" in resumed.stdout
    assert f"Epoch 1/{EPOCHS}" not in resumed.stdout and f"Epoch 2/{EPOCHS}" in resumed.stdout
    for subdir in ("train", "validation"):
        assert _steps(run_dir / subdir, "epoch_loss") == list(range(EPOCHS))  # each step once
    assert _steps(run_dir / "validation", "gradcam/whole/00_ccw") == list(range(EPOCHS))
    assert not (run_dir / "backup").exists()
    assert (run_dir / "metrics.json").is_file() and (run_dir / "export" / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("_")) == ["killed"]


def test_an_unfinished_run_with_other_settings_is_not_resumed(tmp_path, capsys):
    from training.run import main

    run_dir = tmp_path / "half"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("epochs: 3\n")
    assert main(["--logdir", str(tmp_path), "--run-name", "half", "--epochs", "5"]) == 2
    assert "unfinished run started with other values of" in capsys.readouterr().err
    assert (run_dir / "backup").is_dir()
