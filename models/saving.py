"""Reading a ``.keras`` file, with one clear message for each way that can fail.

Keras' ``load_model`` says "File not found" for a file that exists but is not a zip archive,
and a bare traceback for a damaged one or one written by another Keras version. Every loader of
geoxai (a run to explain, a run to start training from) reads through :func:`load_keras_file`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names it and says what to do."""


def load_keras_file(path: str | Path, safe_mode: bool = True) -> keras.Model:
    """Loads the model of a ``.keras`` archive, uncompiled (importing this module imported
    :mod:`models`, which registers the project's custom layers and metric).

    Raises:
        ModelFileError: no such file, not a Keras archive (or truncated), damaged, written by a
            Keras version this one cannot read, or holding Python code that ``safe_mode`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}: pass a run folder holding model.keras, or a .keras file.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a Keras model file (.keras files are zip archives; this one is not, or "
                             "is truncated). Pass the model.keras that python -m training.run wrote.")
    try:
        return keras.saving.load_model(path, safe_mode=safe_mode, compile=False)
    except ValueError as err:
        if "safe_mode" in str(err) or "lambda" in str(err).lower():
            raise ModelFileError(f"{path} holds Python code (e.g. a Lambda layer), which Keras' safe mode refuses "
                                 "to load. Pass --unsafe only if you trust where the file came from.") from err
        raise ModelFileError(_unloadable(path, err)) from err
    except Exception as err:  # Keras raises many kinds for a damaged or foreign archive
        raise ModelFileError(_unloadable(path, err)) from err


def _unloadable(path: Path, err: Exception) -> str:
    """Why Keras could not load an archive: the Keras version that wrote it, when that differs,
    or damage."""
    try:
        with zipfile.ZipFile(path) as archive:
            written_by = json.loads(archive.read("metadata.json")).get("keras_version")
            damaged = archive.testzip()
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        written_by, damaged = None, "metadata.json"
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if damaged:
        return (f"{path} is damaged ({damaged} in the archive is unreadable or missing; Keras says: {reason}). "
                "Copy the model.keras that python -m training.run wrote again.")
    if written_by and written_by != keras.__version__:
        return (f"{path} was written by Keras {written_by} and cannot be read by Keras {keras.__version__} "
                f"installed here ({reason}). Install keras=={written_by}, or export the model again.")
    return f"Keras {keras.__version__} cannot load {path}: {reason}."
