"""Heatmap overlays at the image's own resolution, with RGB-correct colours, and labelled boxes."""

from __future__ import annotations

import cv2
import numpy as np


def colorize(heatmap: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A [0, 1] map as an RGB uint8 image (OpenCV colour maps come out BGR)."""
    scaled = np.uint8(np.clip(heatmap, 0.0, 1.0) * 255)
    return cv2.cvtColor(cv2.applyColorMap(scaled, colormap), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blends ``heatmap`` (any size, [0, 1]) over ``image`` (RGB uint8) at the image's size."""
    height, width = image.shape[:2]
    resized = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(colorize(resized, colormap), alpha, image, 1.0 - alpha, 0.0)


def peak_and_entropy(heatmap: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, float]:
    """The map's peak in the original image's pixels (x, y), and its normalised entropy.

    Entropy treats the map as a distribution over pixels: 0 for a single hot pixel, 1 for a
    flat map (a diffuse, uninformative explanation).
    """
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    scale_y, scale_x = shape[0] / heatmap.shape[0], shape[1] / heatmap.shape[1]
    mass = heatmap.astype(np.float64).ravel()
    if mass.sum() <= 0:
        return int((x + 0.5) * scale_x), int((y + 0.5) * scale_y), 1.0
    p = mass[mass > 0] / mass.sum()
    entropy = float(-(p * np.log(p)).sum() / np.log(mass.size))
    return int((x + 0.5) * scale_x), int((y + 0.5) * scale_y), entropy


def draw_boxes(image: np.ndarray, boxes, captions, colours, scale: int = 1) -> np.ndarray:
    """Draws ``xyxy`` pixel boxes with a caption above each on a copy of ``image`` (RGB uint8),
    enlarged ``scale`` times first so that the captions stay legible on small images."""
    canvas = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else image.copy()
    for box, caption, colour in zip(boxes, captions, colours):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, max(1, scale // 2), cv2.LINE_AA)
        if caption:
            (width, height), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
            top = max(y0 - height - 4, 0)
            cv2.rectangle(canvas, (x0, top), (x0 + width + 4, top + height + 4), colour, -1)
            cv2.putText(canvas, caption, (x0 + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255),
                        1, cv2.LINE_AA)
    return canvas
