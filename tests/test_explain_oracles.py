"""Known answers for every explainer and for the scores built on them, on models built by hand.

Shape and [0, 1] checks cannot see a wrong formula (min-max scaling guarantees the range), so
each test here has an answer worked out in closed form or by hand, and each docstring names
the deliberate break of the code it was seen to fail on.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import confusion_matrix

import explain
from explain.metrics import deletion_insertion
from models.metrics import ConfusionMatrixAccuracy

H = W = 6
C, K = 3, 2


def constant(value) -> keras.initializers.Initializer:
    return keras.initializers.Constant(np.asarray(value, np.float32))


def linear_head_model(weights: np.ndarray) -> keras.Model:
    """``features`` is the input itself (an identity 1x1 convolution); the logits are a dense
    layer over every position, so d logit_k / d features[i, j, c] = weights[i, j, c, k] varies
    over the map (unlike at a layer right before global pooling)."""
    inputs = keras.Input((H, W, C), name="image")
    features = keras.layers.Conv2D(C, 1, use_bias=False, kernel_initializer=constant(np.eye(C)[None, None]),
                                   name="features")(inputs)
    flat = keras.layers.Flatten()(features)
    logits = keras.layers.Dense(K, use_bias=False, kernel_initializer=constant(weights.reshape(-1, K)))(flat)
    return keras.Model(inputs, logits)


def min_max(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)


@pytest.fixture(scope="module")
def linear_case():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(H, W, C, K)).astype(np.float32)
    images = rng.uniform(0.1, 2.0, (2, H, W, C)).astype(np.float32)
    targets = np.array([0, 1])
    gradients = np.moveaxis(weights[..., targets], -1, 0)  # (2, H, W, C): each sample's d logit / d A
    return linear_head_model(weights), images, targets, gradients


def test_gradcam_weights_each_channel_by_its_mean_gradient(linear_case):
    """Broken on purpose: the maximum of the gradients instead of their mean fails this."""
    model, images, targets, gradients = linear_case
    alphas = gradients.mean(axis=(1, 2), keepdims=True)
    expected = min_max(np.maximum((alphas * images).sum(-1), 0))
    np.testing.assert_allclose(explain.gradcam(model, images, targets), expected, atol=1e-5)


def test_gradcam_plus_plus_alphas_as_worked_by_hand(linear_case):
    """alpha = g^2 / (2 g^2 + sum_ij A * g^3), weights = sum_ij alpha * relu(g) (Chattopadhay et
    al., eq. 19, with exp(score)'s derivatives). Broken on purpose: alphas without the
    activation sums fail this."""
    model, images, targets, g = linear_case
    sums = images.sum(axis=(1, 2), keepdims=True)
    denominator = 2 * g ** 2 + sums * g ** 3
    alphas = np.divide(g ** 2, denominator, out=np.zeros_like(g), where=denominator != 0)
    weights = (alphas * np.maximum(g, 0)).sum(axis=(1, 2), keepdims=True)
    expected = min_max(np.maximum((weights * images).sum(-1), 0))
    np.testing.assert_allclose(explain.gradcam_plus_plus(model, images, targets), expected, atol=1e-5)


def test_layercam_weights_each_activation_by_its_own_positive_gradient(linear_case):
    """Broken on purpose: the channel-mean gradient (Grad-CAM's weights) fails this."""
    model, images, targets, g = linear_case
    expected = min_max(np.maximum((np.maximum(g, 0) * images).sum(-1), 0))
    np.testing.assert_allclose(explain.layercam(model, images, targets), expected, atol=1e-5)


def smooth_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="tanh")(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="tanh", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_integrated_gradients_add_up_to_the_change_of_the_score():
    """Completeness: sum of the raw attributions = f(x) - f(baseline). Broken on purpose:
    dropping the (x - baseline) factor fails this."""
    model = smooth_model()
    images = np.random.default_rng(1).uniform(0, 1, (3, 12, 12, 3)).astype(np.float32)
    targets = np.array([0, 1, 2])
    raw = explain.integrated_gradients(model, images, targets, steps=64, raw=True)
    logits = model.predict(images, verbose=0)[np.arange(3), targets]
    at_baseline = model.predict(np.zeros_like(images), verbose=0)[np.arange(3), targets]
    change = logits - at_baseline
    assert np.abs(change).min() > 0.05
    np.testing.assert_allclose(raw.sum(axis=(1, 2)), change, rtol=0.01, atol=1e-4)


def region_model() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """Class 0's logit is 40 x (mean of the red channel over a 4x4 square at rows/cols 2-5)
    minus 40 x (the same over the square at rows/cols 10-13); class 1's is 0. Returns the
    model and the two squares' masks."""
    support, oppose = np.zeros((16, 16), np.float32), np.zeros((16, 16), np.float32)
    support[2:6, 2:6], oppose[10:14, 10:14] = 1 / 16, -1 / 16
    kernel = np.zeros((16, 16, 3, 2), np.float32)
    kernel[..., 0, 0] = 40 * (support + oppose)
    inputs = keras.Input((16, 16, 3), name="image")
    logits = keras.layers.Dense(2, use_bias=False, kernel_initializer=constant(kernel.reshape(-1, 2)))(
        keras.layers.Flatten()(inputs))
    return keras.Model(inputs, logits), support > 0, oppose < 0


def test_occlusion_lights_the_supporting_region_and_clips_the_opposing_one():
    """Hiding the supporting square lowers class 0's probability, hiding the opposing one
    raises it (a negative drop, clipped to 0). Broken on purpose: the drop's sign flipped
    fails this."""
    model, support, oppose = region_model()
    image = np.full((1, 16, 16, 3), 0.5, np.float32)
    image[0, 2:6, 2:6, 0] = image[0, 10:14, 10:14, 0] = 1.0
    heat = explain.occlusion(model, image, 0, patch=4, stride=2)[0]
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert support[y, x] and heat[support].mean() > 0.5
    assert heat[oppose].max() == 0.0


def test_scorecam_weights_the_channel_whose_mask_shows_the_class():
    """Channel 0 is the red blob, channel 1 the green one; the logits compare the red and
    green means, so the input masked by channel 0 scores red and by channel 1 green. Broken on
    purpose: scoring the unmasked input (equal weights) fails this."""
    inputs = keras.Input((16, 16, 3), name="image")
    features = keras.layers.Conv2D(2, 1, use_bias=False, name="features",
                                   kernel_initializer=constant(np.eye(3)[:, :2][None, None]))(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False,
                                                   kernel_initializer=constant([[30, -30], [-30, 30]]))(pooled))
    image = np.zeros((1, 16, 16, 3), np.float32)
    image[0, 1:6, 1:6, 0] = image[0, 10:15, 10:15, 1] = 1.0
    red, green = image[0, ..., 0] > 0, image[0, ..., 1] > 0
    for target, own, other in ((0, red, green), (1, green, red)):
        heat = explain.scorecam(model, image, target)[0]
        assert heat[own].mean() > heat[other].mean() + 0.3, target


def test_smoothgrad_finds_the_gradient_that_plain_saliency_misses():
    """f = sum of relu(x - t) over pixels lying just below t: the gradient is zero at x (plain
    saliency is empty), and SmoothGrad's mean gradient at each pixel is P(x + noise > t) =
    Phi(-(t - x) / sigma). Broken on purpose: no noise fails this."""
    threshold = 1.0
    inputs = keras.Input((8, 8, 1), name="image")
    shifted = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer=constant([-threshold]))(inputs)
    above = keras.layers.ReLU(name="features")(shifted)
    total = keras.layers.Flatten()(above)
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False, kernel_initializer=constant(
        np.stack([np.ones(64), np.zeros(64)], axis=1)))(total))
    below = np.linspace(0.0, 0.4, 64, dtype=np.float32).reshape(8, 8)
    image = (threshold - 0.01 - below)[None, ..., None]
    assert explain.saliency(model, image, 0).max() == 0.0
    heat = explain.smoothgrad(model, image, 0, samples=256, noise_level=0.15)[0]
    sigma = 0.15 * (image.max() - image.min())
    expected = norm.cdf(-(threshold - image[0, ..., 0]) / sigma)
    assert np.corrcoef(heat.ravel(), expected.ravel())[0, 1] > 0.97


def test_deletion_and_insertion_curves_computed_by_hand():
    """p0 = sigmoid(4 m) with m the mean red value of a 4x4 image whose red values are
    1/16 .. 16/16 and whose map ranks them as they are. Deletion blackens the 4 most relevant
    pixels per step; insertion shows them over the blurred image. Broken on purpose: deleting
    the least relevant pixels first fails this."""
    inputs = keras.Input((4, 4, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False,
                                                   kernel_initializer=constant([[4, 0], [0, 0], [0, 0]]))(pooled))
    red = (np.arange(1, 17, dtype=np.float32) / 16).reshape(4, 4)
    image = np.zeros((1, 4, 4, 3), np.float32)
    image[0, ..., 0] = red
    deletion, insertion = deletion_insertion(model, image, red[None], [0], steps=4)

    def sigmoid(m):
        return 1 / (1 + np.exp(-4 * np.asarray(m)))

    fractions = np.linspace(0, 1, 5)
    kept_sums = [136, 136 - 58, 136 - 58 - 42, 136 - 58 - 42 - 26, 0]  # the 4 largest (13..16) go first
    expected_deletion = np.trapezoid(sigmoid(np.array(kept_sums) / 16 / 16), fractions)
    blurred = cv2.GaussianBlur(image[0], (0, 0), 1.0)[..., 0]
    order = np.argsort(-red.ravel())
    shown_means = []
    for count in (0, 4, 8, 12, 16):
        mixed = blurred.ravel().copy()
        mixed[order[:count]] = red.ravel()[order[:count]]
        shown_means.append(mixed.mean())
    expected_insertion = np.trapezoid(sigmoid(shown_means), fractions)
    np.testing.assert_allclose(deletion, [expected_deletion], atol=1e-5)
    np.testing.assert_allclose(insertion, [expected_insertion], atol=1e-5)


def test_confusion_matrix_accuracy_keeps_scikit_learns_matrix():
    """Rows are true classes, columns predictions. Broken on purpose: swapping the two in the
    pair index (a transposed matrix) fails this."""
    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    metric = ConfusionMatrixAccuracy(3)
    for start in (0, 25):  # two batches accumulate
        metric.update_state(np.eye(3)[true[start:start + 25]], np.eye(3)[predicted[start:start + 25]] * 5.0)
    np.testing.assert_array_equal(metric.matrix.numpy(), confusion_matrix(true, predicted, labels=[0, 1, 2]))
    assert float(metric.result()) == pytest.approx((true == predicted).mean())
    metric.reset_state()
    assert float(metric.matrix.numpy().sum()) == 0.0
