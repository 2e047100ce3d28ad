"""Synthetic SEM images of crystal powders, made in production lots with a known strength.

Palmer, Mundhenk et al. (LLNL, "Material strength from SEM images with explainable deep
learning") predict a material's critical peak stress (CPS) from SEM images of its crystals
and read their results as: surface pitting, which the binder grips, goes with high CPS;
cracks, along which a pressed part fails, go with low CPS. This generator makes that reading
the exact ground truth. Each lot has four hidden microstructure parameters in [0, 1]:

- ``pitting``: density of small dark pits on the crystal faces;
- ``cracks``: density of thin dark fractures across the crystals;
- ``size``: crystal size;
- ``faceting``: how angular the crystals are;

and its strength follows from the first two only::

    CPS = 10 + 8 * pitting - 6 * cracks        (MPa-like units; 4 to 18)

Every image of a lot shares its parameters (the counts of pits and cracks are drawn around
the lot's densities), so images of one lot must never straddle the training and test sets.
The pit and crack masks are written as the ground truth of where the evidence is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datasets.synthetic.drawing import fill, finish, grain_polygon, polygon_mask, smooth_noise

BACKGROUND, CRYSTAL_DARK, CRYSTAL_LIGHT = 34.0, 120.0, 196.0
PIT, CRACK = 52.0, 40.0


@dataclass(frozen=True)
class Lot:
    """The hidden microstructure of one production lot, each in [0, 1]."""

    pitting: float
    cracks: float
    size: float
    faceting: float

    @property
    def cps(self) -> float:
        """Critical peak stress: rises with pitting, falls with cracks; size and faceting do not enter."""
        return 10.0 + 8.0 * self.pitting - 6.0 * self.cracks


def draw_lot(rng: np.random.Generator) -> Lot:
    """A lot's parameters, each uniform on [0, 1] and independent of the others."""
    return Lot(*(float(v) for v in rng.uniform(0.0, 1.0, 4)))


@dataclass
class SemImage:
    """One synthetic SEM image and its ground truth."""

    image: np.ndarray  # RGB uint8 (S, S, 3), grey
    pit_mask: np.ndarray  # bool (S, S)
    crack_mask: np.ndarray  # bool (S, S)


def generate(rng: np.random.Generator, lot: Lot, size: int = 128) -> SemImage:
    """Draws crystals of the lot's size and faceting, then its pits and cracks on them."""
    canvas = np.full((size, size), BACKGROUND, np.float32)
    crystals = np.zeros((size, size), bool)
    radius = size * (0.10 + 0.12 * lot.size)
    for center in _crystal_centres(rng, size, radius):
        polygon = grain_polygon(rng, center, radius * rng.uniform(0.8, 1.2), roundness=1.0 - 0.8 * lot.faceting,
                                elongation=rng.uniform(1.0, 1.6), angle=rng.uniform(0, 180),
                                vertices=int(round(24 - 18 * lot.faceting)))
        fill(canvas, polygon, float(rng.uniform(CRYSTAL_DARK, CRYSTAL_LIGHT)))
        crystals |= polygon_mask((size, size), polygon)
    canvas += 24 * (smooth_noise(rng, size, 2.0, 2.0) - 0.5) * crystals  # surface relief
    pits = _pits(rng, canvas, crystals, count=_count(rng, size * size / 400 * lot.pitting))
    cracks = _cracks(rng, canvas, crystals, count=_count(rng, size / 8 * lot.cracks))
    image = finish(np.repeat(canvas[..., None], 3, axis=-1), rng, blur=0.5, noise=3.0)
    return SemImage(image, pits, cracks)


def _count(rng: np.random.Generator, expected: float) -> int:
    """A count within 15 % of ``expected``: images of a lot show its density, give or take,
    so one image carries most of the evidence of its lot's strength."""
    return int(round(expected * rng.uniform(0.85, 1.15)))


def _crystal_centres(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """Roughly one crystal per (1.6 radius)^2, jittered, so crystals touch and overlap a little."""
    step = 1.6 * radius
    grid = np.arange(step / 2, size, step)
    centres = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    return centres + rng.uniform(-0.3, 0.3, centres.shape) * step


def _pits(rng: np.random.Generator, canvas: np.ndarray, crystals: np.ndarray, count: int) -> np.ndarray:
    """Small dark round pits on crystal faces (radius about a 48th of the side); returns their mask."""
    size = canvas.shape[0]
    mask = np.zeros(canvas.shape, np.uint8)
    ys, xs = np.nonzero(crystals)
    for i in rng.choice(len(xs), size=min(count, len(xs)), replace=False) if len(xs) else ():
        cv2.circle(mask, (int(xs[i]), int(ys[i])), max(1, int(round(size / 48 * rng.uniform(0.75, 1.5)))), 1, -1)
    pits = mask.astype(bool) & crystals
    canvas[pits] = PIT
    return pits


def _cracks(rng: np.random.Generator, canvas: np.ndarray, crystals: np.ndarray, count: int) -> np.ndarray:
    """Thin dark fractures, slightly kinked, across crystals; returns their mask."""
    size = canvas.shape[0]
    mask = np.zeros(canvas.shape, np.uint8)
    ys, xs = np.nonzero(crystals)
    for _ in range(count if len(xs) else 0):
        i = rng.integers(len(xs))
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.15, 0.35) * size
        points = [np.array([xs[i], ys[i]], np.float64)]
        for _ in range(3):
            angle += rng.normal(0, 0.3)
            points.append(points[-1] + length / 3 * np.array([np.cos(angle), np.sin(angle)]))
        cv2.polylines(mask, [np.round(points).astype(np.int32)], False, 1, max(1, round(size / 64)))
    cracks = mask.astype(bool) & crystals
    canvas[cracks] = CRACK
    return cracks
