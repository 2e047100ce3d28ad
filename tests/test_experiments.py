"""The experiments' one shape: the registry, the base's command line and tables, the old
command names, and the salt thesis's loss table end to end on a tiny budget."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT
from training.experiments import EXPERIMENTS, run_experiment
from training.experiments.salt_losses import findings

TINY_LOSSES = ["--n", "6", "--size", "64", "--patch-size", "32", "--stride", "32", "--encoder-width", "8",
               "--epochs", "1", "--batch-size", "8"]


def test_every_reproduction_is_registered_under_its_name():
    assert sorted(EXPERIMENTS) == ["salt-encoders", "salt-losses", "sea-ice-fusion", "sednet-paper"]
    assert {e.stem for e in EXPERIMENTS.values()} == {"compare", "compare_losses", "compare_encoders",
                                                      "compare_fusion"}


def test_the_thesis_findings_are_checked_against_the_table():
    """Break tried: ``idxmax`` for the worst Dice; MSE's finding then reads 'does not hold'."""
    table = pd.DataFrame({"loss": ["dice", "hausdorff", "mse"], "dice": [0.9, 0.8, 0.5], "ps": [0.7, 0.9, 0.4]})
    lines = [finding.line() for finding in findings(table)]
    assert lines[0].startswith("- the Dice loss gives the best Dice: holds here (best Dice: dice, 0.900")
    assert lines[1].startswith("- the Hausdorff loss gives the best PS: holds here")
    assert lines[2].startswith("- MSE gives the worst Dice: holds here (worst Dice: mse, 0.500")
    table.loc[2, "dice"] = 0.95
    assert [f.holds for f in findings(table)] == [False, True, False]
    assert len(findings(table[table["loss"] != "hausdorff"])) == 2  # a loss not trained is not judged


def test_an_unknown_loss_is_refused_before_anything_is_written(tmp_path, capsys):
    assert run_experiment(EXPERIMENTS["salt-losses"], ["--out", str(tmp_path / "out"), "--losses", "dice,l7"]) == 2
    assert "unknown loss(es) ['l7']" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_old_command_name_says_its_new_name_and_runs_it():
    result = subprocess.run([sys.executable, "-m", "training.compare_losses", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert "python -m training.compare_losses is now python -m training.experiments salt-losses" in result.stderr
    assert result.stdout.startswith("usage: python -m training.experiments salt-losses")


@pytest.mark.slow
def test_salt_losses_writes_the_table_beside_the_thesis_and_reuses_finished_runs(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--losses", "dice,mse", *TINY_LOSSES]
    assert run_experiment(EXPERIMENTS["salt-losses"], argv) == 0
    table = pd.read_csv(tmp_path / "compare_losses.csv")
    assert list(table["loss"]) == ["dice", "mse"]
    assert table[["dice", "ps", "iou"]].stack().between(0, 1).all()
    assert list(table["thesis_dice"]) == [0.924, 0.825]
    page = (tmp_path / "compare_losses.md").read_text()
    assert "- the Dice loss gives the best Dice: " in page and "- MSE gives the worst Dice: " in page
    assert "Hausdorff" not in page and page.rstrip().endswith("min in all.")
    capsys.readouterr()
    assert run_experiment(EXPERIMENTS["salt-losses"], argv) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    assert pd.read_csv(tmp_path / "compare_losses.csv").equals(table)
