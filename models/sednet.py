"""SedNet: a two-branch CNN fusing the whole photomicrograph with a crop of one grain.

Reference: the SedNet paper, section 3.1: each branch is a conv stem, two residual blocks and
a squeeze-and-excitation block; the branches are fused by a Hadamard (element-wise) product,
followed by a fused conv block, global pooling and dense logits. The authors' code shares the
branch weights; the paper's text describes two parallel CNNs: ``shared_branches`` picks one.
"""

from __future__ import annotations

import keras
from keras import layers

from models.blocks import Resize, classifier_head, conv_bn_relu, input_scaling, residual_block, squeeze_excite

MIN_INPUT_SIZE = 32
INPUT_NAMES = ("whole", "local")


def build_sednet(num_classes: int, input_shape=(96, 96, 3), local_size: int = 48,
                 widths=(32, 64, 96), shared_branches: bool = False, weights=None,
                 dropout: float = 0.3) -> keras.Model:
    """Builds SedNet with inputs ``whole`` and ``local`` (a ``local_size`` square crop of one
    grain, with the whole image's channels: RGB in [0, 255], or one z-scored seismic
    channel); outputs logits.

    The layers ``whole_features`` and ``local_features`` end the branches and ``features``
    ends the fused block: the layers explainers look at.
    """
    whole_name, local_name = INPUT_NAMES
    whole = keras.Input(input_shape, name=whole_name)
    local = keras.Input((local_size, local_size, input_shape[-1]), name=local_name)
    if shared_branches:
        branch = _branch_model(input_shape[-1], widths, "branch")
        whole_x, local_x = branch(whole), branch(local)
    else:
        whole_x = _branch(whole, widths, whole_name)
        local_x = _branch(local, widths, local_name)
    whole_x = layers.Identity(name=f"{whole_name}_features")(whole_x)
    local_x = layers.Identity(name=f"{local_name}_features")(local_x)
    if local_x.shape[1:3] != whole_x.shape[1:3]:
        local_x = Resize(whole_x.shape[1:3], name="local_to_whole_grid")(local_x)
    fused = layers.Multiply(name="hadamard")([whole_x, local_x])
    fused = conv_bn_relu(fused, widths[-1], name="fused")
    features = layers.Identity(name="features")(fused)
    model = keras.Model({whole_name: whole, local_name: local}, classifier_head(features, num_classes, dropout=dropout),
                        name="sednet")
    if weights is not None:
        model.load_weights(weights)
    return model


def _branch(x, widths, name: str):
    x = input_scaling(x, name=f"{name}_rescale")
    x = conv_bn_relu(x, widths[0], strides=2, name=f"{name}_stem")
    x = residual_block(x, widths[1], strides=2, name=f"{name}_res1")
    x = residual_block(x, widths[2], strides=2, name=f"{name}_res2")
    return squeeze_excite(x, name=f"{name}_se")


def _branch_model(channels: int, widths, name: str) -> keras.Model:
    """The shared branch as one fully convolutional model, so inputs of any size fit."""
    inputs = keras.Input((None, None, channels), name=f"{name}_input")
    return keras.Model(inputs, _branch(inputs, widths, name), name=name)
