"""Explanation metrics on hand-built maps, masks and models whose answers are known."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from explain import gradcam
from explain.metrics import (deletion_insertion, energy_in_mask, map_similarity, mask_area, pointing_game,
                             randomisation_check, relevance_rank_accuracy)


def _square(size: int, y0: int, x0: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def test_pointing_game_hits_misses_tolerance_and_undefined_cases():
    peak = np.zeros((8, 8), np.float32)
    peak[2, 3] = 1.0
    maps = np.stack([peak, peak, peak, peak, np.full((8, 8), 0.5, np.float32)])
    masks = np.stack([_square(8, 2, 3, 1), _square(8, 5, 5, 2), _square(8, 2, 4, 1), np.zeros((8, 8), bool),
                      _square(8, 0, 0, 4)])
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0, 0.0, np.nan, np.nan])
    assert pointing_game(maps[2:3], masks[2:3], tolerance=1)[0] == 1.0  # one pixel beside the mask


def test_energy_in_mask_is_the_positive_mass_share():
    heat = np.zeros((8, 8), np.float32)
    heat[0:4, 0:4] = 1.0  # 16 units of mass
    heat[6, 6] = -5.0  # negative relevance counts for nothing
    left_half = np.zeros((8, 8), bool)
    left_half[:, :2] = True  # holds 8 of the 16 units
    uniform = np.ones((8, 8), np.float32)
    result = energy_in_mask(np.stack([heat, uniform, np.zeros((8, 8), np.float32)]),
                            np.stack([left_half, left_half, left_half]))
    np.testing.assert_allclose(result, [0.5, 0.25, np.nan])
    assert mask_area(left_half[None])[0] == pytest.approx(0.25)  # what the uniform map scored


def test_relevance_rank_accuracy_counts_the_top_k_pixels_inside():
    mask = _square(6, 0, 0, 2)  # K = 4
    heat = np.zeros((6, 6), np.float32)
    heat[0, 0], heat[0, 1], heat[1, 0] = 0.9, 0.8, 0.7  # three of the top four inside
    heat[5, 5] = 0.95
    result = relevance_rank_accuracy(np.stack([heat, heat]), np.stack([mask, np.zeros((6, 6), bool)]))
    np.testing.assert_allclose(result, [0.75, np.nan])


def test_mismatched_shapes_say_how_to_fix_them():
    with pytest.raises(ValueError, match="nearest neighbour"):
        energy_in_mask(np.zeros((1, 8, 8)), np.zeros((1, 16, 16), bool))


def _region_model(region: np.ndarray) -> keras.Model:
    """Class 0's logit grows with the mean squared brightness inside ``region``: high on a
    black-and-white checkerboard (0.5), low once blurred to grey (0.25) or blackened (0)."""
    weights = (region / region.sum())[..., None].repeat(3, -1) / 3.0
    inputs = keras.Input(region.shape + (3,), name="image")
    score = keras.ops.sum(keras.ops.square(inputs / 255.0) * weights, axis=(1, 2, 3))[:, None]
    return keras.Model(inputs, keras.ops.concatenate([16.0 * score, keras.ops.full_like(score, 6.0)], axis=1))


def test_deletion_and_insertion_reward_the_map_on_the_deciding_region():
    region = _square(16, 4, 4, 6)
    model = _region_model(region)
    checkerboard = (np.indices((16, 16)).sum(0) % 2 * 255.0)[..., None].repeat(3, -1)
    images = np.stack([checkerboard, checkerboard]).astype(np.float32)
    good, bad = region.astype(np.float32), (~region).astype(np.float32)
    deletion, insertion = deletion_insertion(model, images, np.stack([good, bad]), [0, 0], steps=8)
    assert deletion[0] < deletion[1] - 0.2
    assert insertion[0] > insertion[1] + 0.2


def test_deletion_and_insertion_of_a_constant_model_equal_its_probability():
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(4, kernel_initializer="zeros")(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    maps = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    deletion, insertion = deletion_insertion(model, np.ones((3, 16, 16, 3), np.float32) * 99, maps, [0, 1, 3])
    np.testing.assert_allclose(deletion, 0.25, atol=1e-5)
    np.testing.assert_allclose(insertion, 0.25, atol=1e-5)


def test_map_similarity_of_identical_and_inverted_maps():
    maps = np.random.default_rng(1).random((2, 16, 16)).astype(np.float32)
    ssim, rho = map_similarity(maps, maps)
    np.testing.assert_allclose(ssim, 1.0, atol=1e-6)
    np.testing.assert_allclose(rho, 1.0, atol=1e-6)
    _, rho = map_similarity(maps, 1.0 - maps)
    np.testing.assert_allclose(rho, -1.0, atol=1e-6)


def _tiny_cnn(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def _edge_detector(model, inputs, targets=None, *, layer="features"):
    """An 'explanation' that never looks at the model: the image's gradient magnitude."""
    grey = np.asarray(inputs).mean(-1)
    edges = np.hypot(*np.gradient(grey, axis=(1, 2)))
    return edges / edges.max(axis=(1, 2), keepdims=True)


def test_randomisation_check_fails_a_model_blind_method_and_passes_gradcam():
    model = _tiny_cnn()
    images = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    blind = randomisation_check(model, _edge_detector, images, steps=3)
    assert list(blind["layers_randomised"]) == [1, 2, 3] and list(blind["down_to"]) == ["logits", "features", "conv1"]
    np.testing.assert_allclose(blind[["ssim", "spearman"]].to_numpy(), 1.0, atol=1e-6)
    faithful = randomisation_check(model, gradcam, images, steps=3)
    assert faithful["spearman"].iloc[-1] < 0.5
    for old, new in zip(before, model.get_weights()):  # the user's model is untouched
        np.testing.assert_array_equal(old, new)
