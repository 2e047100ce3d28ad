"""The Colab notebook, executed headlessly with a small configuration."""

import os
import shutil

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient


@pytest.mark.slow
def test_colab_notebook_runs_end_to_end(tmp_path, monkeypatch):
    for key, value in {"GEOXAI_EPOCHS": "2", "GEOXAI_IMAGES": "24", "GEOXAI_IMAGE_SIZE": "32",
                       "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(ROOT / "notebooks" / "colab_quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "SavedModel and model.keras agree: True" in outputs
    assert "tensorboard --logdir tensorboard_logs" in outputs  # the %tensorboard cell is skipped outside Colab
    assert (tmp_path / "explained" / "gallery.html").is_file()
    assert any("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))
    shutil.rmtree(tmp_path / "tensorboard_logs", ignore_errors=True)


@pytest.mark.slow
def test_salt_notebook_runs_end_to_end(tmp_path, monkeypatch):
    for key, value in {"GEOXAI_EPOCHS": "1", "GEOXAI_SECTIONS": "6", "GEOXAI_SAMPLES": "64", "GEOXAI_PATCH": "32",
                       "GEOXAI_ENCODER_WIDTH": "8", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(ROOT / "notebooks" / "colab_salt.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "test sections: Dice" in outputs and "dice" in outputs
    assert (tmp_path / "explained" / "gradcam").is_dir() and any((tmp_path / "predicted").glob("*_scores.json"))
    pictures = sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []))
    assert pictures == 3


@pytest.mark.slow
def test_sea_ice_notebook_runs_end_to_end(tmp_path, monkeypatch):
    for key, value in {"GEOXAI_EPOCHS": "1", "GEOXAI_SCENES": "8", "GEOXAI_SIZE": "32", "GEOXAI_MWR_SCALE": "4",
                       "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(ROOT / "notebooks" / "colab_sea_ice.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "test scenes: Dice" in outputs and "share_standardized" in outputs and "mwr" in outputs
    assert (tmp_path / "zscores" / "zscores.csv").is_file()
    pictures = sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []))
    assert pictures == 3
