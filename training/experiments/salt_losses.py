"""The salt thesis's table 1: the eleven losses compared (``python -m training.experiments salt-losses``).

The thesis trains its U-Net-ResNet34 once per loss and compares the test Dice and perimetric
similarity (PS). This experiment does the same on synthetic seismic sections: every loss gets
the same data, split, patches, encoder width, epochs and seed (``training.run --task
segment --loss L``); finished runs of the same configuration are reused and an interrupted
one resumes. Writes ``compare_losses.csv`` and ``compare_losses.md`` (the measured table beside
the thesis's, and which of its findings hold here).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from models.losses import SEGMENTATION_LOSSES
from training.experiments import (Experiment, Finding, Result, comma_list, markdown_table, register_experiment,
                                  synthetic_data, train_or_reuse)

THESIS_TABLE = {  # test Dice / PS of the salt thesis's table 1
    "bce": (0.891, 0.749), "contour": (0.902, 0.773), "dice": (0.924, 0.883), "focal": (0.891, 0.727),
    "hausdorff": (0.894, 0.937), "jaccard": (0.918, 0.785), "kl": (0.907, 0.799), "lovasz": (0.907, 0.903),
    "mse": (0.825, 0.693), "wing": (0.905, 0.923), "bce+dice": (0.906, 0.863),
}


def write_data(out: Path, n: int, size: int, seed: int) -> Path:
    """The synthetic sections, written once and reused."""
    return synthetic_data("seismic_salt", out, f"{n} synthetic seismic sections ({size} samples per trace)", n=n,
                          seed=seed, size=size)


def train_argv(loss: str, manifest: Path, args: argparse.Namespace) -> list[str]:
    """The ``training.run`` arguments of one loss: everything but the loss is shared."""
    return ["--task", "segment", "--loss", loss, "--data", str(manifest), "--epochs", str(args.epochs),
            "--patch-size", str(args.patch_size), "--stride", str(args.stride), "--encoder-width",
            str(args.encoder_width), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
            "--tb-gradcam-images", "2"]


def run_name(loss: str) -> str:
    return loss.replace("+", "_")


def loss_row(loss: str, metrics: dict) -> dict:
    thesis_dice, thesis_ps = THESIS_TABLE[loss]
    test = metrics["test"]
    return {"loss": loss, "dice": test["dice"], "ps": test["ps"], "iou": test["iou"], "val_dice": metrics["val"]["dice"],
            "thesis_dice": thesis_dice, "thesis_ps": thesis_ps}


def findings(table: pd.DataFrame) -> list[Finding]:
    """The thesis's three findings, each checked against the measured table (those whose loss
    was trained)."""
    by = table.set_index("loss")
    checks = [("the Dice loss gives the best Dice", "dice", by["dice"].idxmax(), "best Dice", "dice"),
              ("the Hausdorff loss gives the best PS", "hausdorff", by["ps"].idxmax(), "best PS", "ps"),
              ("MSE gives the worst Dice", "mse", by["dice"].idxmin(), "worst Dice", "dice")]
    return [Finding(claim, found == expected, f"{what}: {found}, {by.loc[found, score]:.3f}; {expected}: "
                                              f"{by.loc[expected, score]:.3f}")
            for claim, expected, found, what, score in checks if expected in by.index]


def markdown(table: pd.DataFrame, args: argparse.Namespace) -> str:
    return "\n".join([
        "# The salt thesis's table 1 on synthetic seismic sections",
        "",
        f"{args.n} sections of {args.size} samples x {round(args.size * 4 / 3)} traces, split as wholes 60/20/20 "
        f"(seed {args.seed}); {args.patch_size}-pixel patches every {args.stride} pixels, z-scored per patch; "
        f"U-Net-ResNet34 (encoder width {args.encoder_width}), {args.epochs} epochs, batch {args.batch_size}, "
        f"the same for every loss. Scores: means over the test sections, whole sections stitched from patches; "
        f"PS is Dice within 3 pixels of either boundary.",
        "",
        markdown_table(table),
        "",
        "The thesis's findings:",
        *(finding.line() for finding in findings(table)),
        "",
    ])


class SaltLosses(Experiment):
    name = "salt-losses"
    stem = "compare_losses"
    description = ("Reproduce the salt thesis's table 1: train the U-Net-ResNet34 once per segmentation loss on the "
                   "same synthetic seismic sections and compare test Dice, PS and IoU. Writes compare_losses.csv and "
                   "compare_losses.md.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--losses", type=comma_list, default=list(SEGMENTATION_LOSSES),
                            help=f"comma-separated (default all eleven: {','.join(SEGMENTATION_LOSSES)})")
        add_segmentation_arguments(parser)
        parser.add_argument("--stride", type=int, default=32, help="pixels between patches (default 32)")
        parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")

    def check(self, args: argparse.Namespace) -> str | None:
        unknown = [loss for loss in args.losses if loss not in SEGMENTATION_LOSSES]
        if unknown or not args.losses:
            return f"unknown loss(es) {unknown}; choose from {', '.join(SEGMENTATION_LOSSES)}."
        return None

    def run(self, args: argparse.Namespace) -> Result:
        manifest = write_data(args.out / "data", args.n, args.size, args.seed)
        rows = []
        for loss in args.losses:
            run = train_or_reuse(loss, train_argv(loss, manifest, args), args.out / "runs" / run_name(loss))
            rows.append(loss_row(loss, json.loads((run / "metrics.json").read_text())))
        table = pd.DataFrame(rows)
        return Result(table, markdown(table, args))


def add_segmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the synthetic sections and the U-Net that the encoder comparison shares."""
    parser.add_argument("--n", type=int, default=30, help="synthetic sections (default 30)")
    parser.add_argument("--size", type=int, default=128, help="samples per trace (default 128)")
    parser.add_argument("--patch-size", type=int, default=64, help="patch side, a multiple of 32 (default 64)")
    parser.add_argument("--encoder-width", type=int, default=16,
                        help="first-stage filters (default 16; 64 is the full ResNet34)")
    parser.add_argument("--epochs", type=int, default=10, help="U-Net epochs (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, split and training (default 0)")


register_experiment(SaltLosses())
