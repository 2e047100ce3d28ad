"""``python -m training.compare_losses``: the salt thesis's table 1, the eleven losses compared.

The thesis trains its U-Net-ResNet34 once per loss and compares the test Dice and perimetric
similarity (PS). This command does the same on synthetic seismic sections: every loss gets
the same sections, split, seed, patches, epochs and learning rate (``training.run --task
segment --loss L``); finished runs of the same configuration are reused and an interrupted
one resumes. Writes ``compare_losses.csv`` and ``compare_losses.md`` (the measured table in
the thesis's layout, IoU added, the thesis's values beside, and whether each of its findings
holds) into ``--out``.
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from datasets.synthetic import write_dataset
from models.losses import SEGMENTATION_LOSSES
from training.experiments import markdown_table, train_or_reuse

THESIS_TABLE = {  # test Dice / PS of the salt thesis's table 1
    "bce": (0.891, 0.749), "contour": (0.902, 0.773), "dice": (0.924, 0.883), "focal": (0.891, 0.727),
    "hausdorff": (0.894, 0.937), "jaccard": (0.918, 0.785), "kl": (0.907, 0.799), "lovasz": (0.907, 0.903),
    "mse": (0.825, 0.693), "wing": (0.905, 0.923), "bce+dice": (0.906, 0.863),
}


def write_data(out: Path, n: int, size: int, seed: int) -> Path:
    """The synthetic sections, written once and reused."""
    manifest = out / "manifest.csv"
    if not manifest.is_file():
        print(f"Writing {n} synthetic seismic sections ({size} samples per trace) to {out}", flush=True)
        write_dataset("seismic_salt", out, n=n, seed=seed, size=size)
    return manifest


def train_argv(loss: str, manifest: Path, runs: Path, args: argparse.Namespace) -> list[str]:
    """The ``training.run`` arguments of one loss: everything but the loss is shared."""
    return ["--task", "segment", "--loss", loss, "--data", str(manifest), "--epochs", str(args.epochs),
            "--patch-size", str(args.patch_size), "--stride", str(args.stride), "--encoder-width",
            str(args.encoder_width), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
            "--logdir", str(runs), "--run-name", run_name(loss), "--tb-gradcam-images", "2"]


def run_name(loss: str) -> str:
    return loss.replace("+", "_")


def loss_row(loss: str, metrics: dict) -> dict:
    thesis_dice, thesis_ps = THESIS_TABLE[loss]
    test = metrics["test"]
    return {"loss": loss, "dice": test["dice"], "ps": test["ps"], "iou": test["iou"], "val_dice": metrics["val"]["dice"],
            "thesis_dice": thesis_dice, "thesis_ps": thesis_ps}


def findings(table: pd.DataFrame) -> list[str]:
    """The thesis's three findings, each checked against the measured table."""
    by = table.set_index("loss")
    checks = [("the Dice loss gives the best Dice", "dice", by["dice"].idxmax(), "best Dice"),
              ("the Hausdorff loss gives the best PS", "hausdorff", by["ps"].idxmax(), "best PS"),
              ("MSE gives the worst Dice", "mse", by["dice"].idxmin(), "worst Dice")]
    lines = []
    for claim, expected, found, what in checks:
        if expected in by.index:
            score = "ps" if what.endswith("PS") else "dice"
            lines.append(f"- {claim}: {'holds' if found == expected else 'does not hold'} here ({what}: {found}, "
                         f"{by.loc[found, score]:.3f}; {expected}: {by.loc[expected, score]:.3f})")
    return lines


def markdown(table: pd.DataFrame, args: argparse.Namespace, minutes: float) -> str:
    return "\n".join([
        "# The salt thesis's table 1 on synthetic seismic sections",
        "",
        f"{args.n} sections of {args.size} samples x {round(args.size * 4 / 3)} traces, split as wholes 60/20/20 "
        f"(seed {args.seed}); {args.patch_size}-pixel patches every {args.stride} pixels, z-scored per patch; "
        f"U-Net-ResNet34 (encoder width {args.encoder_width}), {args.epochs} epochs, batch {args.batch_size}, "
        f"the same for every loss. Scores: means over the test sections, whole sections stitched from patches; "
        f"PS is Dice within 3 pixels of either boundary. {minutes:.1f} min in all.",
        "",
        markdown_table(table),
        "",
        "The thesis's findings:",
        *findings(table),
        "",
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.compare_losses",
        description="Reproduce the salt thesis's table 1: train the U-Net-ResNet34 once per segmentation loss on "
                    "the same synthetic seismic sections and compare test Dice, PS and IoU. Writes "
                    "compare_losses.csv and compare_losses.md.")
    parser.add_argument("--out", default="compare_losses", help="output folder (default compare_losses)")
    parser.add_argument("--losses", default=",".join(SEGMENTATION_LOSSES),
                        help=f"comma-separated (default all eleven: {','.join(SEGMENTATION_LOSSES)})")
    parser.add_argument("--n", type=int, default=30, help="synthetic sections (default 30)")
    parser.add_argument("--size", type=int, default=128, help="samples per trace (default 128)")
    parser.add_argument("--patch-size", type=int, default=64, help="patch side, a multiple of 32 (default 64)")
    parser.add_argument("--stride", type=int, default=32, help="pixels between patches (default 32)")
    parser.add_argument("--encoder-width", type=int, default=16,
                        help="first-stage filters (default 16; 64 is the full ResNet34)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per loss (default 10)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, split and training (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    losses = [loss.strip() for loss in args.losses.split(",") if loss.strip()]
    unknown = [loss for loss in losses if loss not in SEGMENTATION_LOSSES]
    if unknown or not losses:
        print(f"error: unknown loss(es) {unknown}; choose from {', '.join(SEGMENTATION_LOSSES)}.", file=sys.stderr)
        return 2
    started, out = time.perf_counter(), Path(args.out)
    manifest = write_data(out / "data", args.n, args.size, args.seed)
    rows = []
    try:
        for loss in losses:
            run = train_or_reuse(loss, train_argv(loss, manifest, out / "runs", args), out / "runs" / run_name(loss))
            rows.append(loss_row(loss, json.loads((run / "metrics.json").read_text())))
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows)
    table.to_csv(out / "compare_losses.csv", index=False)
    (out / "compare_losses.md").write_text(markdown(table, args, (time.perf_counter() - started) / 60))
    print("\n" + (out / "compare_losses.md").read_text())
    print(f"Tables: {out / 'compare_losses.csv'}, {out / 'compare_losses.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
