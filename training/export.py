"""Writing models atomically: a temporary path, then a rename, so a kill never leaves a
half-written model where a complete one was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf


def save_keras_atomic(model: keras.Model, path: Path) -> None:
    """Saves ``model`` as a ``.keras`` file via a temporary file in the same folder."""
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def export_saved_model_atomic(model: keras.Model, path: Path) -> None:
    """Exports a TensorFlow SavedModel (``serving_default`` takes one tensor per model input)."""
    _replace_atomically(path, lambda folder: model.export(str(folder), format="tf_saved_model", verbose=False))


def export_detector_atomic(detector: keras.Model, path: Path, image_size: int) -> None:
    """Exports a keras-hub detector as a SavedModel whose ``serving_default`` returns decoded
    detections (``boxes`` xyxy pixels, ``confidence``, ``labels``, ``num_detections``).

    It takes one RGB image at a time, float32 in [0, 255], resized to ``image_size``: keras-hub
    0.32's anchor generator needs a static image size and its non-maximum suppression a
    static batch size.
    """
    def serve(images):
        scaled = detector.preprocessor.image_converter(images)
        return detector.decode_predictions(detector(scaled, training=False), scaled)

    def write(folder: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(detector)
        archive.add_endpoint("serving_default", serve, input_signature=[
            tf.TensorSpec((1, image_size, image_size, 3), tf.float32, name="images")])
        archive.write_out(str(folder), verbose=False)

    _replace_atomically(path, write)


def restore_interrupted(path: Path) -> bool:
    """Puts the previous complete folder back at ``path`` when a kill came between moving it
    away and moving the new one in (``.NAME.old`` without ``NAME``); returns whether it did."""
    previous = path.with_name(f".{path.name}.old")
    if path.exists() or not previous.is_dir():
        return False
    previous.rename(path)
    return True


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Writes a folder to a temporary path, which then takes the place of ``path``.

    A kill at any moment leaves one complete version: the old one at ``path`` until the new one
    is written; between the two renames the old one at ``.NAME.old``, which the next write (or
    :func:`restore_interrupted`) puts back before anything else.
    """
    restore_interrupted(path)
    temporary, previous = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    for leftover in (temporary, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    write(temporary)
    if path.exists():
        path.rename(previous)
    temporary.rename(path)
    shutil.rmtree(previous, ignore_errors=True)
