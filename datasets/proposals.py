"""SedNet's local input: the crop of one distinguishing grain or clast.

The box comes, in order of preference, from the manifest; else from :func:`propose_grain_box`,
an OpenCV proposal of the most grain-like region; else from a centre crop. Training and
``explain.run`` both call :func:`local_box`, so they always crop alike.
"""

from __future__ import annotations

import cv2
import numpy as np

MARGIN = 0.15  # share of the box side added on every side, so the crop shows the grain's edge
MIN_AREA, MAX_AREA = 0.005, 0.25  # a grain covers between 0.5 % and 25 % of the image
CENTER_CROP = 0.5  # side of the fallback centre crop, as a share of the shorter image side


def local_box(image: np.ndarray, box=None) -> tuple[int, int, int, int]:
    """The square (xmin, ymin, xmax, ymax) crop for SedNet's local input.

    Args:
        image: RGB uint8 (H, W, 3) at source resolution, or a seismic patch (H, W, 1), which has
            no grains: without a box it gets the centre crop.
        box: the manifest's (xmin, ymin, xmax, ymax), or None / NaNs when unknown.
    """
    if box is None or not np.all(np.isfinite(box)):
        box = propose_grain_box(image) if image.shape[-1] == 3 else None
    if box is None:
        return _center_crop(image.shape[:2])
    return _square_with_margin(box, image.shape[:2])


def propose_grain_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box of the most grain-like blob, or None when nothing qualifies.

    The rule: Otsu-threshold the smoothed grey image in both polarities (grains may be
    lighter or darker than their matrix), take the outer contours whose area is 0.5-25 % of
    the image, and score each by area times solidity (area over convex-hull area), so that a
    large, compact grain beats a thin crack, a foliation seam or speckle. The best one wins.
    """
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    image_area = grey.shape[0] * grey.shape[1]
    best, best_score = None, 0.0
    for flag in (cv2.THRESH_BINARY, cv2.THRESH_BINARY_INV):
        _, binary = cv2.threshold(grey, 0, 255, flag | cv2.THRESH_OTSU)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            area = cv2.contourArea(contour)
            if not MIN_AREA * image_area <= area <= MAX_AREA * image_area:
                continue
            score = area * area / max(cv2.contourArea(cv2.convexHull(contour)), 1.0)
            if score > best_score:
                x, y, w, h = cv2.boundingRect(contour)
                best, best_score = (x, y, x + w, y + h), score
    return best


def _square_with_margin(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    height, width = shape
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    side = max(xmax - xmin, ymax - ymin) * (1 + 2 * MARGIN)
    side = min(max(side, 8.0), height, width)
    cx = min(max((xmin + xmax) / 2, side / 2), width - side / 2)
    cy = min(max((ymin + ymax) / 2, side / 2), height - side / 2)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, y0, x0 + int(round(side)), y0 + int(round(side))


def _center_crop(shape: tuple[int, int]) -> tuple[int, int, int, int]:
    height, width = shape
    side = int(CENTER_CROP * min(height, width))
    x0, y0 = (width - side) // 2, (height - side) // 2
    return x0, y0, x0 + side, y0 + side
