"""Explanations: where a model looks, batched, with per-sample targets, on logits.

Every method has the signature ``method(model, inputs, targets=None, *, layer="features")``
and returns (batch, H, W) float32 maps in [0, 1] at the input's resolution; a multi-input
model (SedNet) gets a dict of maps keyed by image input. ``targets``: None for each
sample's predicted class, an int for one class, or one int per sample.
"""

from __future__ import annotations

from typing import Callable

from explain.cam import gradcam, gradcam_plus_plus, layercam, scorecam
from explain.gradients import integrated_gradients, occlusion, saliency, smoothgrad
from explain.views import LayerError, resolve_layers, spatial_layers

METHODS: dict[str, Callable] = {}


def register(name: str, method: Callable) -> None:
    """Adds an explainer to the registry; a duplicate name is an error."""
    if name in METHODS:
        raise ValueError(f"An explainer named {name!r} is already registered.")
    METHODS[name] = method


for _method in (gradcam, gradcam_plus_plus, layercam, scorecam, saliency, smoothgrad, integrated_gradients,
                occlusion):
    register(_method.__name__, _method)

__all__ = ["METHODS", "LayerError", "register", "resolve_layers", "spatial_layers", "gradcam",
           "gradcam_plus_plus", "layercam", "scorecam", "saliency", "smoothgrad", "integrated_gradients",
           "occlusion"]
