"""Scores of a binary salt mask against the truth: Dice, IoU and perimetric similarity (PS).

PS, the salt thesis's boundary score, is measured here as the Dice coefficient restricted to
a band around the boundaries: with ``B`` the pixels within ``w`` pixels (chessboard
distance) of the true *or* the predicted boundary,
``PS = 2 |T ∩ P ∩ B| / (|T ∩ B| + |P ∩ B|)``; ``w = 3`` by default. A boundary pixel is a
salt pixel with a non-salt pixel among its eight neighbours (the image's own edge is not a
boundary). Interior pixels, which every reasonable model gets right, do not count, so PS
falls with misplaced, ragged or missing boundaries where Dice hardly moves. Two empty masks
score 1 on every measure; where neither mask has a boundary, PS is the whole masks' Dice.

Where some pixels have no truth (a sea-ice scene's land and no-data; ``valid`` False), every
score counts the valid pixels only, and the edge of the invalid area is no boundary, as the
image's own edge is not: a scene half land scores what its valid half scores alone.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt
from sklearn.metrics import mean_squared_error, r2_score

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
    """Dice restricted to the band of ``width`` pixels around both boundaries (module docstring).

    Where neither mask has a boundary (each is all salt or all free: whole-salt patches,
    whole-ice or open-water scenes) there is no band, and PS is the Dice of the whole masks: 1
    when they agree, 0 when one is all salt and the other empty (the band's empty Dice would
    score that 1 beside a Dice of 0).
    """
    band = boundary_band(truth, width) | boundary_band(predicted, width)
    if not band.any():
        return dice(truth, predicted)
    return dice(truth & band, predicted & band)


def mask_scores(truth: np.ndarray, predicted: np.ndarray, valid: np.ndarray | None = None,
                width: int = BAND_WIDTH) -> dict[str, float]:
    """Dice, IoU and PS of one boolean mask against the truth, over the ``valid`` pixels (all
    when None)."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    if valid is None or valid.all():
        return {"dice": dice(truth, predicted), "iou": iou(truth, predicted),
                "ps": perimetric_similarity(truth, predicted, width)}
    valid = valid.astype(bool)
    band = (boundary_band(nearest_valid(truth, valid), width) | boundary_band(nearest_valid(predicted, valid), width))
    band &= valid
    truth, predicted = truth & valid, predicted & valid
    ps = dice(truth & band, predicted & band) if band.any() else dice(truth, predicted)
    return {"dice": dice(truth, predicted), "iou": iou(truth, predicted), "ps": ps}


def nearest_valid(mask: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``mask`` with each invalid pixel taking its nearest valid pixel's value, so that the edge of
    the invalid area makes no boundary (as the image edge makes none, by replication)."""
    if not valid.any():
        return np.zeros_like(mask)
    indices = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return mask[tuple(indices)]


def concentration_scores(triples: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> dict[str, float | None]:
    """R² and RMSE (in percentage points) of predicted against true concentrations (0-1), over
    the valid pixels of many (truth, predicted, valid) triples pooled, as the AutoICE challenge
    scores SIC (Stokholm et al., 2024, "The AutoICE Challenge", The Cryosphere 18); R² is None
    where the true concentration does not vary."""
    truth = np.concatenate([t[v] if v is not None else t.ravel() for t, _, v in triples])
    predicted = np.concatenate([p[v] if v is not None else p.ravel() for _, p, v in triples])
    if not truth.size:
        return {"sic_r2": None, "sic_rmse": None}
    r2 = r2_score(truth, predicted, force_finite=False) if np.ptp(truth) > 0 else None
    return {"sic_r2": None if r2 is None else float(r2),
            "sic_rmse": float(100 * np.sqrt(mean_squared_error(truth, predicted)))}


IOU_THRESHOLDS = np.arange(0.5, 0.951, 0.05)


def competition_score(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The TGS Salt Identification Challenge's score of one image: the mean over IoU thresholds
    0.50, 0.55, ..., 0.95 of whether the prediction's IoU exceeds it; an empty prediction of an
    empty truth scores 1, any other empty side 0."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    if not truth.any() or not predicted.any():
        return float(truth.any() == predicted.any())
    return float(np.mean(iou(truth, predicted) > IOU_THRESHOLDS))


EMPTY_BELOW_CANDIDATES = (0, 10, 25, 50, 100, 150, 200, 300)  # pixels


def emptied_below(mask: np.ndarray, area: int) -> np.ndarray:
    """The mask, or an empty one where it has fewer than ``area`` pixels: a few scattered salt
    pixels are more often a false alarm on a salt-free patch than a body (the TGS competition's
    usual post-processing)."""
    return mask if mask.sum() >= area else np.zeros_like(mask)


def competition_by_empty_below(pairs: list[tuple[np.ndarray, np.ndarray]],
                               candidates=EMPTY_BELOW_CANDIDATES) -> dict[int, float]:
    """The mean competition score of ``pairs`` (truth, predicted masks) with the predicted masks
    emptied below each candidate area."""
    return {int(area): float(np.mean([competition_score(truth, emptied_below(predicted, area))
                                      for truth, predicted in pairs])) for area in candidates}


def best_empty_below(scores: dict[int, float]) -> int:
    """The smallest area of the best score of :func:`competition_by_empty_below`."""
    return min(area for area, score in scores.items() if score == max(scores.values()))


COVER_BANDS = (0.1, 0.3, 0.7, 1.0)  # upper edges of the bearing masks' cover bands: (0, 10 %], (10, 30 %], ...


def grouped_scores(pairs: list[tuple[np.ndarray, ...]]) -> dict:
    """Scores of many (truth, predicted[, valid]) masks with the bearing ones (salt or ice in the
    truth) and the empty ones apart, since a mean over both hides either: Dice, IoU and PS over
    all and over the bearing ones (``bearing_*``); the share of empty ones predicted empty
    (``empty_right``); the competition score over all; and the bearing ones' Dice by how much of
    the mask they cover (``bearing_dice_by_cover``: band -> Dice and count), since a small body
    at a patch's edge scores far below a large one. A group with no member scores NaN. With
    ``valid``, only its pixels count (:func:`mask_scores`)."""
    scores = [mask_scores(*pair) for pair in pairs]
    valid = [pair[2].astype(bool) if len(pair) > 2 and pair[2] is not None else np.ones(pair[0].shape, bool)
             for pair in pairs]
    pairs = [(truth.astype(bool) & v, predicted.astype(bool) & v) for (truth, predicted, *_), v in zip(pairs, valid)]
    bearing = [s for s, (truth, _) in zip(scores, pairs) if truth.any()]
    covers = np.array([truth.sum() / max(v.sum(), 1) for (truth, _), v in zip(pairs, valid) if truth.any()])
    free = [not predicted.any() for truth, predicted in pairs if not truth.any()]

    def mean(values) -> float:
        return float(np.mean(values)) if len(values) else float("nan")

    bands = {}
    for low, high in zip((0.0, *COVER_BANDS[:-1]), COVER_BANDS):
        inside = [s["dice"] for s, cover in zip(bearing, covers) if low < cover <= high]
        bands[f"{low:.0%}-{high:.0%}"] = {"dice": mean(inside) if inside else None, "count": len(inside)}
    return {**{name: mean([s[name] for s in scores]) for name in ("dice", "iou", "ps")},
            **{f"bearing_{name}": mean([s[name] for s in bearing]) for name in ("dice", "iou", "ps")},
            "empty_right": mean(free), "competition": mean([competition_score(t, p) for t, p in pairs]),
            "bearing_count": len(bearing), "empty_count": len(free), "bearing_dice_by_cover": bands}
