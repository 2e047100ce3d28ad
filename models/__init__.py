"""Model builders and the one registry: ``build_model(name, num_classes, input_shape, ...)``.

Every classifier outputs logits and names its last spatial feature layer ``features``. The
``detector`` (task ``detect``) is keras-hub's RetinaNet; keras-hub is imported only when a
detector is built, so the classifiers' commands start fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import keras

from models import fusion, sednet, transfer, unet
from models.blocks import HEAD_LAYERS
from models.metrics import ConfusionMatrixAccuracy
from models.saving import ModelFileError, load_keras_file
from models.transfer import WeightsError, unfreeze_top


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder and the facts the trainer needs before building it."""

    builder: Callable[..., keras.Model]
    min_input_size: int
    default_weights: str | None
    task: str = "classify"  # or "detect", "segment"
    has_imagenet_weights: bool = True
    input_names: tuple[str, ...] = ("image",)  # classify: a second input is a local crop of the first
    config_options: tuple[str, ...] = ()  # builder keywords the trainer takes from its config of the same names
    defaults: Mapping[str, Any] = field(default_factory=dict)  # training settings of its own, over its task's


MODELS: dict[str, ModelEntry] = {}


def register(name: str, entry: ModelEntry) -> None:
    """Adds a model to the registry; a duplicate name is an error."""
    if name in MODELS:
        raise ValueError(f"A model named {name!r} is already registered.")
    MODELS[name] = entry


register("sednet", ModelEntry(sednet.build_sednet, sednet.MIN_INPUT_SIZE, None, has_imagenet_weights=False,
                              input_names=sednet.INPUT_NAMES, config_options=("local_size", "shared_branches", "dropout")))
for _name, _backbone in transfer.BACKBONES.items():
    register(_name, ModelEntry(partial(transfer.build_transfer_model, _name), _backbone.min_input_size, "imagenet",
                               config_options=("train_backbone", "dropout")))


register("resnet34_classifier", ModelEntry(unet.build_resnet34_classifier, unet.MIN_INPUT_SIZE, None,
                                           has_imagenet_weights=False,
                                           config_options=("encoder_width", "train_backbone", "dropout"),
                                           defaults={"train_backbone": True}))


def _build_detector(**options) -> keras.Model:
    from models.detector import build_detector

    return build_detector(**options)


register("detector", ModelEntry(_build_detector, min_input_size=64,  # the coarsest pyramid level has stride 32
                                default_weights=None, task="detect"))


register("unet_resnet34", ModelEntry(unet.build_unet_resnet34, unet.MIN_INPUT_SIZE, None, task="segment",
                                     has_imagenet_weights=False,
                                     config_options=("encoder_width", "full_resolution_skip")))


register("fusion_aspp", ModelEntry(fusion.build_fusion_aspp, fusion.MIN_INPUT_SIZE, None, task="segment",
                                   has_imagenet_weights=False, input_names=fusion.INPUT_NAMES,
                                   config_options=("fusion_size",), defaults=fusion.TRAINING_DEFAULTS))


def model_names(task: str) -> list[str]:
    """The registered models of one task (e.g. ``classify`` or ``detect``), sorted."""
    return sorted(name for name, entry in MODELS.items() if entry.task == task)


def parse_weights(weights: str | os.PathLike | None) -> str | None:
    """Maps the CLI's ``imagenet`` / ``none`` / PATH to what the builders take."""
    if weights is None or str(weights).lower() in ("none", ""):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    return str(Path(weights).expanduser())


def trained_model_file(weights: str | os.PathLike | None) -> Path | None:
    """The ``.keras`` file when ``weights`` names a trained run (its folder or its ``model.keras``), else None.

    Raises:
        WeightsError: a folder that holds no ``model.keras``.
    """
    if weights is None or str(weights).lower() in ("none", "imagenet", "default", ""):
        return None
    path = Path(weights).expanduser()
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise WeightsError(f"--weights {path} is a folder without model.keras; pass a training run's folder, "
                               "a .keras or .weights.h5 file, imagenet or none.")
        return path / "model.keras"
    return path if path.suffix == ".keras" and path.is_file() else None


def start_from(model: keras.Model, trained: Path) -> list[str]:
    """Copies into ``model`` the weights of every same-named layer of the model saved in ``trained``.

    A run can so start from a run of another task or head: a CPS regressor from a texture
    classifier, as the SEM-strength study's ResNet-50 starts from ImageNet, a classifier with
    other classes, or a seismic-patch classifier from a salt U-Net's encoder (the salt
    thesis). Only ``model``'s head (the classifier head's layers, and its last layer with
    weights) may be missing there or differ in shape; it keeps its fresh initialisation.

    Returns:
        The names of the layers left as initialised (head layers, or none).

    Raises:
        WeightsError: ``trained`` is not a loadable Keras model, or a layer other than the output
            is missing from it or has weights of other shapes (another network or width).
    """
    try:
        source = load_keras_file(trained)
    except ModelFileError as err:
        raise WeightsError(f"--weights: {err}") from err
    theirs = {layer.name: layer for layer in source.layers}
    weighted = [layer for layer in model.layers if layer.weights]
    fresh, unfit = [], []
    for layer in weighted:
        other = theirs.get(layer.name)
        if other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(other.get_weights())
        else:
            (fresh if layer is weighted[-1] or layer.name in HEAD_LAYERS else unfit).append(layer.name)
    if unfit:
        raise WeightsError(f"--weights {trained}: its model {source.name!r} lacks, or has other shapes for, the "
                           f"layers {unfit[:4]}{' ...' if len(unfit) > 4 else ''} of {model.name!r}; start from a "
                           "run of the same network, width and input channels.")
    return fresh


def build_model(name: str, num_classes: int, input_shape=(224, 224, 3), weights="default",
                **options) -> keras.Model:
    """Builds a registered model.

    Args:
        name: a key of ``MODELS``.
        num_classes: number of logits (of box classes, for the detector).
        input_shape: (H, W, C) of the (whole) image.
        weights: ``"default"`` (the model's usual: ImageNet for backbones, none for SedNet),
            ``"imagenet"``, ``"none"``/None, or a path to a local weights file.
        **options: builder options, e.g. ``local_size`` and ``shared_branches`` for SedNet.

    Raises:
        KeyError: unknown name (the message lists the registered ones).
        WeightsError: missing weights file or failed download, with what to pass instead.
    """
    if name not in MODELS:
        raise KeyError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.")
    entry = MODELS[name]
    weights = entry.default_weights if weights == "default" else parse_weights(weights)
    if weights == "imagenet" and not entry.has_imagenet_weights:
        raise WeightsError(f"{name} has no ImageNet weights; pass --weights none or a weights file.")
    if weights is not None and weights != "imagenet" and not Path(weights).is_file():
        raise WeightsError(f"Weights file not found: {weights}. Pass --weights none, or the "
                           "path of an existing weights file.")
    return entry.builder(num_classes=num_classes, input_shape=tuple(input_shape), weights=weights, **options)


__all__ = ["ConfusionMatrixAccuracy", "MODELS", "ModelEntry", "WeightsError", "build_model", "model_names",
           "parse_weights", "register", "start_from", "trained_model_file", "unfreeze_top"]
