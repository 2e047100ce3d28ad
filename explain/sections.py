"""Tiled Seg-Grad-CAM of whole seismic sections: what a segmentation model looked at where it
predicted salt.

A section larger than the model's input is cut into the run's overlapping patches (same
size, stride and normalisation as in training). Each patch's explanation targets the salt
it predicts itself (:class:`~explain.targets.RegionTarget` with no mask: the summed logits of
the pixels predicted as salt, Vinogradova et al., 2020), and the per-patch maps are blended
back with the segmentation's own stitcher (:func:`datasets.tiles.blend_tiles`).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from datasets.images import write_image
from datasets.seismic import section_image, section_patches
from datasets.tiles import blend_tiles
from explain import DEFAULT_LAYER, METHODS
from explain.overlay import overlay
from explain.targets import RegionTarget


def is_segmentation_model(model: keras.Model) -> bool:
    """One input and a per-pixel output of the input's size."""
    output = model.outputs[0].shape
    return len(model.inputs) == 1 and len(output) == 4 and output[1:3] == model.inputs[0].shape[1:3]


def explain_section(model: keras.Model, amplitude: np.ndarray, methods: list[str], stride: int, normalize: str,
                    layer: str = DEFAULT_LAYER, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Per method, an (H, W) map in [0, 1] of a whole section: each patch's explanation of the
    salt it predicts, blended back."""
    patch_size = int(model.inputs[0].shape[1])
    patches, origins, _ = section_patches(amplitude, patch_size, stride, normalize)
    maps = {}
    for method in methods:
        per_patch = np.concatenate([METHODS[method](model, patches[start:start + batch_size], RegionTarget(),
                                                    layer=layer)
                                    for start in range(0, len(patches), batch_size)])
        maps[method] = blend_tiles(per_patch, origins, amplitude.shape)
    return maps


def write_section_maps(out: Path, stem: str, amplitude: np.ndarray, maps: dict[str, np.ndarray]) -> None:
    """``<method>/<stem>.png`` (overlay on the section) and ``<method>/<stem>.npy`` per method."""
    for method, heatmap in maps.items():
        (out / method).mkdir(parents=True, exist_ok=True)
        write_image(out / method / f"{stem}.png", overlay(section_image(amplitude), heatmap))
        np.save(out / method / f"{stem}.npy", heatmap)
