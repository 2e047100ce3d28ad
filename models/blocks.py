"""Shared building blocks: conv-BN-ReLU, residual blocks, squeeze-and-excitation.

Batch normalisation uses momentum 0.9 instead of Keras' 0.99: geoscience sets are small, an
epoch is a few dozen steps, and the slower moving averages leave validation lagging for
many epochs.
"""

from __future__ import annotations

import keras
from keras import layers

BN_MOMENTUM = 0.9


def conv_bn_relu(x, filters: int, kernel_size: int = 3, strides: int = 1, name: str = "conv"):
    """A bias-free convolution, batch normalisation and ReLU."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x, filters: int, strides: int = 1, name: str = "res"):
    """The basic two-convolution residual block of He et al., 2016 ("Deep Residual Learning
    for Image Recognition"), with a 1x1 projection shortcut when the shape changes."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    x = conv_bn_relu(x, filters, strides=strides, name=f"{name}_a")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_b_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_out")(x)


def squeeze_excite(x, ratio: int = 4, name: str = "se"):
    """Channel attention of Hu et al., 2018 ("Squeeze-and-Excitation Networks")."""
    channels = x.shape[-1]
    weights = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    weights = layers.Conv2D(max(channels // ratio, 4), 1, activation="relu", name=f"{name}_reduce")(weights)
    weights = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_expand")(weights)
    return layers.Multiply(name=f"{name}_scale")([x, weights])


def merger(x, name: str = "merger"):
    """The salt thesis's merger: 1x1 convolutions (8, 8, then 3 channels) that learn how a
    one-channel seismic input feeds a network built for three, instead of copying the channel."""
    x = layers.Conv2D(8, 1, activation="relu", name=f"{name}_1")(x)
    x = layers.Conv2D(8, 1, activation="relu", name=f"{name}_2")(x)
    return layers.Conv2D(3, 1, name=name)(x)


def input_scaling(x, name: str):
    """RGB photographs in [0, 255] to [0, 1]; one-channel seismic inputs arrive z-scored and pass
    unchanged (the input kinds of ``datasets.pipeline``)."""
    if x.shape[-1] == 1:
        return layers.Identity(name=name)(x)
    return layers.Rescaling(1.0 / 255, name=name)(x)


HEAD_LAYERS = ("pool", "head_dense", "head_dropout", "logits")


def classifier_head(features, num_classes: int, hidden: int = 256, dropout: float = 0.3):
    """Global pooling, then the two trainable head layers: dense + dropout, dense logits."""
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dense(hidden, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)  # float32 under mixed precision too



@keras.saving.register_keras_serializable(package="geoxai")
class Resize(layers.Layer):
    """Bilinear resize to a fixed (height, width).

    Used instead of ``keras.layers.Resizing``: on Keras 3.15, a model exported with
    ``model.export`` runs the BatchNormalization layers after a ``Resizing`` layer in
    training mode, so the SavedModel disagrees with the Keras model.
    """

    def __init__(self, size: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, inputs):
        return keras.ops.image.resize(inputs, self.size, interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}
