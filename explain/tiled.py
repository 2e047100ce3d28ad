"""Explaining an image far larger than the model's input, tile by tile, as the model was trained.

A photomicrograph of 1280 x 960 px shrunk to a 128-px model input loses the grains the model
learnt from, and the burnt-in scale bar becomes a large share of what is left. Instead the
image is cut into overlapping tiles at the training resolution (``tile`` source pixels, by
default the model's input side), each tile is classified and explained, and the results are
blended back with the shared window stitcher (:class:`datasets.tiles.TileBlender`):

- per-class probability maps (each tile's softmax, blended where tiles overlap) and the class
  map, their argmax;
- the image-level vote: the class most tiles predict (ties go to the higher mean probability);
- one full-resolution heatmap per method. Each tile explains its own predicted class (or the
  one ``target`` names), its [0, 1] map scaled by the tile's probability of that class, so a
  tile the model is unsure of is dim rather than as bright as a confident one.

Tiles stream through in batches: memory holds the blended results and one batch of tiles,
never the whole stack. With Grad-CAM the logits come from Grad-CAM's own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import matplotlib
import numpy as np

from datasets.images import write_image
from datasets.pipeline import for_model, model_inputs, picture, stack_inputs
from datasets.tiles import TileBlender, tile_batches, tile_origins
from explain import DEFAULT_LAYER, METHODS
from explain.cam import gradcam_with_logits
from explain.loading import LoadedModel
from explain.metrics import softmax
from explain.overlay import overlay, peak_and_entropy

NO_BOX = np.full(4, np.nan, np.float32)


@dataclass
class TiledExplanation:
    """What :func:`explain_tiled` returns for one image.

    Attributes:
        probabilities: (H, W, classes) blended softmax probabilities.
        votes: (classes,) how many tiles predicted each class.
        maps: per method, the (H, W) stitched heatmap in [0, 1].
    """

    probabilities: np.ndarray
    votes: np.ndarray
    maps: dict[str, np.ndarray]

    @property
    def tiles(self) -> int:
        """How many tiles were cut (each casts one vote)."""
        return int(self.votes.sum())

    @property
    def class_map(self) -> np.ndarray:
        """(H, W) index of the most probable class at each pixel."""
        return self.probabilities.argmax(axis=-1)

    @property
    def predicted(self) -> int:
        """The image-level vote: the class most tiles predict, ties to the higher mean probability."""
        mean = self.probabilities.reshape(-1, self.probabilities.shape[-1]).mean(axis=0)
        return int(np.lexsort((mean, self.votes))[-1])


def explain_tiled(loaded: LoadedModel, image: np.ndarray, methods: list[str], tile: int | None = None,
                  stride: int | None = None, target: int | None = None, layer: str = DEFAULT_LAYER,
                  batch_size: int = 8, progress: bool = False) -> TiledExplanation:
    """Classifies and explains an RGB uint8 (H, W, 3) image, or a seismic section's amplitudes
    (H, W, 1), tile by tile; see the module docstring.

    Args:
        tile: tile side in source pixels (default: the model's input side).
        stride: pixels between tile origins (default: half a tile).
        target: a class index to explain on every tile; None explains each tile's prediction.
        progress: show a progress bar over the tiles.
    """
    tile = tile or loaded.spec.image_size
    stride = stride or max(tile // 2, 1)
    shape = image.shape[:2]
    probabilities = TileBlender(shape, tile, (len(loaded.class_names),))
    blended = {method: TileBlender(shape, tile) for method in methods}
    votes = np.zeros(len(loaded.class_names), np.int64)
    count = len(tile_origins(shape, tile, stride))
    bar = keras.utils.Progbar(count, unit_name="tile") if progress else None
    for tiles, origins in tile_batches(image, tile, stride, batch_size):
        probs, maps = _classify_and_explain(loaded, tiles, methods, target, layer)
        explained = np.full(len(tiles), target) if target is not None else probs.argmax(axis=1)
        votes += np.bincount(probs.argmax(axis=1), minlength=len(votes))
        probabilities.add(probs, origins)
        confidence = probs[np.arange(len(tiles)), explained][:, None, None]
        for method in methods:
            blended[method].add(_at_tile_size(maps[method], tile) * confidence, origins)
        if bar:
            bar.add(len(tiles))
    return TiledExplanation(probabilities.result(), votes, {m: b.result() for m, b in blended.items()})


def _classify_and_explain(loaded: LoadedModel, tiles: np.ndarray, methods: list[str], target: int | None,
                          layer: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Softmax probabilities of a batch of tiles and each method's map of the main input."""
    batch = for_model(stack_inputs([model_inputs(t, NO_BOX, loaded.spec) for t in tiles], loaded.spec))
    maps = {}
    if "gradcam" in methods:
        maps["gradcam"], logits = gradcam_with_logits(loaded.model, batch, target, layer=layer)
    else:
        logits = keras.ops.convert_to_numpy(loaded.model(batch, training=False))
    probabilities = softmax(logits)
    targets = np.full(len(tiles), target) if target is not None else probabilities.argmax(axis=1)
    for method in methods:
        if method not in maps:
            maps[method] = METHODS[method](loaded.model, batch, targets, layer=layer)
    main = loaded.spec.input_names[0]
    return probabilities, {m: v[main] if isinstance(v, dict) else v for m, v in maps.items()}


def _at_tile_size(maps: np.ndarray, tile: int) -> np.ndarray:
    """(N, s, s) maps at the model's input side as (N, tile, tile) maps over the source tiles."""
    if maps.shape[1] == tile:
        return maps
    return np.stack([cv2.resize(m, (tile, tile), interpolation=cv2.INTER_LINEAR) for m in maps])


def write_tiled(out: Path, stem: str, image: np.ndarray, result: TiledExplanation, class_names: list[str]) -> dict:
    """Writes one image's tiled results under ``out``; returns its explanations.csv columns.

    ``classes/<stem>.png`` the class map over the image with a legend,
    ``classes/<stem>_probabilities.npy`` the (H, W, classes) probabilities (float16),
    ``classes/<stem>_<class>.png`` each class's probability over the image, and per method
    ``<method>/<stem>.png`` the full-resolution overlay and ``<method>/<stem>.npy`` the map (float16).
    A seismic image is shown as an amplitude section (:func:`datasets.pipeline.picture`).
    """
    classes = out / "classes"
    image = picture(image)
    write_image(classes / f"{stem}.png", class_map_picture(image, result.class_map, class_names))
    np.save(classes / f"{stem}_probabilities.npy", result.probabilities.astype(np.float16))
    for k, name in enumerate(class_names):
        write_image(classes / f"{stem}_{name}.png", overlay(image, result.probabilities[..., k]))
    predicted = result.predicted
    record = {"predicted": class_names[predicted], "tiles": result.tiles,
              "votes": " ".join(f"{name}:{int(v)}" for name, v in zip(class_names, result.votes)),
              "vote_share": round(float(result.votes[predicted] / result.tiles), 4),
              "probability": round(float(result.probabilities[..., predicted].mean()), 4),
              "class_map": f"classes/{stem}.png"}
    for method, heatmap in result.maps.items():
        write_image(out / method / f"{stem}.png", overlay(image, heatmap))
        np.save(out / method / f"{stem}.npy", heatmap.astype(np.float16))
        x, y, entropy = peak_and_entropy(heatmap, heatmap.shape)
        record.update({f"{method}_peak_x": x, f"{method}_peak_y": y, f"{method}_entropy": round(entropy, 4),
                       f"{method}_overlay": f"{method}/{stem}.png"})
    return record


def class_map_picture(image: np.ndarray, class_map: np.ndarray, class_names: list[str],
                      alpha: float = 0.45) -> np.ndarray:
    """The class map as colours (matplotlib's tab10) blended over the image, with a legend."""
    palette = (np.array(matplotlib.colormaps["tab10"].colors) * 255).astype(np.uint8)
    colours = palette[class_map % len(palette)]
    picture = cv2.addWeighted(colours, alpha, image, 1.0 - alpha, 0.0)
    scale = max(image.shape[0], image.shape[1]) / 800
    for k, name in enumerate(class_names):
        origin = (int(8 * scale) + 1, int((22 + 22 * k) * scale) + 10)
        cv2.putText(picture, name, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * max(scale, 0.7),
                    tuple(int(c) for c in palette[k % len(palette)]), max(int(2 * scale), 1), cv2.LINE_AA)
    return picture
