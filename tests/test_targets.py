"""Explainer targets as objects: each is checked on a hand-built model whose right answer is known."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from explain import gradcam, layercam, occlusion, saliency
from explain.targets import BoxScoreTarget, ClassTarget, RegionTarget, ScalarTarget
from explain.views import view_of

SIZE = 8


def _pixelwise_segmenter() -> keras.Model:
    """Logit at each pixel = 2 x the input there: the gradient of a region's summed logits is 2
    inside the region and 0 outside."""
    inputs = keras.Input((SIZE, SIZE, 1), name="section")
    conv = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(2.0),
                               name="features")
    return keras.Model(inputs, conv(inputs), name="pixelwise")


def _signed_regressor(classes: int = 1) -> keras.Model:
    """y = sum(left half of the image) - sum(right half): the left half raises the prediction,
    the right half lowers it; with ``classes=2`` the logits are (y, -y). Its ``features``
    layer has a spatially varying readout after it."""
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    features = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="features")(inputs)
    readout = np.concatenate([np.ones((SIZE, SIZE // 2)), -np.ones((SIZE, SIZE // 2))], axis=1).reshape(-1, 1)
    dense = keras.layers.Dense(classes, use_bias=False, name="value")
    output = dense(keras.layers.Flatten()(features))
    dense.set_weights([np.concatenate([readout, -readout][:classes], axis=1).astype(np.float32)])
    return keras.Model(inputs, output, name="signed")


@pytest.fixture(scope="module")
def segmenter():
    return _pixelwise_segmenter()


def test_a_region_target_explains_exactly_its_mask_and_its_box(segmenter):
    images = np.ones((2, SIZE, SIZE, 1), np.float32)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[1:4, 2:6] = True
    np.testing.assert_array_equal(saliency(segmenter, images, RegionTarget(mask=mask)), np.stack([mask, mask]))
    boxed = saliency(segmenter, images, RegionTarget(box=(0.5, 0.0, 1.0, 0.25)))  # x0, y0, x1, y1
    expected = np.zeros((SIZE, SIZE))
    expected[0:2, 4:8] = 1
    np.testing.assert_array_equal(boxed, np.stack([expected, expected]))


def test_a_region_target_without_a_region_explains_the_predicted_pixels(segmenter):
    images = np.where(np.arange(SIZE)[None, :, None, None] < 3, 1.0, -1.0) * np.ones((1, SIZE, SIZE, 1))
    maps = saliency(segmenter, images.astype(np.float32), RegionTarget())  # logit > 0 where the input is > 0
    np.testing.assert_array_equal(maps[0], (np.arange(SIZE)[:, None] < 3) * np.ones((SIZE, SIZE)))


def test_a_scalar_target_with_a_sign_shows_what_raises_or_lowers_the_prediction():
    model = _signed_regressor()
    images = np.ones((1, SIZE, SIZE, 1), np.float32)
    left = np.concatenate([np.ones((SIZE, SIZE // 2)), np.zeros((SIZE, SIZE // 2))], axis=1)
    np.testing.assert_allclose(layercam(model, images, ScalarTarget(+1))[0], left)
    np.testing.assert_allclose(layercam(model, images, ScalarTarget(-1))[0], 1 - left)


def test_class_targets_keep_the_contract_none_is_the_predicted_class():
    two_class = _signed_regressor(classes=2)
    images = np.ones((2, SIZE, SIZE, 1), np.float32)
    images[0, :, SIZE // 2:] = 0  # only the left half: class 0 (y > 0)
    images[1, :, : SIZE // 2] = 0  # only the right half: class 1 (y < 0)
    predicted = two_class.predict(images, verbose=0).argmax(1)
    assert predicted.tolist() == [0, 1]
    # LayerCAM keeps the gradient's sign: class 0 lights the left half, class 1 the right half.
    for targets in (None, ClassTarget(None), predicted, ClassTarget(predicted)):
        maps = layercam(two_class, images, targets)
        assert maps[0][:, : SIZE // 2].min() == 1 and maps[0][:, SIZE // 2:].max() == 0
        assert maps[1][:, SIZE // 2:].min() == 1 and maps[1][:, : SIZE // 2].max() == 0


def test_new_targets_of_one_kind_do_not_retrace(segmenter):
    images = np.ones((2, SIZE, SIZE, 1), np.float32)
    gradcam(segmenter, images, RegionTarget(box=(0, 0, 0.5, 0.5)))
    view = view_of(segmenter, ["features"])
    traced = view.cams.experimental_get_tracing_count()
    gradcam(segmenter, images, RegionTarget(box=(0.5, 0.5, 1, 1)))
    gradcam(segmenter, images, RegionTarget(mask=np.eye(SIZE)))
    assert view.cams.experimental_get_tracing_count() == traced


def test_occlusion_follows_a_region_target(segmenter):
    mask = np.zeros((SIZE, SIZE), bool)
    mask[:4, :4] = True
    images = (2.0 * mask)[None, :, :, None].astype(np.float32)  # occluding outside the region changes nothing in it
    maps = occlusion(segmenter, images, RegionTarget(mask=mask), patch=2, stride=2)
    np.testing.assert_array_equal(maps[0], mask)


@pytest.fixture(scope="module")
def tiny_detector():
    from models import build_model

    return build_model("detector", 2, (64, 64, 3), weights="none")


def test_a_box_score_target_sums_the_class_logits_of_the_boxs_anchors(tiny_detector):
    target = BoxScoreTarget.for_box(tiny_detector, (0, 0, 32, 32), class_index=1, image_size=64)
    assert 0 < target.anchors.sum() < len(target.anchors)
    images = np.random.default_rng(1).random((2, 64, 64, 3)).astype(np.float32)
    params = target.params(tiny_detector, {"images": tf.constant(images)})
    outputs = tiny_detector(images)
    expected = (outputs["cls_logits"].numpy()[:, :, 1] * target.anchors).sum(axis=1)
    np.testing.assert_allclose(BoxScoreTarget.score(outputs, params).numpy(), expected, rtol=1e-5)
    maps = saliency(tiny_detector, images, target)
    assert maps.shape == (2, 64, 64) and maps.max() == 1.0


def test_a_box_equal_to_an_anchor_selects_it(tiny_detector):
    levels = tiny_detector.anchor_generator(np.zeros((1, 64, 64, 3), np.float32))
    anchors = keras.utils.bounding_boxes.convert_format(
        keras.ops.concatenate(list(levels.values()), axis=0),
        source=tiny_detector.anchor_generator.bounding_box_format, target="xyxy")
    anchor = keras.ops.convert_to_numpy(anchors)[100]
    target = BoxScoreTarget.for_box(tiny_detector, anchor, class_index=0, image_size=64)
    assert target.anchors[100]


@pytest.mark.parametrize("target, message", [
    (RegionTarget(), "RegionTarget needs a per-pixel output"),
    (ScalarTarget(sign=0), "sign must be \\+1 or -1"),
    (ScalarTarget(index=3), "index 3 is not one of the output's 1 value"),
])
def test_a_target_that_does_not_fit_the_model_says_why(target, message):
    with pytest.raises(ValueError, match=message):
        saliency(_signed_regressor(), np.ones((1, SIZE, SIZE, 1), np.float32), target)


def test_a_region_target_on_nothing_or_a_missing_channel_says_why(segmenter):
    images = np.ones((1, SIZE, SIZE, 1), np.float32)
    with pytest.raises(ValueError, match="covers no output pixel"):
        saliency(segmenter, images, RegionTarget(mask=np.zeros((SIZE, SIZE))))
    with pytest.raises(ValueError, match="channel=1 is not one of the output's 1 channel"):
        saliency(segmenter, images, RegionTarget(channel=1))
