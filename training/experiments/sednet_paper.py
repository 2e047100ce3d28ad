"""The SedNet paper's model comparison, its explanations audited (``python -m training.experiments sednet-paper``).

The SedNet paper (table 2) compares SedNet with ResNet-50, EfficientNet-B2 and MobileNet-V3 on
accuracy, precision, recall, F1 and loss, and argues from Grad-CAM figures that the classical
CNNs look at scale bars, cracks and cement while SedNet looks at the framework grains. This
experiment repeats the comparison on synthetic thin sections with a planted, class-correlated
scale bar, where the evidence and the shortcut are known pixel by pixel, and measures the
claim with ``explain.audit``: each model's Grad-CAM energy on the grains and on the scale bar
of the test images, and its accuracy drop when the scale bar is inpainted.

Every model is trained by ``python -m training.run`` on the same manifest, seed (hence split),
augmentation, image size and epochs, with TensorFlow's op determinism, so a seed repeats. The
whole comparison is repeated for each of ``--seeds`` (data, split and weights all follow the
seed), because one seed's numbers move by more than the differences the paper reads: the report
gives each figure's mean and spread over the seeds and states a conclusion only where it holds
in every seed. A finished run or audit is reused, an interrupted run resumes, so the experiment
can be repeated. Writes ``compare.csv`` (a row per seed and model) and ``compare.md`` into
``--out``, next to ``seed_<S>/`` with each seed's ``data/``, ``runs/``, ``audits/`` and tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from explain.audit import AuditError, AuditSettings, run_audit
from models import MODELS
from training.experiments import (Experiment, Result, comma_list, markdown_table, register_experiment, synthetic_data,
                                  train_or_reuse)

PAPER_MODELS = ("sednet", "resnet50", "efficientnetb2", "mobilenetv3")
MASKS = {"evidence": "grain_mask", "shortcut": "scale_bar_mask"}


def write_data(out: Path, n: int, size: int, correlation: float, seed: int) -> Path:
    """The thin sections with the planted scale bar, written once and reused."""
    return synthetic_data("thin_sections", out, f"{n} synthetic thin sections ({size} px, scale bar correlation "
                          f"{correlation})", n=n, seed=seed, size=size, shortcut="scale_bar", correlation=correlation)


def train_argv(model: str, manifest: Path, args: argparse.Namespace, seed: int) -> list[str]:
    """The ``training.run`` arguments of one model: everything but the model is shared."""
    argv = ["--model", model, "--data", str(manifest), "--weights", args.weights, "--epochs", str(args.epochs),
            "--image-size", str(args.size), "--local-size", str(args.size // 2), "--batch-size",
            str(args.batch_size), "--seed", str(seed), "--tb-histogram-freq", "0"]
    return argv + (["--train-backbone"] if args.weights == "none" and model != "sednet" else [])


def train(model: str, manifest: Path, runs: Path, args: argparse.Namespace, seed: int) -> Path:
    """Trains one model through ``training.run`` unless the same run already finished."""
    return train_or_reuse(f"{model}, seed {seed}", train_argv(model, manifest, args, seed), runs / model)


def audit_manifest(runs: list[Path], manifest: Path, out: Path) -> Path:
    """The shared split with the data's mask columns: what every model's audit reads."""
    splits = [pd.read_csv(run / "split.csv") for run in runs]
    for run, split in zip(runs[1:], splits[1:]):
        if not split[["path", "split"]].equals(splits[0][["path", "split"]]):
            raise RuntimeError(f"{run} was trained on another split than {runs[0]}; delete its folder and rerun.")
    masks = pd.read_csv(manifest)[["path", *MASKS.values()]]
    for column in masks.columns:
        masks[column] = [str((manifest.parent / p).resolve()) for p in masks[column]]
    path = out / "audit_manifest.csv"
    splits[0].merge(masks.drop_duplicates("path"), on="path", how="left").to_csv(path, index=False)
    return path


def model_row(model: str, metrics: dict, audit: pd.DataFrame, verdicts: dict) -> dict:
    """One line of the comparison: table 2's scores and the audit's answer."""
    value = audit.fillna({"method": "", "mask": ""}).set_index(["class", "method", "mask", "metric"])["value"]
    row = {"model": model}
    for split in ("train", "test"):
        for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"):
            row[f"{split}_{name.removesuffix('_macro')}"] = metrics[split][name]
    for mask, column in (("evidence", "grains"), ("shortcut", "scale_bar")):
        row[f"gradcam_energy_{column}"] = value["all", "gradcam", mask, "energy"]
        row[f"area_{column}"] = value["all", "", mask, "mask_area"]
    row["accuracy_without_scale_bar"] = value["all", "", "shortcut", "accuracy_without_shortcut"]
    row["accuracy_drop"] = value["all", "", "shortcut", "accuracy"] - row["accuracy_without_scale_bar"]
    row["accuracy_drop_random_region"] = (value["all", "", "shortcut", "accuracy"]
                                          - value["all", "", "shortcut", "accuracy_without_random"])
    row["classes_needing_scale_bar"] = sum(v["relies_on_shortcut"] for k, v in verdicts.items() if k != "all")
    row["needs_scale_bar_pooled"] = verdicts["all"]["relies_on_shortcut"]
    return row


SCORES = [f"{s}_{m}" for s in ("train", "test") for m in ("accuracy", "precision", "recall", "f1")] \
    + ["train_loss", "test_loss"]
AUDIT = ["gradcam_energy_grains", "area_grains", "gradcam_energy_scale_bar", "area_scale_bar", "accuracy_drop",
         "accuracy_drop_random_region", "classes_needing_scale_bar"]


def mean_and_spread(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per model (in the table's order), each column's mean and standard deviation over the
    seeds as "mean ± sd" (the sd is left out for one seed)."""
    grouped = table.groupby("model", sort=False)[columns]
    means, spreads = grouped.mean(), grouped.std(ddof=1)
    seeds = table["seed"].nunique()
    cells = means.map(lambda v: f"{v:.3f}")
    if seeds > 1:
        cells = cells + " ± " + spreads.map(lambda v: f"{v:.3f}")
    return cells.reset_index()


def conclusions(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The comparison's readings, split into those that hold in every seed and those that do not."""
    seeds = sorted(table["seed"].unique())
    count, holds, varies = len(seeds), [], []

    def sort(statement: str, true_in: int) -> None:
        (holds if true_in in (0, count) else varies).append(f"{statement}: {true_in} of {count} seed(s)")

    for model, rows in table.groupby("model", sort=False):
        sort(f"{model} needs the scale bar (all test images pooled)", int(rows["needs_scale_bar_pooled"].sum()))
        sort(f"{model} needs the scale bar for at least one class", int((rows["classes_needing_scale_bar"] > 0).sum()))
        sort(f"{model}'s Grad-CAM puts more than the bar's area share on the scale bar",
             int((rows["gradcam_energy_scale_bar"] > rows["area_scale_bar"]).sum()))
    rankings = [ranking(table[table["seed"] == s]) for s in seeds]
    for order in dict.fromkeys(rankings):
        sort(f"test accuracy ranks {order}", rankings.count(order))
    return holds, varies


def ranking(rows: pd.DataFrame) -> str:
    """The models by test accuracy, best first; "=" joins ties."""
    ordered = rows.sort_values("test_accuracy", ascending=False, kind="stable")
    text = ordered["model"].iloc[0]
    for previous, (model, accuracy) in zip(ordered["test_accuracy"], ordered[["model", "test_accuracy"]].iloc[1:].values):
        text += (" = " if accuracy == previous else " > ") + model
    return text


def markdown(table: pd.DataFrame, args: argparse.Namespace) -> str:
    """compare.md: the paper's table 2 layout and the audit's columns, as mean ± sd over the
    seeds, then the readings that hold in every seed and those that do not."""
    holds, varies = conclusions(table)
    return "\n".join([
        "# SedNet paper comparison on synthetic thin sections with a planted scale bar",
        "",
        f"{args.n} images of six rock types at {args.size} px; the scale bar's style follows the class in "
        f"{args.correlation:.0%} of images. Weights {args.weights}, {args.epochs} epochs, batch {args.batch_size}; "
        f"seeds {','.join(map(str, args.seeds))} (each its own data, 60/20/20 split and weights; every model of a seed shares them). "
        "Mean ± standard deviation over the seeds.",
        "",
        "## Scores (the paper's table 2 layout; macro averages)",
        "",
        markdown_table(mean_and_spread(table, SCORES)),
        "",
        "## Where the models look, and what they need (test split)",
        "",
        "Grad-CAM energy: the share of the map on the grains or on the scale bar; `area` is what a "
        "uniform map would score. Accuracy drop: with the scale bar inpainted, and with an equal-area "
        "random region inpainted instead. A class needs the scale bar when inpainting it costs at "
        "least 0.10 more true-class probability than the random region (`explain.audit`); "
        "`classes_needing_scale_bar` counts such classes (of six), and a model needs it *pooled* when "
        "that holds over all test images together.",
        "",
        markdown_table(mean_and_spread(table, AUDIT)),
        "",
        "## Readings that hold in every seed",
        "",
        *(f"- {line}" for line in holds or ["(none)"]),
        "",
        "## Readings that change with the seed",
        "",
        *(f"- {line}" for line in varies or ["(none)"]),
        "",
    ])


def audit(model: str, run: Path, audit_data: Path, audit_out: Path) -> dict:
    """Audits one model's run on the test split unless an audit of this very run (written after
    its model) is there; returns the verdicts."""
    report = audit_out / "audit.json"
    if report.is_file() and report.stat().st_mtime >= (run / "model.keras").stat().st_mtime:
        print(f"\n=== {model}: reusing the finished audit in {audit_out}", flush=True)
        return json.loads(report.read_text())["verdicts"]
    print(f"\n=== auditing {model} on the test split", flush=True)
    return run_audit(str(run), str(audit_data), MASKS, AuditSettings(["gradcam"], deletion_steps=8), audit_out,
                     split="test")


def compare_models(models: list[str], out: Path, args: argparse.Namespace, seed: int) -> list[dict]:
    """Writes one seed's data, trains and audits every model; returns the comparison's rows."""
    manifest = write_data(out / "data", args.n, args.size, args.correlation, seed)
    runs = [train(model, manifest, out / "runs", args, seed) for model in models]
    audit_data = audit_manifest(runs, manifest, out)
    rows = []
    for model, run in zip(models, runs):
        audit_out = out / "audits" / model
        verdicts = audit(model, run, audit_data, audit_out)
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"seed": seed, **model_row(model, metrics, pd.read_csv(audit_out / "audit.csv"), verdicts)})
    pd.DataFrame(rows).to_csv(out / "compare.csv", index=False)  # this seed's own table
    return rows


class SedNetPaper(Experiment):
    name = "sednet-paper"
    stem = "compare"
    description = ("Reproduce the SedNet paper's comparison (SedNet, ResNet-50, EfficientNet-B2, MobileNet-V3) on "
                   "synthetic thin sections with a planted scale-bar shortcut, and audit each model's Grad-CAM "
                   "against the grain and scale-bar masks. Writes compare.csv and compare.md.")
    errors = (RuntimeError, AuditError)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--models", type=comma_list, default=list(PAPER_MODELS),
                            help=f"comma-separated registry names (default {','.join(PAPER_MODELS)})")
        parser.add_argument("--weights", default="none",
                            help="none (default: train from scratch, backbones fully trainable) or imagenet "
                                 "(needs a network: frozen pretrained backbones, as in the paper)")
        parser.add_argument("--n", type=int, default=600,
                            help="synthetic images, balanced over six classes (default 600)")
        parser.add_argument("--size", type=int, default=64,
                            help="image side in pixels (default 64; SedNet's crop is half)")
        parser.add_argument("--correlation", type=float, default=0.9,
                            help="share of images whose scale bar style follows the class (default 0.9)")
        parser.add_argument("--epochs", type=int, default=15, help="epochs per model (default 15)")
        parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
        parser.add_argument("--seeds", type=lambda text: [int(seed) for seed in comma_list(text)], default=[0, 1, 2],
                            help="comma-separated seeds; each gives its own data, split and weights, and the report "
                                 "states what holds in all of them (default 0,1,2)")

    def check(self, args: argparse.Namespace) -> str | None:
        unknown = [m for m in args.models if m not in MODELS]
        if unknown or not args.models:
            return f"unknown model(s) {unknown}; choose from {sorted(MODELS)}."
        if args.weights not in ("none", "imagenet") or not 0.0 <= args.correlation <= 1.0 or not args.seeds:
            return ("--weights must be none or imagenet, --correlation lie in [0, 1] and --seeds name at least one "
                    f"seed; got {args.weights}, {args.correlation}, {args.seeds}.")
        return None

    def run(self, args: argparse.Namespace) -> Result:
        table = pd.DataFrame([row for seed in args.seeds
                              for row in compare_models(args.models, args.out / f"seed_{seed}", args, seed)])
        return Result(table, markdown(table, args), f"audits: {args.out}/seed_<S>/audits/<model>/audit.html")


register_experiment(SedNetPaper())
