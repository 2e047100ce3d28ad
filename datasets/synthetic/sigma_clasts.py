"""Synthetic photomicrographs of sigma-type porphyroclasts in a mylonite.

A sigma clast is a rigid grain (feldspar, say) wrapped in a mantle of fine recrystallised
material that shear drags out into two wedge-shaped tails. The tails leave the clast on
opposite sides of the foliation plane and are stair-stepped: in dextral (clockwise, ``cw``)
shear the right tail sits above the clast's centre line and the left tail below it; in
sinistral (counter-clockwise, ``ccw``) shear it is the mirror image (Passchier & Simpson,
1986, "Porphyroclast systems as kinematic indicators", J. Struct. Geol. 8(8)). The tails are
therefore the evidence that decides the label, and their mask is the explanation's ground
truth. A mirror flip swaps the label; a rotation keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.synthetic.drawing import (blend, fill, finish, grain_polygon, mask_box, polygon_mask,
                                        rotate, smooth_noise)

CLASSES = ("ccw", "cw")
MIRROR_PAIRS = (("cw", "ccw"),)

MATRIX_DARK, MATRIX_LIGHT = (88, 80, 72), (156, 146, 128)
MICA = (58, 48, 40)
CLAST, CLAST_RIM = (222, 214, 196), (176, 168, 150)
TAIL_DARK, TAIL_LIGHT = (168, 166, 156), (204, 202, 192)


@dataclass
class SigmaClastImage:
    """One synthetic photomicrograph and its ground truth."""

    image: np.ndarray  # RGB uint8 (S, S, 3)
    label: str  # "cw" or "ccw"
    boxes: list[tuple[int, int, int, int]]  # one (xmin, ymin, xmax, ymax) per clast, tails included
    tail_mask: np.ndarray  # bool (S, S): the tails, the evidence of shear sense


def generate(rng: np.random.Generator, size: int = 128, max_clasts: int = 1,
             label: str | None = None) -> SigmaClastImage:
    """Draws one photomicrograph with 1..``max_clasts`` sigma clasts of one shear sense."""
    label = label or str(rng.choice(CLASSES))
    image = _mylonite_matrix(rng, size)
    tails = np.zeros((size, size), bool)
    objects = []
    for center, radius in _place_clasts(rng, size, int(rng.integers(1, max_clasts + 1))):
        clast, tail = _draw_sigma_clast(rng, image, center, radius, dextral=label == "cw")
        tails |= tail & ~clast
        objects.append(clast | tail)
    tilt = rng.uniform(-15, 15)
    image = rotate(finish(image, rng), tilt)
    tails = rotate(tails.astype(np.uint8), tilt, nearest=True).astype(bool)
    boxes = [mask_box(rotate(o.astype(np.uint8), tilt, nearest=True) > 0) for o in objects]
    return SigmaClastImage(image, label, boxes, tails)


def _mylonite_matrix(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fine grains stretched along a horizontal foliation, with wavy mica seams and small grains."""
    grains = 0.6 * smooth_noise(rng, size, 0.8, 0.8) + 0.4 * smooth_noise(rng, size, size / 12, size / 60)
    image = blend(grains, MATRIX_DARK, MATRIX_LIGHT)
    seams = smooth_noise(rng, size, size / 8, 0.6)
    image = np.where((seams > 0.72)[..., None], blend(seams, MATRIX_DARK, MICA), image)
    for _ in range(int(rng.integers(size // 16, size // 8))):
        center = rng.uniform(0, size, 2)
        polygon = grain_polygon(rng, center, rng.uniform(0.01, 0.03) * size, roundness=0.7,
                                elongation=rng.uniform(1.0, 2.0), angle=rng.uniform(-0.3, 0.3))
        fill(image, polygon, tuple(float(c) for c in rng.uniform(0.5, 0.95) * np.array([230, 220, 200])))
    return image


def _place_clasts(rng: np.random.Generator, size: int, count: int, tries: int = 200):
    """Non-overlapping (center, radius) pairs; a clast with its tails spans about 6 radii."""
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(tries):
        if len(placed) == count:
            break
        radius = rng.uniform(0.07, 0.11) * size / max(1.0, 0.75 * np.sqrt(count))
        margin_x, margin_y = 3.2 * radius, 1.6 * radius
        center = rng.uniform([margin_x, margin_y], [size - margin_x, size - margin_y])
        if all(abs(center[0] - c[0]) > 3.2 * (radius + r) or abs(center[1] - c[1]) > 1.8 * (radius + r)
               for c, r in placed):
            placed.append((center, radius))
    return placed


def _draw_sigma_clast(rng: np.random.Generator, image: np.ndarray, center: np.ndarray, radius: float,
                      dextral: bool):
    """Draws the tails, then the clast over them; returns their boolean masks."""
    a = radius * rng.uniform(1.0, 1.3)
    b = radius * rng.uniform(0.75, 1.0)
    right_tail = _tail_outline(a, b, length=a * rng.uniform(1.3, 2.1), step=rng.uniform(0.5, 0.75))
    mirror = np.array([1.0, 1.0]) if dextral else np.array([-1.0, 1.0])
    size = image.shape[0]
    tail_mask = np.zeros((size, size), bool)
    texture = blend(smooth_noise(rng, size, 0.7, 0.7), TAIL_DARK, TAIL_LIGHT)
    for outline in (right_tail, -right_tail):  # the left tail is the right one turned by 180 degrees
        polygon = np.round(center + outline * mirror).astype(np.int32)
        tail_mask |= polygon_mask((size, size), polygon)
    image[tail_mask] = texture[tail_mask]
    clast = grain_polygon(rng, center, radius=np.sqrt(a * b), roundness=0.9,
                          elongation=a / b, angle=rng.uniform(-0.2, 0.2), vertices=24)
    fill(image, clast, CLAST_RIM)
    inner = np.round(center + 0.85 * (clast - center)).astype(np.int32)
    fill(image, inner, CLAST)
    return polygon_mask((size, size), clast), tail_mask


def _tail_outline(a: float, b: float, length: float, step: float) -> np.ndarray:
    """The dextral right-hand tail as an (N, 2) float outline around a clast centred at 0.

    Its upper edge leaves the top of the clast, its lower edge the clast's right side just
    above the centre line, and both meet at a tip ``step * b`` above that line.
    """
    tip = np.array([a + length, -step * b])
    upper = _bezier(np.array([-0.1 * a, -b]), np.array([a + 0.3 * length, -1.05 * b]), tip)
    lower = _bezier(tip, np.array([a + 0.25 * length, -0.3 * b]), np.array([0.8 * a, -0.05 * b]))
    return np.concatenate([upper, lower[1:]])


def _bezier(p0: np.ndarray, control: np.ndarray, p1: np.ndarray, points: int = 16) -> np.ndarray:
    t = np.linspace(0.0, 1.0, points)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * control + t ** 2 * p1
