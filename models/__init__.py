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
from models.metrics import ConfusionMatrixAccuracy
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


def _build_detector(**options) -> keras.Model:
    from models.detector import build_detector

    return build_detector(**options)


register("detector", ModelEntry(_build_detector, min_input_size=64,  # the coarsest pyramid level has stride 32
                                default_weights=None, task="detect"))


register("unet_resnet34", ModelEntry(unet.build_unet_resnet34, unet.MIN_INPUT_SIZE, None, task="segment",
                                     has_imagenet_weights=False, config_options=("encoder_width",)))


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


__all__ = ["ConfusionMatrixAccuracy", "MODELS", "ModelEntry", "WeightsError", "build_model", "model_names", "parse_weights", "register", "unfreeze_top"]
