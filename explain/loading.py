"""Loading what explain's commands explain, and the arguments they share.

One loader reads "a run folder or a ``.keras`` file": the model, its class names (from the
run's ``metrics.json``) and its training configuration (``config.yaml``), with a clear message
for each way that can fail. :func:`load_model` adds what a classifier eats, :func:`load_detector`
checks for a detector.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import keras
import yaml

from datasets.pipeline import InputSpec
from explain import DEFAULT_LAYER, METHODS
from explain.views import resolve_layers
from models.saving import ModelFileError, load_keras_file

DETECTOR_DEFAULT_SIZE = 128  # a bare detector file without its run's config.yaml


class ExplainError(ValueError):
    """A bad model path, target or method; the message says what to pass instead."""


@dataclass
class LoadedRun:
    """A trained model with what its run folder says about it (empty where it has no folder)."""

    model: keras.Model
    class_names: list[str]
    config: dict
    path: Path
    amplitude_stats: tuple[float, float] | None = None  # seismic inputs z-scored with the training set's
    chosen: dict = field(default_factory=dict)  # settings the run chose itself after training (metrics.json)

    def setting(self, name: str, default=None):
        """A training setting of the run: what the run chose after training (``empty_below:
        auto`` becomes a number), else its task's block of options (``segment: {stride: 32}``),
        else the top (shared settings, and runs saved before the blocks)."""
        if name in self.chosen:
            return self.chosen[name]
        block = self.config.get(self.config.get("task"))
        if isinstance(block, dict) and name in block:
            return block[name]
        return self.config.get(name, default)


@dataclass
class LoadedModel:
    """A classifier (or a regressor: ``target_name`` is then what its one output predicts), its
    class names and the inputs it takes."""

    model: keras.Model
    class_names: list[str]
    spec: InputSpec
    target_name: str | None = None


@dataclass
class LoadedDetector:
    model: keras.Model
    class_names: list[str]
    image_size: int  # side the detector was trained at; images are resized to it


def load_run(source: str | Path, unsafe: bool = False, what: str = "model") -> LoadedRun:
    """Loads ``RUN_DIR/model.keras`` or a ``.keras`` file, with class names and config when known.

    Class names come from the run's ``metrics.json``; without one they are class_0, class_1...
    Keras' safe mode refuses files that would run arbitrary Python (a lambda layer) unless
    ``unsafe`` is set.

    Raises:
        ExplainError: no such file, not a Keras archive (or truncated), or refused by safe mode.
    """
    path = Path(source)
    model_path = path / "model.keras" if path.is_dir() else path
    if not model_path.is_file():
        raise ExplainError(f"No {what} at {model_path}: pass a run folder holding model.keras, or a .keras file.")
    try:
        model = load_keras_file(model_path, safe_mode=not unsafe)
    except ModelFileError as err:
        raise ExplainError(str(err)) from err
    metrics, config = model_path.parent / "metrics.json", model_path.parent / "config.yaml"
    recorded = json.loads(metrics.read_text()) if metrics.is_file() else {}
    settings = yaml.safe_load(config.read_text()) or {} if config.is_file() else {}
    stats = (recorded.get("inputs") or {}).get("amplitude_stats")
    return LoadedRun(model, recorded.get("class_names") or [], settings, model_path, tuple(stats) if stats else None,
                     recorded.get("chosen") or {})


def load_model(source: str | Path, unsafe: bool = False) -> LoadedModel:
    """A classifier from a run folder or ``.keras`` file (see :func:`load_run`)."""
    return loaded_model(load_run(source, unsafe))


def loaded_model(run: LoadedRun) -> LoadedModel:
    """A loaded run's model with its class names (one per logit) and the inputs it takes; a
    ``--task regress`` run (or a model ending in its ``target_units`` layer) as a regressor."""
    classes = int(run.model.outputs[0].shape[-1])
    names = run.class_names if len(run.class_names) == classes else [f"class_{i}" for i in range(classes)]
    regression = run.config.get("task") == "regress" or run.model.layers[-1].name == "target_units"
    target_name = (run.setting("target_column") or "value") if regression else None
    return LoadedModel(run.model, names, input_spec(run.model, run.amplitude_stats), target_name)


def load_detector(source: str | Path) -> LoadedDetector:
    """A ``--task detect`` run's detector, box classes and training image size.

    Raises:
        ExplainError: no model there, or a model that is not an object detector.
    """
    import keras_hub  # registers RetinaNet for deserialisation

    run = load_run(source, what="detector")
    if not isinstance(run.model, keras_hub.models.ObjectDetector):
        raise ExplainError(f"{run.path} is not an object detector (it is a {type(run.model).__name__}); "
                           "--detector takes a run of `python -m training.run --task detect`.")
    names = run.class_names or [f"class_{i}" for i in range(run.model.num_classes)]
    return LoadedDetector(run.model, names, int(run.config.get("image_size") or DETECTOR_DEFAULT_SIZE))


def input_spec(model: keras.Model, amplitude_stats: tuple[float, float] | None = None) -> InputSpec:
    """What the model eats, read off its inputs in the order it was built with (``model.input``
    keeps a dict's order; ``model.inputs`` sorts by name): the first takes the whole image, a
    second its local crop; one channel means seismic patches (z-scored per patch, or with the
    run's ``amplitude_stats``), three RGB photographs."""
    inputs = list(model.input.values()) if isinstance(model.input, dict) else model.inputs
    local = int(inputs[1].shape[1]) if len(inputs) > 1 else None
    channels = int(inputs[0].shape[-1])
    return InputSpec(int(inputs[0].shape[1]), local, tuple(t.name for t in inputs), channels,
                     amplitude_stats if channels == 1 else None)


def require_layer(model: keras.Model, methods: list[str], layer: str) -> None:
    """Raises LayerError, listing the candidates, when a method that uses a layer cannot find it."""
    if any(METHODS[m].uses_layer for m in methods):
        resolve_layers(model, layer)


def parse_methods(text: str) -> list[str]:
    """``gradcam,saliency`` as a list of registered method names."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ExplainError(f"Unknown method(s) {unknown}; choose from {', '.join(METHODS)}.")
    return methods


def add_model_arguments(parser: argparse.ArgumentParser, layer_help: str, model_required: bool = True) -> None:
    """The arguments every explaining command shares: model, methods, layer, batch, output."""
    parser.add_argument("--model", required=model_required, help="a run folder (holding model.keras) or a .keras file")
    parser.add_argument("--methods", default="gradcam",
                        help=f"comma-separated, of: {', '.join(METHODS)} (default gradcam)")
    parser.add_argument("--layer", default=DEFAULT_LAYER, help=layer_help)
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--out", required=True, help="output folder; created, or reused without deleting anything")
    parser.add_argument("--unsafe", action="store_true", help="allow models with Python lambdas (Keras safe_mode off)")
