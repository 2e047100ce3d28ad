"""``python -m explain.run`` end to end, its outputs and its refusals."""

import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from datasets.images import read_image
from explain.overlay import colorize, overlay, peak_and_entropy
from explain.run import main


@pytest.fixture(scope="module")
def explained(sednet_run, sigma_set, tmp_path_factory):
    """explain.run as a real process on the sigma set's class folders plus one corrupt file."""
    run_dir, _ = sednet_run
    images = sigma_set.parent
    (images / "cw" / "broken.png").write_bytes(b"not an image")
    out = tmp_path_factory.mktemp("explained")
    (out / "my_notes.txt").write_text("keep")
    result = subprocess.run([sys.executable, "-m", "explain.run", "--model", str(run_dir), "--images", str(images),
                             "--methods", "gradcam,occlusion", "--batch-size", "5", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    (images / "cw" / "broken.png").unlink()
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.slow
def test_explain_run_writes_overlays_maps_table_and_gallery(explained):
    out, stdout = explained
    table = pd.read_csv(out / "explanations.csv")
    assert len(table) == 24
    assert set(table["label"]) == {"cw", "ccw"} and set(table["predicted"]) <= {"cw", "ccw"}
    for method in ("gradcam", "occlusion"):
        assert {f"{method}_peak_x", f"{method}_peak_y", f"{method}_entropy"} <= set(table.columns)
        assert table[f"{method}_entropy"].between(0, 1).all()
        overlays = sorted((out / method).glob("*_whole.png"))
        assert len(overlays) == 24 and len(list((out / method).glob("*_local.png"))) == 24
        assert read_image(overlays[0]).shape == (64, 64, 3)  # the source image's own resolution
        assert np.load(str(overlays[0]).replace(".png", ".npy")).shape == (32, 32)  # model resolution
    assert table["correct"].dtype == bool
    assert (out / "my_notes.txt").read_text() == "keep"
    assert pd.read_csv(out / "bad_files.csv")["path"].str.endswith("broken.png").tolist() == [True]
    page = (out / "gallery.html").read_text()
    assert "<h2>cw</h2>" in page and "<h2>ccw</h2>" in page and "true positives" in page
    for src in pd.Series(page.split("src='")[1:]).str.split("'").str[0]:
        assert (out / src).is_file()
    assert "gallery.html" in stdout


def test_overlay_colours_are_rgb_and_at_image_resolution():
    hot, cold = colorize(np.ones((1, 1)))[0, 0], colorize(np.zeros((1, 1)))[0, 0]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: hot is red, cold is blue, in RGB order
    image = np.zeros((30, 50, 3), np.uint8)
    assert overlay(image, np.random.default_rng(0).random((7, 7))).shape == (30, 50, 3)
    hot_spot = np.zeros((4, 4))
    hot_spot[0, 3] = 1.0  # top right cell of a 4x4 map over a 40 x 80 (H x W) image
    assert peak_and_entropy(hot_spot, (40, 80)) == (70, 5, 0.0)
    assert peak_and_entropy(np.ones((4, 4)), (4, 4))[2] == pytest.approx(1.0)


def test_unknown_layer_lists_candidates(sednet_run, sigma_set, tmp_path, capsys):
    code = main(["--model", str(sednet_run[0]), "--images", str(sigma_set.parent / "cw"), "--layer", "nope",
                 "--out", str(tmp_path)])
    assert code == 2
    assert "'nope' is not a 4-D layer" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--methods", "gradcam,magic"], "Unknown method"),
    (["--target", "granite"], "--target 'granite'"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_bad_options_are_refused(sednet_run, sigma_set, tmp_path, capsys, argv, message):
    code = main(["--model", str(sednet_run[0]), "--images", str(sigma_set.parent / "cw"), "--out", str(tmp_path), *argv])
    assert code == 2 and message in capsys.readouterr().err


def test_lambda_models_need_unsafe(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="features")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "lambda.keras")
    folder = tmp_path / "imgs"
    folder.mkdir()
    from datasets.images import write_image
    write_image(folder / "a.png", np.zeros((40, 40, 3), np.uint8))
    args = ["--model", str(tmp_path / "lambda.keras"), "--images", str(folder), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "--unsafe" in capsys.readouterr().err
    assert main([*args, "--unsafe"]) == 0
    assert pd.read_csv(tmp_path / "out" / "explanations.csv")["predicted"].iloc[0] in ("class_0", "class_1")


def test_the_input_spec_of_a_saved_sednet_puts_the_whole_image_first_even_at_equal_sizes(tmp_path):
    from explain.loading import input_spec, load_model
    from models import build_model

    for local_size in (16, 32):
        build_model("sednet", 2, (32, 32, 3), weights="none", local_size=local_size).save(tmp_path / "m.keras")
        assert input_spec(load_model(tmp_path / "m.keras").model).input_names == ("whole", "local")
        assert load_model(tmp_path / "m.keras").spec.local_size == local_size


@pytest.mark.parametrize("content", [b"not a zip archive", b"PK\x03\x04truncated"])
def test_a_model_file_that_is_not_a_keras_archive_is_named(tmp_path, sigma_set, capsys, content):
    (tmp_path / "model.keras").write_bytes(content)
    assert main(["--model", str(tmp_path / "model.keras"), "--images", str(sigma_set), "--out",
                 str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'model.keras'} is not a Keras model file" in capsys.readouterr().err
