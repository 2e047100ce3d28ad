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
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from datasets.ai4arctic import (AMSR2_VARIABLES, CHART_FILL, SAR_VARIABLES, concentration, ice_from_concentration,
                                ice_target, open_scene)
from datasets.images import UnreadableImageError, read_image
from models.losses import SEGMENTATION_LOSSES, IgnoringInvalid
from models.metrics import ValidPixelIoU
from training.config import parse_config
from training.tasks import TASKS
from training.tasks.segment.fusion import INVALID_COLOUR
from training.tasks.segment.metrics import concentration_scores, grouped_scores, mask_scores

SIDE, RATIO = 64, 8


def write_scene(path: Path, seed: int = 0, land_columns: int = 0, no_data_rows: int = 0, drop: str | None = None,
                coarse: tuple[int, int] = (SIDE // RATIO, SIDE // RATIO), chart_on_coarse: bool = False,
                graded: bool = False) -> Path:
    """A scene in the published layout: HH, HV and SIC on the 80 m grid, 14 AMSR2 channels on the 2 km grid; ice
    in the lower half (SIC 10 tenths), open water above (0), or with ``graded`` SIC rising from 0 to 10 tenths
    down the rows; ``land_columns`` of land on the left (SIC 255), ``no_data_rows`` without SAR (NaN) at the
    bottom; ``drop``: a variable left out."""
    rng = np.random.default_rng(seed)
    ice = np.zeros((SIDE, SIDE), bool)
    ice[SIDE // 2 + int(rng.integers(-8, 8)):] = True
    sic = np.where(ice, 10, 0).astype(np.uint8)
    if graded:
        sic = np.repeat((np.arange(SIDE) * 11 // SIDE)[:, None], SIDE, axis=1).astype(np.uint8)
        ice = sic >= 5
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
        if drop != "SIC":
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
    picture = read_image(tmp_path / "scene_0.png")  # SAR, radiometer, chart, prediction, error
    assert picture.shape[:2] == (SIDE, 5 * SIDE + 4 * 4)
    assert (picture[:, 2 * (SIDE + 4):2 * (SIDE + 4) + 16] == INVALID_COLOUR).all()  # the land, unscored


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


def test_the_sic_target_is_the_charts_concentration_on_valid_pixels_in_validation_and_training(tmp_path):
    """Break tried: the target built from the ice mask (a graded chart then learns 0 or 1 only)."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(3):
        write_scene(folder / f"s{i}.nc", seed=i, land_columns=16, graded=True)
    argv = ["--task", "segment", "--model", "fusion_aspp", "--data", str(folder), "--patch-cells", "4",
            "--ice-target", "sic", "--no-augment"]
    config = parse_config(argv, TASKS)
    data = TASKS["segment"].prepare_data(config, tmp_path)
    with netCDF4.Dataset(folder / "s0.nc") as nc:
        chart = np.asarray(nc["SIC"][:])
    for sample in data.samples:
        row, col = (int(v) for v in sample.name.split("@")[1].split(","))
        window = chart[row:row + 32, col:col + 32]
        _, target = data.arrays([sample])
        np.testing.assert_allclose(target[0, ..., 0], np.where(window == CHART_FILL, 0, window / 10), atol=1e-6)
        assert np.array_equal(target[0, ..., 1], window != CHART_FILL)
    _, drawn = next(data.sampler.epoch(0))
    assert set(np.unique(drawn[..., 0])) - {0.0, 1.0}  # concentrations, not a mask
    assert config.options.resolved_loss() == "mse"


def test_concentration_scores_count_valid_pixels_only():
    """R2 and RMSE of a half-land scene are those of its valid half alone, whatever is predicted on land.
    Break tried: every pixel pooled (R2 -0.94 instead of the half's 0.92)."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(4)
    truth = rng.integers(0, 11, (32, 32)) / 10
    predicted = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    valid = np.ones(truth.shape, bool)
    valid[:, :16] = False
    garbled = predicted.copy()
    garbled[:, :16] = 1 - truth[:, :16]
    scores = concentration_scores([(truth, garbled, valid)])
    half = (truth[:, 16:].ravel(), predicted[:, 16:].ravel())
    assert scores["sic_r2"] == pytest.approx(r2_score(*half))
    assert scores["sic_rmse"] == pytest.approx(100 * np.sqrt(np.mean((half[0] - half[1]) ** 2)))
    assert concentration_scores([(np.full((4, 4), 0.3), np.full((4, 4), 0.3), None)])["sic_r2"] is None


def test_a_regressed_concentration_gives_the_charts_ice_map_at_every_threshold():
    """The ice mask of a predicted SIC is the chart's where the prediction rounds to the chart's tenths."""
    chart = np.arange(11, dtype=np.uint8)[None].repeat(3, axis=0)
    for threshold in range(1, 11):
        assert np.array_equal(ice_from_concentration(concentration(chart), threshold), ice_target(chart, threshold)[0])
    assert list(ice_from_concentration(np.array([0.149, 0.151]), 2)) == [False, True]


@pytest.mark.parametrize("flags, message", [
    (["--ice-target", "sic", "--loss", "dice"], "loss=dice needs a mask; a concentration (ice_target=sic) trains "
                                                "with mse or bce or kl or wing"),
    (["--ice-target", "sic", "--model", "unet_resnet34"], "ice_target=sic: a concentration is learnt by a sea-ice "
                                                          "model (fusion_aspp), not unet_resnet34"),
])
def test_a_concentration_target_refuses_mask_losses_and_salt_models(flags, message):
    from training.config import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(["--task", "segment", "--model", "fusion_aspp", *flags], TASKS)


def test_a_concentration_target_on_a_mask_manifest_says_it_needs_netcdf_scenes(tmp_path):
    from datasets.tables import DataError

    config = parse_config(["--task", "segment", "--model", "fusion_aspp", "--data", str(tmp_path / "scenes.csv"),
                           "--ice-target", "sic"], TASKS)
    with pytest.raises(DataError, match="--ice-target sic learns the SIC chart of AI4Arctic NetCDF scenes"):
        TASKS["segment"].prepare_data(config, tmp_path)


@pytest.fixture(scope="module")
def sic_run(tmp_path_factory):
    """A fusion_aspp run that regresses the concentration of four graded scenes, a quarter of each land."""
    from training.run import main

    root = tmp_path_factory.mktemp("sic")
    (root / "data").mkdir()
    for i in range(4):
        write_scene(root / "data" / f"scene_{i}.nc", seed=i, land_columns=16, graded=True)
    assert main(["--task", "segment", "--model", "fusion_aspp", "--data", str(root / "data"), "--patch-cells", "4",
                 "--ice-target", "sic", "--epochs", "2", "--logdir", str(root / "logs"), "--run-name", "sic",
                 "--tb-histogram-freq", "0", "--tb-gradcam-freq", "0"]) == 0
    return root / "logs" / "sic"


def test_a_concentration_run_reports_r2_and_rmse_per_split_and_scene(sic_run):
    metrics = json.loads((sic_run / "metrics.json").read_text())
    assert metrics["loss"] == "mse" and metrics["ice_target"] == "sic"
    for split in ("val", "test"):
        assert metrics[split]["sic_rmse"] >= 0 and metrics[split]["sic_r2"] is not None
        assert all("sic_rmse" in scores for scores in metrics[split]["sections"].values())
    events = EventAccumulator(str(sic_run / "validation"), size_guidance={"tensors": 0}).Reload()
    assert all(len(events.Tensors(tag)) == 2 for tag in ("epoch_sic_r2", "epoch_sic_rmse"))


def test_a_concentration_run_predicts_a_scene_into_a_concentration_file_scored_on_valid_pixels(sic_run, tmp_path):
    from training.predict import main as predict_main

    scene = sic_run.parent.parent / "data" / "scene_1.nc"
    assert predict_main(["--model", str(sic_run), "--scene", str(scene), "--out", str(tmp_path)]) == 0
    predicted = np.load(tmp_path / "scene_1_concentration.npy")
    with netCDF4.Dataset(tmp_path / "scene_1_concentration.nc") as nc:
        np.testing.assert_array_equal(nc["sea_ice_concentration"][:], predicted)
    with netCDF4.Dataset(scene) as nc:
        sic = np.asarray(nc["SIC"][:])
    valid = sic != CHART_FILL
    expected = {**mask_scores(sic >= 2, ice_from_concentration(predicted, 2), valid),
                **concentration_scores([(sic / 10, predicted, valid)])}
    assert json.loads((tmp_path / "scene_1_scores.json").read_text()) == pytest.approx(expected)


def test_a_scene_without_a_chart_is_predicted_and_not_scored(scene_run, tmp_path, capsys):
    """A challenge's test scene has no SIC chart: it is predicted whole, and nothing is scored."""
    from training.predict import main as predict_main

    scene = write_scene(tmp_path / "test_scene.nc", drop="SIC")
    assert predict_main(["--model", str(scene_run), "--scene", str(scene), "--out", str(tmp_path / "out")]) == 0
    assert np.load(tmp_path / "out" / "test_scene_probability.npy").shape == (SIDE, SIDE)
    assert not (tmp_path / "out" / "test_scene_scores.json").exists()
    assert read_image(tmp_path / "out" / "test_scene.png").shape[:2] == (SIDE, 5 * SIDE + 4 * 4)
    assert "test_scene.nc: no mask to score against" in capsys.readouterr().out


def test_the_default_sea_ice_data_are_the_synthetic_sets_netcdf_scenes_for_training_and_zscores(tmp_path):
    """The default command's path runs through NetCDF: the task and the Z-scores of a run both read the scenes."""
    from explain.loading import LoadedRun
    from explain.zscores.data import resolve_data
    from models.fusion import build_fusion_aspp

    argv = ["--task", "segment", "--model", "fusion_aspp", "--synthetic-n", "6", "--synthetic-size", "32",
            "--logdir", str(tmp_path)]
    source = TASKS["segment"].resolve_source(parse_config(argv, TASKS))
    assert source.name == "scenes" and len(list(source.glob("*.nc"))) == 6
    salt = TASKS["segment"].resolve_source(parse_config(["--task", "segment", "--data", "synthetic:sea_ice",
                                                         "--synthetic-n", "6", "--synthetic-size", "32",
                                                         "--logdir", str(tmp_path)], TASKS))
    assert salt == source.parent / "manifest.csv"  # a one-input model is not given scenes
    run = LoadedRun(build_fusion_aspp(1, (32, 32, 2), mwr_scale=8, width=4), ["ice"],
                    {"data": "synthetic:sea_ice", "synthetic_n": 6, "synthetic_size": 32}, tmp_path / "run" / "x")
    assert resolve_data(run, None) == source
