"""``python -m explain.concepts``: name what a regression model sees by texture concepts;
the method is described in :mod:`explain.concepts`, the outputs in :mod:`explain.concepts.report`."""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import sys
from functools import partial
from pathlib import Path

from datasets.tables import DataError, write_bad_files
from explain import DEFAULT_LAYER, LayerError
from explain.concepts import (METRICS, SALIENCY, analyse, cached_salient_features, read_data, read_properties,
                              read_textures)
from explain.concepts.report import write_report
from explain.loading import ExplainError, load_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explain.concepts",
        description="Name what a regression model sees: its features at each image's Fast-CAM peak, stage by "
                    "stage, against a reference set of describable textures; per lot the class-averaged distances, "
                    "and per texture class its affinity with the target (positive: lots with a higher target look "
                    "more like it). Writes CSVs, PNG charts, neighbour grids and report.html.")
    parser.add_argument("--model", required=True, help="a --task regress run folder (holding model.keras) or a .keras file")
    parser.add_argument("--data", required=True, help="CSV manifest: path, the target column, and the lot column")
    parser.add_argument("--textures", required=True, help="folder of texture class folders (DTD images/ works as is)")
    parser.add_argument("--out", required=True, help="output folder; created, or reused without deleting anything")
    parser.add_argument("--target-column", help="the manifest's numeric column (default: the run's, else cps)")
    parser.add_argument("--group-column", default="auto",
                        help="the lots: auto (lot when present), none (each image its own lot), or a column name")
    parser.add_argument("--k", type=int, default=5, help="nearest textures per class and per image (default 5)")
    parser.add_argument("--metric", choices=METRICS, default="euclidean", help="distance (default euclidean: L2)")
    parser.add_argument("--saliency", choices=SALIENCY, default="fastcam",
                        help="where features are read: fastcam (the peak of plain Fast-CAM, as the study; default), "
                             "raise or lower (the peak of Fast-CAM gated by the Grad-CAM of what raises, or lowers, "
                             "the prediction)")
    parser.add_argument("--properties", default="",
                        help="more numeric manifest columns (comma-separated, e.g. measured porosity, or the "
                             "synthetic lots' pitting,cracks): each texture's affinity with each one's lot means, "
                             "per stage, beside the target's, in texture_properties.csv, to see which a texture "
                             "follows")
    parser.add_argument("--layer", default=DEFAULT_LAYER,
                        help="the deepest stage; the four resolutions above it are the others (default features)")
    parser.add_argument("--grids", type=int, default=6,
                        help="neighbour grids to draw: the images of the strongest and weakest lots (default 6)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--unsafe", action="store_true", help="allow models with Python lambdas (Keras safe_mode off)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.k < 1 or args.batch_size < 1 or args.grids < 0:
            raise ExplainError(f"--k and --batch-size must be >= 1 and --grids >= 0; got {args.k}, {args.batch_size}, "
                               f"{args.grids}.")
        loaded = load_model(args.model, args.unsafe)
        if args.saliency != "fastcam" and not loaded.target_name:
            raise ExplainError(f"--saliency {args.saliency} gates Fast-CAM by what {args.saliency}s a regressor's "
                               f"output; {args.model} is a classifier, so pass --saliency fastcam.")
        target_column = args.target_column or loaded.target_name or "cps"
        textures = read_textures(args.textures)
        data = read_data(args.data, target_column, args.group_column)
        model_path = Path(args.model) / "model.keras" if Path(args.model).is_dir() else Path(args.model)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        bad = [{"path": row.path, "reason": row.problem} for row in data.itertuples() if isinstance(row.problem, str)]
        properties = [name.strip() for name in args.properties.split(",") if name.strip()]
        usable = read_properties(data[data["problem"].isna()].reset_index(drop=True), properties, args.data)
        run = partial(cached_salient_features, loaded, model_path, cache=out / "cache", layer=args.layer,
                      batch_size=args.batch_size, bad=bad, saliency=args.saliency)
        data_features = run(table=usable, name="data")
        texture_features = run(table=textures, name="textures")
    except (ExplainError, DataError, LayerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(write_bad_files(bad, out / "bad_files.csv"))
    analysis = analyse(usable, data_features, textures, texture_features, args.k, args.metric, target_column,
                       args.saliency, tuple(properties))
    report = write_report(analysis, out, args.grids)
    strength = analysis.strength["combined"]
    print(f"Most related to high {target_column}: {', '.join(strength.index[:3])}; to low: "
          f"{', '.join(strength.index[::-1][:3])}.\nReport: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
