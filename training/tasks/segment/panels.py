"""The panels of a segmentation picture, shared by salt sections and sea-ice scenes: a map in
gray, an error panel (missed: blue, false: red, hit: gray), and a strip of panels side by side."""

from __future__ import annotations

import numpy as np


def gray(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) as an RGB uint8 picture."""
    return np.repeat((np.clip(values, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def error_panel(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Missed pixels blue, false pixels red, hits gray, the rest black."""
    error = np.zeros((*truth.shape, 3), np.uint8)
    error[truth & ~predicted] = (40, 90, 255)
    error[predicted & ~truth] = (255, 60, 40)
    error[truth & predicted] = (90, 90, 90)
    return error


def strip(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of one height side by side, 4 white pixels apart."""
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
