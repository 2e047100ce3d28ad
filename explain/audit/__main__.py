"""``python -m explain.audit``: does a model decide on the evidence or on a shortcut?

Measures with :mod:`explain.audit` (see there for what and why) and writes
``audit_images.csv`` (one row per image), ``audit.csv`` (the summary, long format: class,
method, mask, metric, value, images), ``audit.json`` (verdicts, summary, sanity check,
settings) and ``audit.html`` (one page, with example overlays).
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import sys
from pathlib import Path

from datasets.tables import DataError
from explain import LayerError
from explain.audit import AuditError, AuditSettings, parse_masks, run_audit
from explain.loading import ExplainError, add_model_arguments, parse_methods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explain.audit",
        description="Audit a trained classifier's explanations against ground-truth masks: energy in mask, "
                    "pointing game and relevance rank per mask, explainer and class; deletion and insertion "
                    "AUC; and an intervention test that inpaints the 'shortcut' mask's region, against an "
                    "equal-area random region, with a verdict per class. Writes audit.csv, audit.json, "
                    "audit_images.csv and audit.html.")
    add_model_arguments(parser, "layer for CAM methods (default features)")
    parser.add_argument("--data", required=True, help="a labelled CSV manifest with mask columns, or a folder "
                        "holding manifest.csv (as python -m datasets.synthetic writes)")
    parser.add_argument("--masks", required=True, help="NAME=COLUMN pairs, e.g. evidence=grain_mask,"
                        "shortcut=scale_bar_mask; the mask named 'shortcut' gets the intervention test and verdicts")
    parser.add_argument("--target", choices=("pred", "label"), default="pred",
                        help="explain the predicted (default) or the true class")
    parser.add_argument("--split", help="only the manifest rows of this split (train, val or test)")
    parser.add_argument("--deletion-steps", type=int, default=16,
                        help="portions of the image deleted/inserted for the AUCs (default 16; 0 skips them)")
    parser.add_argument("--tolerance", type=int, help="pointing-game tolerance in model pixels (default: "
                        "15 px at 224 px, scaled to the model's input)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random regions (default 0)")
    parser.add_argument("--examples", type=int, default=2, help="example overlays per class (default 2)")
    parser.add_argument("--sanity-images", type=int, default=8, help="images for the weight-randomisation "
                        "sanity check of each method (default 8; 0 skips it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.batch_size < 1 or min(args.deletion_steps, args.examples, args.sanity_images) < 0:
            raise AuditError("--batch-size must be >= 1; --deletion-steps, --examples and --sanity-images >= 0.")
        settings = AuditSettings(parse_methods(args.methods), args.layer, args.target, args.deletion_steps,
                                 args.tolerance, args.batch_size, args.seed, args.examples, args.sanity_images)
        decided = run_audit(args.model, args.data, parse_masks(args.masks), settings, Path(args.out), args.split,
                            args.unsafe)
    except (AuditError, ExplainError, DataError, LayerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for verdict in decided.values():
        print(verdict["verdict"])
    print(f"Report: {Path(args.out) / 'audit.html'}; tables: audit.csv, audit.json, audit_images.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
