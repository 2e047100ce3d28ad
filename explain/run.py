"""``python -m explain.run``: explain a trained model's decisions on a folder of images (or, for a
segmentation run, on whole seismic sections: ``--sections``, see :mod:`explain.sections`).

Writes, per image and method, an overlay PNG at the image's own resolution and the raw map
(``.npy``, model resolution); ``explanations.csv`` with the prediction and, per method, the
map's peak and entropy; and ``gallery.html`` with each class's true positives, false
positives and false negatives. A regression run (``--task regress``) is explained by the sign
of its output (``--target raise`` or ``lower``); its table holds the predicted and true values
and its gallery runs from the highest prediction to the lowest. Images stream through in
batches, so memory stays flat in the number of images. See ``--help``.
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.images import UnreadableImageError, read_each
from datasets.pipeline import read_source
from datasets.seismic import add_segy_arguments, finite_samples, headers_from, read_section
from datasets.survey import DIRECTIONS, add_share_argument, map_survey
from datasets.tables import DataError, list_images, read_listed, write_bad_files, write_csv
from explain import LayerError
from explain.gallery import write_gallery, write_regression_gallery
from explain.images import explain_images, parse_target
from explain.loading import (ExplainError, add_model_arguments, load_detector, load_model, load_run, parse_methods,
                             require_layer)
from explain.sections import explain_section, is_segmentation_model, write_section_maps
from explain.tiled import explain_tiled, write_tiled
from explain.two_stage import DEFAULT_MIN_SCORE, run_two_stage, write_two_stage_outputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explain.run",
        description="Explain a trained model's decisions: heatmap overlays, raw maps, explanations.csv "
                    "and an HTML gallery of true positives, false positives and false negatives per class.")
    add_model_arguments(parser, "layer to explain for CAM methods (default features; SedNet: each input's "
                                "branch layer)", model_required=False)
    parser.add_argument("--images",
                        help="a folder of images (flat or class sub-folders) or a CSV manifest (path[,label][,box]; "
                             "for a regression run, the run's target column gives each image's true value)")
    parser.add_argument("--sections", nargs="+",
                        help="segmentation runs: seismic section file(s) (.sgy/.segy, .npy, .png, .tif), explained "
                             "whole: each of the run's patches explains the salt it predicts (Seg-Grad-CAM), the "
                             "maps are blended back; try --layer stage4_out for the encoder's bottleneck")
    parser.add_argument("--cube", help="segmentation runs: a 3D SEG-Y survey explained line by line (--along) into the "
                                       "SEG-Y --out (e.g. why.sgy) with the survey's headers, one method: an explanation "
                                       "volume to load beside the seismic; a killed run started again goes on")
    parser.add_argument("--along", choices=DIRECTIONS, default="inline",
                        help="with --cube: explain inlines or crosslines (default inline)")
    add_share_argument(parser, "explain")
    parser.add_argument("--target", default="pred", help="class to explain: pred (predicted), label (true), "
                        "or a class index or name (default pred); for a regression run, raise (what raises the "
                        "prediction, the default) or lower (what lowers it)")
    parser.add_argument("--tile", type=int, help="large images: cut each into SIZE x SIZE tiles of source pixels "
                        "(the training resolution: the size of the images the model was trained on), classify "
                        "and explain every tile and blend the results back: a class map, per-class probability "
                        "maps, the image-level vote and full-resolution heatmaps (classes/, <method>/)")
    parser.add_argument("--stride", type=int, help="with --tile: pixels between tile origins (default half a tile)")
    two_stage = parser.add_argument_group(
        "two-stage pipeline", "detect the clasts, crop each with a margin, classify its shear sense and explain "
        "the crop, mapped back into the photomicrograph (annotated/, crops/, detections.csv, no_detections.csv, "
        "gallery.html)")
    two_stage.add_argument("--detector", help="run folder of `python -m training.run --task detect`")
    two_stage.add_argument("--classifier", help="run folder of the shear-sense classifier (same as --model)")
    two_stage.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                           help=f"keep detections scoring at least this (default {DEFAULT_MIN_SCORE})")
    add_segy_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    classifier = args.classifier or args.model
    if not classifier:
        parser.error("pass --model (or, with --detector, --classifier)")
    if sum(map(bool, (args.images, args.sections, args.cube))) != 1 or (args.detector and not args.images):
        parser.error("pass --images (classifiers, the two-stage pipeline), --sections or --cube (segmentation runs)")
    if args.detector:
        return two_stage_main(args, classifier)
    if args.sections or args.cube:
        return sections_main(args)
    if args.tile is not None or args.stride is not None:
        return tiled_main(args)
    try:
        methods = parse_methods(args.methods)
        if args.batch_size < 1:
            raise ExplainError(f"--batch-size must be >= 1; got {args.batch_size}.")
        table = list_images(args.images)
        loaded = load_model(args.model, args.unsafe)
        target = parse_target(args.target, loaded)
        require_layer(loaded.model, methods, args.layer)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        print(f"Explaining {len(table)} image(s) with {', '.join(methods)} ...", flush=True)
        explanations, bad = explain_images(loaded, table, methods, out, target, args.layer, args.batch_size)
    except (ExplainError, DataError, LayerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(write_bad_files(bad, out / "bad_files.csv"))
    write_csv(explanations.drop(columns=[f"{m}_overlay" for m in methods]), out / "explanations.csv")
    gallery = None
    if not explanations.empty:
        gallery = (write_regression_gallery(explanations, out, methods, loaded.target_name) if loaded.target_name
                   else write_gallery(explanations, out, methods))
    print(f"Overlays and raw maps: {out}/<method>/\nTable: {out / 'explanations.csv'}")
    if gallery:
        print(f"Gallery: {gallery}")
    return 0


def tiled_main(args: argparse.Namespace) -> int:
    """``--tile SIZE [--stride S]``: each image classified and explained tile by tile (:mod:`explain.tiled`)."""
    try:
        methods = parse_methods(args.methods)
        tile, stride = args.tile, args.stride
        if tile is None or tile < 8 or stride is not None and not 1 <= stride <= tile:
            raise ExplainError(f"--tile must be at least 8 px and --stride between 1 and the tile; got --tile {tile} "
                               f"--stride {stride}.")
        table = list_images(args.images)
        loaded = load_model(args.model, args.unsafe)
        if loaded.target_name:
            raise ExplainError(f"--tile classifies every tile; {args.model} regresses {loaded.target_name}. "
                               "Explain whole images without --tile.")
        target = parse_target(args.target, loaded)
        if target == "label":
            raise ExplainError("--target label is not available with --tile: tiles have no labels of their own; "
                               "use pred or a class.")
        require_layer(loaded.model, methods, args.layer)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
    except (ExplainError, DataError, LayerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows, bad = [], []
    read = partial(read_listed, min_size=loaded.spec.min_source_size,  # smaller than a tile: mirror-padded
                   read=partial(read_source, spec=loaded.spec))
    for row, image in read_each(table.itertuples(index=False), bad, read=read):
        stem = f"{len(rows):05d}_{Path(row.path).stem}"
        print(f"[{len(rows) + len(bad) + 1}/{len(table)}] {row.path} ({image.shape[1]}x{image.shape[0]} px)", flush=True)
        result = explain_tiled(loaded, image, methods, tile, stride, None if target == "pred" else target,
                               args.layer, args.batch_size, progress=True)
        label = None if pd.isna(row.label) else row.label
        record = {"file": row.path, "label": label, **write_tiled(out, stem, image, result, loaded.class_names)}
        rows.append({**record, "correct": None if label is None else label == record["predicted"]})
    print(write_bad_files(bad, out / "bad_files.csv"))
    explanations = pd.DataFrame(rows)
    write_csv(explanations.drop(columns=[f"{m}_overlay" for m in methods], errors="ignore"), out / "explanations.csv")
    print(f"Class maps: {out / 'classes'}/; heatmaps: {out}/<method>/; table: {out / 'explanations.csv'}")
    if not explanations.empty:
        print(f"Gallery: {write_gallery(explanations, out, methods)}")
    return 0


def sections_main(args: argparse.Namespace) -> int:
    """``--sections`` (or ``--cube``): tiled Seg-Grad-CAM of whole sections with a segmentation run."""
    try:
        methods = parse_methods(args.methods)
        if args.cube and len(methods) > 1:
            raise ExplainError(f"--cube writes one volume: pass one method, not {', '.join(methods)}.")
        run = load_run(args.model, args.unsafe)
        if not is_segmentation_model(run.model):
            raise ExplainError(f"{run.path} is not a segmentation model; --sections and --cube take a run of "
                               "python -m training.run --task segment (use --images for classifiers).")
        require_layer(run.model, methods, args.layer)
    except (ExplainError, LayerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.cube:
        return explain_cube(run, methods[0], args)
    out, failed = Path(args.out), 0
    for path in args.sections:
        try:
            amplitude = finite_samples(read_section(path, args.inline, args.crossline, headers_from(args, run.setting)),
                                    path)
        except UnreadableImageError as err:
            print(f"error: {path} {err}", file=sys.stderr)
            failed += 1
            continue
        maps = explain_section(run.model, amplitude, methods, run.setting("stride", 32),
                               run.setting("normalize", "patch"), args.layer, args.batch_size)
        write_section_maps(out, Path(path).stem, amplitude, maps)
        print(f"{path}: {', '.join(f'{out / m / Path(path).stem}.png' for m in methods)}", flush=True)
    return 1 if failed else 0


def explain_cube(run, method: str, args: argparse.Namespace) -> int:
    """``--cube``: ``method``'s map of the predicted salt for every line of a survey, as a SEG-Y volume."""
    stride, normalize = run.setting("stride", 32), run.setting("normalize", "patch")
    model_file = run.path.resolve()
    signature = (f"{method} at {args.layer} of {model_file} ({model_file.stat().st_mtime}), stride {stride}, "
                 f"{normalize}")

    def explanation(section: np.ndarray) -> np.ndarray:
        return explain_section(run.model, np.nan_to_num(section), [method], stride, normalize, args.layer,
                               args.batch_size)[method]

    try:
        out = map_survey(args.cube, args.out, explanation, signature, args.along, headers_from(args, run.setting),
                         share=args.share)
    except UnreadableImageError as err:
        print(f"error: {args.cube} {err}", file=sys.stderr)
        return 2
    if not args.share[0]:
        print(f"{method} of every {args.along} of {args.cube}: {out}", flush=True)
    return 0


def two_stage_main(args: argparse.Namespace, classifier_path: str) -> int:
    """``--detector DET --classifier CLS``: see :mod:`explain.two_stage`."""
    try:
        methods = parse_methods(args.methods)
        if len(methods) != 1 or not 0 <= args.min_score <= 1:
            raise ExplainError(f"The two-stage pipeline takes one --methods entry and --min-score in [0, 1]; "
                               f"got {methods} and {args.min_score}.")
        table = list_images(args.images)
        classifier = load_model(classifier_path, args.unsafe)
        if classifier.target_name:
            raise ExplainError(f"--classifier {classifier_path} regresses {classifier.target_name}; the two-stage "
                               "pipeline names the shear sense of each detection, so pass a --task classify run.")
        require_layer(classifier.model, methods, args.layer)
        detector = load_detector(args.detector)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        print(f"Detecting and classifying in {len(table)} image(s), explaining with {methods[0]} ...", flush=True)
        detections, empty, bad = run_two_stage(detector, classifier, table, out, methods[0], args.layer,
                                               args.min_score, args.batch_size)
    except (ExplainError, DataError, LayerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_two_stage_outputs(out, detections, empty, bad, methods[0])
    print(f"{len(detections)} detection(s) in {detections['file'].nunique()} image(s); table: "
          f"{out / 'detections.csv'}; annotated images: {out / 'annotated'}/")
    if len(empty):
        print(f"{len(empty)} image(s) without any detection (score >= {args.min_score}): {out / 'no_detections.csv'}")
    if len(bad):
        print(f"Skipped {len(bad)} unreadable image(s); see {out / 'bad_files.csv'}")
    if not detections.empty:
        print(f"Gallery: {out / 'gallery.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
