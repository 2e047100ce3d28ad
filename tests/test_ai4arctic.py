"""Sea-ice scenes in the AI4Arctic ready-to-train NetCDF layout (issue 33): files written here by netCDF4 itself,
read lazily, checked scene by scene, and land and no-data pixels counted nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import netCDF4
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from datasets.ai4arctic import AMSR2_VARIABLES, CHART_FILL, SAR_VARIABLES, open_scene
from datasets.images import UnreadableImageError
from models.losses import SEGMENTATION_LOSSES, IgnoringInvalid
from models.metrics import ValidPixelIoU
from training.config import parse_config
from training.tasks import TASKS
from training.tasks.segment.metrics import grouped_scores, mask_scores

SIDE, RATIO = 64, 8


def write_scene(path: Path, seed: int = 0, land_columns: int = 0, no_data_rows: int = 0, drop: str | None = None,
                coarse: tuple[int, int] = (SIDE // RATIO, SIDE // RATIO), chart_on_coarse: bool = False) -> Path:
    """A scene in the published layout: HH, HV and SIC on the 80 m grid, 14 AMSR2 channels on the 2 km grid; ice
    in the lower half (SIC 10 tenths), open water above (0); ``land_columns`` of land on the left (SIC 255),
    ``no_data_rows`` without SAR (NaN) at the bottom."""
    rng = np.random.default_rng(seed)
    ice = np.zeros((SIDE, SIDE), bool)
    ice[SIDE // 2 + int(rng.integers(-8, 8)):] = True
    sic = np.where(ice, 10, 0).astype(np.uint8)
    sic[:, :land_columns] = CHART_FILL
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("sar_lines", SIDE), ("sar_samples", SIDE), ("2km_grid_lines", coarse[0]),
                           ("2km_grid_samples", coarse[1])):
            nc.createDimension(name, size)
        for i, name in enumerate(SAR_VARIABLES):
            sar = nc.createVariable(name, "f4", ("sar_lines", "sar_samples"))
            values = rng.normal(0, 1, (SIDE, SIDE)) + ice * (1.0 - i)
            values[SIDE - no_data_rows:] = np.nan
            sar[:] = values
        coarse_ice = np.resize(ice[::RATIO, ::RATIO], coarse)
        for name in AMSR2_VARIABLES:
            if name != drop:
                nc.createVariable(name, "f4", ("2km_grid_lines", "2km_grid_samples"))[:] = (
                    coarse_ice * 2.0 - 1 + rng.normal(0, 0.1, coarse))
        dims = ("2km_grid_lines", "2km_grid_samples") if chart_on_coarse else ("sar_lines", "sar_samples")
        chart = nc.createVariable("SIC", "u1", dims)
        chart[:] = sic[::RATIO, ::RATIO] if chart_on_coarse else sic
        nc.pixel_spacing = 80
    return path


def test_a_scene_opens_without_reading_its_arrays_and_cuts_windows(tmp_path):
    scene = open_scene(write_scene(tmp_path / "s.nc"))
    assert scene.ratio == RATIO and scene.shape == (SIDE, SIDE)
    sar, mwr = scene.window(16, 24, 32)
    assert sar.shape == (32, 32, 2) and mwr.shape == (4, 4, 14)
    with netCDF4.Dataset(tmp_path / "s.nc") as nc:
        assert np.array_equal(sar[..., 1], nc["nersc_sar_secondary"][16:48, 24:56])
        assert np.array_equal(mwr[..., 13], nc["btemp_89_0v"][2:6, 3:7])
    assert not scene.dataset["nersc_sar_primary"].variable._in_memory  # the window read only its pixels
    scene.close()


@pytest.mark.parametrize("problem, message", [
    (dict(drop="btemp_36_5h"), "lacks the variable(s) btemp_36_5h"),
    (dict(coarse=(7, 8)), "its SAR grid is 64 x 64 but its coarse grid is 7 x 8"),
    (dict(chart_on_coarse=True), "variable SIC is 8 x 8 on ('2km_grid_lines', '2km_grid_samples')"),
])
def test_a_bad_scene_is_refused_naming_the_variable(tmp_path, problem, message):
    with pytest.raises(UnreadableImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_scene(write_scene(tmp_path / "bad.nc", **problem))


def test_bad_scenes_are_listed_and_the_others_train(tmp_path, capsys):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(4):
        write_scene(folder / f"good_{i}.nc", seed=i)
    write_scene(folder / "no_36h.nc", drop="btemp_36_5h")
    write_scene(folder / "ragged.nc", coarse=(7, 8))
    write_scene(folder / "chart.nc", chart_on_coarse=True)
    (folder / "corrupt.nc").write_bytes(b"CDF\x01 not really")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    config = parse_config(["--task", "segment", "--model", "fusion_aspp", "--data", str(folder), "--patch-cells", "4"],
                          TASKS)
    data = TASKS["segment"].prepare_data(config, tmp_path)
    bad = pd.read_csv(tmp_path / "bad_files.csv").set_index("path")["reason"]
    assert sorted(Path(p).name for p in bad.index) == ["chart.nc", "corrupt.nc", "no_36h.nc", "ragged.nc"]
    assert "not a readable NetCDF" in bad[str(folder / "corrupt.nc")]
    assert {s.name.split("@")[0] for s in data.samples} == {f"good_{i}" for i in range(4)}
    assert before == {p.name: p.read_bytes() for p in folder.iterdir()}  # nothing of the user's changed
    assert "4 scenes" in capsys.readouterr().out


def test_land_and_no_data_are_invalid_and_patches_with_less_than_half_their_chart_valid_are_left_out(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(3):
        write_scene(folder / f"s{i}.nc", seed=i, land_columns=40, no_data_rows=8)
    config = parse_config(["--task", "segment", "--model", "fusion_aspp", "--data", str(folder), "--patch-cells", "2"],
                          TASKS)
    data = TASKS["segment"].prepare_data(config, tmp_path)
    for sample in data.samples:
        origin = [int(v) for v in sample.name.split("@")[1].split(",")]
        rows, cols = np.mgrid[0:16, 0:16] + np.array(origin)[:, None, None]
        assert np.array_equal(sample.valid, (cols >= 40) & (rows < SIDE - 8))
        assert (cols >= 40).mean() >= 0.5 and np.isfinite(sample.sar).all()  # half the chart valid; SAR NaN set to 0
    _, targets = data.arrays(data.samples)
    assert targets.shape[-1] == 2 and np.array_equal(targets[..., 1], np.stack([s.valid for s in data.samples]))


def test_a_half_land_scene_scores_what_its_valid_half_scores_alone():
    """Break tried: the land's edge taken as a boundary (PS 0.765 instead of the half's 0.731)."""
    rng = np.random.default_rng(1)
    truth = np.zeros((40, 40), bool)
    truth[12:30, 8:36] = True
    predicted = np.roll(truth, (2, 3), axis=(0, 1))
    valid = np.ones((40, 40), bool)
    valid[:, :20] = False  # land: what a model says there is neither right nor wrong
    garbled = predicted.copy()
    garbled[:, :20] = rng.random((40, 20)) < 0.5
    alone = mask_scores(truth[:, 20:], predicted[:, 20:])
    assert mask_scores(truth, garbled, valid) == pytest.approx(alone)
    grouped = grouped_scores([(truth, garbled, valid)])
    assert grouped["dice"] == pytest.approx(alone["dice"]) and grouped["ps"] == pytest.approx(alone["ps"])


@pytest.mark.parametrize("name", list(SEGMENTATION_LOSSES))
def test_every_loss_ignores_invalid_pixels(name):
    """The loss with a valid mask is unchanged by what the model says on invalid pixels, and passes them no
    gradient; on the valid part it is the loss itself."""
    rng = np.random.default_rng(2)
    truth = (rng.random((2, 16, 16, 1)) < 0.4).astype("float32")
    valid = np.ones_like(truth)
    valid[:, :, :6] = 0
    logits = tf.Variable(rng.normal(0, 2, truth.shape).astype("float32"))
    loss = IgnoringInvalid(name)
    target = np.concatenate([truth, valid], axis=-1)
    with tf.GradientTape() as tape:
        value = loss(target, logits)
    gradient = tape.gradient(value, logits).numpy()
    assert np.abs(gradient[valid == 0]).max() == 0 and np.abs(gradient[valid == 1]).max() > 0
    other = logits.numpy() + (1 - valid) * rng.normal(0, 5, truth.shape).astype("float32")
    assert float(loss(target, other)) == pytest.approx(float(value), rel=1e-5, abs=1e-6)
    plain = keras.ops.mean(SEGMENTATION_LOSSES[name](truth, logits))  # a one-channel target passes unchanged
    assert float(loss(truth, logits)) == pytest.approx(float(plain), rel=1e-5)


def test_the_patch_iou_counts_valid_pixels_only():
    truth = np.zeros((1, 8, 8, 1), "float32")
    truth[..., 4:, :] = 1
    logits = np.where(truth > 0, 5.0, -5.0).astype("float32")
    logits[:, :, :3] = 5.0  # wrong, but on land
    valid = np.ones_like(truth)
    valid[:, :, :3] = 0
    metric = ValidPixelIoU(target_class_ids=[1], threshold=0.0)
    metric.update_state(np.concatenate([truth, valid], axis=-1), logits)
    assert float(metric.result()) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def scene_run(tmp_path_factory):
    """A fusion_aspp run on five scenes in the NetCDF layout, a quarter of each land (two radiometer cells)."""
    from training.run import main

    root = tmp_path_factory.mktemp("scenes")
    (root / "data").mkdir()
    for i in range(5):
        write_scene(root / "data" / f"scene_{i}.nc", seed=i, land_columns=16)
    assert main(["--task", "segment", "--model", "fusion_aspp", "--data", str(root / "data"), "--patch-cells", "4",
                 "--epochs", "3", "--logdir", str(root / "logs"), "--run-name", "scenes", "--tb-histogram-freq",
                 "0"]) == 0
    return root / "logs" / "scenes"


def test_a_folder_of_netcdf_scenes_trains_and_scores_valid_pixels(scene_run):
    metrics = json.loads((scene_run / "metrics.json").read_text())
    assert metrics["test"]["count"] >= 1 and 0 <= metrics["test"]["dice"] <= 1
    assert sorted(p.suffix for p in (scene_run / "sections").iterdir()) == [".png"] * metrics["test"]["count"]


def test_zscore_statistics_count_valid_pixels_only():
    """Batches of (inputs, valid): an input's sigma is its spread over the valid pixels, whatever lies on land."""
    from explain.zscores import zscores

    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="mixing")(inputs))
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, (4, 8, 8, 2)).astype("float32")
    valid = np.ones((4, 8, 8), bool)
    valid[:, :, :3] = False
    values[~valid] = 1000.0
    sigma = zscores(model, [(values, valid)]).table["sigma"].to_numpy()
    np.testing.assert_allclose(sigma, values[valid].std(axis=0), rtol=1e-6)


def test_zscores_stream_the_run_own_netcdf_scenes(scene_run, tmp_path):
    from explain.zscores.__main__ import main as zscores_main

    assert zscores_main(["--model", str(scene_run), "--out", str(tmp_path)]) == 0  # the run's data: the folder
    table = pd.read_csv(tmp_path / "zscores.csv")
    assert len(table[table["group"] == "mwr"]) == 14 and table["sigma"].notna().all()


def test_a_whole_scene_is_predicted_tile_by_tile_into_npy_and_netcdf(scene_run, tmp_path, capsys):
    from training.predict import main as predict_main

    scene = scene_run.parent.parent / "data" / "scene_0.nc"
    assert predict_main(["--model", str(scene_run), "--scene", str(scene), "--out", str(tmp_path)]) == 0
    probability = np.load(tmp_path / "scene_0_probability.npy")
    assert probability.shape == (SIDE, SIDE) and 0 <= probability.min() <= probability.max() <= 1
    with netCDF4.Dataset(tmp_path / "scene_0_probability.nc") as nc:
        np.testing.assert_array_equal(nc["ice_probability"][:], probability)
    with netCDF4.Dataset(scene) as nc:
        sic = np.asarray(nc["SIC"][:])
    expected = mask_scores(sic >= 2, probability > 0.5, sic != CHART_FILL)
    assert json.loads((tmp_path / "scene_0_scores.json").read_text()) == pytest.approx(expected)
    assert "scene_0.nc: dice" in capsys.readouterr().out


def test_a_scene_on_another_grid_than_the_run_is_refused_by_name(scene_run, tmp_path, capsys):
    from training.predict import main as predict_main

    other = tmp_path / "coarser.nc"
    write_scene(other, coarse=(SIDE // 16, SIDE // 16))
    assert predict_main(["--model", str(scene_run), "--scene", str(other), "--out", str(tmp_path / "out")]) == 1
    assert "coarser.nc: has 16 SAR pixels per coarse cell, but the model was trained on 8" in capsys.readouterr().err


def test_training_draws_new_patches_each_epoch_reading_only_their_windows(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(4):
        write_scene(folder / f"s{i}.nc", seed=i, land_columns=16)
    argv = ["--task", "segment", "--model", "fusion_aspp", "--data", str(folder), "--patch-cells", "2",
            "--batch-size", "4", "--no-augment"]
    data = TASKS["segment"].prepare_data(parse_config(argv, TASKS), tmp_path)
    assert not any(s.dataset["nersc_sar_primary"].variable._in_memory for s in data.sampler.scenes)
    train = data.dataset("train", parse_config(argv, TASKS), training=True)
    assert int(train.cardinality()) == -(-len(data.items("train")) // 4)  # the schedule knows its steps
    epochs = [[(x["sar"].numpy(), y.numpy()) for x, y in train] for _ in range(2)]
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(*epochs))  # drawn anew
    assert all((target[..., 1].mean(axis=(1, 2)) >= 0.5).all() for _, target in epochs[0])
    (tmp_path / "again").mkdir()
    again = TASKS["segment"].prepare_data(parse_config(argv, TASKS), tmp_path / "again")
    first = [x["sar"].numpy() for x, _ in again.dataset("train", parse_config(argv, TASKS), training=True)]
    assert all(np.array_equal(a, b[0]) for a, b in zip(first, epochs[0]))  # seeded
