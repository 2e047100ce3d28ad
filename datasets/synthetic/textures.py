"""A seeded reference set of describable textures, for mapping a model's features onto words.

Palmer, Mundhenk et al. read what a material-strength regressor sees by finding, for the
features at its most salient location, the nearest images of the Describable Textures
Dataset (Cimpoi et al. 2014, "Describing Textures in the Wild", 47 classes). DTD cannot be
downloaded here; this module draws stand-ins for the classes that matter to SEM crystals,
each a family with random scale, orientation, contrast and polarity:

- ``dotted``: round dots on a jittered lattice; ``flecked``: scattered small irregular flecks;
  ``porous``: round voids of many sizes (the shapes of surface pits);
- ``cracked``: a network of thin kinked dark lines; ``striped``: parallel thin lines;
  ``fibrous``: short aligned strokes; ``wrinkled``: warped ridges (the shapes of cracks);
- ``grid``: two crossing sets of lines; ``banded``: a few broad soft bands; ``smooth``: gentle
  low-frequency shading (shapes unrelated to either).

:data:`PHOTOGRAPHS` adds crops of scikit-image's texture photographs (brick, grass, gravel).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from datasets.synthetic.drawing import finish, rotate, smooth_noise


def _lattice(rng: np.random.Generator, size: int, step: float, jitter: float) -> np.ndarray:
    grid = np.arange(rng.uniform(0, step), size, step)
    points = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    return points + rng.uniform(-jitter, jitter, points.shape) * step


def _dotted(rng, size):
    canvas = np.zeros((size, size), np.float32)
    step = size * rng.uniform(0.06, 0.14)
    radius = max(1, int(round(step * rng.uniform(0.15, 0.3))))
    for x, y in _lattice(rng, size, step, 0.12):
        cv2.circle(canvas, (int(x), int(y)), radius, 1.0, -1, cv2.LINE_AA)
    return canvas


def _flecked(rng, size):
    canvas = np.zeros((size, size), np.float32)
    for _ in range(int(size * size / 90 * rng.uniform(0.5, 1.5))):
        centre = rng.uniform(0, size, 2).astype(int)
        axes = (int(rng.integers(1, 3)), int(rng.integers(1, 2)))
        cv2.ellipse(canvas, tuple(centre), axes, rng.uniform(0, 180), 0, 360, float(rng.uniform(0.6, 1.0)), -1)
    return canvas


def _porous(rng, size):
    canvas = np.zeros((size, size), np.float32)
    for _ in range(int(size * size / 150 * rng.uniform(0.5, 1.2))):
        radius = int(max(1, rng.pareto(2.5) * size / 60 + 1))
        cv2.circle(canvas, tuple(rng.uniform(0, size, 2).astype(int)), min(radius, size // 8), 1.0, -1, cv2.LINE_AA)
    return canvas


def _cracked(rng, size):
    canvas = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(6, 14))):
        point, angle = rng.uniform(0, size, 2), rng.uniform(0, np.pi)
        points = [point]
        for _ in range(int(rng.integers(4, 9))):
            angle += rng.normal(0, 0.5)
            points.append(points[-1] + size / 10 * np.array([np.cos(angle), np.sin(angle)]))
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA)
    return canvas


def _lines(size: int, period: float, width: float, phase: float) -> np.ndarray:
    """Thin parallel lines along x, ``period`` px apart, as a float map in [0, 1]."""
    y = np.arange(size, dtype=np.float32)[:, None] + phase
    distance = np.abs((y % period) - period / 2)
    return np.broadcast_to(np.clip(1 - (distance - width / 2), 0, 1), (size, size)).copy()


def _striped(rng, size):
    period = size * rng.uniform(0.06, 0.15)
    return rotate(_lines(size, period, rng.uniform(1, 2), rng.uniform(0, period)), rng.uniform(0, 180))


def _grid(rng, size):
    period = size * rng.uniform(0.08, 0.2)
    lines = _lines(size, period, rng.uniform(1, 2), rng.uniform(0, period))
    return rotate(np.maximum(lines, lines.T), rng.uniform(0, 90))


def _fibrous(rng, size):
    canvas = np.zeros((size, size), np.float32)
    direction = rng.uniform(0, np.pi)
    for _ in range(int(size * size / 40)):
        angle, length = direction + rng.normal(0, 0.15), rng.uniform(0.05, 0.2) * size
        start = rng.uniform(0, size, 2)
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(canvas, tuple(start.astype(int)), tuple(end.astype(int)), float(rng.uniform(0.3, 1)), 1, cv2.LINE_AA)
    return canvas


def _wrinkled(rng, size):
    warp = smooth_noise(rng, size, size / 12, size / 12) * rng.uniform(2, 5) * np.pi
    y = np.arange(size, dtype=np.float32)[:, None] * 2 * np.pi / (size * rng.uniform(0.08, 0.15))
    ridges = 1 - np.abs(np.sin(y + warp))
    return rotate(ridges ** 4, rng.uniform(0, 180))


def _banded(rng, size):
    y = np.arange(size, dtype=np.float32)[:, None] * 2 * np.pi / (size * rng.uniform(0.35, 0.7))
    bands = np.broadcast_to(0.5 + 0.5 * np.sin(y + rng.uniform(0, 2 * np.pi)), (size, size)).copy()
    return rotate(bands, rng.uniform(0, 180))


def _smooth(rng, size):
    return smooth_noise(rng, size, size / 4, size / 4)


DRAWERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "dotted": _dotted, "flecked": _flecked, "porous": _porous, "cracked": _cracked, "striped": _striped,
    "fibrous": _fibrous, "wrinkled": _wrinkled, "grid": _grid, "banded": _banded, "smooth": _smooth,
}
PHOTOGRAPHS = ("brick", "grass", "gravel")  # scikit-image's bundled texture photographs
CLASSES = (*DRAWERS, *PHOTOGRAPHS)


def generate(rng: np.random.Generator, label: str, size: int = 128) -> np.ndarray:
    """One texture of class ``label`` as an RGB uint8 (size, size, 3) grey image."""
    if label in PHOTOGRAPHS:
        return _photograph_crop(rng, label, size)
    pattern = DRAWERS[label](rng, size)
    dark, light = sorted(rng.uniform(20, 235, 2))
    if light - dark < 60:
        dark, light = max(0.0, light - 60), min(255.0, dark + 60)
    if rng.random() < 0.5:  # polarity: dark marks on light ground, or the reverse
        dark, light = light, dark
    grey = light + (dark - light) * pattern
    return finish(np.repeat(grey[..., None], 3, axis=-1), rng, blur=0.5, noise=3.0)


def _photograph_crop(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """A random crop (a quarter to a half of the photograph's side), quarter-turned, resized."""
    import skimage.data

    photograph = getattr(skimage.data, name)()
    side = int(photograph.shape[0] * rng.uniform(0.25, 0.5))
    y, x = (int(rng.integers(0, n - side + 1)) for n in photograph.shape[:2])
    crop = np.rot90(photograph[y:y + side, x:x + side], int(rng.integers(4)))
    grey = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
    return np.repeat(grey[..., None], 3, axis=-1)
