"""Does ``explain.concepts`` find the synthetic lots' ground truth, and does a texture-aware backbone matter?

The synthetic SEM lots' strength rises with surface pits and falls with cracks, nothing else
(``datasets/synthetic/sem_crystals.py``). This script trains two CPS regressors on the same
lots with the same settings, side by side (three with ``--pretrained``):

- ``scratch``: SedNet (or ``--model``) from random weights (the README's measured command);
- ``textures``: the same network started (``--weights RUN``) from its classifier of the
  procedural describable textures, drawn with another seed than the reference set. It stands
  in for the study's ImageNet start: the study's ResNet-50 knew textures before it saw SEM
  images;
- ``pretrained``, with ``--pretrained imagenet`` (or a local weights file): the study's own
  start, where the weights can be had. ImageNet weights cannot be downloaded on the machines
  that measured the README, so this is the one command that checks the study's setting::

      python benchmarks/texture_concepts.py --model resnet50 --pretrained imagenet --out bench_resnet

and runs ``python -m explain.concepts --properties pitting,cracks`` on each (the study's
setting: plain Fast-CAM peak, L2). Per regressor it prints every texture class's affinity with
CPS (positive: stronger lots look more like it) and the ground truth read from them:

- ``crack_family_ranks``: the ranks, from the most negative, of cracked, striped, fibrous and
  wrinkled (1-4 when the crack family is the most negative);
- ``pit_family``: the affinities of dotted, flecked and porous, which should be positive;
- ``unrelated_ranks``: the ranks of smooth and banded by the size of their affinity, from the
  smallest (1-2 when they are the two closest to zero);
- ``crack_family_with_cracks`` and ``pit_family_with_pitting``: the same affinity against the
  lots' hidden crack density and pitting, which should be positive: whether a texture's
  relation to CPS comes from the cause it names;
- ``stages``: the same measures at each stage alone (the figures above are the stages combined);
- ``peaks_on_evidence``: where the features are read. The share of the weakest quarter of the
  images (by CPS) whose Fast-CAM peak lies within 2 px of a crack, and of the strongest
  quarter whose peak lies within 2 px of a pit (and of no crack), by the generator's masks.

Runs already finished under ``--out`` are reused. Not a timed test: at the defaults it trains
for about 22 min on a 2-core CPU. The last line is a JSON object.

    python benchmarks/texture_concepts.py --out bench_concepts
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from datasets.images import read_image
from datasets.synthetic import write_dataset
from explain.concepts.__main__ import main as concepts
from training.experiments import train_or_reuse

CRACK_FAMILY = ("cracked", "striped", "fibrous", "wrinkled")
PIT_FAMILY = ("dotted", "flecked", "porous")
UNRELATED = ("smooth", "banded")
REGRESSOR_RUNS = {"scratch": "cps_scratch", "textures": "cps_from_textures", "pretrained": "cps_from_pretrained"}
PRETRAIN_SEED = 7  # the reference textures use seed 0: another draw of the same classes


def ground_truth(table: pd.DataFrame) -> dict:
    """The ranks and values by which the affinities (``texture_properties.csv``: cps, pitting,
    cracks) are checked against the lots' formula."""
    affinity = table["cps"]
    from_most_negative = affinity.rank(method="min").astype(int)
    by_size = affinity.abs().rank(method="min").astype(int)
    return {"crack_family_ranks": {name: int(from_most_negative[name]) for name in CRACK_FAMILY},
            "pit_family": {name: round(float(affinity[name]), 3) for name in PIT_FAMILY},
            "unrelated_ranks": {name: int(by_size[name]) for name in UNRELATED},
            "crack_family_with_cracks": {name: round(float(table.loc[name, "cracks"]), 3) for name in CRACK_FAMILY},
            "pit_family_with_pitting": {name: round(float(table.loc[name, "pitting"]), 3) for name in PIT_FAMILY}}


def evidence_near(manifest: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per image (its resolved path), where a crack and where a pit lie within 2 px, from the
    generator's masks."""
    near = np.ones((5, 5), np.uint8)
    table = pd.read_csv(manifest)
    return {str((manifest.parent / row.path).resolve()): tuple(
        cv2.dilate((read_image(manifest.parent / mask)[..., 0] > 127).astype(np.uint8), near) > 0
        for mask in (row.crack_mask, row.pit_mask)) for row in table.itertuples()}


def peaks_on_evidence(points: pd.DataFrame, evidence: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """The shares of the weakest and strongest quarters' Fast-CAM peaks (``salient_points.csv``)
    that lie within 2 px of a crack, or of a pit and no crack."""
    where = []
    for point in points.itertuples():
        crack, pit = evidence[str(Path(point.file).resolve())]
        y, x = int(point.peak_y * crack.shape[0]), int(point.peak_x * crack.shape[1])
        where.append("crack" if crack[y, x] else "pit" if pit[y, x] else "other")
    quarter = pd.qcut(points["cps"], 4, labels=False)
    where = pd.Series(where, index=points.index)
    return {"weakest_on_crack": round(float((where[quarter == 0] == "crack").mean()), 3),
            "strongest_on_pit": round(float((where[quarter == 3] == "pit").mean()), 3)}


def run_name(model: str, name: str) -> str:
    """Runs of SedNet keep their plain names; another network's carry its name, so one ``--out``
    can hold both without reusing the wrong run."""
    return name if model == "sednet" else f"{model}_{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench_concepts", help="data, runs and reports (reused when there)")
    parser.add_argument("--images", type=int, default=2500, help="SEM images (default 2500)")
    parser.add_argument("--lots", type=int, default=500, help="their lots (default 500)")
    parser.add_argument("--size", type=int, default=96, help="image side in px (default 96)")
    parser.add_argument("--epochs", type=int, default=60, help="regression epochs (default 60)")
    parser.add_argument("--pretrain-images", type=int, default=2600, help="textures to pretrain on (default 2600)")
    parser.add_argument("--pretrain-epochs", type=int, default=12, help="texture classifier epochs (default 12)")
    parser.add_argument("--reference", type=int, default=130, help="reference textures (default 130)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="sednet",
                        help="the network of every run (default sednet; the study's is resnet50); a backbone is "
                             "trained whole (--train-backbone)")
    parser.add_argument("--pretrained",
                        help="also a CPS regressor started from these backbone weights, reported as 'pretrained': "
                             "imagenet (the study's start; Keras downloads the weights) or a local weights file")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's initial rate, cosine-decayed (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and weights (default 0)")
    args = parser.parse_args()
    out = Path(args.out)
    sem = write_dataset("sem_crystals", out / "sem", n=args.images, seed=0, size=args.size, lots=args.lots)
    pretrain = write_dataset("textures", out / "textures_pretrain", n=args.pretrain_images, seed=PRETRAIN_SEED,
                             size=args.size)
    reference = out / "textures"
    write_dataset("textures", reference, n=args.reference, seed=0, size=args.size)
    common = ["--model", args.model, "--image-size", str(args.size), "--batch-size", str(args.batch_size),
              "--optimizer", "adam", "--lr", str(args.lr), "--lr-schedule", "cosine", "--tb-histogram-freq", "0",
              "--seed", str(args.seed),
              *(["--local-size", str(args.size // 2)] if args.model == "sednet" else ["--train-backbone"])]
    runs_dir = out / "runs"
    texture_name = run_name(args.model, "texture_classifier")
    texture_run = train_or_reuse(texture_name, ["--task", "classify", "--data", str(pretrain), "--epochs",
                                                str(args.pretrain_epochs), *common, "--weights", "none"],
                                 runs_dir / texture_name)
    regress = ["--task", "regress", "--data", str(sem), "--epochs", str(args.epochs), "--weight-decay", "0",
               "--dropout", "0", *common]
    starts = {"scratch": "none", "textures": str(texture_run)}
    if args.pretrained:
        starts["pretrained"] = args.pretrained
    runs = {name: train_or_reuse(name, [*regress, "--weights", weights],
                                 runs_dir / run_name(args.model, REGRESSOR_RUNS[name]))
            for name, weights in starts.items()}
    results, evidence = {}, evidence_near(sem)
    for name, run_dir in runs.items():
        report = out / run_name(args.model, f"concepts_{name}")
        if concepts(["--model", str(run_dir), "--data", str(sem), "--textures", str(reference),
                          "--properties", "pitting,cracks", "--out", str(report)]):
            raise SystemExit(f"explain.concepts failed on {run_dir}")
        stages = {stage: table.set_index("texture").drop(columns="stage")
                  for stage, table in pd.read_csv(report / "texture_properties.csv").groupby("stage", sort=False)}
        test_r2 = json.loads((run_dir / "metrics.json").read_text())["test"]["r2"]
        results[name] = {"test_r2": round(test_r2, 3), **ground_truth(stages["combined"]),
                         "peaks_on_evidence": peaks_on_evidence(pd.read_csv(report / "salient_points.csv"), evidence),
                         "stages": {stage: ground_truth(table) for stage, table in stages.items()
                                    if stage != "combined"},
                         "affinity": {stage: table.round(3).to_dict(orient="index") for stage, table in stages.items()}}
        print(f"{name}: test R² {test_r2:.3f}; affinity with cps, pitting, cracks per stage:")
        print(pd.concat(stages, axis=1).round(2).to_string())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
