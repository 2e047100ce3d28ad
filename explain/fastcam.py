"""Fast-CAM: SMOE-scale saliency over the network's scales, optionally gated by Grad-CAM.

Mundhenk, Chen and Friedland, 2020, "Efficient Saliency Maps for Explainable AI"
(arXiv:1911.11293). At every position of a stage's rectified activations ``x_c`` (channels
``c = 1..C``, plus a small epsilon so the logarithm exists), the SMOE scale is the mean times
the log ratio of the arithmetic to the geometric mean::

    m = mean_c(x_c),   SMOE = m * (log2 m - mean_c(log2 x_c))

which is large where a few channels respond strongly: a location the network finds
informative, whatever the class. Each stage's map is squashed through the normal CDF of
its own per-image mean and standard deviation, resized to the input and averaged over the
stages. The gated form (``fastcam_gradcam``) multiplies that average by the Grad-CAM of the
target at the explained layer, which makes it class- or sign-specific. The stages are the
last layer at each spatial resolution below the input's on the way to that layer (ResNet-50:
``conv1_relu``, ``conv2_block3_out`` ... ``conv5_block3_out``), the deepest five by default.

The plain form needs one forward pass and no gradient; the gated form adds the backward pass
down to the explained layer only.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from explain.cam import gradcam_combination
from explain.graph import ancestors
from explain.views import (DEFAULT_LAYER, as_input_dict, cached_view, normalize, per_input, record_outputs,
                           resolve_layers, resolve_targets, structured_inputs)

EPSILON = 1e-7
STAGES = 5


def smoe_scale(activations: tf.Tensor) -> tf.Tensor:
    """SMOE scale over the channels of (B, H, W, C) activations, rectified first: (B, H, W)."""
    x = tf.nn.relu(activations) + EPSILON
    mean = tf.reduce_mean(x, axis=-1)
    log2 = tf.experimental.numpy.log2
    return mean * (log2(mean) - tf.reduce_mean(log2(x), axis=-1))


def gauss_normalize(maps: tf.Tensor) -> tf.Tensor:
    """Each (H, W) map through the normal CDF of its own mean and standard deviation."""
    mean, variance = tf.nn.moments(maps, axes=(1, 2), keepdims=True)
    return 0.5 * (1.0 + tf.math.erf(tf.math.divide_no_nan(maps - mean, tf.sqrt(2.0 * variance))))


def stage_layers(model: keras.Model, layer: str = DEFAULT_LAYER, stages: int = STAGES) -> dict[str, list[str]]:
    """Per image input, the last layer at each spatial resolution below the input's, among
    the explained layer and the layers it is computed from, the deepest ``stages`` of them;
    the explained layer is always the deepest stage.

    Raises:
        explain.views.LayerError: see :func:`explain.views.resolve_layers`.
    """
    order = {l.name: i for i, l in enumerate(model.layers)}
    chosen = {}
    for name, last in resolve_layers(model, layer).items():
        input_side = model.get_layer(name).output.shape[1]
        last_at_side = {}
        for candidate in sorted(ancestors(model, last) & set(order) | {last}, key=lambda n: order.get(n, -1)):
            side = _spatial_side(model.get_layer(candidate))
            if side and 1 < side < input_side:
                last_at_side[side] = candidate
        deepest = [last_at_side[side] for side in sorted(last_at_side, reverse=True)]
        chosen[name] = (deepest if last in deepest else [*deepest, last])[-stages:]
    return chosen


def _spatial_side(layer) -> int | None:
    """The height of a 4-D, non-padding layer output, else None."""
    if isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D)):
        return None
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return shape[1] if len(shape) == 4 else None


class _FastCamView:
    """Compiled Fast-CAM calls per (model, stages, gate layers)."""

    def __init__(self, model: keras.Model, stages: dict[str, tuple[str, ...]], gates: dict[str, str] | None):
        self._model = weakref.proxy(model)
        self.stages, self.gates = stages, gates
        self._wanted = frozenset(s for names in stages.values() for s in names) | frozenset((gates or {}).values())
        self.run = tf.function(self._run, reduce_retracing=True, autograph=False)

    def _run(self, inputs, kind=None, params=None):
        """The maps per image input and the activations of every stage they combine."""
        recorded, gradients = {}, {}
        if self.gates:
            with tf.GradientTape() as tape:
                logits = record_outputs(self._model, structured_inputs(self._model, inputs), self._wanted, recorded)
                score = kind.score(logits, params)
            gradients = tape.gradient(score, {n: recorded[n] for n in set(self.gates.values())})
        else:
            record_outputs(self._model, structured_inputs(self._model, inputs), self._wanted, recorded)
        maps = {}
        for name, stages in self.stages.items():
            size = tf.shape(inputs[name])[1:3]
            combined = self._combined(recorded, stages, size)
            if self.gates:
                gate = self.gates[name]
                cam = tf.nn.relu(gradcam_combination(recorded[gate], gradients[gate]))
                combined *= normalize(tf.image.resize(cam[..., None], size)[..., 0])
            maps[name] = normalize(combined)
        return maps, {s: recorded[s] for names in self.stages.values() for s in names}

    @staticmethod
    def _combined(recorded: dict, stages: tuple[str, ...], size) -> tf.Tensor:
        """The stages' squashed SMOE maps at the input's ``size``, averaged."""
        resized = [tf.image.resize(gauss_normalize(smoe_scale(recorded[s]))[..., None], size)[..., 0] for s in stages]
        return tf.add_n(resized) / len(resized)


def _view(model: keras.Model, layer: str, stages: int, gated: bool) -> _FastCamView:
    def build() -> _FastCamView:
        chosen = {name: tuple(names) for name, names in stage_layers(model, layer, stages).items()}
        return _FastCamView(model, chosen, resolve_layers(model, layer) if gated else None)

    return cached_view(model, ("fastcam", layer, stages, gated), build)


def fastcam(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER,
            stages: int = STAGES) -> np.ndarray | dict[str, np.ndarray]:
    """Fast-CAM's SMOE-scale saliency, averaged over the stages up to ``layer``: where the
    network responds, from one forward pass. Class-agnostic, so ``targets`` is ignored."""
    return per_input(_run(model, as_input_dict(model, inputs), None, layer, stages, gated=False)[0])


def fastcam_with_stages(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER, stages: int = STAGES
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fast-CAM's maps per image input (gated by the Grad-CAM of ``targets`` when given, as
    :func:`fastcam_gradcam`) and, from the same pass, the activations of every stage it
    combines (keyed by layer name; the stages per input are :func:`stage_layers`), for reading
    the features where the network looks."""
    maps, activations = _run(model, as_input_dict(model, inputs), targets, layer, stages, gated=targets is not None)
    return ({name: np.asarray(m) for name, m in maps.items()},
            {name: np.asarray(a) for name, a in activations.items()})


def fastcam_gradcam(model, inputs, targets=None, *, layer: str = DEFAULT_LAYER,
                    stages: int = STAGES) -> np.ndarray | dict[str, np.ndarray]:
    """Fast-CAM gated by the Grad-CAM of ``targets`` at ``layer``: where the network
    responds and what it responds to favours the target (Mundhenk et al., 2020)."""
    return per_input(_run(model, as_input_dict(model, inputs), targets, layer, stages, gated=True)[0])


def _run(model, inputs: dict, targets, layer: str, stages: int, gated: bool):
    """The maps and stage activations of plain Fast-CAM, or of Fast-CAM gated by the Grad-CAM
    of ``targets`` (None: each sample's predicted class)."""
    if not gated:
        return _view(model, layer, stages, gated=False).run(inputs)
    kind, params = resolve_targets(model, inputs, targets, predict=False)
    return _view(model, layer, stages, gated=True).run(inputs, kind, params)


__all__ = ["fastcam", "fastcam_gradcam", "fastcam_with_stages", "gauss_normalize", "smoe_scale", "stage_layers"]
