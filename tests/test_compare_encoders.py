"""The salt thesis's encoder comparison: the encoder transfer and ``python -m training.experiments salt-encoders``
end to end on tiny settings."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from models.unet import build_resnet34_classifier, build_unet_resnet34, copy_encoder, encoder_layers
from datasets.synthetic import write_dataset
from training.experiments import EXPERIMENTS, run_experiment
from training.config import parse_config
from training.tasks import TASKS


def test_copy_encoder_carries_every_encoder_weight_and_nothing_else():
    unet = build_unet_resnet34(1, (32, 32, 1), encoder_width=8)
    classifier = build_resnet34_classifier(2, (32, 32, 1), encoder_width=8)
    head = [w.copy() for w in classifier.get_layer("logits").get_weights()]
    copied = copy_encoder(unet, classifier)
    assert copied == encoder_layers(classifier)
    assert "merger_1" in copied and any(name.startswith("stage4") for name in copied)
    for name in copied:
        for mine, theirs in zip(classifier.get_layer(name).get_weights(), unet.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert all(np.array_equal(a, b) for a, b in zip(head, classifier.get_layer("logits").get_weights()))


def test_copy_encoder_refuses_another_width():
    with pytest.raises(ValueError, match="encoder width"):
        copy_encoder(build_unet_resnet34(1, (32, 32, 1), encoder_width=8),
                     build_resnet34_classifier(2, (32, 32, 1), encoder_width=16))


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    """A --task segment run folder as training.run leaves it (an untrained U-Net: training is
    tested in test_segment_run.py)."""
    root = tmp_path_factory.mktemp("segment")
    write_dataset("seismic_salt", root / "data", n=6, seed=0, size=64)
    run = root / "run"
    run.mkdir()
    parse_config(["--task", "segment", "--data", str(root / "data" / "manifest.csv"), "--patch-size", "32",
                  "--encoder-width", "8"], TASKS).to_yaml(run / "config.yaml")
    build_unet_resnet34(1, (32, 32, 1), encoder_width=8).save(run / "model.keras")
    return run


def test_compare_encoders_end_to_end(segmentation_run, tmp_path):
    out = tmp_path / "cmp"
    stages = ["stem_out", "stage3_out"]
    assert run_experiment(EXPERIMENTS["salt-encoders"], ["--out", str(out), "--segmentation", str(segmentation_run), "--encoder-width", "8",
                 "--classifier-epochs", "1", "--stride", "16", "--steps", "2", "--am-images", "2", "--ni-images", "1",
                 "--stages", ",".join(stages)]) == 0
    table = pd.read_csv(out / "compare_encoders.csv")
    assert set(table["model"]) == {"segmentation encoder", "from scratch", "segmentation U-Net"}
    assert sorted(table["layer"].unique()) == sorted(stages) and len(table) == 3 * len(stages)
    assert table["ssim"].between(-1, 1).all()
    report = (out / "compare_encoders.md").read_text()
    assert "- the segmentation encoder keeps more detail at depth: " in report
    assert "depth: holds here (mean SSIM" in report or "depth: does not hold here (mean SSIM" in report
    assert {"am_salt.png", "inversion_0.png", "segmentation_encoder.keras", "from_scratch.keras"} <= {
        p.name for p in out.iterdir()}


def test_compare_encoders_refuses_an_unknown_stage_before_training(segmentation_run, tmp_path, capsys):
    assert run_experiment(EXPERIMENTS["salt-encoders"], ["--out", str(tmp_path / "cmp"), "--segmentation", str(segmentation_run), "--stages", "stage9_out"]) == 2
    assert "stage9_out" in capsys.readouterr().err and not (tmp_path / "cmp" / "from_scratch.keras").exists()


@pytest.fixture(scope="module")
def facies(tmp_path_factory):
    """24 synthetic facies patches, 40 px: six of each of the four classes."""
    return write_dataset("seismic_facies", tmp_path_factory.mktemp("facies"), n=24, seed=0, size=40).parent


def test_compare_encoders_takes_seismic_facies_patches(segmentation_run, facies, tmp_path):
    out = tmp_path / "cmp"
    assert run_experiment(EXPERIMENTS["salt-encoders"], [
        "--out", str(out), "--segmentation", str(segmentation_run), "--encoder-width", "8", "--patches", str(facies),
        "--classifier-epochs", "1", "--steps", "2", "--am-images", "1", "--ni-images", "4", "--stages",
        "stem_out,stage4_out"]) == 0
    classes = ("chaotic", "fault", "horizon", "salt_dome")
    assert {f"am_{name}.png" for name in classes} | {"inversion_3.png"} <= {p.name for p in out.iterdir()}
    table = pd.read_csv(out / "compare_encoders.csv")
    assert len(table) == 3 * 2 * 4  # three models, two stages, one patch of each class
    classifier = keras.saving.load_model(out / "from_scratch.keras")
    assert classifier.outputs[0].shape[-1] == 4 and classifier.inputs[0].shape[1:] == (32, 32, 1)
    assert "Seismic facies patches of" in (out / "compare_encoders.md").read_text()


def test_resnet34_classifier_starts_from_a_salt_run_and_fine_tunes_the_encoder_slower(segmentation_run, facies,
                                                                                        tmp_path, capsys):
    from training.run import main

    assert main(["--data", str(facies), "--preset", "salt-encoder", "--weights", str(segmentation_run),
                 "--encoder-width", "8", "--image-size", "32", "--epochs", "1", "--fine-tune-epochs", "1",
                 "--batch-size", "8", "--logdir", str(tmp_path), "--run-name", "r", "--tb-gradcam-freq", "0",
                 "--tb-histogram-freq", "0"]) == 0
    out = capsys.readouterr().out
    classifier = build_resnet34_classifier(4, (32, 32, 1), encoder_width=8)
    copied = encoder_layers(classifier)
    assert f"Started from {segmentation_run / 'model.keras'}: {len(copied)} layers copied, head_dense, logits " \
           "initialised afresh" in out
    convolutions = [n for n in copied if not isinstance(classifier.get_layer(n), keras.layers.BatchNormalization)]
    assert f"Fine-tuning the top {len(convolutions)} backbone layers at lr=0.0002" in out  # batch norms stay frozen
