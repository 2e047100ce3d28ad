"""Drawing primitives shared by the synthetic generators: textures, grains, rotations."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, size: int, sigma_x: float, sigma_y: float) -> np.ndarray:
    """Gaussian noise blurred anisotropically and scaled to [0, 1]; (size, size) float32."""
    noise = rng.standard_normal((size, size)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y, borderType=cv2.BORDER_REFLECT)
    low, high = noise.min(), noise.max()
    return (noise - low) / max(high - low, 1e-6)


def blend(weights: np.ndarray, color_a, color_b) -> np.ndarray:
    """Per-pixel mix of two RGB colours by ``weights`` in [0, 1]; float32 (H, W, 3)."""
    a, b = np.asarray(color_a, np.float32), np.asarray(color_b, np.float32)
    return a + weights[..., None] * (b - a)


def grain_polygon(rng: np.random.Generator, center, radius: float, roundness: float,
                  elongation: float = 1.0, angle: float = 0.0, vertices: int = 14) -> np.ndarray:
    """An irregular grain outline: int32 (N, 2) polygon in (x, y) pixels.

    Args:
        roundness: 1 gives a smooth ellipse, lower values give angular, irregular grains.
        elongation: ratio of the long to the short axis.
        angle: orientation of the long axis, in radians.
    """
    theta = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    r = radius * (roundness + (1 - roundness) * rng.uniform(0.55, 1.0, vertices))
    x, y = r * np.cos(theta) * elongation ** 0.5, r * np.sin(theta) / elongation ** 0.5
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.stack([center[0] + cos * x - sin * y, center[1] + sin * x + cos * y], axis=1)
    return np.round(points).astype(np.int32)


def fill(canvas: np.ndarray, polygon: np.ndarray, value) -> None:
    """Fills a polygon in place, anti-aliased on colour images."""
    line_type = cv2.LINE_AA if canvas.ndim == 3 else cv2.LINE_8
    cv2.fillPoly(canvas, [polygon], value, lineType=line_type)


def polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [polygon], 1)
    return mask.astype(bool)


def rotate(image: np.ndarray, angle_deg: float, nearest: bool = False) -> np.ndarray:
    """Rotates about the centre, reflecting at the border so no black corners appear."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    border = cv2.BORDER_CONSTANT if nearest else cv2.BORDER_REFLECT
    return cv2.warpAffine(image, matrix, (w, h), flags=flags, borderMode=border)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The (xmin, ymin, xmax, ymax) pixel box of a boolean mask; xmax/ymax exclusive."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def finish(image: np.ndarray, rng: np.random.Generator, blur: float = 0.6, noise: float = 4.0) -> np.ndarray:
    """Adds the softness and sensor noise of a microscope camera; returns RGB uint8."""
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), blur)
    image += rng.normal(0.0, noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)
