"""Where RetinaNet's focal-loss prior goes: keras-hub 0.32's initialisation against the paper's.

Lin et al. (2017, section 4.1) start the classification head's bias at -log((1 - 0.01) / 0.01),
so every anchor begins at probability 0.01. keras-hub 0.32 gives that bias to the box head and
leaves the class head at zero; ``models.detector`` moves it back. Both variants below are the
same detector, trained from the same random weights on the same synthetic clasts, batches and
flips; only those two biases differ. Prints validation mAP@0.5 after each epoch, side by side,
and a last JSON line.

    python benchmarks/detector_prior.py --out bench_prior
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from datasets.detection import detection_dataset, load_box_arrays, read_box_manifest
from datasets.synthetic import write_dataset
from models.detector import build_detector, detect, focal_prior_bias
from training.tasks.detect.metrics import coco_map

def keras_hub_initialisation(detector: keras.Model) -> None:
    """Puts the two biases back as keras-hub 0.32 initialises them."""
    classes = detector.classification_head.prediction_layer.bias
    boxes = detector.box_head.prediction_layer.bias
    classes.assign(np.zeros(classes.shape, "float32"))
    boxes.assign(np.full(boxes.shape, focal_prior_bias(), "float32"))


def val_map50_per_epoch(variant: str, train, val, epochs: int, size: int) -> list[float]:
    keras.utils.set_random_seed(0)
    detector = build_detector(1, (size, size, 3))
    if variant == "keras-hub":
        keras_hub_initialisation(detector)
    detector.compile(optimizer=keras.optimizers.Adam(1e-3))
    truth = val.truth()
    scores = []
    for _ in range(epochs):
        detector.fit(detection_dataset(train, 8, training=True, mirror=np.array([0]), seed=0), epochs=1, verbose=0)
        scores.append(round(coco_map(truth, detect(detector, val.images), ["sigma_clast"])["map50"], 4))
        print(f"{variant:>9}: epoch {len(scores)} val mAP@0.5 {scores[-1]:.3f}", flush=True)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_prior", help="folder for the synthetic images")
    parser.add_argument("--images", type=int, default=300, help="synthetic images, 4:1 train:val (default 300)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per variant (default 4)")
    parser.add_argument("--size", type=int, default=128, help="image side (default 128)")
    args = parser.parse_args(argv)
    table, _ = read_box_manifest(write_dataset("sigma_clasts", Path(args.out), n=args.images, seed=0,
                                               size=args.size, max_clasts=3))
    table = table.assign(box_label="sigma_clast")
    paths = table["path"].unique()
    cut = int(0.8 * len(paths))
    train = load_box_arrays(table[table["path"].isin(paths[:cut])], ["sigma_clast"], args.size)
    val = load_box_arrays(table[table["path"].isin(paths[cut:])], ["sigma_clast"], args.size)
    result = {variant: val_map50_per_epoch(variant, train, val, args.epochs, args.size)
              for variant in ("keras-hub", "paper")}
    print(json.dumps({"val_map50_keras_hub": result["keras-hub"], "val_map50_paper_prior": result["paper"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
