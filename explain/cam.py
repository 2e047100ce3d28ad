"""The class-activation-map family, batched with per-sample targets and compiled.

Each method follows the project's explainer contract: ``method(model, inputs, targets=None,
*, layer="features") -> (batch, H, W) float32 in [0, 1]``, or for a multi-input model a dict
of such maps keyed by image input. Gradients are taken on logits. tf-explain's GradCAM
explains one class for a whole batch, runs eagerly and cannot handle multi-input or nested
models, so these are ours; ``tests/test_explain.py`` checks Grad-CAM against tf-explain.
"""

from __future__ import annotations

import tensorflow as tf

from explain.targets import repeat_sample
from explain.views import (DEFAULT_LAYER, as_input_dict, normalize, per_input, resolve_layers, resolve_targets,
                           view_of)


def _gradient_cam(model, inputs, targets, layer, combine, with_logits: bool = False):
    inputs = as_input_dict(model, inputs)
    kind, params = resolve_targets(model, inputs, targets, predict=False)
    layer_of = tuple(resolve_layers(model, layer).items())
    view = view_of(model, [layer_name for _, layer_name in layer_of])
    maps, logits = view.cams(inputs, kind, params, combine, layer_of)
    return (per_input(maps), logits.numpy()) if with_logits else per_input(maps)


def gradcam_combination(activations, gradients):
    """Grad-CAM before its ReLU: the channels summed, each weighted by its mean gradient."""
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    return tf.reduce_sum(weights * activations, axis=-1)


def _gradcam_plus_plus_weights(activations, gradients):
    squared, cubed = gradients ** 2, gradients ** 3
    activation_sums = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
    alpha = tf.math.divide_no_nan(squared, 2.0 * squared + activation_sums * cubed)
    weights = tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2), keepdims=True)
    return tf.reduce_sum(weights * activations, axis=-1)


def _layercam_weights(activations, gradients):
    return tf.reduce_sum(tf.nn.relu(gradients) * activations, axis=-1)


def gradcam(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER):
    """Grad-CAM: channels weighted by their spatially averaged gradient, then ReLU.

    Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV.
    """
    return _gradient_cam(model, inputs, targets, layer, gradcam_combination)


def gradcam_with_logits(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER):
    """:func:`gradcam` and the model's logits from the same compiled forward pass."""
    return _gradient_cam(model, inputs, targets, layer, gradcam_combination, with_logits=True)


def gradcam_plus_plus(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER):
    """Grad-CAM++: positive gradients weighted per position by the closed-form alphas.

    Chattopadhay et al., 2018, "Grad-CAM++: Generalized Gradient-Based Visual Explanations
    for Deep Convolutional Networks", WACV (alphas as in its eq. 19 with the score's own
    gradients, as pytorch-grad-cam computes them).
    """
    return _gradient_cam(model, inputs, targets, layer, _gradcam_plus_plus_weights)


def layercam(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER):
    """LayerCAM: every activation weighted by its own positive gradient.

    Jiang et al., 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization", IEEE TIP 30.
    """
    return _gradient_cam(model, inputs, targets, layer, _layercam_weights)


def scorecam(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER, max_channels: int = 64,
             batch_size: int = 64):
    """Score-CAM: channels weighted by the target's softmax score on the input masked by them.

    Wang et al., 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional
    Neural Networks", CVPR workshops. Gradient-free. To bound the cost (one forward pass per
    channel and image) only the ``max_channels`` channels of highest mean activation per
    image are scored, as in Faster Score-CAM; the masked passes run in batches of
    ``batch_size``. For a multi-input model, each input is masked while the others stay.
    """
    inputs = as_input_dict(model, inputs)
    kind, params = resolve_targets(model, inputs, targets)
    layer_of = resolve_layers(model, layer)
    view = view_of(model, list(layer_of.values()))
    activations = view.activations_and_gradients(inputs, kind, params)[0]
    maps = {}
    for name, layer_name in layer_of.items():
        maps[name] = _scorecam_maps(view, inputs, name, activations[layer_name], kind, params, max_channels,
                                    batch_size)
    return per_input(maps)


def _scorecam_maps(view, inputs, name, activations, kind, params, max_channels, batch_size):
    batch, size = int(activations.shape[0]), tf.shape(inputs[name])[1:3]
    count = min(max_channels, int(activations.shape[-1]))
    top = tf.math.top_k(tf.reduce_mean(activations, axis=(1, 2)), k=count).indices  # (B, N)
    chosen = tf.gather(activations, top, axis=3, batch_dims=1)  # (B, h, w, N)
    masks = tf.transpose(normalize(tf.transpose(tf.image.resize(chosen, size), (0, 3, 1, 2))), (0, 2, 3, 1))
    scores = []
    for i in range(batch):
        masked = {key: tf.repeat(value[i:i + 1], count, axis=0) for key, value in inputs.items()}
        masked[name] = masked[name] * tf.transpose(masks[i], (2, 0, 1))[..., None]
        sample = repeat_sample(params, i, count)
        confidences = [kind.confidence(view.logits({k: v[s:s + batch_size] for k, v in masked.items()}),
                                       {k: v[s:s + batch_size] for k, v in sample.items()})
                       for s in range(0, count, batch_size)]
        scores.append(tf.concat(confidences, axis=0))
    weights = tf.nn.softmax(tf.stack(scores), axis=1)[:, None, None, :]
    cams = tf.nn.relu(tf.reduce_sum(weights * chosen, axis=-1))
    return normalize(tf.image.resize(cams[..., None], size)[..., 0])
