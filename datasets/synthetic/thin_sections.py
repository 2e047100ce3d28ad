"""Synthetic thin-section photomicrographs of six sedimentary rock types, with a planted shortcut.

The classes are named as in the SedNet paper and told apart, as a petrographer would, by
their framework grains: quartz arenite (almost only clear quartz), feldspathic arenite
(cloudy, twinned feldspar among the quartz), lithic arenite (dark, speckled rock fragments
among the quartz), siltstone (tiny grains in a dark matrix), oolitic packstone (concentric
ooids in micrite) and dolomite (a mosaic of rhombic crystals). The mask of those diagnostic
grains is the explanation's ground truth.

With ``shortcut="scale_bar"`` a microscope-software scale bar is burnt into each image and
its style (corner, colour, length) follows the class with probability ``correlation``: the
spurious cue of the SedNet paper's figure 1. Its own mask lets an audit measure whether a
model looks at the rock or at the bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from datasets.synthetic.drawing import blend, fill, finish, grain_polygon, mask_box, smooth_noise

CLASSES = ("dolomite", "feldspathic_arenite", "lithic_arenite", "oolitic_packstone",
           "quartz_arenite", "siltstone")
SHORTCUTS = ("none", "scale_bar")

QUARTZ = ((206, 206, 200), (242, 240, 234))
FELDSPAR = ((196, 170, 156), (226, 204, 188))
LITHIC = ((62, 58, 56), (138, 128, 116))
CEMENT = ((150, 132, 106), (190, 174, 146))
SILT_MATRIX = ((66, 56, 48), (104, 92, 78))
MICRITE = ((96, 76, 56), (132, 108, 82))
SPAR = ((200, 196, 188), (232, 230, 224))
DOLOMITE_CORE = ((150, 138, 124), (186, 176, 162))


@dataclass
class ThinSectionImage:
    """One synthetic thin section and its ground truth."""

    image: np.ndarray  # RGB uint8 (S, S, 3)
    label: str
    box: tuple[int, int, int, int]  # the largest diagnostic grain: SedNet's local crop
    grain_mask: np.ndarray  # bool (S, S): the diagnostic grains
    scale_bar_mask: np.ndarray  # bool (S, S): the planted shortcut (all False without one)


class _Grains:
    """A canvas that remembers which grain owns each pixel, so masks survive overlaps."""

    def __init__(self, background: np.ndarray):
        self.image = background
        self.owner = np.zeros(background.shape[:2], np.int32)
        self.diagnostic: list[int] = []

    def add(self, polygon: np.ndarray, texture: np.ndarray, diagnostic: bool) -> None:
        grain = np.zeros(self.owner.shape, np.uint8)
        cv2.fillPoly(grain, [polygon], 1)
        inside = grain.astype(bool)
        self.image[inside] = texture[inside]
        self.owner[inside] = len(self.diagnostic) + 1
        self.diagnostic.append(diagnostic)

    def mask_and_box(self) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        ids = np.flatnonzero(self.diagnostic) + 1
        mask = np.isin(self.owner, ids)
        areas = np.bincount(self.owner.ravel(), minlength=len(self.diagnostic) + 1)[ids]
        return mask, mask_box(self.owner == ids[np.argmax(areas)])


def generate(rng: np.random.Generator, size: int = 128, label: str | None = None,
             shortcut: str = "none", correlation: float = 0.9, rock: str | None = None) -> ThinSectionImage:
    """Draws one thin section of class ``label`` (random when None).

    ``rock`` draws that rock type whatever the label: with a scale bar of correlation 1, a
    set whose classes only the shortcut separates, to calibrate an audit.
    """
    label = label or str(rng.choice(CLASSES))
    grains = _DRAWERS[rock or label](rng, size)
    grain_mask, box = grains.mask_and_box()
    image = finish(grains.image, rng)
    bar_mask = np.zeros((size, size), bool)
    if shortcut == "scale_bar":
        style = CLASSES.index(label) if rng.random() < correlation else int(rng.integers(len(CLASSES)))
        bar_mask = _draw_scale_bar(image, style)
        grain_mask &= ~bar_mask
    return ThinSectionImage(image, label, box, grain_mask, bar_mask)


def _texture(rng, size, colors, grain_scale=0.8):
    return blend(smooth_noise(rng, size, grain_scale, grain_scale), *colors)


def _arenite(rng, size, other: tuple | None, other_share: float) -> _Grains:
    """Packed sand grains in cement; ``other`` is the diagnostic grain colour pair besides quartz."""
    grains = _Grains(_texture(rng, size, CEMENT, 2.0))
    quartz = _texture(rng, size, QUARTZ, 6.0)
    other_texture = _texture(rng, size, other, 0.7) if other else None
    if other is FELDSPAR:
        stripes = 0.5 + 0.5 * np.sin(np.arange(size) * 2.2)[None, :] * np.ones((size, 1))
        other_texture = other_texture * (0.85 + 0.15 * stripes[..., None])
    for _ in range(int(size * size / (0.05 * size) ** 2 / 2.2)):
        is_other = other is not None and rng.random() < other_share
        polygon = grain_polygon(rng, rng.uniform(0, size, 2), rng.uniform(0.04, 0.07) * size,
                                roundness=rng.uniform(0.6, 0.9), elongation=rng.uniform(1.0, 1.6),
                                angle=rng.uniform(0, np.pi))
        grains.add(polygon, other_texture if is_other else quartz, diagnostic=is_other or other is None)
    return grains


def _siltstone(rng, size) -> _Grains:
    grains = _Grains(_texture(rng, size, SILT_MATRIX, 1.0))
    silt = _texture(rng, size, QUARTZ, 1.0)
    for _ in range(int(size * size / 90)):
        polygon = grain_polygon(rng, rng.uniform(0, size, 2), rng.uniform(0.008, 0.016) * size,
                                roundness=0.6, vertices=7)
        grains.add(polygon, silt, diagnostic=True)
    return grains


def _oolitic_packstone(rng, size) -> _Grains:
    grains = _Grains(_texture(rng, size, MICRITE, 1.0))
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    for _ in range(int(size * size / (0.065 * size) ** 2 / 3.0)):
        center, radius = rng.uniform(0, size, 2), rng.uniform(0.045, 0.075) * size
        distance = np.hypot(xx - center[0], yy - center[1]) / radius
        rings = 0.5 + 0.5 * np.cos(distance * 5 * np.pi)  # concentric cortex laminae
        texture = blend(np.where(distance < 0.3, 0.3, rings), (140, 118, 88), (224, 210, 180))
        polygon = grain_polygon(rng, center, radius, roundness=0.97, elongation=rng.uniform(1.0, 1.2),
                                angle=rng.uniform(0, np.pi), vertices=28)
        grains.add(polygon, texture, diagnostic=True)
    return grains


def _dolomite(rng, size) -> _Grains:
    grains = _Grains(_texture(rng, size, SPAR, 3.0))
    clear_rim = _texture(rng, size, SPAR, 3.0)
    cloudy_core = _texture(rng, size, DOLOMITE_CORE, 0.7)
    for _ in range(int(size * size / (0.06 * size) ** 2 / 1.6)):
        center, radius = rng.uniform(0, size, 2), rng.uniform(0.04, 0.07) * size
        angle = rng.uniform(0, np.pi)
        rhomb = _rhomb(center, radius, angle)
        grains.add(rhomb, clear_rim, diagnostic=True)
        fill(grains.image, _rhomb(center, 0.6 * radius, angle), tuple(float(c) for c in cloudy_core[0, 0]))
    return grains


def _rhomb(center, radius: float, angle: float) -> np.ndarray:
    """A dolomite rhomb: a rhombus with its long diagonal 1.7 times the short one."""
    corners = np.array([[1.0, 0.0], [0.0, 0.59], [-1.0, 0.0], [0.0, -0.59]]) * radius
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = corners @ np.array([[cos, sin], [-sin, cos]])
    return np.round(np.asarray(center) + rotated).astype(np.int32)


_DRAWERS = {
    "quartz_arenite": partial(_arenite, other=None, other_share=0.0),
    "feldspathic_arenite": partial(_arenite, other=FELDSPAR, other_share=0.4),
    "lithic_arenite": partial(_arenite, other=LITHIC, other_share=0.4),
    "siltstone": _siltstone,
    "oolitic_packstone": _oolitic_packstone,
    "dolomite": _dolomite,
}


def _draw_scale_bar(image: np.ndarray, style: int) -> np.ndarray:
    """Burns in a scale bar whose corner, colour and length encode ``style``; returns its mask."""
    size = image.shape[0]
    corner, dark, length = style % 4, style >= 4, (0.18 + 0.05 * (style % 3)) * size
    thickness, margin = max(2, round(0.025 * size)), round(0.06 * size)
    x0 = margin if corner in (1, 3) else size - margin - round(length)
    y0 = size - margin - thickness if corner in (0, 1) else margin
    x1, y1 = x0 + round(length), y0 + thickness
    pad = max(2, thickness)
    backdrop = (235, 235, 235) if dark else (20, 20, 20)
    cv2.rectangle(image, (x0 - pad, y0 - 2 * pad), (x1 + pad, y1 + pad), backdrop, -1)
    bar = (10, 10, 10) if dark else (250, 250, 250)
    cv2.rectangle(image, (x0, y0), (x1, y1), bar, -1)
    for x in (x0, x1):
        cv2.line(image, (x, y0 - pad), (x, y1), bar, 1)
    mask = np.zeros((size, size), np.uint8)
    cv2.rectangle(mask, (x0 - pad, y0 - 2 * pad), (x1 + pad, y1 + pad), 1, -1)
    return mask.astype(bool)
