"""The Colab notebooks, executed headlessly with small configurations."""

import shutil

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient


def _execute(name: str, settings: dict[str, str], folder, monkeypatch) -> tuple[str, int]:
    """Runs ``notebooks/NAME`` in ``folder`` with ``settings`` in its environment; returns the
    text it printed and how many pictures it showed."""
    for key, value in {**settings, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    return "".join(output.get("text", "") for output in outputs), sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.slow
def test_colab_notebook_runs_end_to_end(tmp_path, monkeypatch):
    text, pictures = _execute("colab_quickstart.ipynb", {"GEOXAI_EPOCHS": "2", "GEOXAI_IMAGES": "24",
                                                         "GEOXAI_IMAGE_SIZE": "32"}, tmp_path, monkeypatch)
    assert "SavedModel and model.keras agree: True" in text
    assert "tensorboard --logdir tensorboard_logs" in text  # the %tensorboard cell is skipped outside Colab
    assert (tmp_path / "explained" / "gallery.html").is_file()
    assert pictures > 0
    shutil.rmtree(tmp_path / "tensorboard_logs", ignore_errors=True)


@pytest.mark.slow
def test_salt_notebook_runs_end_to_end(tmp_path, monkeypatch):
    text, pictures = _execute("colab_salt.ipynb", {"GEOXAI_EPOCHS": "1", "GEOXAI_SECTIONS": "6", "GEOXAI_SAMPLES": "64",
                                                   "GEOXAI_PATCH": "32", "GEOXAI_ENCODER_WIDTH": "8"},
                              tmp_path, monkeypatch)
    assert "test sections: Dice" in text and "dice" in text
    assert (tmp_path / "explained" / "gradcam").is_dir() and any((tmp_path / "predicted").glob("*_scores.json"))
    assert pictures == 3


@pytest.mark.slow
def test_sea_ice_notebook_runs_end_to_end(tmp_path, monkeypatch):
    text, pictures = _execute("colab_sea_ice.ipynb", {"GEOXAI_EPOCHS": "1", "GEOXAI_SCENES": "8", "GEOXAI_SIZE": "32",
                                                      "GEOXAI_MWR_SCALE": "4"}, tmp_path, monkeypatch)
    assert "test scenes: Dice" in text and "share_standardized" in text and "mwr" in text
    assert "ice_probability" in text and any((tmp_path / "predicted").glob("*_probability.nc"))  # a scene written back
    assert (tmp_path / "zscores" / "zscores.csv").is_file()
    assert pictures == 3


@pytest.mark.slow
def test_sem_strength_notebook_runs_end_to_end(tmp_path, monkeypatch):
    text, pictures = _execute("colab_sem_strength.ipynb", {"GEOXAI_EPOCHS": "1", "GEOXAI_IMAGES": "36",
                                                           "GEOXAI_LOTS": "12", "GEOXAI_SIZE": "32",
                                                           "GEOXAI_TEXTURES": "2"}, tmp_path, monkeypatch)
    assert "test images: R²" in text and "test lots' means: R²" in text
    assert "combined" in text and "dotted" in text  # the texture table
    assert (tmp_path / "explained" / "fastcam_gradcam").is_dir() and (tmp_path / "concepts" / "report.html").is_file()
    assert pictures == 4
