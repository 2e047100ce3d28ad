"""The sigma-clast detector: the model, its training run, COCO scoring and the two-stage pipeline."""

import shutil
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from datasets.detection import ImageBoxes, detection_dataset, load_box_arrays, load_detection_table
from datasets.images import read_image, write_image
from datasets.synthetic import write_dataset
from explain.run import main as explain_main
from explain.two_stage import annotate
from models import WeightsError, build_model
from models.detector import detect
from training.tasks.detect.metrics import coco_map, match_to_truth
from training.run import main as train_main

DETECT_TINY = ["--task", "detect", "--synthetic-n", "12", "--synthetic-size", "96", "--image-size", "96",
               "--epochs", "2", "--batch-size", "4"]


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    """A real ``python -m training.run --task detect`` process predicting cw/ccw per box."""
    logdir = tmp_path_factory.mktemp("detect_logs")
    result = subprocess.run([sys.executable, "-m", "training.run", *DETECT_TINY, "--detect-classes", "labels",
                             "--logdir", str(logdir), "--run-name", "det"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir / "det", result.stdout


def test_a_tiny_detector_trains_a_few_steps_and_predicts_well_formed_boxes(tmp_path):
    table, classes = load_detection_table(write_dataset("sigma_clasts", tmp_path, n=8, seed=0, size=96, max_clasts=3))
    arrays = load_box_arrays(table, classes, 96)
    model = build_model("detector", len(classes), (96, 96, 3), weights="none")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(detection_dataset(arrays, 4, training=True, mirror=np.array([1, 0])), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    model.prediction_decoder = keras_hub.layers.NonMaxSuppression(  # every box, however unlikely
        bounding_box_format="xyxy", from_logits=True, confidence_threshold=0.0, max_detections=20)
    detections = detect(model, arrays.images[:3], batch_size=2)
    assert len(detections) == 3
    for found in detections:
        assert len(found.boxes) == 20 and found.boxes.shape == (20, 4) and np.isfinite(found.boxes).all()
        assert (found.boxes[:, 2] >= found.boxes[:, 0]).all() and (found.boxes[:, 3] >= found.boxes[:, 1]).all()
        assert ((found.scores >= 0) & (found.scores <= 1)).all() and (np.diff(found.scores) <= 1e-6).all()
        assert set(found.classes) <= {0, 1}


def test_coco_map_on_known_answers():
    truth = [ImageBoxes(np.array([[10, 10, 50, 30], [60, 60, 90, 80]], float), np.array([0, 0]))]
    perfect = [ImageBoxes(truth[0].boxes, np.array([0, 0]), np.array([0.9, 0.8]))]
    assert coco_map(truth, perfect, ["clast"])["map50"] == pytest.approx(1.0)
    assert coco_map(truth, perfect, ["clast"])["map50_95"] == pytest.approx(1.0)
    shifted = [ImageBoxes(truth[0].boxes + [30, 0, 30, 0], np.array([0, 0]), np.array([0.9, 0.8]))]  # IoU 0.14
    assert coco_map(truth, shifted, ["clast"])["map50"] == pytest.approx(0.0)
    half = [ImageBoxes(truth[0].boxes[:1], np.array([0]), np.array([0.9]))]  # one of two found, precision 1
    assert coco_map(truth, half, ["clast"])["map50"] == pytest.approx(0.5, abs=0.01)
    assert coco_map(truth, [ImageBoxes(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0))], ["clast"])["map50"] == 0.0


def test_coco_map_reads_boxes_as_corners():
    """IoU 0.43 as corners but 0.90 if the corners were read as width and height, and IoU 0.67,
    whose mAP@[.5:.95] is 4/10 (found at 0.50, 0.55, 0.60, 0.65). Broken on purpose: handing
    pycocotools [x0, y0, x1, y1] instead of [x, y, w, h] fails this."""
    truth = [ImageBoxes(np.array([[100, 100, 110, 110]], float), np.array([0]))]
    shifted = [ImageBoxes(np.array([[104, 100, 114, 110]], float), np.array([0]), np.array([0.9]))]
    assert coco_map(truth, shifted, ["clast"])["map50"] == pytest.approx(0.0)
    closer = [ImageBoxes(np.array([[102, 100, 112, 110]], float), np.array([0]), np.array([0.9]))]
    scores = coco_map(truth, closer, ["clast"])
    assert scores["map50"] == pytest.approx(1.0) and scores["map50_95"] == pytest.approx(0.4)


def test_coco_ap_is_per_class():
    """One class found, the other's detection misplaced: AP@0.5 1 and 0, mAP 0.5."""
    truth = [ImageBoxes(np.array([[10, 10, 40, 40], [60, 60, 90, 90]], float), np.array([0, 1]))]
    found = [ImageBoxes(np.array([[10, 10, 40, 40], [10, 60, 40, 90]], float), np.array([0, 1]),
                        np.array([0.9, 0.9]))]
    scores = coco_map(truth, found, ["cw", "ccw"])
    assert scores["ap50_per_class"] == pytest.approx({"cw": 1.0, "ccw": 0.0})
    assert scores["map50"] == pytest.approx(0.5)


def test_matching_is_one_to_one_highest_score_first():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    detected = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    assert match_to_truth(detected, np.array([0.5, 0.9, 0.8]), truth) == [(1, 0)]  # the better score takes it
    assert match_to_truth(detected[:0], np.zeros(0), truth) == []


@pytest.mark.slow
def test_training_run_detect_writes_map_pictures_and_tensorboard(detector_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, stdout = detector_run
    assert "Chiral labels: a mirror flip swaps" in stdout and "Test mAP@0.5" in stdout
    metrics = pd.read_json(run_dir / "metrics.json", typ="series")
    assert metrics["class_names"] == ["ccw", "cw"]
    for split in ("train", "val", "test"):
        assert 0.0 <= metrics[split]["map50"] <= 1.0 and metrics[split]["boxes"] > 0
    assert metrics["map50"] == metrics["test"]["map50"] and metrics["map50_95"] == metrics["test"]["map50_95"]
    tiles = min(4, metrics["test"]["images"])
    assert read_image(run_dir / "detections_test.png").shape[1] == tiles * 96 * 3  # a row of tiles, enlarged 3x
    split = pd.read_csv(run_dir / "split.csv")
    assert (split.groupby("path")["split"].nunique() == 1).all()  # all boxes of an image in one split
    validation = EventAccumulator(str(run_dir / "validation"), size_guidance={"tensors": 0}).Reload()
    assert {"detections", "detections_test", "epoch_map50", "epoch_map50_95"} <= set(validation.Tags()["tensors"])
    assert len(validation.Tensors("epoch_map50")) == 2
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()


@pytest.mark.slow
def test_the_exported_detector_returns_the_models_detections(detector_run):
    import tensorflow as tf

    run_dir, _ = detector_run
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    image = read_image(next((run_dir.parent / "_synthetic").rglob("*.png")))[None].astype(np.float32)
    served = tf.saved_model.load(str(run_dir / "export")).signatures["serving_default"](images=tf.constant(image))
    expected = model.predict(image, verbose=0)
    assert served["boxes"].shape == (1, 50, 4)
    count = int(expected["num_detections"][0])
    assert int(served["num_detections"][0]) == count
    np.testing.assert_allclose(served["boxes"].numpy()[0, :count], expected["boxes"][0, :count], atol=1e-3)


def _forced_detector(run_dir, tmp_path, bias: float):
    """A copy of a detector run whose every anchor scores sigmoid(``bias``): a detector that
    finds everything (bias > 0) or nothing (bias < 0), so the pipeline's mechanics are tested
    independently of how well a few training steps detect."""
    copy = tmp_path / f"detector_{bias:+g}"
    shutil.copytree(run_dir, copy)
    model = keras.saving.load_model(copy / "model.keras", compile=False)
    prediction = model.classification_head.prediction_layer
    prediction.kernel.assign(np.zeros(prediction.kernel.shape, "float32"))
    prediction.bias.assign(np.full(prediction.bias.shape, bias, "float32"))
    model.save(copy / "model.keras")
    return copy


@pytest.fixture(scope="module")
def three_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    write_dataset("sigma_clasts", folder, n=3, seed=7, size=96, max_clasts=3)
    return folder


@pytest.mark.slow
def test_two_stage_pipeline_end_to_end_on_three_synthetic_images(detector_run, sednet_run, three_images, tmp_path):
    detector = _forced_detector(detector_run[0], tmp_path, bias=3.0)
    out = tmp_path / "two_stage"
    result = subprocess.run([sys.executable, "-m", "explain.run", "--detector", str(detector), "--classifier",
                             str(sednet_run[0]), "--images", str(three_images), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out / "detections.csv")
    assert table["file"].nunique() == 3 and len(table) > 3
    assert ((0 <= table["xmin"]) & (table["xmin"] < table["xmax"]) & (table["xmax"] <= 96)).all()
    assert ((0 <= table["ymin"]) & (table["ymin"] < table["ymax"]) & (table["ymax"] <= 96)).all()
    assert set(table["shear_sense"]) <= {"cw", "ccw"} and set(table["label"]) <= {"cw", "ccw"}
    assert table["probability"].between(0.5, 1.0).all() and (table["detector_score"] >= 0.5).all()
    for row in table.itertuples():
        assert (out / row.gradcam_overlay).is_file() and (out / row.annotated).is_file()
    assert read_image(out / table["annotated"].iloc[0]).shape == (384, 384, 3)  # small images are enlarged
    assert "crops/gradcam/" in (out / "gallery.html").read_text()
    assert pd.read_csv(out / "no_detections.csv").empty


def test_images_without_detections_are_listed(detector_run, sednet_run, three_images, tmp_path, capsys):
    detector = _forced_detector(detector_run[0], tmp_path, bias=-20.0)
    out = tmp_path / "nothing"
    assert explain_main(["--detector", str(detector), "--classifier", str(sednet_run[0]),
                         "--images", str(three_images), "--out", str(out)]) == 0
    assert pd.read_csv(out / "detections.csv").empty
    assert len(pd.read_csv(out / "no_detections.csv")) == 3
    assert "3 image(s) without any detection" in capsys.readouterr().out


def test_the_heatmap_is_drawn_inside_each_box_only():
    image = np.full((40, 60, 3), 100, np.uint8)
    box = np.array([[20.0, 10.0, 40.0, 30.0]])
    crop = (15, 5, 45, 35)  # the square crop with margin around the box
    result = annotate(image, box, [crop], np.ones((1, 8, 8)), [""], [(255, 0, 0)])
    assert result.shape == (384 // 60 * 40, 384 // 60 * 60, 3)
    scale = 384 // 60
    inside = result[12 * scale:28 * scale, 22 * scale:38 * scale]
    assert (inside != 100).any(axis=-1).all()
    outside = result[:, :18 * scale]
    assert (outside == 100).all()


def test_two_stage_refuses_a_classifier_as_detector_and_a_missing_detector(sednet_run, three_images, tmp_path,
                                                                           capsys):
    args = ["--classifier", str(sednet_run[0]), "--images", str(three_images), "--out", str(tmp_path / "o")]
    assert explain_main(["--detector", str(sednet_run[0]), *args]) == 2
    assert "is not an object detector" in capsys.readouterr().err
    assert explain_main(["--detector", str(tmp_path / "nowhere"), *args]) == 2
    assert "No detector at" in capsys.readouterr().err
    assert explain_main(["--detector", str(sednet_run[0]), "--min-score", "1.5", *args]) == 2
    assert "--min-score in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked


def test_detect_task_refuses_a_classifier_model(tmp_path, capsys):
    assert train_main(["--task", "detect", "--model", "sednet", "--logdir", str(tmp_path)]) == 2
    assert "does not detect" in capsys.readouterr().err


def test_a_bad_yolo_line_stops_training_with_file_and_line(tmp_path, capsys):
    root = tmp_path / "yolo"
    write_image(root / "images" / "a.png", np.zeros((96, 96, 3), np.uint8))
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 1.7\n")
    (root / "classes.txt").write_text("sigma_clast\n")
    assert train_main([*DETECT_TINY, "--data", str(root), "--logdir", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err
    assert "a.txt, line 2" in err
    assert not (tmp_path / "logs" / "detector-yolo").exists()  # a failed new run leaves no folder


def test_a_box_beyond_its_image_names_the_file(tmp_path, capsys):
    write_image(tmp_path / "a.png", np.zeros((96, 96, 3), np.uint8))
    pd.DataFrame({"path": ["a.png"], "box_label": ["cw"], "xmin": [0.1], "ymin": [0.1], "xmax": [0.5],
                  "ymax": [140]}).to_csv(tmp_path / "boxes.csv", index=False)
    assert train_main([*DETECT_TINY, "--data", str(tmp_path / "boxes.csv"), "--logdir", str(tmp_path / "logs")]) == 2
    assert "a.png: the box" in capsys.readouterr().err


def test_imagenet_weights_without_a_network_give_a_clear_error(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("kaggle.com unreachable")

    monkeypatch.setattr(keras_hub.models.ResNetBackbone, "from_preset", unreachable)
    with pytest.raises(WeightsError, match="pass --weights none"):
        build_model("detector", 1, (96, 96, 3), weights="imagenet")
