"""Shared fixtures: tiny seeded data sets, quiet TensorFlow, the repository root on sys.path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

TINY = ["--epochs", "2", "--image-size", "32", "--local-size", "16", "--batch-size", "8"]

# Fixtures that train a model or run a training process: a test using one is slow by definition.
TRAINING_FIXTURES = {"sednet_run", "shortcut_only", "shortcut_free", "trained", "segmentation_run", "detector_run",
                     "trained_cnn", "trained_sednet", "explained", "fusion_run", "segment_run",
                     "interrupted_and_resumed", "tensorboard_server", "regress_run", "facies_shortcut_run", "scene_run"}


def pytest_collection_modifyitems(items):
    """Marks every test that uses a training fixture ``slow``, so that ``-m "not slow"`` (the
    quick loop while editing) never waits for a training run, whether or not a test says so.

    Then puts the files with slow tests first, each file's tests kept together and in order:
    pytest-xdist hands out whole files in this order, so the quick files fill the end and
    neither worker is left alone with a long file."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def shear_handedness(tail_mask: np.ndarray) -> float:
    """A rotation-invariant, mirror-odd measure of a single sigma clast's two tails.

    With c a tail's centroid relative to the clast centre (the midpoint of both tails) and e
    that tail's long axis, (c.e)(c x e) is positive for a clockwise (dextral) clast in image
    coordinates (y down) and negative for its mirror image: the stair-step of the tails.
    """
    count, labels = cv2.connectedComponents(tail_mask.astype(np.uint8))
    sizes = np.bincount(labels.ravel())[1:]
    tails = [np.argwhere(labels == i + 1)[:, ::-1].astype(float) for i in np.argsort(sizes)[-2:]]
    center = np.mean([t.mean(axis=0) for t in tails], axis=0)
    total = 0.0
    for points in tails:
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(points.T))
        e = eigenvectors[:, np.argmax(eigenvalues)]
        c = points.mean(axis=0) - center
        total += (c @ e) * (c[0] * e[1] - c[1] * e[0])
    return float(total)


@pytest.fixture(scope="session")
def sigma_set(tmp_path_factory) -> Path:
    """24 synthetic sigma-clast images at 64 px: the manifest's path."""
    from datasets.synthetic import write_dataset

    return write_dataset("sigma_clasts", tmp_path_factory.mktemp("sigma"), n=24, seed=0, size=64)


@pytest.fixture(scope="session")
def sednet_run(sigma_set, tmp_path_factory):
    """A real ``python -m training.run`` process, configured by YAML plus flags."""
    logdir = tmp_path_factory.mktemp("logs")
    config = logdir / "tiny.yaml"
    config.write_text(f"model: sednet\ndata: {sigma_set}\nepochs: 1\n")
    result = subprocess.run([sys.executable, "-m", "training.run", "--config", str(config), *TINY,
                             "--logdir", str(logdir), "--run-name", "e2e"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir / "e2e", result.stdout


def snapshot(root: Path) -> dict:
    """Every file's bytes digest and every link's target, by raw file name."""
    state = {}
    for folder, _, files in os.walk(os.fsencode(root)):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                state[path] = ("link", os.readlink(path))
            else:
                state[path] = hashlib.sha256(Path(os.fsdecode(path)).read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="session")
def sem_lots(tmp_path_factory) -> Path:
    """36 synthetic SEM images of 12 lots at 48 px: the manifest's path."""
    from datasets.synthetic import write_dataset

    return write_dataset("sem_crystals", tmp_path_factory.mktemp("sem"), n=36, seed=0, size=48, lots=12)


REGRESS_TINY = ["--task", "regress", "--model", "sednet", "--image-size", "32", "--local-size", "16", "--epochs", "2",
                "--batch-size", "8", "--tb-histogram-freq", "1", "--tb-hparams", "--no-augment"]


@pytest.fixture(scope="session")
def regress_run(sem_lots, tmp_path_factory):
    """One real ``--task regress`` run on the lots, with one image whose target is not a number
    and one lot of a single image (a copy of the first): the run folder and what it printed."""
    import contextlib
    import io
    import shutil

    import pandas as pd

    from training.run import main

    table = pd.read_csv(sem_lots)
    table["path"] = [str(sem_lots.parent / p) for p in table["path"]]
    table["cps"] = table["cps"].astype(object)
    table.loc[3, "cps"] = "broken gauge"
    single = table.iloc[[0]].assign(lot="lot_single", path=str(sem_lots.parent / "single.png"))
    shutil.copy(table["path"].iloc[0], single["path"].iloc[0])
    manifest = tmp_path_factory.mktemp("regress_data") / "lots.csv"
    pd.concat([table, single]).to_csv(manifest, index=False)
    logdir = tmp_path_factory.mktemp("regress_logs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--data", str(manifest), *REGRESS_TINY, "--logdir", str(logdir), "--run-name", "lots"]) == 0
    return logdir / "lots", out.getvalue()


@pytest.fixture(scope="session")
def tiny_unet_run(tmp_path_factory) -> Path:
    """A --task segment run folder as training.run leaves it, with an untrained U-Net of encoder
    width 8 on 32-pixel patches every 16 pixels (training is tested in test_segment_run.py)."""
    from models.unet import build_unet_resnet34
    from training.config import parse_config
    from training.tasks import TASKS

    run = tmp_path_factory.mktemp("unet_run")
    parse_config(["--task", "segment", "--patch-size", "32", "--stride", "16", "--encoder-width", "8"],
                 TASKS).to_yaml(run / "config.yaml")
    build_unet_resnet34(1, (32, 32, 1), encoder_width=8).save(run / "model.keras")
    return run


@pytest.fixture(autouse=True)
def _seeded():
    import keras

    keras.utils.set_random_seed(0)
