"""``training.run --task segment --model fusion_aspp`` on two-source scenes with the bad inputs the
issue names, the export, and ``python -m explain.zscores`` on the trained run."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
from conftest import snapshot
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from datasets.ai4arctic import write_scene
from datasets.synthetic import write_dataset
from explain.zscores.__main__ import main as zscores_main
from training.run import main as run_main

EPOCHS = 2
CONSTANT_CHANNEL = 13


def _captured(main, argv: list[str]) -> tuple[int, str]:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = main(argv)
    return code, output.getvalue()


@pytest.fixture(scope="module")
def fusion_run(tmp_path_factory):
    """Eight synthetic scenes (32 px SAR, radiometer 1/4) whose radiometer channel 13 is constant,
    plus a scene of each kind of bad input."""
    folder = tmp_path_factory.mktemp("scenes")
    manifest = write_dataset("sea_ice", folder, n=8, size=32, mwr_scale=4)
    table = pd.read_csv(manifest)
    for path in table["mwr"]:
        mwr = np.load(folder / path)
        mwr[..., CONSTANT_CHANNEL] = 0.5
        np.save(folder / path, mwr)
    sar, mwr = np.load(folder / table["sar"][0]), np.load(folder / table["mwr"][0])
    np.save(folder / "off_grid_mwr.npy", mwr[:, :7])
    np.save(folder / "big_sar.npy", np.zeros((64, 64, 2), np.float32))
    np.save(folder / "big_mwr.npy", np.zeros((16, 16, 14), np.float32))
    cv2.imwrite(str(folder / "big_mask.png"), np.zeros((64, 64), np.uint8))
    cv2.imwrite(str(folder / "short_mask.png"), np.zeros((30, 32), np.uint8))
    (folder / "text.npy").write_text("not an array")
    bad_rows = pd.DataFrame([
        {"sar": table["sar"][0], "mwr": "off_grid_mwr.npy", "mask": table["mask"][0]},
        {"sar": table["sar"][1], "mwr": table["mwr"][1], "mask": "short_mask.png"},
        {"sar": "big_sar.npy", "mwr": "big_mwr.npy", "mask": "big_mask.png"},
        {"sar": "text.npy", "mwr": table["mwr"][2], "mask": table["mask"][2]},
    ])
    pd.concat([table[["sar", "mwr", "mask"]], bad_rows]).to_csv(folder / "manifest.csv", index=False)
    logdir = tmp_path_factory.mktemp("logs")
    before = snapshot(folder)
    code, stdout = _captured(run_main, [
        "--task", "segment", "--model", "fusion_aspp", "--data", str(folder / "manifest.csv"), "--epochs", str(EPOCHS),
        "--batch-size", "4", "--logdir", str(logdir), "--run-name", "ice", "--split", "0.5,0.25,0.25",
        "--tb-gradcam-images", "1"])
    return {"code": code, "stdout": stdout, "run": logdir / "ice", "folder": folder, "sar": sar, "before": before}


def test_the_run_trains_and_lists_every_bad_scene_with_both_shapes(fusion_run):
    assert fusion_run["code"] == 0, fusion_run["stdout"]
    assert "8 labelled scenes" in fusion_run["stdout"] and "radiometer 8 x 8 x 14 (1/4 resolution)" in fusion_run["stdout"]
    assert f"python -m explain.zscores --model {fusion_run['run']}" in fusion_run["stdout"]
    reasons = pd.read_csv(fusion_run["run"] / "bad_files.csv")["reason"].tolist()
    assert len(reasons) == 4
    assert any("the SAR is 32 x 32 but its radiometer grid" in r and "off_grid_mwr.npy is 8 x 7" in r for r in reasons)
    assert any("short_mask.png is 30 x 32" in r for r in reasons)
    assert any("its SAR is 64 x 64 x 2 and its radiometer 16 x 16 x 14, but the first sample" in r
               and "32 x 32 x 2 and 8 x 8 x 14" in r for r in reasons)
    assert any("not a readable .npy" in r for r in reasons)


def test_metrics_and_pictures_score_each_split_per_scene(fusion_run):
    metrics = json.loads((fusion_run["run"] / "metrics.json").read_text())
    assert metrics["mwr_scale"] == 4 and metrics["sar_shape"] == [32, 32, 2] and metrics["class_names"] == ["ice"]
    split = pd.read_csv(fusion_run["run"] / "split.csv")
    for name in ("train", "val", "test"):
        scenes = metrics[name]["sections"]
        assert set(scenes) == set(split.loc[split["split"] == name, "scene"])
        assert metrics[name]["iou"] == pytest.approx(np.mean([s["iou"] for s in scenes.values()]))
    pictures = sorted((fusion_run["run"] / "sections").glob("*.png"))
    assert [p.stem for p in pictures] == sorted(Path(s).stem for s in metrics["test"]["sections"])
    assert cv2.imread(str(pictures[0])).shape[:2] == (32, 5 * 32 + 16)


def test_tensorboard_gets_scene_scores_and_pictures_each_epoch(fusion_run):
    events = EventAccumulator(str(fusion_run["run"] / "validation"), size_guidance={"tensors": 0}).Reload()
    for tag in ("epoch_iou", "epoch_dice", "sections/00"):
        assert [e.step for e in events.Tensors(tag)] == list(range(EPOCHS))


def test_export_takes_both_sources_and_predicts_like_the_keras_model(fusion_run):
    model = keras.saving.load_model(fusion_run["run"] / "model.keras", compile=False)
    served = tf.saved_model.load(str(fusion_run["run"] / "export")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    inputs = {"sar": rng.normal(size=(2, 32, 32, 2)).astype(np.float32),
              "mwr": rng.normal(size=(2, 8, 8, 14)).astype(np.float32)}
    (output,) = served(**{k: tf.constant(v) for k, v in inputs.items()}).values()
    np.testing.assert_allclose(output.numpy(), model.predict(inputs, verbose=0), atol=1e-4)


def test_zscores_of_the_run_report_groups_charts_and_the_constant_channel(fusion_run, tmp_path):
    code, stdout = _captured(zscores_main, ["--model", str(fusion_run["run"]), "--out", str(tmp_path)])
    assert code == 0, stdout
    assert f"1 input(s) have zero variance (dead or constant; left out of the sums): mwr[{CONSTANT_CHANNEL}]" in stdout
    table = pd.read_csv(tmp_path / "zscores.csv")
    assert list(table["group"].unique()) == ["scale0", "scale2", "scale4", "scale8", "scale16", "mwr"]
    assert len(table) == 84 and table["output"].unique().tolist() == ["ice"]
    constant = table[(table["group"] == "mwr") & (table["channel"] == CONSTANT_CHANNEL)]
    assert constant["dead"].item() and constant["z"].isna().item()
    groups = pd.read_csv(tmp_path / "groups.csv")
    assert groups["share_z"].sum() == pytest.approx(1) and groups["share_standardized"].sum() == pytest.approx(1)
    assert (tmp_path / "ice_sorted.png").is_file() and (tmp_path / "ice_groups.png").is_file()
    assert len(pd.read_csv(tmp_path / "bad_files.csv")) == 3  # off-grid, odd-sized, not an array (masks unread)


def test_zscores_refuse_bad_models_layers_groups_and_data_in_one_line(fusion_run, tmp_path, capsys):
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(2, 3)(inputs))
    keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(pooled)).save(tmp_path / "m.keras")
    run = str(fusion_run["run"])
    cases = [
        (["--model", str(tmp_path / "m.keras"), "--data", str(tmp_path)], "the last layers are probabilities <- pool"),
        (["--model", run, "--layer", "scale2_conv"], "'scale2_conv' is a Conv2D, not a Dense layer or 1x1"),
        (["--model", run, "--groups", "sar:0-13"], "cover 14 of them"),
        (["--model", run, "--data", str(fusion_run["folder"])], "two-source data are a CSV manifest"),
        (["--model", run, "--batch-size", "0"], "--batch-size and --max-samples must be >= 1"),
    ]
    for flags, message in cases:
        assert zscores_main([*flags, "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error


def test_predict_tells_a_fusion_run_to_take_scenes(fusion_run, tmp_path, capsys):
    from training.predict import main as predict_main

    with pytest.raises(SystemExit) as stop:
        predict_main(["--model", str(fusion_run["run"]), "--section", str(tmp_path / "s.npy"), "--out", str(tmp_path)])
    assert stop.value.code == 2 and "is a sea-ice run (inputs sar and mwr): pass --scene" in capsys.readouterr().err


def test_a_fusion_model_on_a_section_manifest_stops_with_the_columns_it_needs(tmp_path, capsys):
    manifest = tmp_path / "sections.csv"
    pd.DataFrame({"section": ["a.npy"], "mask": ["a.png"]}).to_csv(manifest, index=False)
    assert run_main(["--task", "segment", "--model", "fusion_aspp", "--data", str(manifest),
                     "--logdir", str(tmp_path / "logs")]) == 2
    assert "has no 'sar', 'mwr' column(s)" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_fusion_checks_the_papers_findings_under_every_score(tmp_path):
    """Small and Large on six tiny scenes: the shares, the ablation and a verdict per finding and score."""
    from training.experiments.__main__ import main as experiments_main
    from training.experiments.sea_ice_fusion import SCORES

    code, stdout = _captured(experiments_main, ["sea-ice-fusion", "--out", str(tmp_path), "--n", "6", "--size", "32", "--mwr-scale", "4",
                                            "--epochs", "1", "--batch-size", "4"])
    assert code == 0, stdout
    table = pd.read_csv(tmp_path / "compare_fusion.csv")
    assert sorted(table["size"].unique()) == ["large", "small"] and len(table) == 12
    for score in SCORES:
        shares = table.groupby("size")[f"share_{score}"].sum(min_count=1)
        assert ((shares - 1).abs() < 1e-6).all() or (score == "ablation" and shares.isna().any()), score
    report = (tmp_path / "compare_fusion.md").read_text()
    for title in SCORES.values():  # a one-epoch model may leave the ablation undefined, never unreported
        section = report.split(f"**{title}**")[1].split("**")[0]
        assert ("- MWR matters most: " in section and "Scale-0 is the most" in section) or "undefined here" in section
    assert (tmp_path / "small_groups.png").is_file() and (tmp_path / "large_sorted.png").is_file()


def test_augmentation_flips_sar_radiometer_and_mask_together():
    """Each source carries the mask (SAR exactly, the radiometer as its block means), so any flip
    that moves one without the others shows. Break tried: the mask left unflipped."""
    from training.config import parse_config
    from training.tasks import TASKS
    from training.tasks.segment.fusion import FusionData

    from datasets.fusion import FusionSample

    rng = np.random.default_rng(0)
    samples = []
    for i in range(8):
        mask = np.zeros((16, 16), bool)
        mask[rng.integers(0, 8):, rng.integers(0, 4):rng.integers(8, 16)] = True
        mwr = np.repeat(mask.reshape(4, 4, 4, 4).mean(axis=(1, 3))[..., None], 14, axis=-1).astype(np.float32)
        sar = np.stack([mask, ~mask], axis=-1).astype(np.float32)
        samples.append(FusionSample(f"s{i}", sar, mwr, mask, "train"))
    config = parse_config(["--task", "segment", "--model", "fusion_aspp", "--batch-size", "8"], TASKS)
    flipped = 0
    for inputs, masks in FusionData(samples).dataset("train", config, training=True).repeat(4):
        for sar, mwr, mask in zip(inputs["sar"].numpy(), inputs["mwr"].numpy(), masks.numpy()[..., 0]):
            np.testing.assert_array_equal(sar[..., 0], mask)
            np.testing.assert_allclose(mwr[..., 0], mask.reshape(4, 4, 4, 4).mean(axis=(1, 3)))
            flipped += not any(np.array_equal(mask, s.truth) for s in samples)
    assert flipped > 0


def test_nothing_of_the_users_scenes_was_changed(fusion_run):
    """Issue 32, point 13: after the run, Z-scores and predict read them (this module's last test)."""
    assert snapshot(fusion_run["folder"]) == fusion_run["before"]


def test_zscores_read_the_same_scenes_as_netcdf_files_alike(fusion_run, tmp_path):
    """The NetCDF path agrees with the .npy path: the eight scenes written as AI4Arctic files give the same
    Z-scores (patches of the model's size are the whole 32-px scenes)."""
    folder = fusion_run["folder"]
    table = pd.read_csv(folder / "manifest.csv").head(8)
    for row in table.itertuples():
        ice = cv2.imread(str(folder / row.mask), cv2.IMREAD_GRAYSCALE) > 0
        write_scene(tmp_path / "nc" / f"{Path(row.sar).stem}.nc", np.load(folder / row.sar), np.load(folder / row.mwr),
                    np.where(ice, 10, 0))
    table[["sar", "mwr", "mask"]].to_csv(folder / "eight.csv", index=False)
    for name, data in (("npy", folder / "eight.csv"), ("nc", tmp_path / "nc")):
        code, stdout = _captured(zscores_main, ["--model", str(fusion_run["run"]), "--data", str(data), "--out",
                                                str(tmp_path / name)])
        assert code == 0, stdout
    npy, nc = (pd.read_csv(tmp_path / name / "zscores.csv") for name in ("npy", "nc"))
    np.testing.assert_allclose(nc["sigma"], npy["sigma"], rtol=1e-5)
    np.testing.assert_allclose(nc["z"].fillna(0), npy["z"].fillna(0), rtol=1e-5)
