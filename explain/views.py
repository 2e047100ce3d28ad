"""Read-only views of a model for explainers: target layers, recorded activations, gradients.

Explainers never touch the user's model. A view runs the model's functional graph with a
hook on each operation (the Keras counterpart of PyTorch forward hooks), records the
outputs of the target layers, and recurses into nested functional models, so a layer deep
inside a nested backbone works as well as a top-level one. Views are cached per
(model, layers) and their ``tf.function`` is traced once per input signature, so repeated
calls neither retrace nor grow memory.
"""

from __future__ import annotations

import functools
import weakref
from typing import Callable, Hashable, Sequence, TypeVar

import keras
import numpy as np
import tensorflow as tf

from explain.graph import run_with_hook
from explain.targets import Target, as_target

DEFAULT_LAYER = "features"


class LayerError(ValueError):
    """The requested layer does not exist or is not spatial; the message lists candidates."""


def spatial_layers(model: keras.Model) -> list[str]:
    """Names of all layers with a 4-D output, nested models searched, in graph order."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            names += spatial_layers(layer)
        elif _is_spatial(layer):
            names.append(layer.name)
    return names


def _is_spatial(layer) -> bool:
    try:
        return len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)
    except (AttributeError, ValueError):
        return False


def image_inputs(model: keras.Model) -> list[str]:
    """Names of the model's 4-D inputs, in the order of ``model.inputs``."""
    return [t.name for t in model.inputs if len(t.shape) == 4]


def resolve_layers(model: keras.Model, layer: str = DEFAULT_LAYER) -> dict[str, str]:
    """Maps each image input to the layer whose activations explain it.

    ``layer`` is looked up by name (nested models searched). A multi-input model given the
    default ``features`` uses each input's branch layer ``<input>_features`` where it has one
    (SedNet's ``whole_features`` and ``local_features``). Without a layer of the default
    name, the last 4-D layer is used.

    Raises:
        LayerError: the layer does not exist or is not 4-D, or the model has no 4-D layer.
    """
    candidates = spatial_layers(model)
    if not candidates:
        raise LayerError(f"Model {model.name!r} has no layer with a 4-D (batch, H, W, C) output, so "
                         "no class activation map can be made; use a gradient method "
                         "(saliency, smoothgrad, integrated_gradients, occlusion).")
    inputs = image_inputs(model)
    if layer == DEFAULT_LAYER and len(inputs) > 1 and all(f"{i}_features" in candidates for i in inputs):
        return {i: f"{i}_features" for i in inputs}
    if layer not in candidates:
        if layer != DEFAULT_LAYER:
            raise LayerError(f"Layer {layer!r} is not a 4-D layer of model {model.name!r}. "
                             f"Candidates (last ones first): {', '.join(reversed(candidates[-12:]))}"
                             + (f" and {len(candidates) - 12} more" if len(candidates) > 12 else "") + ".")
        layer = candidates[-1]
    return {i: layer for i in inputs}


def record_outputs(model: keras.Model, inputs, wanted: frozenset, recorded: dict):
    """Runs ``model`` on ``inputs`` in inference mode, storing outputs of ``wanted`` layers."""

    def hook(operation):
        def call(*args, **kwargs):
            if isinstance(operation, keras.Model) and wanted & set(spatial_layers(operation)):
                outputs = record_outputs(operation, args[0], wanted, recorded)
            else:
                outputs = operation(*args, **kwargs)
            if operation.name in wanted:
                recorded[operation.name] = outputs
            return outputs
        return call

    return run_with_hook(model, inputs, hook)


class ModelView:
    """Activations of chosen layers and the gradients of per-sample target scores with respect to them.

    Its compiled functions take a dict of input tensors (single-input models: the input's name
    as key), a target class (:class:`explain.targets.Target`, a static argument) and that
    target's tensors (:meth:`~explain.targets.Target.params`).
    """

    def __init__(self, model: keras.Model, layers: Sequence[str]):
        self._model = weakref.proxy(model)
        self.layers = tuple(dict.fromkeys(layers))
        self._wanted = frozenset(self.layers)
        # No tensor decides Python control flow here, so AutoGraph (which re-reads source files) stays off.
        compiled = functools.partial(tf.function, reduce_retracing=True, autograph=False)
        self.activations_and_gradients = compiled(self._activations_and_gradients)
        self.cams = compiled(self._cams)
        self.logits = compiled(self._logits)
        self.input_gradients = compiled(self._input_gradients)

    def _logits(self, inputs):
        return self._model(structured_inputs(self._model, inputs), training=False)

    def _activations_and_gradients(self, inputs, kind, params):
        recorded = {}
        with tf.GradientTape() as tape:
            logits = record_outputs(self._model, structured_inputs(self._model, inputs), self._wanted, recorded)
            score = kind.score(logits, params)
        activations = {name: recorded[name] for name in self.layers}
        return activations, tape.gradient(score, activations), logits

    def _cams(self, inputs, kind, params, combine, layer_of):
        """Class activation maps in one compiled call: ``combine(A, dS/dA)`` per image input,
        rectified, resized bilinearly to the input's size and scaled to [0, 1] per image.
        Returns the maps by input name and the logits."""
        activations, gradients, logits = self._activations_and_gradients(inputs, kind, params)
        maps = {name: normalize(tf.image.resize(tf.nn.relu(combine(activations[layer], gradients[layer]))[..., None],
                                                tf.shape(inputs[name])[1:3])[..., 0])
                for name, layer in layer_of}
        return maps, logits

    def _input_gradients(self, inputs, kind, params):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            score = kind.score(self._logits(inputs), params)
        return tape.gradient(score, inputs)


_VIEWS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()
View = TypeVar("View")


def cached_view(model: keras.Model, key: Hashable, build: Callable[[], View]) -> View:
    """The one cache of every explainer's views: per model (held weakly, so a dropped model
    frees its views) and per ``key``, built by ``build`` on first use. The user's model is
    never changed."""
    per_model = _VIEWS.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def view_of(model: keras.Model, layers: Sequence[str] = ()) -> ModelView:
    """The cached view of ``model`` for ``layers``."""
    key = tuple(dict.fromkeys(layers))
    return cached_view(model, ("layers", key), lambda: ModelView(model, key))


def as_input_dict(model: keras.Model, inputs) -> dict[str, tf.Tensor]:
    """Float32 tensors keyed by input name, from an array (single input), a list or a dict."""
    names = [t.name for t in model.inputs]
    if isinstance(inputs, dict):
        missing = set(names) - set(inputs)
        if missing:
            raise ValueError(f"Inputs lack {sorted(missing)}; model {model.name!r} takes {names}.")
        return {name: tf.convert_to_tensor(inputs[name], tf.float32) for name in names}
    if isinstance(inputs, (list, tuple)):
        return {name: tf.convert_to_tensor(x, tf.float32) for name, x in zip(names, inputs)}
    if len(names) != 1:
        raise ValueError(f"Model {model.name!r} takes the inputs {names}: pass a dict.")
    return {names[0]: tf.convert_to_tensor(inputs, tf.float32)}


def resolve_targets(model: keras.Model, inputs: dict, targets, predict: bool = True) -> tuple[type[Target], dict]:
    """The explainer contract's ``targets`` as a target class and its tensors.

    Args:
        targets: None (each sample's predicted class), an int, one int per sample, or a
            :class:`explain.targets.Target`.
        predict: fix "predicted" targets now, with a forward pass on ``inputs`` (needed before
            the inputs are changed); without it they are resolved inside the compiled scores.

    Raises:
        ValueError: the target does not fit the model's output or the batch.
    """
    target = as_target(targets)
    logits = view_of(model).logits if predict else None
    return type(target), target.params(model, inputs, logits)


def normalize(maps: tf.Tensor) -> tf.Tensor:
    """Scales each (H, W) map of a batch to [0, 1]; an all-equal map becomes zeros."""
    low = tf.reduce_min(maps, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(maps - low, high - low)


def structured_inputs(model: keras.Model, inputs: dict):
    """The structure the model was built with: a dict, a list or a single tensor."""
    if isinstance(model.input, dict):
        return inputs
    if isinstance(model.input, (list, tuple)):
        return [inputs[t.name] for t in model.inputs]
    return next(iter(inputs.values()))


def per_input(maps: dict) -> np.ndarray | dict[str, np.ndarray]:
    """One array for a single-image-input model, else a dict keyed by input name."""
    arrays = {name: np.asarray(m, dtype=np.float32) for name, m in maps.items()}
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays
