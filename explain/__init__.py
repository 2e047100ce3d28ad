"""Explanations: where a model looks, batched, with per-sample targets, on logits.

Every method has the signature ``method(model, inputs, targets=None, *, layer="features")``
and returns (batch, H, W) float32 maps in [0, 1] at the input's resolution; a multi-input
model (SedNet) gets a dict of maps keyed by image input. ``targets``: None for each
sample's predicted class, an int for one class, or one int per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from datasets.console import quiet_start

quiet_start()

from explain.cam import gradcam, gradcam_plus_plus, layercam, scorecam  # noqa: E402
from explain.fastcam import fastcam, fastcam_gradcam  # noqa: E402
from explain.gradients import integrated_gradients, occlusion, saliency, smoothgrad  # noqa: E402
from explain.views import DEFAULT_LAYER, LayerError, resolve_layers, spatial_layers  # noqa: E402


@dataclass(frozen=True)
class Explainer:
    """A registered method, called like the function it wraps, and the facts commands need.

    Attributes:
        uses_layer: it explains through a layer's activations (the CAM family), so its
            ``layer`` must name a 4-D layer; input-space methods ignore ``layer``.
    """

    function: Callable
    uses_layer: bool

    def __call__(self, model, inputs, targets=None, **options):
        return self.function(model, inputs, targets, **options)


METHODS: dict[str, Explainer] = {}


def register(name: str, method: Callable, uses_layer: bool) -> None:
    """Adds an explainer to the registry; a duplicate name is an error."""
    if name in METHODS:
        raise ValueError(f"An explainer named {name!r} is already registered.")
    METHODS[name] = Explainer(method, uses_layer)


for _method in (gradcam, gradcam_plus_plus, layercam, scorecam, fastcam, fastcam_gradcam):
    register(_method.__name__, _method, uses_layer=True)
for _method in (saliency, smoothgrad, integrated_gradients, occlusion):
    register(_method.__name__, _method, uses_layer=False)

__all__ = ["DEFAULT_LAYER", "Explainer", "METHODS", "LayerError", "register", "resolve_layers", "spatial_layers",
           "gradcam",
           "gradcam_plus_plus", "layercam", "scorecam", "fastcam", "fastcam_gradcam", "saliency", "smoothgrad", "integrated_gradients",
           "occlusion"]
