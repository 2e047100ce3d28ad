"""One-channel seismic patches in ``--task classify`` (the salt thesis's LANDMASS facies): reading every
format as amplitudes, left-right flips only, one-channel models, the synthetic facies set, and a trained
classifier explained and audited on seismic pictures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import segyio
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from datasets.images import UnreadableImageError, write_image
from datasets.pipeline import InputSpec, load_example, make_dataset, picture
from datasets.seismic import read_patch
from datasets.synthetic import write_dataset
from datasets.synthetic.seismic_facies import CLASSES
from explain.loading import load_model
from models import build_model
from training.config import parse_config
from training.tasks import TASKS
from training.tasks.classify import input_kind

SIZE = 48
TWO_CLASSES = ("chaotic", "salt_dome")  # one and four bands of noisy traces


def _segy(path: Path, amplitude: np.ndarray) -> Path:
    """A 2D SEG-Y line written by segyio itself: one trace per column."""
    segyio.tools.from_array2D(str(path), np.ascontiguousarray(amplitude.T, np.float32))
    return path


def _ramp(height: int = 40, width: int = 36) -> np.ndarray:
    """Amplitudes that differ along both axes and are symmetric along neither."""
    z, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.sin(z / 3) * (1 + x / width) + 0.05 * x


def test_every_patch_format_reads_as_the_same_amplitudes(tmp_path):
    amplitude = _ramp()
    grey8 = np.round(128 + amplitude / np.abs(amplitude).max() * 100).astype(np.uint8)
    write_image(tmp_path / "p8.png", grey8)
    write_image(tmp_path / "p16.tif", grey8.astype(np.uint16) * 257)
    write_image(tmp_path / "rgb_grey.png", np.repeat(grey8[..., None], 3, axis=-1))  # grey stored as RGB
    np.save(tmp_path / "p.npy", amplitude)
    _segy(tmp_path / "p.sgy", amplitude)
    for name in ("p8.png", "p16.tif", "rgb_grey.png"):
        read = read_patch(tmp_path / name)
        assert read.shape == (40, 36, 1) and read.dtype == np.float32
        assert np.corrcoef(read.ravel(), grey8.ravel())[0, 1] > 0.999  # grey levels, not tripled or scaled to 8 bits
    for name in ("p.npy", "p.sgy"):
        np.testing.assert_allclose(read_patch(tmp_path / name)[..., 0], amplitude, rtol=1e-6)


def test_a_colour_image_among_grey_patches_is_refused_by_name(tmp_path):
    colour = np.zeros((40, 40, 3), np.uint8)
    colour[..., 0] = 200
    write_image(tmp_path / "photo.png", colour)
    with pytest.raises(UnreadableImageError, match="colour image .* among one-channel seismic patches"):
        read_patch(tmp_path / "photo.png")


@pytest.fixture
def awkward_folder(tmp_path):
    """Four classes of .npy patches, with one of each bad input the issue lists."""
    rng = np.random.default_rng(0)
    root = tmp_path / "patches"
    for label in CLASSES:
        for i in range(5):
            (root / label).mkdir(parents=True, exist_ok=True)
            np.save(root / label / f"{i}.npy", rng.normal(size=(40, 40)).astype(np.float32))
    np.save(root / "horizon" / "constant.npy", np.full((40, 40), 7.0, np.float32))
    np.save(root / "fault" / "larger.npy", rng.normal(size=(60, 52)).astype(np.float32))
    write_image(root / "chaotic" / "photo.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    ragged = _segy(root / "salt_dome" / "ragged.sgy", rng.normal(size=(40, 40)))
    with segyio.open(str(ragged), "r+", ignore_geometry=True) as segy:
        segy.header[3] = {segyio.TraceField.TRACE_SAMPLE_COUNT: 30}
    return root


def test_bad_patches_are_listed_and_the_rest_is_read_as_seismic(awkward_folder, tmp_path, capsys):
    config = parse_config(["--data", str(awkward_folder), "--image-size", "32", "--local-size", "16"], TASKS)
    data = TASKS["classify"].prepare_data(config, tmp_path)
    out = capsys.readouterr().out
    assert data.spec.channels == 1 and "one-channel seismic patches, z-scored per patch" in out
    assert "2 sizes (40 x 40: 21, 60 x 52: 1); each is resized to 32 x 32" in out
    bad = pd.read_csv(tmp_path / "bad_files.csv").set_index("path")["reason"]
    assert sorted(Path(p).name for p in bad.index) == ["photo.png", "ragged.sgy"]
    assert bad.str.contains("colour image").sum() == 1 and bad.str.contains("traces of differing lengths").sum() == 1
    constant = data.table.loc[data.table["path"].str.endswith("constant.npy"), "path"].item()
    whole, local = load_example(constant, np.full(4, np.nan, np.float32), data.spec)
    assert whole.shape == (32, 32, 1) and local.shape == (16, 16, 1) and not whole.any() and np.isfinite(whole).all()


def test_the_input_kind_follows_the_files_unless_asked():
    table = pd.DataFrame({"path": ["a/1.npy", "a/2.SGY"]})
    config = parse_config(["--data", "a"], TASKS)
    assert input_kind(config, table) == "seismic"
    assert input_kind(config, table.assign(path=["a/1.npy", "a/2.png"])) == "photo"  # grey PNGs: only when asked
    assert input_kind(parse_config(["--data", "a", "--input-kind", "seismic"], TASKS),
                      pd.DataFrame({"path": ["a/1.png"]})) == "seismic"
    assert input_kind(parse_config(["--data", "synthetic:seismic_facies"], TASKS), table) == "seismic"
    assert input_kind(parse_config(["--data", "synthetic:thin_sections"], TASKS), table) == "photo"


def test_training_flips_seismic_patches_left_right_only(tmp_path):
    """Depth has a direction: an up-down flip or a quarter turn would train on geology that does not occur."""
    np.save(tmp_path / "p.npy", _ramp(32, 32))
    table = pd.DataFrame({"path": [str(tmp_path / "p.npy")] * 64, "xmin": np.nan, "ymin": np.nan, "xmax": np.nan,
                          "ymax": np.nan})
    spec = InputSpec(32, channels=1)
    original = load_example(str(tmp_path / "p.npy"), np.full(4, np.nan, np.float32), spec)[0]
    seen = np.concatenate([x.numpy() for x, _ in make_dataset(table, np.zeros(64), spec, 16, num_classes=2,
                                                               training=True, augment=True)])
    flipped = [np.allclose(x, original[:, ::-1]) for x in seen]
    assert all(np.allclose(x, original) or f for x, f in zip(seen, flipped))
    assert 10 < sum(flipped) < 54


def test_dataset_normalisation_uses_the_training_statistics(tmp_path):
    np.save(tmp_path / "p.npy", np.full((32, 32), 5.0, np.float32))
    spec = InputSpec(32, channels=1, amplitude_stats=(3.0, 4.0))
    assert np.allclose(load_example(str(tmp_path / "p.npy"), np.full(4, np.nan, np.float32), spec)[0], 0.5)


@pytest.mark.parametrize("name", ["sednet", "resnet34_classifier", "resnet50"])
def test_classifiers_take_one_channel(name):
    options = {"local_size": 16} if name == "sednet" else {"encoder_width": 8} if name == "resnet34_classifier" else {}
    model = build_model(name, 4, (32, 32, 1), weights="none", **options)
    assert all(t.shape[-1] == 1 for t in model.inputs)
    zeros = {name: np.zeros((2, *t.shape[1:]), np.float32) for name, t in
             (model.input.items() if isinstance(model.input, dict) else [("image", model.input)])}
    assert model.predict(zeros if len(zeros) > 1 else zeros["image"], verbose=0).shape == (2, 4)
    if name == "resnet50":  # the merger learns with the head while the backbone stays frozen
        trainable = {v.path.split("/")[0] for v in model.trainable_weights}
        assert {"merger_1", "merger_2", "merger", "head_dense", "logits"} == trainable


def test_resnet34_classifier_without_train_backbone_trains_the_head_only():
    model = build_model("resnet34_classifier", 4, (32, 32, 1), weights="none", encoder_width=8, train_backbone=False)
    assert {v.path.split("/")[0] for v in model.trainable_weights} == {"head_dense", "logits"}


def test_the_synthetic_facies_set_is_seeded_grey_and_plants_its_shortcut_by_count(tmp_path):
    manifest = write_dataset("seismic_facies", tmp_path / "a", n=8, seed=3, size=SIZE, shortcut="noisy_traces",
                             correlation=1.0)
    again = write_dataset("seismic_facies", tmp_path / "b", n=8, seed=3, size=SIZE, shortcut="noisy_traces",
                          correlation=1.0)
    table = pd.read_csv(manifest)
    assert list(table["label"][:4]) == list(CLASSES)
    for row, other in zip(table.itertuples(), pd.read_csv(again).itertuples()):
        image = cv2.imread(str(tmp_path / "a" / row.path), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 2 and image.dtype == np.uint8
        assert np.array_equal(image, cv2.imread(str(tmp_path / "b" / other.path), cv2.IMREAD_UNCHANGED))
        noisy = cv2.imread(str(tmp_path / "a" / row.shortcut_mask), cv2.IMREAD_GRAYSCALE) > 0
        bands = np.diff(np.concatenate([[0], noisy.all(axis=0), [0]]).astype(int)) == 1
        assert bands.sum() == CLASSES.index(row.label) + 1 and not noisy[:, ~noisy.all(axis=0)].any()
        assert image[noisy].std() > 2 * image[~noisy].std() and np.isin(image[noisy], (0, 255)).mean() > 0.2


@pytest.fixture(scope="module")
def facies_shortcut_run(tmp_path_factory):
    """A SedNet trained on grey PNG patches of two classes (folders) that are all horizons: only the count
    of noisy-trace bands (one or four) tells them apart."""
    from training.run import main

    root = tmp_path_factory.mktemp("facies")
    write_dataset("seismic_facies", root / "all", n=160, seed=0, size=SIZE, shortcut="noisy_traces",
                  correlation=1.0, facies="horizon")
    for label in TWO_CLASSES:
        shutil.copytree(root / "all" / label, root / "data" / label)
    table = pd.read_csv(root / "all" / "manifest.csv")
    table[table["label"].isin(TWO_CLASSES)].to_csv(root / "all" / "two.csv", index=False)
    assert main(["--data", str(root / "data"), "--input-kind", "seismic", "--epochs", "12", "--image-size", str(SIZE),
                 "--local-size", "24", "--batch-size", "8", "--logdir", str(root / "logs"), "--run-name", "facies",
                 "--tb-histogram-freq", "0", "--tb-gradcam-freq", "6", "--tb-gradcam-images", "4"]) == 0
    return root / "logs" / "facies", root / "data", root / "all" / "two.csv"


def test_a_one_channel_classifier_trains_and_says_how_it_reads_its_inputs(facies_shortcut_run):
    run = facies_shortcut_run[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["inputs"] == {"channels": 1, "amplitude_stats": None}
    assert metrics["test"]["accuracy"] >= 0.75  # the count of noisy traces is learnt
    loaded = load_model(run)
    assert loaded.spec.channels == 1 and loaded.class_names == list(TWO_CLASSES)
    events = EventAccumulator(str(run / "validation"), size_guidance={"tensors": 0}).Reload()
    assert sum(tag.startswith("gradcam/whole/") for tag in events.Tags()["tensors"]) == 4


def test_seismic_pictures_show_the_reflectors_of_8_bit_patches(facies_shortcut_run, tmp_path):
    """A grey PNG patch sits around 128: shown as an amplitude section it spans the grey scale, where
    the same levels shown as a photograph stay washed out."""
    run, data, _ = facies_shortcut_run
    patch = read_patch(next((data / TWO_CLASSES[0]).iterdir()))
    shown = picture(patch)
    assert shown.shape == (SIZE, SIZE, 3) and np.percentile(shown, 1) < 40 and np.percentile(shown, 99) > 215
    from explain.run import main as explain_main

    assert explain_main(["--model", str(run), "--images", str(data), "--out", str(tmp_path), "--methods",
                         "gradcam"]) == 0
    table = pd.read_csv(tmp_path / "explanations.csv")
    assert len(table) == 80 and table["correct"].mean() >= 0.75
    overlays = sorted((tmp_path / "gradcam").glob("*_whole.png"))
    assert len(overlays) == 80 and cv2.imread(str(overlays[0])).shape == (SIZE, SIZE, 3)


def test_the_audit_finds_a_facies_classifier_reading_noisy_traces(facies_shortcut_run, tmp_path):
    from explain.audit.__main__ import main as audit_main

    run, _, manifest = facies_shortcut_run
    assert audit_main(["--model", str(run), "--data", str(manifest), "--masks", "shortcut=shortcut_mask", "--out",
                       str(tmp_path), "--methods", "gradcam", "--sanity-images", "0"]) == 0
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["verdicts"]["all"]["relies_on_shortcut"], report["verdicts"]["all"]["verdict"]
    assert (tmp_path / "examples" / f"{TWO_CLASSES[0]}_1.png").is_file()


def test_a_seismic_section_is_classified_tile_by_tile(facies_shortcut_run, tmp_path):
    """Two patches side by side as one .npy section: each half is classified as its patch alone is."""
    from explain.run import main as explain_main

    run, data, _ = facies_shortcut_run
    halves = [read_patch(next((data / label).iterdir()))[..., 0] for label in TWO_CLASSES]
    np.save(tmp_path / "section.npy", np.concatenate(halves, axis=1))
    assert explain_main(["--model", str(run), "--images", str(tmp_path / "section.npy"), "--tile", str(SIZE),
                         "--stride", str(SIZE), "--out", str(tmp_path / "out"), "--methods", "gradcam"]) == 0
    probabilities = np.load(tmp_path / "out" / "classes" / "00000_section_probabilities.npy").astype(np.float32)
    assert probabilities.shape == (SIZE, 2 * SIZE, 2)
    loaded = load_model(run)
    alone = [loaded.model.predict({name: np.stack([x]) for name, x in zip(loaded.spec.input_names, load_example(
        str(path), np.full(4, np.nan, np.float32), loaded.spec))}, verbose=0)[0].argmax()
        for path in (next((data / label).iterdir()) for label in TWO_CLASSES)]
    assert [int(probabilities[:, :SIZE].mean((0, 1)).argmax()), int(probabilities[:, SIZE:].mean((0, 1)).argmax())] \
        == alone
    shown = cv2.imread(str(tmp_path / "out" / "gradcam" / "00000_section.png"))
    assert shown.shape == (SIZE, 2 * SIZE, 3)


def test_feature_visualisation_reads_a_facies_patch_whole_as_the_classifier_does(facies_shortcut_run, tmp_path):
    """Inversion of a patch classifier starts from the whole patch (resized, z-scored), not from the centre patch a
    segmentation model would take."""
    from explain.featurevis.__main__ import main as featurevis_main

    run, _, _ = facies_shortcut_run
    patch = tmp_path / "twice_the_input.npy"
    np.save(patch, _ramp(2 * SIZE, 2 * SIZE))
    assert featurevis_main(["--model", str(run), "--out", str(tmp_path), "--classes", "all", "--invert", str(patch),
                            "--invert-layers", "features", "--steps", "4"]) == 0
    inversion = np.load(tmp_path / "inversion.npz")
    loaded = load_model(run)
    original = load_example(str(patch), np.full(4, np.nan, np.float32), loaded.spec)[0]
    assert any(np.allclose(inversion[key], original, atol=1e-5) for key in inversion.files), inversion.files
    assert (tmp_path / "am_classes.png").is_file()


def test_zscores_of_a_one_channel_classifier_read_its_patches_as_amplitudes(facies_shortcut_run, tmp_path):
    from explain.zscores.__main__ import main as zscores_main

    run, data, _ = facies_shortcut_run
    assert zscores_main(["--model", str(run), "--data", str(data), "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "zscores.csv")
    assert set(table["output"]) == set(TWO_CLASSES) and table["sigma"].notna().all()
