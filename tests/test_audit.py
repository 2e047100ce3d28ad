"""``python -m explain.audit``: it flags a model that uses a planted shortcut and clears one that does not."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from datasets.images import read_mask, resize_mask, write_image
from datasets.synthetic import write_dataset
from explain import audit
from explain.audit.__main__ import main as audit_main

MASKS = "evidence=grain_mask,shortcut=scale_bar_mask"
TWO_CLASSES = ("dolomite", "siltstone")


def _two_class_set(folder: Path, **options) -> Path:
    """40 thin sections at 64 px of two classes with a scale bar in every image."""
    manifest = write_dataset("thin_sections", folder, n=120, seed=0, size=64, shortcut="scale_bar", **options)
    table = pd.read_csv(manifest)
    two = folder / "two.csv"
    table[table["label"].isin(TWO_CLASSES)].to_csv(two, index=False)
    return two


def _train(data: Path, logdir: Path, name: str) -> Path:
    from training.run import main

    assert main(["--data", str(data), "--epochs", "20", "--image-size", "64", "--local-size", "32",
                 "--batch-size", "8", "--logdir", str(logdir), "--run-name", name, "--tb-histogram-freq", "0",
                 "--tb-gradcam-freq", "0"]) == 0
    return logdir / name


@pytest.fixture(scope="module")
def shortcut_only(tmp_path_factory):
    """Both classes are the same rock; only the scale bar's style tells them apart."""
    root = tmp_path_factory.mktemp("shortcut_only")
    data = _two_class_set(root / "data", correlation=1.0, rock="quartz_arenite")
    return _train(data, root / "logs", "shortcut"), data


@pytest.fixture(scope="module")
def shortcut_free(tmp_path_factory):
    """Two different rocks; the scale bar's style is drawn independently of the class."""
    root = tmp_path_factory.mktemp("shortcut_free")
    data = _two_class_set(root / "data", correlation=0.0)
    return _train(data, root / "logs", "grains"), data


def _audit(run: Path, data: Path, out: Path, *extra: str) -> dict:
    assert audit_main(["--model", str(run), "--data", str(data), "--masks", MASKS, "--out", str(out),
                       "--methods", "gradcam,saliency", *extra]) == 0
    return json.loads((out / "audit.json").read_text())


@pytest.mark.slow
def test_a_model_trained_on_the_shortcut_is_flagged(shortcut_only, tmp_path):
    report = _audit(*shortcut_only, tmp_path)
    assert {label: v["relies_on_shortcut"] for label, v in report["verdicts"].items()} == \
        {"all": True, "dolomite": True, "siltstone": True}
    summary = pd.read_csv(tmp_path / "audit.csv").fillna({"method": "", "mask": ""})
    energy = summary.set_index(["class", "method", "mask", "metric"])["value"]
    assert energy["all", "gradcam", "shortcut", "energy"] > 3 * energy["all", "", "shortcut", "mask_area"]
    for name in ("audit.html", "audit_images.csv", "examples/dolomite_1.png"):
        assert (tmp_path / name).is_file()
    assert "relies on the shortcut: yes" in (tmp_path / "audit.html").read_text()
    images = pd.read_csv(tmp_path / "audit_images.csv")
    assert len(images) == 40 and images["gradcam_deletion"].between(0, 1).all()
    sanity = pd.DataFrame(report["randomisation_check"])
    assert set(sanity["method"]) == {"gradcam", "saliency"} and len(sanity) == 8
    assert sanity.groupby("method")["spearman"].last().lt(0.9).all()  # both maps follow the weights


@pytest.mark.slow
def test_a_model_trained_without_the_shortcut_is_cleared(shortcut_free, tmp_path):
    report = _audit(*shortcut_free, tmp_path)
    assert not any(v["relies_on_shortcut"] for v in report["verdicts"].values())
    assert report["verdicts"]["all"]["accuracy_drop"] == pytest.approx(0.0, abs=0.05)


def _fail(capsys, *argv: str) -> str:
    assert audit_main(list(argv)) == 2
    return capsys.readouterr().err


def test_a_missing_mask_column_is_named(shortcut_free, tmp_path, capsys):
    run, data = shortcut_free
    error = _fail(capsys, "--model", str(run), "--data", str(data), "--masks", "evidence=crack_mask",
                  "--out", str(tmp_path))
    assert "crack_mask" in error and "grain_mask" in error  # what is missing and what there is


def test_a_mask_of_another_size_is_named(shortcut_free, tmp_path, capsys):
    run, data = shortcut_free
    table = pd.read_csv(data)
    for column in ("path", "grain_mask", "scale_bar_mask"):
        table[column] = [str(data.parent / p) for p in table[column]]
    small = tmp_path / "small_mask.png"
    write_image(small, np.zeros((32, 32), np.uint8))
    table.loc[3, "grain_mask"] = str(small)
    bad = tmp_path / "bad.csv"
    table.to_csv(bad, index=False)
    error = _fail(capsys, "--model", str(run), "--data", str(bad), "--masks", MASKS, "--out", str(tmp_path / "out"))
    assert str(small) in error and "32x32" in error and "64x64" in error
    assert not (tmp_path / "out").exists()  # nothing written before the data is known to be good


def test_a_folder_without_manifest_and_bad_mask_pairs_are_explained(shortcut_free, tmp_path, capsys):
    run, data = shortcut_free
    error = _fail(capsys, "--model", str(run), "--data", str(tmp_path), "--masks", MASKS, "--out", str(tmp_path))
    assert "manifest" in error
    error = _fail(capsys, "--model", str(run), "--data", str(data), "--masks", "grain_mask", "--out", str(tmp_path))
    assert "NAME=COLUMN" in error


def test_masks_are_resized_with_nearest_neighbour_never_blurred(tmp_path):
    mask = np.random.default_rng(0).random((64, 64)) > 0.7
    write_image(tmp_path / "mask.png", mask.astype(np.uint8) * 255)
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.png", (32, 32)), mask[::2, ::2])
    np.testing.assert_array_equal(resize_mask(mask, (128, 128)), mask.repeat(2, 0).repeat(2, 1))


def test_the_control_region_has_the_shortcut_area_and_inpainting_removes_the_bar():
    image = np.full((64, 64, 3), 120, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[50:54, 30:50] = True
    image[mask] = 250
    region = audit.random_region(mask, np.random.default_rng(0))
    assert region.sum() == mask.sum() and (region & mask).sum() == 0
    assert np.abs(audit.inpaint(image, mask).astype(int) - 120).max() <= 2
    assert cv2.countNonZero((image != 120).any(-1).astype(np.uint8)) == mask.sum()
