"""Quality of the two-stage sigma-clast pipeline on held-out synthetic photomicrographs.

Trains (or reuses) a detector (``training.run --task detect``) and a SedNet shear-sense
classifier (``training.run``, the main job), draws held-out images with another seed, then:

- scores the detector alone with pycocotools (mAP@0.5, mAP@[.5:.95]; every detection down to
  the decoder's 0.05 threshold, so the whole precision-recall curve counts);
- runs ``python -m explain.run --detector --classifier`` on the held-out folder and matches
  its detections (score >= 0.5, the pipeline's default) to the true clasts at IoU >= 0.5;
  shear-sense accuracy is over the matched clasts.

Goals (issue 6): mAP@0.5 >= 0.8 and shear-sense accuracy >= 0.9. Not a timed test: it trains
two models with their defaults (about 12 min on a 2-core CPU). The last line is a JSON object.

    python benchmarks/detector_quality.py --out bench_detector
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.detection import load_box_arrays, read_box_manifest
from datasets.synthetic import write_dataset
from explain import run as explain_run
from explain.loading import load_detector
from models.detector import detect
from training.tasks.detect.metrics import coco_map, match_to_truth
from training.experiments import train_or_reuse

GOALS = {"map50": 0.8, "shear_sense_accuracy": 0.9}
HELD_OUT_SEED = 1000  # training sets use seed 0: rng([seed, i]) never repeats an image


def detector_map(detector_dir: Path, manifest: Path) -> dict:
    """The detector's COCO mAP on the held-out boxes, one class (every clast)."""
    detector = load_detector(str(detector_dir))
    table, _ = read_box_manifest(manifest)
    table = table.assign(box_label=detector.class_names[0])
    arrays = load_box_arrays(table, detector.class_names, detector.image_size)
    return coco_map(arrays.truth(), detect(detector.model, arrays.images), detector.class_names)


def shear_sense_scores(detections: pd.DataFrame, manifest: Path) -> dict:
    """Matches the pipeline's detections to the true clasts; accuracy of the matched senses."""
    truth, _ = read_box_manifest(manifest)
    matched = correct = missed = unmatched = 0
    for path, boxes in truth.groupby("path"):
        found = detections[detections["file"] == path]
        pairs = match_to_truth(found[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float32),
                               found["detector_score"].to_numpy(), boxes[["xmin", "ymin", "xmax", "ymax"]].to_numpy())
        senses = found["shear_sense"].to_numpy()
        labels = boxes["box_label"].to_numpy()
        matched += len(pairs)
        correct += sum(senses[d] == labels[t] for d, t in pairs)
        missed += len(boxes) - len(pairs)
        unmatched += len(found) - len(pairs)
    return {"shear_sense_accuracy": correct / matched if matched else float("nan"), "matched": matched,
            "missed": missed, "false_detections": unmatched}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_detector", help="working folder (runs are reused when finished)")
    parser.add_argument("--held-out", type=int, default=200, help="held-out images (default 200)")
    parser.add_argument("--size", type=int, default=128, help="side of the held-out images (default 128)")
    parser.add_argument("--detector-flags", default="", help="more training.run flags for the detector")
    parser.add_argument("--classifier-flags", default="", help="more training.run flags for the classifier")
    args = parser.parse_args(argv)
    out = Path(args.out)
    logdir = out / "runs"
    detector_dir = train_or_reuse("detector", ["--task", "detect", *shlex.split(args.detector_flags)],
                                  logdir / "detector")
    classifier_dir = train_or_reuse("classifier", shlex.split(args.classifier_flags), logdir / "sednet")
    manifest = write_dataset("sigma_clasts", out / "held_out", n=args.held_out, seed=HELD_OUT_SEED, size=args.size,
                             max_clasts=3)
    code = explain_run.main(["--detector", str(detector_dir), "--classifier", str(classifier_dir),
                             "--images", str(out / "held_out"), "--out", str(out / "two_stage")])
    if code:
        raise SystemExit(f"the two-stage pipeline failed (exit {code})")
    scores = detector_map(detector_dir, manifest)
    result = {"map50": round(scores["map50"], 4), "map50_95": round(scores["map50_95"], 4),
              **shear_sense_scores(pd.read_csv(out / "two_stage" / "detections.csv"), manifest)}
    result["shear_sense_accuracy"] = round(result["shear_sense_accuracy"], 4)
    for key, goal in GOALS.items():
        print(f"{key}: {result[key]} (goal >= {goal}: {'met' if result[key] >= goal else 'NOT met'})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
