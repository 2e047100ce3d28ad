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


def cut_tiles(image: np.ndarray, tile: int, stride: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Overlapping ``tile`` x ``tile`` tiles of an (H, W, ...) array, and each one's (row, column)
    origin. An image smaller than a tile is mirror-padded first (see :func:`pad_to_tile`)."""
    image = pad_to_tile(image, tile)
    origins = [(r, c) for r in tile_starts(image.shape[0], tile, stride)
               for c in tile_starts(image.shape[1], tile, stride)]
    return np.stack([image[r:r + tile, c:c + tile] for r, c in origins]), origins


def blend_window(tile: int) -> np.ndarray:
    """A (tile, tile) Hann window without its zero end points: 1 in the centre, small but
    positive at the edges."""
    hann = np.hanning(tile + 2)[1:-1]
    return np.outer(hann, hann)


def blend_tiles(tiles: np.ndarray, origins: list[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """The window-weighted mean of overlapping per-tile results, cropped to ``shape`` (H, W).

    Args:
        tiles: (N, tile, tile, ...) results, one per origin of :func:`cut_tiles`.
        origins: their (row, column) origins.
        shape: the original image's (H, W); smaller than a tile when it was padded.
    """
    tile = tiles.shape[1]
    window = blend_window(tile).reshape((tile, tile) + (1,) * (tiles.ndim - 3))
    height = max(shape[0], tile)
    width = max(shape[1], tile)
    total = np.zeros((height, width) + tiles.shape[3:], np.float64)
    weight = np.zeros((height, width) + (1,) * (tiles.ndim - 3), np.float64)
    for result, (r, c) in zip(tiles, origins):
        total[r:r + tile, c:c + tile] += result * window
        weight[r:r + tile, c:c + tile] += window
    return (total / weight)[:shape[0], :shape[1]].astype(np.float32)
