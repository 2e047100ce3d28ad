"""Explanation metrics: does a map sit on the evidence, and does it depend on the model at all?

Localisation metrics score maps against ground-truth masks: :func:`pointing_game`,
:func:`energy_in_mask` and :func:`relevance_rank_accuracy`. :func:`deletion_insertion`
measures faithfulness (does removing what the map points at change the decision?), and
:func:`randomisation_check` is Adebayo et al.'s sanity check (does the map change when the
model's weights do?).

Maps are (batch, H, W) with larger meaning more relevant; masks are boolean of the same
shape (resize masks with nearest neighbour first: ``datasets.images.read_mask(path, size)``).
Every function is batched and returns one value per sample; a value that is undefined for a
sample (an empty mask, a constant map) is NaN, so aggregate with ``np.nanmean``. Quantus, the
reference library, pins keras<3, so these are ours.
"""

from __future__ import annotations

import warnings
from typing import Callable

import cv2
import keras
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from explain.views import DEFAULT_LAYER


def _checked(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps, np.float32), np.asarray(masks, bool)
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must both be (batch, H, W); resize the "
                         "masks to the maps with nearest neighbour (datasets.images.read_mask(path, size)).")
    return maps, masks


def _flat(array: np.ndarray) -> np.ndarray:
    return array.reshape(len(array), -1)


def _descending_ranks(maps: np.ndarray) -> np.ndarray:
    """Each pixel's rank in its map, 0 for the most relevant; ties keep raster order."""
    order = np.argsort(-_flat(maps), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    return ranks


def pointing_game(maps, masks, tolerance: int = 0) -> np.ndarray:
    """1.0 where the map's maximum falls inside the mask, else 0.0.

    Zhang et al., 2018, "Top-down Neural Attention by Excitation Backprop", IJCV 126. The
    paper allows a tolerance of 15 px at 224 px: the mask is dilated by ``tolerance`` pixels.
    NaN for an empty mask or a constant map (which has no maximum).
    """
    maps, masks = _checked(maps, masks)
    if tolerance > 0:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1,) * 2)
        masks = np.stack([cv2.dilate(m.astype(np.uint8), disk) for m in masks]).astype(bool)
    flat_maps, flat_masks = _flat(maps), _flat(masks)
    hits = flat_masks[np.arange(len(maps)), flat_maps.argmax(1)].astype(np.float32)
    undefined = ~flat_masks.any(1) | (flat_maps.max(1) == flat_maps.min(1))
    return np.where(undefined, np.nan, hits)


def energy_in_mask(maps, masks) -> np.ndarray:
    """The share of each map's positive mass that lies inside the mask, in [0, 1].

    The energy-based pointing game of Wang et al., 2020, "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks", CVPR Workshops; the relevance mass
    accuracy of Arras et al., 2022, "CLEVR-XAI: A benchmark dataset for the ground truth
    evaluation of neural network explanations", Information Fusion 81. A uniform map scores
    the mask's share of the image, so compare with :func:`mask_area`. NaN for an empty mask
    or a map without positive mass.
    """
    maps, masks = _checked(maps, masks)
    positive = np.clip(maps, 0.0, None)
    total, inside = _flat(positive).sum(1), _flat(positive * masks).sum(1)
    undefined = (total <= 0) | ~_flat(masks).any(1)
    return np.where(undefined, np.nan, inside / np.where(total > 0, total, 1.0))


def relevance_rank_accuracy(maps, masks) -> np.ndarray:
    """The share of a map's K highest pixels that lie inside the mask, K being the mask's size.

    Arras et al., 2022, "CLEVR-XAI", Information Fusion 81. NaN for an empty mask.
    """
    maps, masks = _checked(maps, masks)
    flat_masks = _flat(masks)
    sizes = flat_masks.sum(1)
    top = _descending_ranks(maps) < sizes[:, None]
    return np.where(sizes == 0, np.nan, (top & flat_masks).sum(1) / np.maximum(sizes, 1))


def mask_area(masks) -> np.ndarray:
    """Each mask's share of the image: what a uniform map scores in :func:`energy_in_mask`."""
    return _flat(np.asarray(masks, bool)).mean(1)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def deletion_insertion(model: keras.Model, inputs, maps, targets, *, input_name: str | None = None,
                       steps: int = 16, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Area under the target's probability curve as the map's pixels are deleted or inserted.

    Petsiuk et al., 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC. Pixels go in ``steps`` equal portions, most relevant first. Deletion
    blackens them (zero amplitude, for a seismic patch; a faithful map makes the probability
    fall fast: lower is better);
    insertion restores them into a blurred copy (higher is better).

    Args:
        inputs: the model's input array, or a dict of them for a multi-input model; only
            ``input_name`` (default: the largest image, SedNet's ``whole``) is perturbed, the
            others are kept.
        maps: (batch, H, W) maps of that input, at its resolution.
        targets: one class index per sample.

    Returns:
        ``(deletion_auc, insertion_auc)``, one value in [0, 1] per sample.
    """
    named = dict(inputs) if isinstance(inputs, dict) else {model.inputs[0].name: inputs}
    name = input_name or main_input(model)
    images = np.asarray(named[name], np.float32)
    maps = np.asarray(maps, np.float32)
    if maps.shape != images.shape[:3]:
        raise ValueError(f"maps {maps.shape} do not match the {name!r} input {images.shape[:3]}.")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * maps[0].size)
    shown = (_descending_ranks(maps)[:, None, :] < counts[None, :, None]).reshape(
        len(maps), steps + 1, *maps.shape[1:], 1)
    sigma = max(1.0, 5.0 * images.shape[1] / 224)  # the paper's blur, scaled to the image
    blurred = np.stack([cv2.GaussianBlur(image, (0, 0), sigma).reshape(image.shape) for image in images])
    target_rows = np.repeat(np.asarray(targets), steps + 1)
    curves = []
    for perturbed in (np.where(shown, 0.0, images[:, None]), np.where(shown, images[:, None], blurred[:, None])):
        batch = {key: np.repeat(value, steps + 1, axis=0) for key, value in named.items()}
        batch[name] = perturbed.reshape(-1, *images.shape[1:])
        model_inputs = batch if len(batch) > 1 else batch[name]
        probabilities = softmax(model.predict(model_inputs, batch_size=batch_size, verbose=0))
        curve = probabilities[np.arange(len(target_rows)), target_rows].reshape(len(maps), steps + 1)
        curves.append(np.trapezoid(curve, fractions, axis=1))
    return curves[0], curves[1]


def map_similarity(first, second) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample SSIM and Spearman rank correlation of two batches of maps in [0, 1].

    The two similarity measures of Adebayo et al., 2018 (see :func:`randomisation_check`).
    NaN where a map is constant, which has no rank order.
    """
    first, second = np.asarray(first, np.float32), np.asarray(second, np.float32)
    ssim, rho = [], []
    for a, b in zip(first, second):
        ssim.append(structural_similarity(a, b, data_range=1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on constant input and returns NaN
            rho.append(spearmanr(a.ravel(), b.ravel()).statistic)
    return np.array(ssim, np.float32), np.array(rho, np.float32)


def randomisation_check(model: keras.Model, method: Callable, inputs, targets=None, *, layer: str = DEFAULT_LAYER,
                        steps: int = 8, seed: int = 0) -> pd.DataFrame:
    """Cascading model-parameter randomisation: does the explanation depend on the weights?

    Adebayo et al., 2018, "Sanity Checks for Saliency Maps", NeurIPS. A copy of the model has
    its weighted layers re-initialised from the logits downwards, cumulatively, in ``steps``
    groups; after each group the same inputs are explained for the same classes (the trained
    model's predictions when ``targets`` is None) and compared with the trained model's
    maps. A method that passes loses its similarity as the weights go; one that keeps it
    explains the image, not the model (an edge detector would). The user's model is untouched.
    A multi-input model's maps are compared on its :func:`main_input`.

    Returns:
        One row per step: the layers randomised so far, the lowest one's name, and the mean
        SSIM and Spearman correlation with the trained model's maps.
    """
    if targets is None:
        targets = model.predict(inputs, verbose=0).argmax(-1)
    original = main_map(model, method(model, inputs, targets, layer=layer))
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    weighted = [item for item in reversed(_leaf_layers(copy)) if item.weights]
    rng = np.random.default_rng(seed)
    rows, done = [], 0
    for group in np.array_split(np.arange(len(weighted)), min(steps, len(weighted))):
        for index in group:
            _reinitialise(weighted[index], rng)
        done += len(group)
        ssim, rho = map_similarity(original, main_map(model, method(copy, inputs, targets, layer=layer)))
        rows.append({"step": len(rows) + 1, "layers_randomised": done, "down_to": weighted[group[-1]].name,
                     "ssim": pd.Series(ssim).mean(), "spearman": pd.Series(rho).mean()})  # NaN-skipping
    return pd.DataFrame(rows)


def main_input(model: keras.Model) -> str:
    """The name of the model's largest image input: SedNet's ``whole``, a classifier's only one."""
    images = [t for t in model.inputs if len(t.shape) == 4]
    return max(images, key=lambda t: (t.shape[1] or 0) * (t.shape[2] or 0)).name


def main_map(model: keras.Model, maps) -> np.ndarray:
    """An explainer's maps of :func:`main_input` (they are keyed by input for multi-input models)."""
    return maps[main_input(model)] if isinstance(maps, dict) else maps


def _leaf_layers(model: keras.Model) -> list:
    leaves = []
    for item in model.layers:
        leaves += _leaf_layers(item) if isinstance(item, keras.Model) else [item]
    return leaves


def _reinitialise(layer, rng: np.random.Generator) -> None:
    """Draws a layer's weights afresh from its own initialisers (e.g. ``kernel_initializer``);
    a weight without one is shuffled, which keeps its distribution and destroys what it learnt."""
    for variable in layer.weights:
        initializer = getattr(layer, f"{variable.name}_initializer", None)
        if initializer is not None:
            variable.assign(keras.initializers.get(initializer)(variable.shape, variable.dtype))
        else:
            values = np.asarray(variable.numpy())
            variable.assign(rng.permutation(values.ravel()).reshape(values.shape))
