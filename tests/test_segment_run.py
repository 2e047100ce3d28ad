"""``training.run --task segment`` end to end on a manifest with every bad input the issue names,
then ``training.predict`` on whole sections, the export, stitching invariants and Seg-Grad-CAM."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import snapshot

from datasets.seismic import write_segy
from datasets.synthetic.seismic_salt import generate
from explain import METHODS
from explain.targets import RegionTarget
from training.predict import main as predict_main
from training.run import main as run_main
from training.tasks.segment import predict_section
from training.tasks.segment.metrics import EMPTY_BELOW_CANDIDATES, emptied_below

EPOCHS = 2


def _write_section(folder: Path, name: str, amplitude: np.ndarray, salt: np.ndarray) -> dict:
    np.save(folder / f"{name}.npy", amplitude)
    cv2.imwrite(str(folder / f"{name}.png"), salt.astype(np.uint8) * 255)
    return {"section": f"{name}.npy", "mask": f"{name}.png"}


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sections")
    rows = []
    for i in range(6):
        section = generate(np.random.default_rng(i), 64, 80)
        rows.append(_write_section(folder, f"s{i}", section.amplitude, section.salt))
    nan_section = generate(np.random.default_rng(10), 64, 80)
    nan_section.amplitude[5:9, 3] = np.nan
    rows.append(_write_section(folder, "with_nan", nan_section.amplitude, nan_section.salt))
    small = generate(np.random.default_rng(11), 24, 40)
    rows.append({**_write_section(folder, "small", small.amplitude, small.salt), "split": "train"})
    rows.append({**_write_section(folder, "wrong_size", nan_section.amplitude, nan_section.salt[:60])})
    gray = nan_section.salt.astype(np.uint8) * 200
    gray[0, 0] = 7
    cv2.imwrite(str(folder / "gray_mask.png"), gray)
    rows.append({"section": "s0.npy", "mask": "gray_mask.png"})
    (folder / "broken.sgy").write_bytes(b"\0" * 5000)
    rows.append({"section": "broken.sgy", "mask": "s0.png"})
    rows.append({"section": "s1.npy"})  # no mask: not trained on
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    logdir = tmp_path_factory.mktemp("logs")
    argv = ["--task", "segment", "--data", str(manifest), "--patch-size", "32", "--stride", "32",
            "--encoder-width", "8", "--epochs", str(EPOCHS), "--batch-size", "8", "--logdir", str(logdir),
            "--run-name", "salt", "--split", "0.5,0.25,0.25", "--tta", "--empty-below", "auto"]
    import contextlib
    import io

    output = io.StringIO()
    before = snapshot(folder)
    with contextlib.redirect_stdout(output):
        code = run_main(argv)
    return {"code": code, "stdout": output.getvalue(), "run": logdir / "salt", "folder": folder, "before": before}


def test_the_run_finishes_and_says_what_it_did_with_each_bad_input(segment_run):
    assert segment_run["code"] == 0, segment_run["stdout"]
    out = segment_run["stdout"]
    assert "with_nan.npy: 4 NaN samples set to 0" in out
    assert out.count("smaller than a 32-pixel patch and are padded") == 1
    assert "1 section(s) without a mask are left out of training" in out
    bad = pd.read_csv(segment_run["run"] / "bad_files.csv").set_index("path")
    reasons = {Path(p).name: r for p, r in bad["reason"].items()}
    assert "64 x 80" in reasons["wrong_size.npy"] and "60 x 80" in reasons["wrong_size.npy"]
    assert "not a readable SEG-Y" in reasons["broken.sgy"]
    assert "gray_mask.png is not a binary mask: it holds 3 values" in reasons["s0.npy"]


def test_metrics_json_scores_every_split_per_section(segment_run):
    metrics = json.loads((segment_run["run"] / "metrics.json").read_text())
    split = pd.read_csv(segment_run["run"] / "split.csv")
    assert len(split) == 8 and split.loc[split["section"].str.endswith("small.npy"), "split"].item() == "train"
    for name in ("train", "val", "test"):
        sections = metrics[name]["sections"]
        assert set(sections) == set(split.loc[split["split"] == name, "section"])
        for score in ("dice", "iou", "ps"):
            assert metrics[name][score] == pytest.approx(np.mean([s[score] for s in sections.values()]))
            assert 0 <= metrics[name][score] <= 1
    assert metrics["ps_band_width"] == 3 and metrics["loss"] == "bce+dice" and metrics["tta"]
    assert metrics["chosen"]["empty_below"] in EMPTY_BELOW_CANDIDATES  # auto: chosen on the validation sections
    assert metrics["empty_below"] == metrics["chosen"]["empty_below"]
    pictures = sorted(p.stem for p in (segment_run["run"] / "sections").glob("*.png"))
    assert pictures == sorted(Path(s).stem for s in metrics["test"]["sections"])


def test_tensorboard_gets_dice_ps_and_section_pictures_each_epoch(segment_run):
    events = EventAccumulator(str(segment_run["run"] / "validation"), size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()["tensors"]
    for scalar in ("epoch_dice", "epoch_ps", "epoch_iou", "epoch_loss", "epoch_bearing_dice", "epoch_competition"):
        assert [e.step for e in events.Tensors(scalar)] == list(range(EPOCHS))
    assert [e.step for e in events.Tensors("sections/00")] == list(range(EPOCHS))
    val_sections = (pd.read_csv(segment_run["run"] / "split.csv")["split"] == "val").sum()
    assert sorted(t for t in tags if t.startswith("sections/")) == [f"sections/{i:02d}" for i in range(min(val_sections, 2))]
    final = EventAccumulator(str(segment_run["run"]), size_guidance={"tensors": 0}).Reload()
    assert "final/test_ps" in final.Tags()["tensors"]


def test_predict_writes_whole_section_results_equal_to_the_runs_scores(segment_run, tmp_path):
    metrics = json.loads((segment_run["run"] / "metrics.json").read_text())
    section = next(iter(metrics["test"]["sections"]))
    mask = section.replace(".npy", ".png")
    segy = tmp_path / "section.sgy"
    write_segy(segy, np.load(section))
    assert predict_main(["--model", str(segment_run["run"]), "--section", section, str(segy), "--mask", mask, mask,
                         "--out", str(tmp_path / "out")]) == 0
    stem = Path(section).stem
    scores = json.loads((tmp_path / "out" / f"{stem}_scores.json").read_text())
    assert scores == pytest.approx({k: metrics["test"]["sections"][section][k] for k in ("dice", "iou", "ps")})
    probability = np.load(tmp_path / "out" / f"{stem}_probability.npy")
    assert probability.shape == (64, 80) and 0 <= probability.min() and probability.max() <= 1
    emptied = emptied_below(probability > 0.5, metrics["chosen"]["empty_below"])  # the run's own choice
    np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{stem}_mask.npy"), emptied)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "section_probability.npy"), probability, atol=1e-6)
    assert cv2.imread(str(tmp_path / "out" / f"{stem}.png")).shape[:2] == (64, 4 * 80 + 12)


def test_predict_names_a_mask_of_another_size_and_keeps_going(segment_run, tmp_path, capsys):
    folder = segment_run["folder"]
    code = predict_main(["--model", str(segment_run["run"]), "--section", str(folder / "with_nan.npy"),
                         str(folder / "s2.npy"), "--mask", str(folder / "small.png"), str(folder / "s2.png"),
                         "--out", str(tmp_path)])
    assert code == 1
    assert "section is 64 x 80 (samples x traces) but its mask" in capsys.readouterr().err
    assert (tmp_path / "s2_scores.json").is_file() and not (tmp_path / "with_nan_mask.npy").exists()


def test_export_predicts_like_the_keras_model(segment_run):
    model = keras.saving.load_model(segment_run["run"] / "model.keras", compile=False)
    served = tf.saved_model.load(str(segment_run["run"] / "export")).signatures["serving_default"]
    patch = np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype(np.float32)
    (output,) = served(image=tf.constant(patch)).values()
    np.testing.assert_allclose(output.numpy(), model.predict(patch, verbose=0), atol=1e-4)


def _constant_model(value: float) -> keras.Model:
    inputs = keras.Input((32, 32, 1), name="image")
    outputs = keras.layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(value))(inputs)
    return keras.Model(inputs, outputs)


def test_stitching_a_constant_model_gives_a_constant_section():
    amplitude = np.random.default_rng(0).normal(size=(75, 130)).astype(np.float32)
    probability = predict_section(_constant_model(0.8), amplitude, 32, 12, "patch")
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-0.8)), atol=1e-6)


def test_a_section_that_fits_one_patch_equals_the_single_pass(segment_run):
    model = keras.saving.load_model(segment_run["run"] / "model.keras", compile=False)
    amplitude = generate(np.random.default_rng(5), 32, 32).amplitude
    single = model.predict(((amplitude - amplitude.mean()) / amplitude.std())[None, ..., None], verbose=0)[0, ..., 0]
    np.testing.assert_allclose(predict_section(model, amplitude, 32, 16, "patch"), 1 / (1 + np.exp(-single)),
                               atol=1e-5)


def test_seg_grad_cam_explains_the_salt_region_of_a_segmentation_run(segment_run):
    model = keras.saving.load_model(segment_run["run"] / "model.keras", compile=False)
    section = generate(np.random.default_rng(3), 32, 32)
    patch = ((section.amplitude - section.amplitude.mean()) / section.amplitude.std())[None, ..., None]
    for method in ("gradcam", "saliency"):
        maps = METHODS[method](model, patch, RegionTarget(mask=section.salt[None]),
                               layer="stage2_out")
        assert maps.shape == (1, 32, 32) and np.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1


@pytest.mark.parametrize("flags, message", [
    (["--patch-size", "48"], "patch_size=48 must be a multiple of 32"),
    (["--stride", "80"], "stride=80 must lie in [1, patch_size=64]"),
    (["--loss", "l1"], "loss='l1' is not one of"),
    (["--model", "sednet"], "model='sednet' does not segment"),
])
def test_bad_settings_stop_before_any_work(flags, message, tmp_path, capsys):
    assert run_main(["--task", "segment", "--logdir", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_explain_run_explains_whole_sections_of_a_segmentation_run(segment_run, tmp_path, capsys):
    from explain.run import main as explain_main

    folder = segment_run["folder"]
    assert explain_main(["--model", str(segment_run["run"]), "--sections", str(folder / "s2.npy"),
                         "--methods", "gradcam,saliency", "--layer", "stage2_out", "--out", str(tmp_path)]) == 0
    for method in ("gradcam", "saliency"):
        heatmap = np.load(tmp_path / method / "s2.npy")
        assert heatmap.shape == (64, 80) and 0 <= heatmap.min() and heatmap.max() <= 1 and heatmap.max() > 0
        assert cv2.imread(str(tmp_path / method / "s2.png")).shape[:2] == (64, 80)
    assert explain_main(["--model", str(segment_run["run"]), "--sections", str(folder / "s2.npy"),
                         "--layer", "no_such_layer", "--out", str(tmp_path)]) == 2
    assert "no_such_layer" in capsys.readouterr().err


@pytest.fixture(scope="module")
def section_normalized_run(tmp_path_factory) -> Path:
    """A run folder made with ``--normalize section --stride 8`` (neither the default nor the
    fallback of half a patch), holding an untrained U-Net of 32-pixel patches."""
    from models.unet import build_unet_resnet34
    from training.config import parse_config
    from training.tasks import TASKS

    run = tmp_path_factory.mktemp("section_run")
    parse_config(["--task", "segment", "--patch-size", "32", "--stride", "8", "--normalize", "section",
                  "--encoder-width", "8"], TASKS).to_yaml(run / "config.yaml")
    build_unet_resnet34(1, (32, 32, 1), encoder_width=8).save(run / "model.keras")
    return run


def _trending_section() -> np.ndarray:
    """A section whose amplitude grows with depth, so z-scoring per patch and per section differ."""
    amplitude = generate(np.random.default_rng(7), 48, 56).amplitude
    return amplitude + np.linspace(0, 4, 48, dtype=np.float32)[:, None]


def test_predict_and_explain_use_the_runs_normalisation_and_stride(section_normalized_run, tmp_path):
    """Issue 32, point 5: the run's settings travel with it. Break tried: ``training.predict``
    and ``explain.run --sections`` each falling back to per-patch z-scores, and to half a patch
    as stride, whatever the run's config.yaml says."""
    from explain.run import main as explain_main
    from explain.sections import explain_section

    section = tmp_path / "trend.npy"
    np.save(section, _trending_section())
    model = keras.saving.load_model(section_normalized_run / "model.keras", compile=False)
    run_settings = predict_section(model, np.load(section), 32, 8, "section")
    assert np.abs(run_settings - predict_section(model, np.load(section), 32, 8, "patch")).max() > 1e-3
    assert np.abs(run_settings - predict_section(model, np.load(section), 32, 16, "section")).max() > 1e-5
    assert predict_main(["--model", str(section_normalized_run), "--section", str(section),
                         "--out", str(tmp_path / "out")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out" / "trend_probability.npy"), run_settings, atol=1e-6)

    assert explain_main(["--model", str(section_normalized_run), "--sections", str(section), "--methods", "gradcam",
                         "--layer", "stage2_out", "--out", str(tmp_path / "why")]) == 0
    expected = explain_section(model, np.load(section), ["gradcam"], 8, "section", "stage2_out")["gradcam"]
    np.testing.assert_allclose(np.load(tmp_path / "why" / "gradcam" / "trend.npy"), expected, atol=1e-5)
    other = explain_section(model, np.load(section), ["gradcam"], 16, "patch", "stage2_out")["gradcam"]
    assert np.abs(expected - other).max() > 1e-3


@pytest.mark.parametrize("rows, words", [
    ([{"section": "s0.npy"}], "has a mask (column 'mask'"),
    ([{"section": "s0.npy", "mask": "s0.png", "split": "training"}], "Unknown split value(s) ['training']"),
    ([{"section": "s0.npy", "mask": "s0.png"}, {"section": "s1.npy", "mask": "s1.png"}], "get no section from 2"),
])
def test_a_manifest_that_cannot_train_stops_in_one_line_and_leaves_no_run(segment_run, rows, words, tmp_path, capsys):
    """Issue 32, point 13: the reader's fatal cases, exit 2 and one line naming the problem."""
    manifest = tmp_path / "fatal.csv"
    folder = segment_run["folder"]
    pd.DataFrame([{k: str(folder / v) if k in ("section", "mask") else v for k, v in row.items()} for row in rows]
                 ).to_csv(manifest, index=False)
    assert run_main(["--task", "segment", "--data", str(manifest), "--patch-size", "32",
                     "--logdir", str(tmp_path / "logs")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and words in errors[0]
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def test_nothing_of_the_users_sections_was_changed(segment_run):
    """Issue 32, point 13: after the run, predict and explain read them (this module's last test)."""
    assert snapshot(segment_run["folder"]) == segment_run["before"]
