"""Transfer learning: a frozen keras.applications backbone and two trainable head layers.

The backbone is built on the model's own input tensor (``input_tensor=``), so its layers sit
flat in one functional graph: explainers can reach any backbone layer without the "Graph
disconnected" error that a nested backbone causes. Each family's ``preprocess_input`` runs
inside the model, so every model takes RGB in [0, 255].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from models.blocks import BN_MOMENTUM, HEAD_LAYERS, classifier_head, merger


class WeightsError(ValueError):
    """Pretrained weights cannot be had; the message says what to pass instead."""


@keras.saving.register_keras_serializable(package="geoxai")
class ImagenetPreprocess(layers.Layer):
    """A backbone family's ``preprocess_input`` as a serialisable layer.

    Modes as in ``keras.applications.imagenet_utils``: ``caffe`` (RGB to BGR, ImageNet mean
    subtracted: ResNet50, VGG19), ``tf`` (scaled to [-1, 1]: InceptionV3), ``torch``.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        return keras.applications.imagenet_utils.preprocess_input(inputs, mode=self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@dataclass(frozen=True)
class Backbone:
    """A keras.applications family: its constructor, preprocessing and smallest input."""

    constructor: Callable
    preprocess_mode: str | None  # None: the application preprocesses inside itself
    min_input_size: int = 32
    options: tuple = ()


BACKBONES = {
    "resnet50": Backbone(keras.applications.ResNet50, "caffe"),
    "vgg19": Backbone(keras.applications.VGG19, "caffe"),
    "inceptionv3": Backbone(keras.applications.InceptionV3, "tf", min_input_size=75),
    "efficientnetb2": Backbone(keras.applications.EfficientNetB2, None),
    "mobilenetv3": Backbone(keras.applications.MobileNetV3Large, None,
                            options=(("include_preprocessing", True),)),
}


def build_transfer_model(backbone: str, num_classes: int, input_shape=(224, 224, 3),
                         weights: str | os.PathLike | None = "imagenet", hidden: int = 256,
                         dropout: float = 0.3, train_backbone: bool = False) -> keras.Model:
    """Builds ``backbone`` (frozen) with a dense-dropout-dense head emitting logits.

    A one-channel (seismic) input passes the salt thesis's merger (``models.blocks.merger``,
    trainable even when the backbone is frozen) instead of the ImageNet preprocessing.

    Args:
        weights: ``"imagenet"`` (downloaded on first use), ``None`` (random), or the path to a
            local weights file for the backbone (e.g. Keras' ``*_notop.h5``).
        train_backbone: train the whole network instead of the head only; a frozen random
            backbone is a fixed random projection, so train it when ``weights`` is None.
            Trained from scratch, its batch-norm layers take SedNet's moving-average
            momentum (``models.blocks.BN_MOMENTUM``): with Keras' 0.99 the moving statistics
            lag the fast-changing weights of a short run, and EfficientNet-B2 and
            MobileNet-V3 predicted one class at inference after 15 epochs at 0.8-0.97
            training accuracy.

    Raises:
        WeightsError: the ImageNet download failed.
    """
    spec = BACKBONES[backbone]
    inputs = keras.Input(input_shape, name="image")
    if input_shape[-1] == 1:  # a z-scored seismic patch: the salt thesis's merger learns the three channels
        x = merger(inputs)
    else:
        x = ImagenetPreprocess(spec.preprocess_mode, name="preprocess")(inputs) if spec.preprocess_mode else inputs
    base = _backbone(spec, backbone, x, weights)
    base.trainable = train_backbone
    for layer in base.layers:  # the merger sits in the base's graph, but learns with the head
        if layer.name.startswith("merger"):
            layer.trainable = True
    if train_backbone and weights is None:
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = BN_MOMENTUM
    features = layers.Identity(name="features")(base.output)
    return keras.Model(inputs, classifier_head(features, num_classes, hidden, dropout), name=backbone)


def _backbone(spec: Backbone, name: str, input_tensor, weights) -> keras.Model:
    kwargs = dict(include_top=False, weights=weights if weights is None else str(weights),
                  input_tensor=input_tensor, **dict(spec.options))
    try:
        return spec.constructor(**kwargs)
    except Exception as err:  # keras.utils.get_file raises a bare Exception on a failed download
        if weights != "imagenet" or "fetch failure" not in str(err).lower():
            raise
        raise WeightsError(
            f"Could not download the ImageNet weights of {name} ({err}). Without a network, "
            f"pass --weights none to train from scratch, or --weights PATH to a local copy of "
            f"Keras' {name} 'notop' weights file.") from err


def unfreeze_top(model: keras.Model, count: int) -> int:
    """Makes the top ``count`` weighted backbone layers trainable for fine-tuning.

    Batch-normalisation layers stay frozen (in inference mode), as Keras' transfer-learning
    guide advises, so small batches do not wreck their ImageNet statistics. Returns how many
    layers were unfrozen.
    """
    head = {"features", *HEAD_LAYERS}
    candidates = [layer for layer in model.layers
                  if layer.name not in head and layer.weights
                  and not isinstance(layer, layers.BatchNormalization)]
    chosen = candidates[-count:] if count > 0 else []
    for layer in chosen:
        layer.trainable = True
    return len(chosen)
