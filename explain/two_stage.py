"""Detect, crop, classify, explain: the two-stage sigma-clast pipeline of ``explain.run``.

A detector run (``training.run --task detect``) finds the clasts in each photomicrograph; each
detection is cropped with a margin (the square crop SedNet's local branch is trained on,
:func:`datasets.proposals.local_box`) and a classifier run decides its shear sense. SedNet
gets the whole image and the crop, any other classifier the crop. The chosen explainer (Grad-CAM
by default) runs on each crop, and its map is put back where the crop came from, so the
annotated photomicrograph shows, inside each box, what decided that clast's sense.

Outputs in OUT: ``annotated/<image>.png`` (boxes, label, probability, detector score,
heatmap inside each box), ``crops/<method>/<image>_<k>.png`` (each crop's overlay),
``detections.csv`` (one row per detection), ``no_detections.csv`` (images where nothing was
found: listed, not dropped), ``bad_files.csv`` and ``gallery.html``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd

from datasets.images import read_each, resize, write_image
from datasets.pipeline import for_model, model_inputs, stack_inputs
from datasets.proposals import local_box
from datasets.tables import read_listed, write_bad_files, write_csv
from explain import DEFAULT_LAYER, METHODS
from explain.gallery import write_gallery
from explain.loading import LoadedDetector
from explain.metrics import softmax
from explain.overlay import colorize, draw_boxes, overlay

DEFAULT_MIN_SCORE = 0.5
SENSE_COLOURS = [(40, 110, 240), (230, 60, 40), (240, 180, 0), (180, 60, 220)]


def detections_in_source_pixels(detector: LoadedDetector, images: list[np.ndarray], min_score: float):
    """Each image's detections with score >= ``min_score``, boxes in its own pixels, clipped
    to the image (a box less than a pixel wide after clipping is dropped)."""
    from models.detector import detect

    side = detector.image_size
    found = detect(detector.model, np.stack([resize(image, side) for image in images]))
    result = []
    for image, detections in zip(images, found):
        height, width = image.shape[:2]
        limits = np.array([width, height, width, height], np.float32)
        boxes = np.clip(detections.boxes * limits / side, 0, limits)
        keep = (detections.scores >= min_score) & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        result.append((boxes[keep], detections.classes[keep], detections.scores[keep]))
    return result


def classify_and_explain(loaded, image: np.ndarray, boxes: np.ndarray, method: str, layer: str):
    """Classifies every detection of one image; returns probabilities (K, C), the crop boxes
    and each crop's map (K, h, w) in [0, 1]."""
    crops = [local_box(image, box) for box in boxes]
    arrays = [model_inputs(image, box, loaded.spec) if loaded.spec.local_size
              else (resize(image[y0:y1, x0:x1], loaded.spec.image_size),)
              for box, (x0, y0, x1, y1) in zip(boxes, crops)]
    inputs = for_model(stack_inputs(arrays, loaded.spec))
    probabilities = softmax(loaded.model.predict(inputs, verbose=0))
    maps = METHODS[method](loaded.model, inputs, probabilities.argmax(1), layer=layer)
    crop_maps = maps[loaded.spec.crop_input] if isinstance(maps, dict) else maps
    return probabilities, crops, np.asarray(crop_maps)


def annotate(image: np.ndarray, boxes, crops, crop_maps, captions, colours, alpha: float = 0.45) -> np.ndarray:
    """The photomicrograph with each crop's map blended in inside its detection box, and the boxes."""
    canvas = image.copy()
    for box, (x0, y0, x1, y1), heatmap in zip(boxes, crops, crop_maps):
        full = np.zeros(image.shape[:2], np.float32)
        full[y0:y1, x0:x1] = cv2.resize(heatmap.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        bx0, by0, bx1, by1 = (int(round(v)) for v in box)
        inside = (slice(max(by0, 0), by1), slice(max(bx0, 0), bx1))
        canvas[inside] = cv2.addWeighted(colorize(full[inside]), alpha, canvas[inside], 1 - alpha, 0)
    return draw_boxes(canvas, boxes, captions, colours, scale=max(1, 384 // max(image.shape[:2])))


def run_two_stage(detector: LoadedDetector, classifier, table: pd.DataFrame, out: Path, method: str = "gradcam",
                  layer: str = DEFAULT_LAYER, min_score: float = DEFAULT_MIN_SCORE, batch_size: int = 8):
    """Runs the pipeline over ``table`` (``path``, optional ``label``); writes the outputs.

    Returns:
        ``(detections, no_detections, bad)``: the detections table, the files without any
        detection, and the unreadable files with their reasons.
    """
    rows, empty, bad = [], [], []
    progress = keras.utils.Progbar(len(table), unit_name="image")
    for start in range(0, len(table), batch_size):
        chunk = table.iloc[start:start + batch_size]
        decoded = list(read_each(chunk.itertuples(index=False), bad, read=read_listed))
        kept, images = [row for row, _ in decoded], [image for _, image in decoded]
        found = detections_in_source_pixels(detector, images, min_score) if images else []
        for row, image, (boxes, classes, scores) in zip(kept, images, found):
            if len(boxes) == 0:
                empty.append({"path": row.path})
                continue
            rows += _explain_one(detector, classifier, row, image, boxes, classes, scores, out, method, layer)
        progress.add(len(chunk))
    columns = ["file", "detection", "xmin", "ymin", "xmax", "ymax", "detector_class", "detector_score",
               "shear_sense", "probability", "label", "annotated", f"{method}_overlay"]
    return (pd.DataFrame(rows, columns=columns), pd.DataFrame(empty, columns=["path"]),
            pd.DataFrame(bad, columns=["path", "reason"]))


def _explain_one(detector, classifier, row, image, boxes, classes, scores, out: Path, method: str, layer: str):
    probabilities, crops, crop_maps = classify_and_explain(classifier, image, boxes, method, layer)
    predicted = probabilities.argmax(1)
    names = [classifier.class_names[p] for p in predicted]
    captions = [f"{n} {p[k]:.2f} (det {s:.2f})" for n, p, k, s in zip(names, probabilities, predicted, scores)]
    colours = [SENSE_COLOURS[k % len(SENSE_COLOURS)] for k in predicted]
    stem = Path(row.path).stem
    annotated = f"annotated/{stem}.png"
    write_image(out / annotated, annotate(image, boxes, crops, crop_maps, captions, colours))
    label = getattr(row, "label", None)
    records = []
    for k, ((x0, y0, x1, y1), box) in enumerate(zip(crops, boxes)):
        crop_overlay = f"crops/{method}/{stem}_{k:02d}.png"
        write_image(out / crop_overlay, overlay(image[y0:y1, x0:x1], crop_maps[k]))
        records.append({"file": row.path, "detection": k, **dict(zip(("xmin", "ymin", "xmax", "ymax"),
                                                                      np.round(box.astype(float), 1).tolist())),
                        "detector_class": detector.class_names[int(classes[k])],
                        "detector_score": round(float(scores[k]), 4), "shear_sense": names[k],
                        "probability": round(float(probabilities[k, predicted[k]]), 4),
                        "label": None if pd.isna(label) else label, "annotated": annotated,
                        f"{method}_overlay": crop_overlay})
    return records


def write_two_stage_outputs(out: Path, detections: pd.DataFrame, empty: pd.DataFrame, bad: pd.DataFrame,
                            method: str) -> None:
    """detections.csv, no_detections.csv, bad_files.csv and the gallery (predicted = shear sense)."""
    write_csv(detections, out / "detections.csv")
    write_csv(empty, out / "no_detections.csv")
    write_bad_files(bad, out / "bad_files.csv")
    if not detections.empty:
        write_gallery(detections.rename(columns={"shear_sense": "predicted"}), out, [method])
