"""Cutting a large image into overlapping tiles and blending per-tile results back.

Sections and photomicrographs larger than a model's input are tiled at the training
resolution, never shrunk. Tiles overlap by ``tile - stride`` pixels; the last tile of a row or
column is moved back to end flush with the image, so every pixel is covered and no tile
reaches outside. Results are blended with a window that falls towards a tile's edges (where a
convolutional network sees the least context) but never reaches zero, so a pixel that one
tile alone covers keeps that tile's value: blending is a weighted mean, and a constant result
stays constant, without seams.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride`` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def pad_to_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """Pads the bottom and right of an (H, W, ...) array up to ``tile`` pixels a side by
    mirroring it (a constant padding would add an edge the image does not have)."""
    rows, cols = max(tile - image.shape[0], 0), max(tile - image.shape[1], 0)
    if not rows and not cols:
        return image
    return np.pad(image, [(0, rows), (0, cols)] + [(0, 0)] * (image.ndim - 2), mode="symmetric")


def tile_origins(shape: tuple[int, ...], tile: int, stride: int) -> list[tuple[int, int]]:
    """The (row, column) origin of every tile of an (H, W, ...) image (padded to a tile, as
    :func:`pad_to_tile` does, when smaller)."""
    return [(r, c) for r in tile_starts(max(shape[0], tile), tile, stride)
            for c in tile_starts(max(shape[1], tile), tile, stride)]


def cut_tiles(image: np.ndarray, tile: int, stride: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Overlapping ``tile`` x ``tile`` tiles of an (H, W, ...) array, and each one's (row, column)
    origin. An image smaller than a tile is mirror-padded first (see :func:`pad_to_tile`).
    For a large image, :func:`tile_batches` gives the same tiles a batch at a time."""
    image = pad_to_tile(image, tile)
    origins = tile_origins(image.shape, tile, stride)
    return np.stack([image[r:r + tile, c:c + tile] for r, c in origins]), origins


def tile_batches(image: np.ndarray, tile: int, stride: int,
                 batch_size: int) -> Iterator[tuple[np.ndarray, list[tuple[int, int]]]]:
    """The tiles of :func:`cut_tiles`, ``batch_size`` at a time, so that memory holds one batch
    of tiles, never the whole stack."""
    image = pad_to_tile(image, tile)
    origins = tile_origins(image.shape, tile, stride)
    for start in range(0, len(origins), batch_size):
        chunk = origins[start:start + batch_size]
        yield np.stack([image[r:r + tile, c:c + tile] for r, c in chunk]), chunk


def blend_window(tile: int) -> np.ndarray:
    """A (tile, tile) Hann window without its zero end points: 1 in the centre, small but
    positive at the edges."""
    hann = np.hanning(tile + 2)[1:-1]
    return np.outer(hann, hann)


class TileBlender:
    """Blends per-tile results into one image as they arrive: a running window-weighted sum
    and the summed window, so memory holds the result, not the tiles.

    Args:
        shape: the original image's (H, W); smaller than a tile when it was padded.
        tile: the tiles' side.
        channels: the trailing shape of each result, e.g. ``(num_classes,)``; ``()`` for maps.
    """

    def __init__(self, shape: tuple[int, int], tile: int, channels: tuple[int, ...] = ()):
        self.shape, self.tile = tuple(shape[:2]), tile
        size = (max(shape[0], tile), max(shape[1], tile))
        self._window = blend_window(tile).astype(np.float32)
        self._total = np.zeros(size + tuple(channels), np.float32)
        self._weight = np.zeros(size, np.float32)

    def add(self, results: np.ndarray, origins: list[tuple[int, int]]) -> None:
        """Adds (N, tile, tile, *channels) results, or (N, *channels) values constant over
        each tile, at their origins."""
        tile, window = self.tile, self._window
        weight = window.reshape(window.shape + (1,) * (self._total.ndim - 2))
        for result, (r, c) in zip(results, origins):
            result = np.asarray(result, np.float32)
            if result.ndim < self._total.ndim:
                result = result.reshape((1, 1) + result.shape)
            self._total[r:r + tile, c:c + tile] += result * weight
            self._weight[r:r + tile, c:c + tile] += window

    def result(self) -> np.ndarray:
        """The weighted mean, cropped to the original shape."""
        weight = self._weight.reshape(self._weight.shape + (1,) * (self._total.ndim - 2))
        return (self._total / weight)[:self.shape[0], :self.shape[1]]


def blend_tiles(tiles: np.ndarray, origins: list[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """The window-weighted mean of overlapping per-tile results, cropped to ``shape`` (H, W).

    Args:
        tiles: (N, tile, tile, ...) results, one per origin of :func:`cut_tiles`.
        origins: their (row, column) origins.
        shape: the original image's (H, W); smaller than a tile when it was padded.
    """
    blender = TileBlender(shape, tiles.shape[1], tiles.shape[3:])
    blender.add(tiles, origins)
    return blender.result()
