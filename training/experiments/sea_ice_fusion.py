"""The Z-score paper's comparison on synthetic sea ice (``python -m training.experiments sea-ice-fusion``).

Malmgren-Hansen et al. train their SAR/AMSR2 fusion network in a Small (14 components per
group) and a Large (28 in Scales 2-16) variant and read the Z-scores of its mixing layer: the
radiometer (MWR) group matters most, model size moves importance only among the image scales,
and Scale-0 is the most important image feature. This command trains both variants on the same
synthetic scenes (``training.run --task segment --model fusion_aspp --fusion-size S``; finished
runs of the same settings are reused), runs :mod:`explain.zscores` on each over every scene,
and checks each claim under both scores: the paper's Z = c / sigma and the standardised
c * sigma. Writes ``compare_fusion.csv`` (group shares), ``compare_fusion.md`` (the verdicts)
and the charts per variant into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.fusion import read_fusion_manifest, read_fusion_sample, stack_sources
from explain.loading import load_run
from explain.zscores import ZScores, ablated_logits, zscores
from explain.zscores.data import fusion_batches
from explain.zscores.figures import group_sums_figure, sorted_scores_figure
from models.fusion import SIZES
from training.experiments import (Experiment, Finding, Result, markdown_table, register_experiment, synthetic_data,
                                  train_or_reuse)
from training.tasks.segment.metrics import mask_scores

SCORES = {"z": "Z = c / sigma (the paper's)", "standardized": "c * sigma (standardised)",
          "contribution": "std of each group's summed contribution",
          "ablation": "mean ablation: the test IoU lost when the group is held at its mean"}
PER_GROUP = ("contribution", "ablation")  # scores that have no per-input value
SAR_GROUPS = ("scale0", "scale2", "scale4", "scale8", "scale16")


def write_data(out: Path, n: int, size: int, mwr_scale: int, seed: int) -> Path:
    return synthetic_data("sea_ice", out, f"{n} synthetic sea-ice scenes ({size} px SAR, radiometer 1/{mwr_scale})",
                          n=n, seed=seed, size=size, mwr_scale=mwr_scale)


def train_argv(size: str, manifest: Path, args: argparse.Namespace) -> list[str]:
    """The ``training.run`` arguments of one variant: everything but the size is shared."""
    return ["--task", "segment", "--model", "fusion_aspp", "--fusion-size", size, "--data", str(manifest),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
            "--seed", str(args.seed), "--tb-gradcam-images", "2"]


def ablation_drops(model, run: Path, manifest: Path) -> pd.DataFrame:
    """Per group, the mean test-scene IoU lost when the group's inputs are held at their mean."""
    test = pd.read_csv(run / "split.csv").query("split == 'test'")["scene"]
    rows = read_fusion_manifest(manifest).set_index("sar").loc[list(test)]
    samples = [read_fusion_sample(sar, row["mwr"], row["mask"]) for sar, row in rows.iterrows()]
    logits, ablated = ablated_logits(model, stack_sources(samples))

    def iou(values: np.ndarray) -> float:
        return float(np.mean([mask_scores(s.truth, v[..., 0] > 0)["iou"] for s, v in zip(samples, values)]))

    full = iou(logits)
    drops = {name: max(full - iou(values), 0.0) for name, values in ablated.items()}
    total = sum(drops.values())
    return pd.DataFrame({"group": list(drops), "ablation_iou_drop": list(drops.values()),
                         "share_ablation": [d / total if total > 0 else np.nan for d in drops.values()]})


def shares(result: ZScores, drops: pd.DataFrame, size: str, metrics: dict) -> pd.DataFrame:
    groups = result.groups.merge(drops, on="group").assign(size=size, test_iou=metrics["test"]["iou"],
                                                           test_dice=metrics["test"]["dice"])
    return groups[["size", "group", "inputs", "dead", *(f"share_{score}" for score in SCORES), "ablation_iou_drop",
                   "test_iou", "test_dice"]]


def top_image_group(table: pd.DataFrame, score: str) -> str:
    """The group of the single image (SAR) input with the largest |score|."""
    image = table[table["group"].isin(SAR_GROUPS) & ~table["dead"]]
    return str(image.loc[image[score].abs().idxmax(), "group"])


def claims(table: pd.DataFrame, scores: dict[str, ZScores]) -> list[str]:
    """The paper's three findings, checked per score (Scale-0 per input for the two Z scores,
    whose fig. 2 ranks inputs; per group for the contributions)."""
    lines = []
    for score, title in SCORES.items():
        by = {size: table[table["size"] == size].set_index("group")[f"share_{score}"] for size in scores}
        if any(shares_.isna().all() for shares_ in by.values()):
            lines += [f"**{title}**: undefined here (no group moves it in one of the models)", ""]
            continue
        top = {size: shares_.idxmax() for size, shares_ in by.items()}
        mwr_move = abs(by["large"]["mwr"] - by["small"]["mwr"])
        scale_move = max(abs(by["large"][g] - by["small"][g]) for g in SAR_GROUPS)
        rank = {size: list(shares_[list(SAR_GROUPS)].sort_values(ascending=False).index).index("scale0") + 1
                for size, shares_ in by.items()}
        rank_text = f"Scale-0's rank among the five image groups: small {rank['small']}, large {rank['large']}"
        if score in PER_GROUP:
            scale0_first, scale0_text = all(r == 1 for r in rank.values()), rank_text
        else:
            top_input = {size: top_image_group(result.table, score) for size, result in scores.items()}
            scale0_first = all(g == "scale0" for g in top_input.values())
            scale0_text = f"top image input's group: small {top_input['small']}, large {top_input['large']}; {rank_text}"
        lines += [
            f"**{title}**",
            Finding("MWR matters most", all(t == "mwr" for t in top.values()),
                    f"largest group: small {top['small']} {by['small'].max():.2f}, large {top['large']} "
                    f"{by['large'].max():.2f}; MWR share small {by['small']['mwr']:.2f}, large "
                    f"{by['large']['mwr']:.2f}").line(),
            Finding("size moves importance only among the image scales", mwr_move < scale_move,
                    f"MWR share moves {mwr_move:.2f}; the image scales' shares move up to {scale_move:.2f}").line(),
            Finding("Scale-0 is the most important image feature", scale0_first, scale0_text).line(),
            ""]
    return lines


def markdown(table: pd.DataFrame, scores: dict[str, ZScores], args: argparse.Namespace) -> str:
    wide = table.pivot(index="group", columns="size", values=[f"share_{score}" for score in SCORES])
    wide = wide.reindex(columns=[(f"share_{score}", size) for score in SCORES for size in scores])
    wide.columns = [f"{score.replace('share_', '')} {size}" for score, size in wide.columns]
    wide = wide.reindex([*SAR_GROUPS, "mwr"]).reset_index()
    iou = table.drop_duplicates("size").set_index("size")["test_iou"]
    return "\n".join([
        "# The Z-score paper's comparison on synthetic sea ice",
        "",
        f"{args.n} scenes of {args.size} x {args.size} SAR pixels (HH, HV) with a 14-channel radiometer at 1/"
        f"{args.mwr_scale} resolution, split as wholes 60/20/20 (seed {args.seed}); fusion_aspp Small and Large, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}. Test IoU: small {iou['small']:.3f}, large "
        f"{iou['large']:.3f}. Each group's share of the mixing layer's importance under each score: summed |Z|, "
        f"summed |c * sigma|, the spread of the group's summed contribution (sigma over every scene, the "
        f"radiometer's before upsampling), and the test IoU lost when the group is held at its mean (mean "
        f"ablation, what the model's output depends on).",
        "",
        markdown_table(wide),
        "",
        "The paper's findings, per score:",
        "",
        *claims(table, scores),
    ])


class SeaIceFusion(Experiment):
    name = "sea-ice-fusion"
    stem = "compare_fusion"
    description = ("Reproduce the Z-score paper's comparison: train fusion_aspp Small and Large on the same synthetic "
                   "sea-ice scenes, take the Z-scores of each mixing layer, and check the paper's findings under the "
                   "paper's Z = c/sigma and the standardised c*sigma. Writes compare_fusion.csv/.md and charts.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n", type=int, default=100, help="synthetic scenes (default 100)")
        parser.add_argument("--size", type=int, default=96, help="SAR side in pixels (default 96)")
        parser.add_argument("--mwr-scale", type=int, default=8, help="SAR pixels per radiometer pixel (default 8)")
        parser.add_argument("--epochs", type=int, default=10, help="epochs per variant (default 10)")
        parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
        parser.add_argument("--lr", type=float, default=1e-2, help="learning rate (default 0.01)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the data, split and training (default 0)")

    def check(self, args: argparse.Namespace) -> str | None:
        if args.size % args.mwr_scale or args.n < 3:
            return f"--size {args.size} must be a multiple of --mwr-scale {args.mwr_scale}, and --n at least 3."
        return None

    def run(self, args: argparse.Namespace) -> Result:
        manifest = write_data(args.out / "data", args.n, args.size, args.mwr_scale, args.seed)
        rows, scores = [], {}
        for size in SIZES:
            run = train_or_reuse(size, train_argv(size, manifest, args), args.out / "runs" / size)
            model = load_run(run).model
            scores[size] = zscores(model, fusion_batches(manifest, args.batch_size, []), outputs=["ice"])
            drops = ablation_drops(model, run, manifest)
            rows.append(shares(scores[size], drops, size, json.loads((run / "metrics.json").read_text())))
            sorted_scores_figure(scores[size].table, "ice").savefig(args.out / f"{size}_sorted.png", dpi=110)
            group_sums_figure(scores[size].groups, "ice").savefig(args.out / f"{size}_groups.png", dpi=110)
        table = pd.concat(rows, ignore_index=True)
        return Result(table, markdown(table, scores, args), f"charts: {args.out}/{{small,large}}_*.png")


register_experiment(SeaIceFusion())
