"""Scores of a binary salt mask against the truth: Dice, IoU and perimetric similarity (PS).

PS, the salt thesis's boundary score, is measured here as the Dice coefficient restricted to
a band around the boundaries: with ``B`` the pixels within ``w`` pixels (chessboard
distance) of the true *or* the predicted boundary,
``PS = 2 |T ∩ P ∩ B| / (|T ∩ B| + |P ∩ B|)``; ``w = 3`` by default. A boundary pixel is a
salt pixel with a non-salt pixel among its eight neighbours (the image's own edge is not a
boundary). Interior pixels, which every reasonable model gets right, do not count, so PS
falls with misplaced, ragged or missing boundaries where Dice hardly moves. Two empty masks
score 1 on every measure.
"""

from __future__ import annotations

import cv2
import numpy as np

BAND_WIDTH = 3


def dice(truth: np.ndarray, predicted: np.ndarray) -> float:
    """2 |T ∩ P| / (|T| + |P|); 1 when both are empty."""
    total = truth.sum() + predicted.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(truth, predicted).sum() / total)


def iou(truth: np.ndarray, predicted: np.ndarray) -> float:
    """|T ∩ P| / |T ∪ P|; 1 when both are empty."""
    union = np.logical_or(truth, predicted).sum()
    return 1.0 if union == 0 else float(np.logical_and(truth, predicted).sum() / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Salt pixels with a non-salt 8-neighbour."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return mask & ~eroded.astype(bool)


def boundary_band(mask: np.ndarray, width: int = BAND_WIDTH) -> np.ndarray:
    """Pixels within ``width`` pixels of the mask's boundary."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.dilate(boundary(mask).astype(np.uint8), kernel).astype(bool)


def perimetric_similarity(truth: np.ndarray, predicted: np.ndarray, width: int = BAND_WIDTH) -> float:
    """Dice restricted to the band of ``width`` pixels around both boundaries (module docstring)."""
    band = boundary_band(truth, width) | boundary_band(predicted, width)
    return dice(truth & band, predicted & band)


def mask_scores(truth: np.ndarray, predicted: np.ndarray, width: int = BAND_WIDTH) -> dict[str, float]:
    """Dice, IoU and PS of one boolean mask against the truth."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    return {"dice": dice(truth, predicted), "iou": iou(truth, predicted),
            "ps": perimetric_similarity(truth, predicted, width)}
