"""The explainers: contract, correctness against tf-explain, planted signals, caching."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tf_explain.core.grad_cam import GradCAM
from tf_explain.core.vanilla_gradients import VanillaGradients

import explain
from explain import METHODS, LayerError
from explain.views import view_of
from models import MODELS, build_model, model_names

SIZE, PATCH = 48, 10
COLOURS = np.array([[230, 40, 40], [40, 40, 230]], np.float32)  # class 0: red patch, class 1: blue


def planted_patches(n: int, seed: int):
    """Grey noise with one coloured patch in a random quadrant: the colour is the class.

    Returns images (n, 48, 48, 3) in [0, 255], labels and the patch's quadrant (0..3).
    """
    rng = np.random.default_rng(seed)
    images = rng.normal(120, 20, (n, SIZE, SIZE, 3)).clip(0, 255).astype(np.float32)
    labels, quadrants = rng.integers(0, 2, n), rng.integers(0, 4, n)
    half = SIZE // 2
    for image, label, quadrant in zip(images, labels, quadrants):
        y = rng.integers(2, half - PATCH - 2) + half * (quadrant // 2)
        x = rng.integers(2, half - PATCH - 2) + half * (quadrant % 2)
        image[y:y + PATCH, x:x + PATCH] = COLOURS[label]
    return images, labels, quadrants


def tiny_cnn(num_classes: int = 2) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def _train(model, inputs, labels, epochs):
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(inputs, labels, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained_cnn():
    keras.utils.set_random_seed(0)
    images, labels, _ = planted_patches(400, seed=0)
    return _train(tiny_cnn(), images, labels, epochs=6)


@pytest.fixture(scope="module")
def trained_sednet():
    keras.utils.set_random_seed(0)
    images, labels, _ = planted_patches(400, seed=0)
    local = np.random.default_rng(1).normal(120, 20, (400, 24, 24, 3)).astype(np.float32)  # no signal
    model = build_model("sednet", 2, (SIZE, SIZE, 3), weights=None, local_size=24, widths=(16, 32, 32))
    return _train(model, {"whole": images, "local": local}, labels, epochs=8)


def _quadrant_of_peak(maps: np.ndarray) -> np.ndarray:
    peaks = maps.reshape(len(maps), -1).argmax(axis=1)
    ys, xs = np.unravel_index(peaks, maps.shape[1:])
    return (ys >= SIZE // 2) * 2 + (xs >= SIZE // 2)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "fastcam", "fastcam_gradcam"])
def test_the_map_peaks_on_the_planted_patch(trained_cnn, method):
    images, labels, quadrants = planted_patches(100, seed=9)
    assert (trained_cnn.predict(images, verbose=0).argmax(1) == labels).mean() > 0.9
    hits = _quadrant_of_peak(explain.METHODS[method](trained_cnn, images)) == quadrants
    assert hits.mean() >= 0.9, hits.mean()


@pytest.mark.slow
def test_sednet_gradcam_on_whole_peaks_on_the_planted_patch(trained_sednet):
    images, labels, quadrants = planted_patches(100, seed=9)
    local = np.random.default_rng(2).normal(120, 20, (100, 24, 24, 3)).astype(np.float32)
    maps = explain.gradcam(trained_sednet, {"whole": images, "local": local})
    assert set(maps) == {"whole", "local"} and maps["local"].shape == (100, 24, 24)
    hits = _quadrant_of_peak(maps["whole"]) == quadrants
    assert hits.mean() >= 0.9, hits.mean()


@pytest.mark.parametrize("layer", ["features", "conv1"])
def test_gradcam_matches_tf_explain(trained_cnn, layer):
    """tf-explain (use_guided_grads=False) returns the weighted sum at layer resolution, with
    no ReLU and no scaling. We apply ReLU, the same bilinear upsampling and min-max scaling to
    its maps, and compare image by image, all for class 1 (it explains one class per batch).
    At ``features`` (right before global pooling) every gradient is constant over space; at
    ``conv1`` a pooling and a convolution follow, so the gradients vary and the weighting
    counts. Broken on purpose: max-pooled gradients pass at ``features`` and fail at ``conv1``."""
    images, _, _ = planted_patches(8, seed=3)
    outputs, grads = GradCAM.get_gradients_and_filters(trained_cnn, images, layer, 1, False)
    theirs = tf.stack(GradCAM.generate_ponderated_output(outputs, grads))
    theirs = tf.image.resize(tf.nn.relu(theirs)[..., None], (SIZE, SIZE))[..., 0].numpy()
    ours = explain.gradcam(trained_cnn, images, targets=1, layer=layer)
    for mine, reference in zip(ours, theirs):
        assert reference.max() > 0
        assert np.corrcoef(mine.ravel(), reference.ravel())[0, 1] >= 0.99


def test_saliency_matches_tf_explain_vanilla_gradients(trained_cnn):
    images, _, _ = planted_patches(4, seed=4)
    raw = VanillaGradients().compute_gradients(tf.constant(images), trained_cnn, 0).numpy()
    theirs = np.abs(raw).max(axis=-1)
    theirs = (theirs - theirs.min(axis=(1, 2), keepdims=True)) / np.ptp(theirs, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(explain.saliency(trained_cnn, images, targets=0), theirs, atol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_keeps_the_contract(trained_cnn, name):
    images, _, _ = planted_patches(3, seed=5)
    maps = METHODS[name](trained_cnn, images, targets=np.array([0, 1, 1]))
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.max() > 0.0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_gives_sednet_one_map_per_input(name):
    model = build_model("sednet", 3, (32, 32, 3), weights=None, local_size=16, widths=(8, 16, 16))
    rng = np.random.default_rng(0)
    inputs = {"whole": rng.random((2, 32, 32, 3), np.float32) * 255, "local": rng.random((2, 16, 16, 3), np.float32) * 255}
    maps = METHODS[name](model, inputs, targets=2)
    assert maps["whole"].shape == (2, 32, 32) and maps["local"].shape == (2, 16, 16)
    assert all(m.dtype == np.float32 and 0.0 <= m.min() <= m.max() <= 1.0 for m in maps.values())


def test_per_sample_targets_differ_from_one_class(trained_cnn):
    """Each sample follows its own target, and the two classes' maps of one image differ.
    Broken on purpose: using the first sample's target for the whole batch fails this."""
    images, _, _ = planted_patches(2, seed=6)
    per_sample = explain.gradcam(trained_cnn, images, targets=[0, 1])
    one_class = explain.gradcam(trained_cnn, images, targets=0)
    assert np.corrcoef(per_sample[1].ravel(), one_class[1].ravel())[0, 1] < 0.9
    np.testing.assert_allclose(per_sample[0], explain.gradcam(trained_cnn, images[:1], targets=0)[0], atol=1e-5)
    np.testing.assert_allclose(per_sample[1], explain.gradcam(trained_cnn, images[1:], targets=1)[0], atol=1e-5)
    predicted = trained_cnn.predict(images, verbose=0).argmax(1)
    np.testing.assert_allclose(explain.gradcam(trained_cnn, images), explain.gradcam(trained_cnn, images, predicted),
                               atol=1e-6)


@pytest.mark.parametrize("targets", [[0, 1, 0], 5, [0.5, 1.0], -1])
def test_bad_targets_are_refused(trained_cnn, targets):
    images, _, _ = planted_patches(2, seed=6)
    with pytest.raises(ValueError, match="targets must be"):
        explain.gradcam(trained_cnn, images, targets=targets)


def test_the_users_model_is_not_mutated(trained_cnn):
    weights = [w.copy() for w in trained_cnn.get_weights()]
    layers, outputs = list(trained_cnn.layers), list(trained_cnn.outputs)
    images, _, _ = planted_patches(2, seed=7)
    for method in METHODS.values():
        method(trained_cnn, images)
    assert trained_cnn.layers == layers and trained_cnn.outputs == outputs
    for before, after in zip(weights, trained_cnn.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_nested_backbones_work_down_to_inner_layers():
    base = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(64, 64, 3),
                                               include_preprocessing=True)
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(inputs))))
    images = np.random.default_rng(0).random((2, 64, 64, 3), np.float32) * 255
    assert explain.gradcam(model, images).shape == (2, 64, 64)  # the last 4-D layer, found inside
    inner = explain.gradcam(model, images, layer="expanded_conv_project_bn")
    assert inner.shape == (2, 64, 64) and inner.max() > 0


def test_unknown_layer_and_flat_models_get_a_clear_error(trained_cnn):
    images, _, _ = planted_patches(1, seed=8)
    with pytest.raises(LayerError, match="'nope' is not a 4-D layer .* Candidates .*features"):
        explain.gradcam(trained_cnn, images, layer="nope")
    flat = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(LayerError, match="no layer with a 4-D"):
        explain.gradcam(flat, np.zeros((1, 8), np.float32))


def _resident_megabytes() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_repeated_calls_reuse_one_compiled_view_and_memory_stays_flat(trained_cnn):
    images, _, _ = planted_patches(4, seed=10)
    for _ in range(5):
        explain.gradcam(trained_cnn, images)
    view = view_of(trained_cnn, ["features"])
    traces = view.cams.experimental_get_tracing_count()
    before = _resident_megabytes()
    for _ in range(50):
        explain.gradcam(trained_cnn, images)
    assert view_of(trained_cnn, ["features"]) is view
    assert view.cams.experimental_get_tracing_count() == traces  # no retracing, so no new graphs
    assert _resident_megabytes() - before < 30  # a retrace per call would add far more


@pytest.mark.parametrize("name", model_names("classify"))
def test_gradcam_works_on_every_registered_model(name):
    size = max(64, MODELS[name].min_input_size)
    options = {"local_size": 32} if name == "sednet" else {}
    model = build_model(name, 2, (size, size, 3), weights=None, **options)
    rng = np.random.default_rng(0)
    image = rng.random((2, size, size, 3), np.float32) * 255
    inputs = {"whole": image, "local": image[:, :32, :32]} if name == "sednet" else image
    maps = explain.gradcam(model, inputs)
    first = maps["whole"] if name == "sednet" else maps
    assert first.shape == (2, size, size) and first.dtype == np.float32
