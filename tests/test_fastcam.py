"""Fast-CAM: the SMOE scale and the normal-CDF squashing by hand, the stages it picks, and the
whole gated map rebuilt from the recorded activations and Grad-CAM."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

import explain
from explain.targets import ScalarTarget
from explain.fastcam import gauss_normalize, smoe_scale, stage_layers
from models import build_model


def test_smoe_scale_is_the_mean_times_the_log_ratio_of_arithmetic_to_geometric_mean():
    """Break tried: the mean of the channels alone (equal channels then score above zero)."""
    rng = np.random.default_rng(0)
    activations = rng.normal(0.5, 1.0, (2, 3, 4, 6)).astype(np.float32)
    x = np.maximum(activations, 0) + 1e-7
    expected = x.mean(-1) * (np.log2(x.mean(-1)) - np.log2(x).mean(-1))
    np.testing.assert_allclose(smoe_scale(tf.constant(activations)).numpy(), expected, rtol=1e-4, atol=1e-6)
    equal = np.full((1, 2, 2, 5), 3.0, np.float32)
    np.testing.assert_allclose(smoe_scale(tf.constant(equal)).numpy(), 0.0, atol=1e-5)
    one_channel = np.zeros((1, 1, 1, 4), np.float32)
    one_channel[..., 0] = 4.0  # a sparse response scores higher than the same mean spread evenly
    spread = np.ones((1, 1, 1, 4), np.float32)
    assert smoe_scale(tf.constant(one_channel)).numpy() > smoe_scale(tf.constant(spread)).numpy() + 1


def test_each_map_is_squashed_by_the_normal_cdf_of_its_own_statistics():
    maps = np.random.default_rng(1).gamma(2.0, 1.0, (3, 5, 7)).astype(np.float32)
    mean, std = maps.mean(axis=(1, 2), keepdims=True), maps.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(gauss_normalize(tf.constant(maps)).numpy(), norm.cdf((maps - mean) / std), atol=1e-5)
    assert np.allclose(gauss_normalize(tf.ones((1, 3, 3))).numpy(), 0.5)  # no spread: no position stands out


def test_the_stages_are_the_last_layers_at_each_resolution():
    resnet = build_model("resnet50", 3, (64, 64, 3), weights="none")
    assert stage_layers(resnet) == {"image": ["conv1_relu", "conv2_block3_out", "conv3_block4_out",
                                              "conv4_block6_out", "features"]}
    assert stage_layers(resnet, stages=2) == {"image": ["conv4_block6_out", "features"]}
    assert stage_layers(resnet, layer="conv3_block4_out") == {"image": ["conv1_relu", "conv2_block3_out",
                                                                        "conv3_block4_out"]}
    sednet = build_model("sednet", 3, (64, 64, 3), local_size=32)
    assert stage_layers(sednet) == {"whole": ["whole_stem_relu", "whole_res1_out", "whole_features"],
                                    "local": ["local_stem_relu", "local_res1_out", "local_features"]}


@pytest.fixture(scope="module")
def small_net():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stage1")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="stage2")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="features")(x)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, logits)


def _by_hand(model, images, stages):
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in stages])
    maps = []
    for activations in probe(images):
        x = np.maximum(activations.numpy(), 0) + 1e-7
        smoe = x.mean(-1) * (np.log2(x.mean(-1)) - np.log2(x).mean(-1))
        mean, std = smoe.mean(axis=(1, 2), keepdims=True), smoe.std(axis=(1, 2), keepdims=True)
        squashed = norm.cdf((smoe - mean) / std).astype(np.float32)
        maps.append(tf.image.resize(squashed[..., None], images.shape[1:3]).numpy()[..., 0])
    return np.mean(maps, axis=0)


def _min_max(maps):
    low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low)


def test_fastcam_and_its_gated_form_rebuilt_by_hand(small_net):
    """Break tried: the gate taken from the first stage's Grad-CAM; stages averaged before
    their own squashing."""
    assert stage_layers(small_net) == {"image": ["stage1", "features"]}  # stage2 shares the features' 8 x 8
    images = np.random.default_rng(4).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    combined = _by_hand(small_net, images, ["stage1", "features"])
    np.testing.assert_allclose(explain.fastcam(small_net, images), _min_max(combined), atol=1e-4)
    targets = [0, 1, 2]
    gate = explain.gradcam(small_net, images, targets, layer="features")
    np.testing.assert_allclose(explain.fastcam_gradcam(small_net, images, targets), _min_max(combined * gate),
                               atol=1e-4)


def test_the_gated_form_explains_what_raises_or_lowers_a_regression():
    """A one-output regressor whose output is the mean of channel 0 minus channel 1 of its
    features (the input through an identity 1x1 convolution): gated by +1 the map follows
    where channel 0 is high, by -1 where channel 1 is. Break tried: the targets ignored."""
    inputs = keras.Input((16, 16, 2), name="image")
    identity = keras.initializers.Constant(np.eye(2, dtype=np.float32)[None, None])
    features = keras.layers.Conv2D(2, 1, use_bias=False, kernel_initializer=identity, name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    output = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant([[1.0], [-1.0]]),
                                use_bias=False)(pooled)
    regressor = keras.Model(inputs, output)
    image = np.zeros((1, 16, 16, 2), np.float32)
    image[0, :8, :, 0], image[0, 8:, :, 1] = 1.0, 1.0  # raising evidence on top, lowering below
    raises = explain.fastcam_gradcam(regressor, image, ScalarTarget(sign=1), layer="features")[0]
    lowers = explain.fastcam_gradcam(regressor, image, ScalarTarget(sign=-1), layer="features")[0]
    assert raises[:6].mean() > 0.5 and raises[10:].max() == 0
    assert lowers[10:].mean() > 0.5 and lowers[:6].max() == 0


def test_fastcam_with_stages_returns_the_maps_and_the_stage_activations_of_one_pass(small_net):
    """Plain and gated, its maps are fastcam's and fastcam_gradcam's, and its activations the
    stage layers' outputs. Break tried: the targets ignored (the plain map returned gated)."""
    from explain.fastcam import fastcam_with_stages

    images = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    probe = keras.Model(small_net.inputs, [small_net.get_layer(n).output for n in ("stage1", "features")])
    for targets, method in ((None, explain.fastcam), ([2, 0], explain.fastcam_gradcam)):
        maps, activations = fastcam_with_stages(small_net, images, targets)
        np.testing.assert_allclose(maps["image"], method(small_net, images, targets), atol=1e-6)
        assert list(activations) == ["stage1", "features"]
        for name, expected in zip(activations, probe(images)):
            np.testing.assert_allclose(activations[name], expected.numpy(), rtol=1e-5, atol=1e-5)
