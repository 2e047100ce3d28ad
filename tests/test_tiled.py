"""Tiled explanation of images larger than the model's input, against a model whose answer is known.

The model is built by hand: a 1x1 convolution ``features`` gives each pixel's brightness minus
0.5, global average pooling and a dense layer turn the mean into the logits (+20 m, -20 m), so
a tile is ``bright`` (class 0) exactly when its mean brightness exceeds 0.5, and Grad-CAM for
``bright`` is relu(brightness - 0.5) per pixel, normalised per tile: zero on every dark pixel.
"""

from __future__ import annotations

import tracemalloc

import keras
import numpy as np
import pytest

from datasets.pipeline import InputSpec
from datasets.tiles import tile_origins
from explain.loading import LoadedModel
from explain.tiled import explain_tiled

TILE = 32
EDGE = 56  # the dark half ends here: no tile straddles it half and half


def brightness_model(size: int = TILE) -> LoadedModel:
    inputs = keras.Input((size, size, 3), name="image")
    features = keras.layers.Conv2D(1, 1, name="features", kernel_initializer=keras.initializers.Constant(1 / 765),
                                   bias_initializer=keras.initializers.Constant(-0.5))(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[20.0, -20.0]]),
                                use_bias=False)(pooled)
    return LoadedModel(keras.Model(inputs, logits), ["bright", "dark"], InputSpec(size))


def half_dark_image(height: int = 64, width: int = 128) -> np.ndarray:
    """Dark (30) left of column EDGE; right of it, a brightness ramp from 160 to 250 along the rows."""
    rng = np.random.default_rng(0)
    image = np.full((height, width), 30.0)
    image[:, EDGE:] = np.linspace(160, 250, height)[:, None]
    image += rng.uniform(-5, 5, image.shape)
    return np.repeat(image[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model():
    return brightness_model()


def test_the_class_map_and_the_vote_follow_the_tiles(model):
    image = half_dark_image()
    result = explain_tiled(model, image, ["gradcam"], tile=TILE, stride=16)
    # Column origins 0..96 by 16: those at 0, 16, 32 are mostly dark, 48..96 mostly bright; 3 rows.
    assert result.tiles == len(tile_origins(image.shape, TILE, 16)) == 21
    np.testing.assert_array_equal(result.votes, [12, 9])
    assert result.predicted == 0
    np.testing.assert_allclose(result.probabilities.sum(-1), 1.0, atol=1e-5)
    assert result.probabilities.shape == (64, 128, 2)
    assert (result.class_map[:, :40] == 1).all() and (result.class_map[:, 72:] == 0).all()


def test_the_stitched_grad_cam_lights_the_bright_pixels_only(model):
    """A stitcher that swaps rows and columns or misplaces a tile puts heat on the dark half."""
    image = half_dark_image()
    result = explain_tiled(model, image, ["gradcam", "saliency"], tile=TILE, stride=16, target=0)
    heat = result.maps["gradcam"]
    assert heat.shape == image.shape[:2]
    assert np.abs(heat[:, :EDGE]).max() < 1e-6
    assert heat[:, EDGE:].mean() > 0.3
    assert heat[-8:, EDGE:].mean() > heat[:8, EDGE:].mean()  # brighter rows, more evidence
    assert result.maps["saliency"].shape == image.shape[:2]


def test_an_image_smaller_than_a_tile_is_mirror_padded_and_cropped_back(model):
    image = half_dark_image(20, 90)
    result = explain_tiled(model, image, ["gradcam"], tile=TILE, stride=TILE)
    assert result.probabilities.shape == (20, 90, 2) and result.maps["gradcam"].shape == (20, 90)
    assert result.tiles == 3


def test_memory_holds_a_batch_of_tiles_not_the_stack():
    """Cutting every tile first (the whole stack, 40 times the image here) fails this."""
    size, tile, stride = 384, 64, 8
    model = brightness_model(tile)
    image = np.random.default_rng(1).integers(0, 255, (size, size, 3), np.uint8)
    count = len(tile_origins(image.shape, tile, stride))
    stack_bytes = count * tile * tile * 3
    tracemalloc.start()
    explain_tiled(model, image, ["gradcam"], tile=tile, stride=stride, batch_size=32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    blended_bytes = 4 * size * size * 4  # two classes, one map and the weights, float32
    assert peak < blended_bytes + stack_bytes / 4, (peak, stack_bytes)


def test_a_tiles_map_is_scaled_by_its_probability_so_an_unsure_tile_is_dimmer(model):
    """Issue 32, point 12: two tiles side by side with the same brightness pattern, one barely
    bright (p(bright) = sigmoid(0.8) = 0.69) and one surely bright (about 1): Grad-CAM
    normalises both to the same map, and the stitched map keeps each scaled by its tile's
    probability. Break tried: the maps blended unscaled."""
    pattern = np.tile(np.linspace(0, 1, TILE), (TILE, 1))  # mean 0.5: pooled feature = c / 2
    unsure, sure = (255 * (0.5 + c * pattern) for c in (0.04, 0.5))
    image = np.repeat(np.concatenate([unsure, sure], axis=1)[..., None], 3, axis=2).round().astype(np.uint8)
    result = explain_tiled(model, image, ["gradcam"], tile=TILE, stride=TILE)
    heat = result.maps["gradcam"]
    tile_probability = [result.probabilities[:, :TILE, 0].mean(), result.probabilities[:, TILE:, 0].mean()]
    assert tile_probability[0] == pytest.approx(1 / (1 + np.exp(-0.8)), abs=0.02) and tile_probability[1] > 0.99
    assert heat[:, :TILE].max() == pytest.approx(tile_probability[0], abs=1e-3)
    assert heat[:, TILE:].max() == pytest.approx(tile_probability[1], abs=1e-3)


def test_a_tied_vote_goes_to_the_class_of_higher_mean_probability():
    """Issue 32, point 12: the documented tie rule. Break tried: ``votes.argmax()`` (a tie then
    goes to the first class)."""
    from explain.tiled import TiledExplanation

    probabilities = np.zeros((4, 4, 3), np.float32)
    probabilities[..., 0], probabilities[..., 1], probabilities[..., 2] = 0.2, 0.5, 0.3
    assert TiledExplanation(probabilities, np.array([2, 2, 0]), {}).predicted == 1
    assert TiledExplanation(probabilities, np.array([3, 2, 0]), {}).predicted == 0  # votes first, then probability
    probabilities[..., 0], probabilities[..., 1] = 0.5, 0.2
    assert TiledExplanation(probabilities, np.array([2, 2, 0]), {}).predicted == 0
