"""``python -m explain.zscores``: which inputs of a model's linear head matter, by Z-scores.

Writes ``zscores.csv`` (per output and head input: group, coefficient c, sigma, the paper's
Z = c / sigma, the standardised c * sigma, dead), ``groups.csv`` (per output and group: summed
|Z| and |c * sigma|, the standard deviation of the group's summed contribution, and their
shares), and per output ``<output>_sorted.png`` (fig. 2) and
``<output>_groups.png`` (fig. 3).
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import sys
from pathlib import Path

import keras

from datasets.tables import DataError, write_bad_files
from explain.loading import ExplainError, load_run
from explain.zscores import ZScoreError, ZScores, find_linear_head, input_groups, parse_groups, zscores
from explain.zscores.data import model_batches
from explain.zscores.figures import group_sums_figure, sorted_scores_figure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explain.zscores",
        description="Z-scores of a model's last linear layer (Malmgren-Hansen et al.): per input i of the layer and "
                    "output k, Z = c_ik / sigma_i (the paper's eq. 2) and the standardised coefficient c_ik * sigma_i "
                    "(the logit's change per standard deviation of the input), with sigma_i streamed over the data "
                    "(over pixels; an upsampled input at its own resolution). Inputs are grouped by the layers "
                    "concatenated into the head (fusion_aspp: scale0, scale2..scale16, mwr).")
    parser.add_argument("--model", required=True, help="a run folder (holding model.keras) or a .keras file")
    parser.add_argument("--out", required=True, help="folder for the CSVs and charts (created)")
    parser.add_argument("--data", default=None,
                        help="the data to take the standard deviations over: a sar,mwr[,mask] manifest (two-source "
                             "models), an image folder or manifest (classifiers), or synthetic:NAME (default: the "
                             "run's own training data)")
    parser.add_argument("--layer", default=None, help="the linear layer (default: the last Dense or 1x1 convolution "
                                                      "before the output, e.g. fusion_aspp's mixing)")
    parser.add_argument("--groups", default=None,
                        help="NAME:FROM-TO,... inclusive input indices of the layer, instead of the concatenated layers")
    parser.add_argument("--max-samples", type=int, default=None, help="read at most this many samples (default all)")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per batch (default 16)")
    parser.add_argument("--unsafe", action="store_true", help="load models holding Python code (Lambda layers)")
    return parser


def run(args: argparse.Namespace) -> tuple[ZScores, list[dict]]:
    if args.batch_size < 1 or (args.max_samples is not None and args.max_samples < 1):
        raise ExplainError("--batch-size and --max-samples must be >= 1.")
    loaded = load_run(args.model, args.unsafe)
    head = find_linear_head(loaded.model, args.layer)
    groups = parse_groups(args.groups) if args.groups else None
    bad: list[dict] = []
    source, batches = model_batches(loaded, args.data, args.batch_size, bad, args.max_samples)
    found = input_groups(head)
    print(f"Z-scores of {head.name!r} ({found[-1].stop} inputs in groups "
          f"{', '.join(g.name for g in found)}) over {source} ...", flush=True)
    units = int(head.kernel.shape[-1])
    outputs = loaded.class_names if len(loaded.class_names) == units else [f"class_{k}" for k in range(units)]
    return zscores(loaded.model, _counted(batches), head.name, groups, outputs), bad


def _counted(batches):
    progress = keras.utils.Progbar(None, unit_name="batch")
    for batch in batches:
        yield batch
        progress.add(1)
    print(flush=True)


def write_outputs(result: ZScores, out: Path) -> list[str]:
    """The CSVs and charts; returns the summary lines."""
    out.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out / "zscores.csv", index=False)
    groups = result.groups
    groups.to_csv(out / "groups.csv", index=False)
    lines = []
    for output in dict.fromkeys(result.table["output"]):
        sorted_scores_figure(result.table, output).savefig(out / f"{output}_sorted.png", dpi=110)
        group_sums_figure(groups, output).savefig(out / f"{output}_groups.png", dpi=110)
        rows = groups[groups["output"] == output]
        for column, title in (("share_z", "Z = c/sigma"), ("share_standardized", "c*sigma"),
                              ("share_contribution", "std of the group's contribution")):
            ranked = rows.sort_values(column, ascending=False)
            lines.append(f"{output}, {title}: " + ", ".join(f"{g} {s:.2f}" for g, s in zip(ranked["group"],
                                                                                        ranked[column])))
    dead = result.table[result.table["dead"]].drop_duplicates("input")
    if len(dead):
        lines.append(f"{len(dead)} input(s) have zero variance (dead or constant; left out of the sums): "
                     + ", ".join(f"{g}[{c}]" for g, c in zip(dead["group"], dead["channel"])))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result, bad = run(args)
        lines = write_outputs(result, Path(args.out))
    except (ExplainError, ZScoreError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if bad:
        print(write_bad_files(bad, Path(args.out) / "bad_files.csv"))
    print("Share of the summed |score| per group:\n  " + "\n  ".join(lines))
    print(f"Tables and charts: {args.out}/ (zscores.csv, groups.csv, *_sorted.png, *_groups.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
