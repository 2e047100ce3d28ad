"""What training writes for TensorBoard: read back from the event files and from a real server."""

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import models  # noqa: F401  (registers the custom layers model.keras needs)
from training.tasks.classify.callbacks import GradCamImages, scores_from_confusion
from training.distribute import is_chief

EPOCHS = 2  # the sednet_run fixture trains two epochs on ccw/cw


def _events(path):
    return EventAccumulator(str(path), size_guidance={"tensors": 0}).Reload()


def _validation_count(run_dir) -> int:
    return int((pd.read_csv(run_dir / "split.csv")["split"] == "val").sum())


def _values(events, tag):
    return [(e.step, tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]


@pytest.mark.slow
def test_event_files_hold_every_tag_at_every_epoch(sednet_run):
    run_dir, _ = sednet_run
    train, validation = _events(run_dir / "train"), _events(run_dir / "validation")
    for events in (train, validation):
        for tag in ("epoch_loss", "epoch_accuracy", "epoch_f1_macro", "scores/f1_macro", "scores/precision_macro",
                    "scores/recall_macro", "scores_per_class/f1_cw", "scores_per_class/recall_ccw"):
            values = _values(events, tag)
            assert [step for step, _ in values] == list(range(EPOCHS)), tag
            assert all(np.isfinite(v) and 0 <= v or tag == "epoch_loss" for _, v in values), tag
        steps, image = _values(events, "confusion_matrix")[-1]
        assert tf.image.decode_png(image[2]).shape[-1] == 3
    gradcam_tags = [t for t in validation.Tags()["tensors"] if t.startswith("gradcam/")]
    shown = min(8, _validation_count(run_dir))  # the default 8 images, or all if fewer
    assert len(gradcam_tags) == 2 * shown and {t.split("/")[1] for t in gradcam_tags} == {"whole", "local"}
    assert {t.rsplit("_", 1)[1] for t in gradcam_tags} == {"cw", "ccw"}  # class-balanced
    step, image = _values(validation, "gradcam/whole/00_ccw")[-1]
    assert step == EPOCHS - 1 and tf.image.decode_png(image[2]).shape == (24 + 96, 96, 3)  # caption + 32 px x3


@pytest.mark.slow
def test_histograms_count_every_weight_and_activation(sednet_run):
    run_dir, _ = sednet_run
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    train = _events(run_dir / "train")
    weight_tags = [t for t in train.Tags()["tensors"] if t.startswith("weights/")]
    assert len(weight_tags) == len(model.trainable_weights)
    for weight in model.trainable_weights[:5] + model.trainable_weights[-2:]:
        steps = _values(train, f"weights/{weight.path}")
        assert [s for s, _ in steps] == list(range(EPOCHS))
        assert steps[-1][1][:, 2].sum() == np.prod(weight.shape)
    validation = _events(run_dir / "validation")
    for layer in ("features", "whole_features", "local_features"):
        _, histogram = _values(validation, f"activations/{layer}")[-1]
        shown = min(8, _validation_count(run_dir))
        assert histogram[:, 2].sum() == shown * np.prod(model.get_layer(layer).output.shape[1:])


@pytest.mark.slow
def test_hparams_final_metrics_and_model_summary(sednet_run):
    run_dir, _ = sednet_run
    root = _events(run_dir)
    tags = root.Tags()["tensors"]
    assert "_hparams_/session_start_info" in tags
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (step, value), = _values(root, "final/test_accuracy")
    assert step == EPOCHS and value == pytest.approx(metrics["test"]["accuracy"])
    summary = _values(root, "model/summary")[0][1].item().decode()
    assert "whole_features" in summary and "Total params" in summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base, path, data=None):
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return body if path.startswith("/data/plugin/images/individualImage") else json.loads(body)


@pytest.fixture(scope="module")
def tensorboard_server(sednet_run):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(sednet_run[0].parent),
                                "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                if "e2e/validation" in _get(base, "/data/runs"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"TensorBoard did not come up: {process.stderr.read()[-2000:]!r}")
            time.sleep(1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_real_tensorboard_server_serves_scalars_images_histograms_and_hparams(tensorboard_server):
    base = tensorboard_server
    runs = _get(base, "/data/runs")
    assert {"e2e", "e2e/train", "e2e/validation"} <= set(runs)
    scalars = _get(base, "/data/plugin/scalars/tags")
    assert {"epoch_loss", "epoch_f1_macro", "scores/f1_macro"} <= set(scalars["e2e/validation"])
    series = _get(base, "/data/plugin/scalars/scalars?run=e2e%2Fvalidation&tag=epoch_loss")
    assert [point[1] for point in series] == list(range(EPOCHS))
    images = _get(base, "/data/plugin/images/tags")
    assert "gradcam/whole/00_ccw" in images["e2e/validation"]
    assert "confusion_matrix" in images["e2e/train"]
    query = urllib.parse.urlencode({"run": "e2e/validation", "tag": "gradcam/whole/00_ccw", "sample": 0})
    entries = _get(base, f"/data/plugin/images/images?{query}")
    png = _get(base, "/data/plugin/images/" + entries[-1]["query"].join(["individualImage?", ""]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    histograms = _get(base, "/data/plugin/histograms/tags")
    assert "activations/features" in histograms["e2e/validation"]
    assert any(tag.startswith("weights/") for tag in histograms["e2e/train"])
    experiment = _get(base, "/data/plugin/hparams/experiment", data=json.dumps({"experimentName": ""}).encode())
    assert {"model", "lr", "epochs", "image_size"} <= {info["name"] for info in experiment["hparamInfos"]}
    assert "final/test_accuracy" in {m["name"]["tag"] for m in experiment["metricInfos"]}


def test_only_the_chief_writes(tmp_path, monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    callback = GradCamImages(tmp_path, {"image": np.zeros((1, 32, 32, 3), np.float32)}, [0], ["a", "b"])
    callback.on_epoch_end(0)  # would fail without a model, had it tried to write
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["h:1"], **cluster},
                                                "task": {"type": "worker", "index": 0}}))
    assert not is_chief()
    monkeypatch.delenv("TF_CONFIG")
    assert is_chief()


def test_scores_from_a_confusion_matrix():
    scores = scores_from_confusion(np.array([[8.0, 2.0], [0.0, 0.0]]))
    np.testing.assert_allclose(scores["precision"], [1.0, 0.0])
    np.testing.assert_allclose(scores["recall"], [0.8, 0.0])
    np.testing.assert_allclose(scores["f1"], [2 * 0.8 / 1.8, 0.0])
