"""Explanations: where a model looks, batched, with per-sample targets, on logits.

Every method has the signature ``method(model, inputs, targets=None, *, layer="features")``
and returns (batch, H, W) float32 maps in [0, 1] at the input's resolution; a multi-input
model (SedNet) gets a dict of maps keyed by image input. ``targets``: None for each
sample's predicted class, an int for one class, or one int per sample.
"""

from __future__ import annotations

from datasets.console import quiet_if_starting_command

quiet_if_starting_command()  # `python -m explain.…`: before the methods below import TensorFlow

from explain.cam import gradcam, gradcam_plus_plus, layercam, scorecam  # noqa: E402
from explain.fastcam import fastcam, fastcam_gradcam  # noqa: E402
from explain.gradients import integrated_gradients, occlusion, saliency, smoothgrad  # noqa: E402
from explain.registry import METHODS, Explainer, register  # noqa: E402
from explain.views import DEFAULT_LAYER, LayerError, resolve_layers, spatial_layers  # noqa: E402

__all__ = ["DEFAULT_LAYER", "Explainer", "METHODS", "LayerError", "register", "resolve_layers", "spatial_layers",
           "gradcam", "gradcam_plus_plus", "layercam", "scorecam", "fastcam", "fastcam_gradcam", "saliency",
           "smoothgrad", "integrated_gradients", "occlusion"]
