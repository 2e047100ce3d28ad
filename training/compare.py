"""``python -m training.compare``: the SedNet paper's model comparison, with its explanations audited.

The SedNet paper (table 2) compares SedNet with ResNet-50, EfficientNet-B2 and MobileNet-V3 on
accuracy, precision, recall, F1 and loss, and argues from Grad-CAM figures that the classical
CNNs look at scale bars, cracks and cement while SedNet looks at the framework grains. This
command repeats the comparison on synthetic thin sections with a planted, class-correlated
scale bar, where the evidence and the shortcut are known pixel by pixel, and measures the
claim with ``explain.audit``: each model's Grad-CAM energy on the grains and on the scale bar
of the test images, and its accuracy drop when the scale bar is inpainted.

Every model is trained by ``python -m training.run`` on the same manifest, seed (hence split),
augmentation, image size and epochs. A finished run with the same configuration is reused, an
interrupted one resumes, so the command can be repeated. Writes ``compare.csv`` and
``compare.md`` into ``--out``, next to ``data/``, ``runs/`` and ``audits/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from datasets.synthetic import write_dataset
from explain.auditing import AuditError, AuditSettings, run_audit
from training.experiments import markdown_table, train_or_reuse

PAPER_MODELS = ("sednet", "resnet50", "efficientnetb2", "mobilenetv3")
MASKS = {"evidence": "grain_mask", "shortcut": "scale_bar_mask"}


def write_data(out: Path, n: int, size: int, correlation: float, seed: int) -> Path:
    """The thin sections with the planted scale bar, written once and reused."""
    manifest = out / "manifest.csv"
    if not manifest.is_file():
        print(f"Writing {n} synthetic thin sections ({size} px, scale bar correlation {correlation}) to {out}",
              flush=True)
        write_dataset("thin_sections", out, n=n, seed=seed, size=size, shortcut="scale_bar",
                      correlation=correlation)
    return manifest


def train_argv(model: str, manifest: Path, runs: Path, args: argparse.Namespace) -> list[str]:
    """The ``training.run`` arguments of one model: everything but the model is shared."""
    argv = ["--model", model, "--data", str(manifest), "--weights", args.weights, "--epochs", str(args.epochs),
            "--image-size", str(args.size), "--local-size", str(args.size // 2), "--batch-size",
            str(args.batch_size), "--seed", str(args.seed), "--logdir", str(runs), "--run-name", model,
            "--tb-histogram-freq", "0"]
    return argv + (["--train-backbone"] if args.weights == "none" and model != "sednet" else [])


def train(model: str, manifest: Path, runs: Path, args: argparse.Namespace) -> Path:
    """Trains one model through ``training.run`` unless the same run already finished."""
    return train_or_reuse(model, train_argv(model, manifest, runs, args), runs / model)


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
    row["classes_relying_on_scale_bar"] = sum(v["relies_on_shortcut"] for k, v in verdicts.items() if k != "all")
    row["relies_on_scale_bar"] = verdicts["all"]["relies_on_shortcut"]
    return row


def markdown(table: pd.DataFrame, args: argparse.Namespace, minutes: float) -> str:
    """compare.md: the paper's table 2 layout, then the audit's columns."""
    scores = ["model"] + [f"{s}_{m}" for s in ("train", "test") for m in ("accuracy", "precision", "recall", "f1")] \
        + ["train_loss", "test_loss"]
    audit = ["model", "gradcam_energy_grains", "area_grains", "gradcam_energy_scale_bar", "area_scale_bar",
             "accuracy_drop", "accuracy_drop_random_region", "classes_relying_on_scale_bar", "relies_on_scale_bar"]
    return "\n".join([
        "# SedNet paper comparison on synthetic thin sections with a planted scale bar",
        "",
        f"{args.n} images of six rock types at {args.size} px; the scale bar's style follows the class in "
        f"{args.correlation:.0%} of images. Weights {args.weights}, {args.epochs} epochs, batch {args.batch_size}, "
        f"seed {args.seed}; the same 60/20/20 split for every model. {minutes:.1f} min in all.",
        "",
        "## Scores (the paper's table 2 layout; macro averages)",
        "",
        markdown_table(table[scores]),
        "",
        "## Where the models look, and what they need (test split)",
        "",
        "Grad-CAM energy: the share of the map on the grains or on the scale bar; `area` is what a "
        "uniform map would score. Accuracy drop: with the scale bar inpainted, and with an equal-area "
        "random region inpainted instead. A class relies on the scale bar when inpainting it costs at "
        "least 0.10 more true-class probability than the random region (`explain.audit`).",
        "",
        markdown_table(table[audit]),
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


def compare_models(models: list[str], out: Path, args: argparse.Namespace) -> list[dict]:
    """Writes the data, trains and audits every model; returns the comparison's rows."""
    manifest = write_data(out / "data", args.n, args.size, args.correlation, args.seed)
    runs = [train(model, manifest, out / "runs", args) for model in models]
    audit_data = audit_manifest(runs, manifest, out)
    rows = []
    for model, run in zip(models, runs):
        audit_out = out / "audits" / model
        verdicts = audit(model, run, audit_data, audit_out)
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append(model_row(model, metrics, pd.read_csv(audit_out / "audit.csv"), verdicts))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.compare",
        description="Reproduce the SedNet paper's comparison (SedNet, ResNet-50, EfficientNet-B2, MobileNet-V3) "
                    "on synthetic thin sections with a planted scale-bar shortcut, and audit each model's "
                    "Grad-CAM against the grain and scale-bar masks. Writes compare.csv and compare.md.")
    parser.add_argument("--out", default="compare", help="output folder (default compare)")
    parser.add_argument("--models", default=",".join(PAPER_MODELS),
                        help=f"comma-separated registry names (default {','.join(PAPER_MODELS)})")
    parser.add_argument("--weights", default="none",
                        help="none (default: train from scratch, backbones fully trainable) or imagenet "
                             "(needs a network: frozen pretrained backbones, as in the paper)")
    parser.add_argument("--n", type=int, default=600, help="synthetic images, balanced over six classes (default 600)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64; SedNet's crop is half)")
    parser.add_argument("--correlation", type=float, default=0.9,
                        help="share of images whose scale bar style follows the class (default 0.9)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per model (default 15)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, split and training (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models import MODELS

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        print(f"error: unknown model(s) {unknown}; choose from {sorted(MODELS)}.", file=sys.stderr)
        return 2
    if args.weights not in ("none", "imagenet") or not 0.0 <= args.correlation <= 1.0:
        print("error: --weights must be none or imagenet and --correlation lie in [0, 1].", file=sys.stderr)
        return 2
    started, out = time.perf_counter(), Path(args.out)
    try:
        table = pd.DataFrame(compare_models(models, out, args))
    except (RuntimeError, AuditError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table.to_csv(out / "compare.csv", index=False)
    (out / "compare.md").write_text(markdown(table, args, (time.perf_counter() - started) / 60))
    print("\n" + (out / "compare.md").read_text())
    print(f"Tables: {out / 'compare.csv'}, {out / 'compare.md'}; audits: {out / 'audits'}/<model>/audit.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
