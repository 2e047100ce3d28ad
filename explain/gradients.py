"""Input-space attributions: saliency, SmoothGrad, Integrated Gradients, occlusion.

Same contract as the CAM family (``explain.cam``); ``layer`` is accepted and ignored, since
these work on the input pixels. tf-explain's versions explain one class for the whole batch
and take one input tensor, so per-sample targets and SedNet's two inputs need these; for a
single-input model and one class, ``tests/test_explain.py`` checks saliency against
tf-explain's VanillaGradients.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from explain.targets import repeat_sample
from explain.views import DEFAULT_LAYER, as_input_dict, normalize, per_input, resolve_targets, view_of


def _channel_max(gradients: dict) -> dict:
    return {name: normalize(tf.reduce_max(tf.abs(g), axis=-1)) for name, g in gradients.items()}


def saliency(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER):
    """Vanilla gradient saliency: |d logit / d pixel|, maximum over colour channels.

    Simonyan, Vedaldi & Zisserman, 2014, "Deep Inside Convolutional Networks: Visualising
    Image Classification Models and Saliency Maps", ICLR workshop.
    """
    inputs = as_input_dict(model, inputs)
    kind, params = resolve_targets(model, inputs, targets)
    return per_input(_channel_max(view_of(model).input_gradients(inputs, kind, params)))


def smoothgrad(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER, samples: int = 16,
               noise_level: float = 0.15, seed: int = 0):
    """SmoothGrad: the mean gradient over noisy copies, then as saliency.

    Smilkov et al., 2017, "SmoothGrad: removing noise by adding noise", arXiv:1706.03825.
    The noise's standard deviation is ``noise_level`` times each image's value range (the
    paper's 10-20 %). All noisy copies of all inputs go through in one batched pass per sample.
    """
    inputs = as_input_dict(model, inputs)
    kind, params = resolve_targets(model, inputs, targets)
    view, rng = view_of(model), tf.random.Generator.from_seed(seed)
    total = {name: tf.zeros_like(x) for name, x in inputs.items()}
    for _ in range(samples):
        noisy = {name: x + rng.normal(tf.shape(x)) * noise_level * _value_range(x) for name, x in inputs.items()}
        gradients = view.input_gradients(noisy, kind, params)
        total = {name: total[name] + gradients[name] for name in total}
    return per_input(_channel_max(total))


def _value_range(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_max(x, axis=(1, 2, 3), keepdims=True) - tf.reduce_min(x, axis=(1, 2, 3), keepdims=True)


def integrated_gradients(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER, steps: int = 32,
                         baseline: float = 0.0, raw: bool = False):
    """Integrated Gradients from a constant (black) baseline, trapezoidal Riemann sum.

    Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for Deep Networks", ICML. The
    map is |sum over colour channels of (x - x0) * mean gradient along the path|. For a
    multi-input model the path scales all inputs together. With ``raw=True`` the signed
    attributions summed over colour channels are returned instead, unscaled: over all pixels
    (and inputs) they add up to the target's score at ``x`` minus at the baseline
    (completeness), up to the Riemann sum's error.
    """
    inputs = as_input_dict(model, inputs)
    kind, params = resolve_targets(model, inputs, targets)
    view = view_of(model)
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    weights = np.full(steps + 1, 1.0 / steps, np.float32)
    weights[[0, -1]] /= 2
    total = {name: tf.zeros_like(x) for name, x in inputs.items()}
    for alpha, weight in zip(alphas, weights):
        point = {name: baseline + alpha * (x - baseline) for name, x in inputs.items()}
        gradients = view.input_gradients(point, kind, params)
        total = {name: total[name] + weight * gradients[name] for name in total}
    attributions = {name: tf.reduce_sum((inputs[name] - baseline) * total[name], axis=-1) for name in inputs}
    return per_input({name: a if raw else normalize(tf.abs(a)) for name, a in attributions.items()})


def occlusion(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER, patch: int | None = None,
              stride: int | None = None, batch_size: int = 64):
    """Occlusion sensitivity: the drop of the target's probability when a grey patch hides a region.

    Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks", ECCV.
    ``patch`` defaults to 1/8 of the image side and ``stride`` to half the patch; each pixel
    gets the mean drop of the patches that cover it, negative drops clipped. The occluded
    copies run in batches of ``batch_size``; each input of a multi-input model is occluded
    in turn while the others stay.
    """
    inputs = as_input_dict(model, inputs)
    kind, params = resolve_targets(model, inputs, targets)
    view = view_of(model)
    base = kind.confidence(view.logits(inputs), params).numpy()
    maps = {name: _occlusion_map(view, inputs, name, kind, params, base, patch, stride, batch_size)
            for name in inputs if len(inputs[name].shape) == 4}
    return per_input(maps)


def _occlusion_map(view, inputs, name, kind, params, base, patch, stride, batch_size):
    batch, height, width = (int(d) for d in inputs[name].shape[:3])
    patch = patch or max(2, min(height, width) // 8)
    stride = stride or max(1, patch // 2)
    corners = [(y, x) for y in range(0, max(height - patch, 0) + 1, stride)
               for x in range(0, max(width - patch, 0) + 1, stride)]
    drops, cover = np.zeros((batch, height, width), np.float32), np.zeros((height, width), np.float32)
    for y, x in corners:
        cover[y:y + patch, x:x + patch] += 1
    for i in range(batch):
        sample = {key: value[i:i + 1] for key, value in inputs.items()}
        for start in range(0, len(corners), batch_size):
            chunk = corners[start:start + batch_size]
            occluded = {key: tf.repeat(value, len(chunk), axis=0) for key, value in sample.items()}
            mask = np.ones((len(chunk), height, width, 1), np.float32)
            for j, (y, x) in enumerate(chunk):
                mask[j, y:y + patch, x:x + patch] = 0.0
            grey = tf.reduce_mean(sample[name])
            occluded[name] = occluded[name] * mask + grey * (1.0 - mask)
            confidences = kind.confidence(view.logits(occluded), repeat_sample(params, i, len(chunk))).numpy()
            for (y, x), confidence in zip(chunk, confidences):
                drops[i, y:y + patch, x:x + patch] += base[i] - confidence
    return normalize(tf.nn.relu(drops / np.maximum(cover, 1.0)))
