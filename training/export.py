"""Writing models atomically: a temporary path, then a rename, so a kill never leaves a
half-written model where a complete one was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras


def save_keras_atomic(model: keras.Model, path: Path) -> None:
    """Saves ``model`` as a ``.keras`` file via a temporary file in the same folder."""
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def export_saved_model_atomic(model: keras.Model, path: Path) -> None:
    """Exports a TensorFlow SavedModel (``serving_default`` takes one tensor per model input).

    The export goes to a temporary folder that then takes the place of ``path``.
    """
    temporary, previous = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    for leftover in (temporary, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    model.export(str(temporary), format="tf_saved_model", verbose=False)
    if path.exists():
        path.rename(previous)
    temporary.rename(path)
    shutil.rmtree(previous, ignore_errors=True)
