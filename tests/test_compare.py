"""``python -m training.compare`` end to end on a tiny budget, and the option it relies on."""

from __future__ import annotations

import keras
import pandas as pd
import pytest

from models import build_model
from training import compare


def test_a_backbone_trains_whole_only_when_asked():
    frozen = build_model("mobilenetv3", 3, (32, 32, 3), weights="none")
    whole = build_model("mobilenetv3", 3, (32, 32, 3), weights="none", train_backbone=True)
    head_only = sum(w.numpy().size for w in frozen.trainable_weights)
    assert sum(w.numpy().size for w in whole.trainable_weights) > 10 * head_only
    momenta = {m: {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
               for m, model in (("frozen", frozen), ("whole", whole))}
    assert momenta["whole"] == {0.9} and 0.9 not in momenta["frozen"]  # from scratch, the statistics keep up


@pytest.mark.slow
def test_compare_writes_table_two_and_the_audit_then_reuses_finished_runs(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--models", "sednet,mobilenetv3", "--n", "36", "--size", "32",
            "--epochs", "1", "--batch-size", "8"]
    assert compare.main(argv) == 0
    table = pd.read_csv(tmp_path / "compare.csv")
    assert list(table["model"]) == ["sednet", "mobilenetv3"]
    for column in ("train_accuracy", "test_precision", "test_recall", "test_f1", "test_loss", "accuracy_drop",
                   "relies_on_scale_bar"):
        assert table[column].notna().all(), column
    energies = table.set_index("model")[["gradcam_energy_grains", "gradcam_energy_scale_bar"]]
    assert energies.loc["sednet"].between(0, 1).all()
    assert energies.stack().dropna().between(0, 1).all()  # NaN (a one-epoch model's all-zero maps) is left out
    markdown = (tmp_path / "compare.md").read_text()
    assert "| sednet |" in markdown and "| mobilenetv3 |" in markdown
    assert (tmp_path / "audits" / "mobilenetv3" / "audit.html").is_file()
    capsys.readouterr()
    assert compare.main(argv) == 0
    again = capsys.readouterr().out
    assert again.count("reusing the finished run") == 2 and again.count("reusing the finished audit") == 2
    assert pd.read_csv(tmp_path / "compare.csv").equals(table)


def test_an_unknown_model_is_refused(tmp_path, capsys):
    assert compare.main(["--out", str(tmp_path), "--models", "sednet,alexnet"]) == 2
    assert "alexnet" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
