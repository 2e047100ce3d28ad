"""The registry of explainers: method name to function, and what commands need to know of each.

CLI ``choices`` come from :data:`METHODS`; :func:`register` adds a user's method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from explain.cam import gradcam, gradcam_plus_plus, layercam, scorecam
from explain.fastcam import fastcam, fastcam_gradcam
from explain.gradients import integrated_gradients, occlusion, saliency, smoothgrad


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
