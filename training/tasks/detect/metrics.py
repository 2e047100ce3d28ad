"""Detection quality with the COCO protocol (pycocotools) and matching detections to truth.

mAP@0.5 is the PASCAL VOC measure the sigma-clast literature quotes; mAP@[.5:.95] averages
over IoU thresholds 0.5 to 0.95 and rewards tight boxes (Lin et al. 2014, "Microsoft COCO").
Both are pycocotools' numbers, not a re-implementation.
"""

from __future__ import annotations

import contextlib
import io

import keras
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datasets.detection import ImageBoxes


def coco_map(truth: list[ImageBoxes], detections: list[ImageBoxes], class_names: list[str]) -> dict:
    """mAP@0.5 and mAP@[.5:.95] over all images, and AP@0.5 per class.

    Returns:
        ``{"map50", "map50_95", "ap50_per_class": {name: value}, "summary": text}``; a class
        without ground truth has AP NaN and is left out of the means (COCO's rule), and with
        no detection at all every value is 0.
    """
    ground_truth = COCO()
    ground_truth.dataset = {"images": [{"id": i} for i in range(len(truth))],
                            "categories": [{"id": c, "name": n} for c, n in enumerate(class_names)],
                            "annotations": _annotations(truth)}
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
    results = _annotations(detections)
    if not results:
        return {"map50": 0.0, "map50_95": 0.0, "ap50_per_class": {n: 0.0 for n in class_names},
                "summary": "no detections"}
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.params.maxDets = [1, 10, 100]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"][0, :, :, 0, -1]  # IoU 0.5, all recalls, classes, all areas, 100 dets
    per_class = [float(np.mean(p[p > -1])) if (p > -1).any() else float("nan") for p in precision.T]
    return {"map50": _undefined_to_nan(evaluation.stats[1]), "map50_95": _undefined_to_nan(evaluation.stats[0]),
            "ap50_per_class": dict(zip(class_names, per_class)), "summary": summary.getvalue()}


def _annotations(images: list[ImageBoxes]) -> list[dict]:
    rows = []
    for image_id, image in enumerate(images):
        for k, ((x0, y0, x1, y1), label) in enumerate(zip(image.boxes.tolist(), image.classes.tolist())):
            row = {"id": len(rows) + 1, "image_id": image_id, "category_id": int(label),
                   "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
            if image.scores is not None:
                row["score"] = float(image.scores[k])
            rows.append(row)
    return rows


def _undefined_to_nan(value: float) -> float:
    return float("nan") if value < 0 else float(value)


def match_to_truth(detected: np.ndarray, scores: np.ndarray, truth: np.ndarray,
                   iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, highest score first, as in the VOC and COCO protocols.

    Returns:
        ``(detection index, truth index)`` pairs with IoU >= ``iou_threshold``.
    """
    if len(detected) == 0 or len(truth) == 0:
        return []
    iou = np.asarray(keras.ops.convert_to_numpy(keras.utils.bounding_boxes.compute_iou(
        np.asarray(detected, np.float32), np.asarray(truth, np.float32), bounding_box_format="xyxy")))
    pairs, taken = [], set()
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = [(iou[d, t], t) for t in range(len(truth)) if t not in taken and iou[d, t] >= iou_threshold]
        if candidates:
            t = max(candidates)[1]
            taken.add(t)
            pairs.append((int(d), int(t)))
    return pairs
