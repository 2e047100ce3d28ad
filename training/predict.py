"""``python -m training.predict``: salt in whole seismic sections with a trained segmentation run
(and sea ice in whole AI4Arctic NetCDF scenes with a fusion run: ``--scene``).

Each section (SEG-Y, ``.npy``, 8/16-bit PNG/TIFF) is cut into overlapping patches at the
run's patch size, predicted in batches and blended back without seams; the patch size,
stride and normalisation are the run's unless given. Writes, per section, into ``--out``:
``<stem>_probability.npy`` (float32 salt probability), ``<stem>_mask.npy`` (bool, probability
above ``--threshold``, emptied below the run's ``empty_below``; predicted mirrored too for a run
of ``--tta``), ``<stem>.png`` (section, [truth,] prediction[, error]) and, when a
``--mask`` is given, ``<stem>_scores.json`` (Dice, IoU, PS). ``--cube survey.sgy --out salt.sgy``
predicts every inline (or crossline) of a 3D survey into a SEG-Y volume with the survey's own
headers (:mod:`datasets.survey`).
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from datasets.ai4arctic import (SAR_VARIABLES, chosen_variables, concentration, ice_from_concentration, ice_target,
                                open_scene, predict_scene, write_probability)
from datasets.images import UnreadableImageError, write_image
from datasets.seismic import (NORMALIZATIONS, add_segy_arguments, finite_samples, headers_from, read_labelled_section,
                              read_section)
from datasets.survey import DIRECTIONS, add_share_argument, map_survey
from explain.loading import ExplainError, load_run
from explain.sections import is_segmentation_model
from training.tasks.segment.metrics import concentration_scores, emptied_below, mask_scores
from training.tasks.segment import predict_section, section_picture
from training.tasks.segment.fusion import fusion_picture


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.predict",
        description="Predict salt in whole seismic sections with a run of `python -m training.run --task segment`: "
                    "overlapping patches, blended back; writes probability and mask (.npy), a picture and, with "
                    "--mask, Dice/IoU/PS.")
    parser.add_argument("--model", required=True, help="a segmentation run folder (holding model.keras)")
    parser.add_argument("--section", nargs="+", help="section file(s): .sgy/.segy, .npy, .png, .tif")
    parser.add_argument("--scene", nargs="+", help="a sea-ice (fusion_aspp) run: AI4Arctic NetCDF scene file(s), each "
                                                   "predicted whole, tile by tile; writes the ice probability (or, "
                                                   "for a run of --ice-target sic, the concentration) as .npy and as "
                                                   "NetCDF with the scene's geolocation, a picture (SAR HH, "
                                                   "radiometer, chart, prediction, error; at most 1000 px a side), "
                                                   "and, where the scene has a SIC chart, Dice/IoU/PS (and R2, RMSE) "
                                                   "over its valid pixels")
    parser.add_argument("--cube", help="a 3D SEG-Y survey instead: every inline (or crossline, --along) predicted and "
                                       "written as the SEG-Y --out (e.g. salt.sgy) with the survey's own headers, one "
                                       "line in memory at a time; a killed run started again goes on where it stopped")
    parser.add_argument("--along", choices=DIRECTIONS, default="inline",
                        help="with --cube: predict inlines or crosslines (default inline)")
    add_share_argument(parser, "predict")
    parser.add_argument("--mask", nargs="+", help="salt mask file(s), one per section, to score the prediction")
    parser.add_argument("--out", required=True, help="output folder, created, files of the same names replaced; with "
                                                     "--cube, the SEG-Y file to write")
    parser.add_argument("--stride", type=int, help="pixels between patch origins (default: the run's)")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, help="z-score per patch or section (default: the run's)")
    parser.add_argument("--threshold", type=float, default=0.5, help="salt where the probability exceeds it (0.5)")
    parser.add_argument("--batch-size", type=int, default=16, help="patches per batch (default 16)")
    add_segy_arguments(parser)
    return parser


def predict_file(run, section_path: str, mask_path: str | None, args: argparse.Namespace) -> dict | None:
    """Predicts one section and writes its files; returns its scores when a mask was given."""
    headers = headers_from(args, run.setting)
    if mask_path:
        amplitude, truth = read_labelled_section(section_path, mask_path, args.inline, args.crossline, headers)
    else:
        amplitude, truth = read_section(section_path, args.inline, args.crossline, headers), None
    amplitude = finite_samples(amplitude, section_path)
    patch = int(run.model.inputs[0].shape[1])
    probability = predict_section(run.model, amplitude, patch, args.stride or run.setting("stride", patch // 2),
                                  args.normalize or run.setting("normalize", "patch"), args.batch_size,
                                  verbose=1 if sys.stdout.isatty() else 0, mirror=run.setting("tta", False))
    out, stem = Path(args.out), Path(section_path).stem
    out.mkdir(parents=True, exist_ok=True)
    mask = emptied_below(probability > args.threshold, int(run.setting("empty_below", 0)))
    np.save(out / f"{stem}_probability.npy", probability)
    np.save(out / f"{stem}_mask.npy", mask)
    write_image(out / f"{stem}.png", section_picture(amplitude, truth, probability, mask))
    if truth is None:
        return None
    scores = mask_scores(truth, mask)
    (out / f"{stem}_scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def predict_scene_file(run, path: str, args: argparse.Namespace) -> dict:
    """Predicts one NetCDF scene whole and writes its files and a picture of it (at most
    ``OVERVIEW_SIDE`` pixels a side); returns its scores against its chart (none without one).
    A run that learnt the ice mask writes the ice probability (``<scene>_probability``); one that
    learnt the concentration writes it (``<scene>_concentration``, 0-1) and scores its R² and
    RMSE beside the ice mask it gives at the run's threshold."""
    scene = open_scene(path, *chosen_variables(run.setting("sar_variables", ",".join(SAR_VARIABLES)),
                                               run.setting("mwr_variables", "amsr2")), chart=False)
    threshold, regressed = run.setting("ice_threshold", 2), run.setting("ice_target", "ice") == "sic"
    out, stem, kind = Path(args.out), Path(path).stem, "concentration" if regressed else "probability"
    try:
        prediction = predict_scene(run.model, scene, args.batch_size)
        mask = ice_from_concentration(prediction, threshold) if regressed else prediction > args.threshold
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"{stem}_{kind}.npy", prediction)
        write_probability(out / f"{stem}_{kind}.nc", prediction, scene,
                          "sea_ice_concentration" if regressed else "ice_probability")
        step = scene.overview_step()
        overview = scene.overview(threshold, step)
        chart = scene.chart("SIC") if scene.has_chart else None
    finally:
        scene.close()
    shown = overview.concentration if regressed else overview.truth.astype(np.float32)
    write_image(out / f"{stem}.png", fusion_picture(overview, shown, prediction[::step, ::step], mask[::step, ::step]))
    if chart is None:
        return {}
    ice, valid = ice_target(chart, threshold)
    scores = mask_scores(ice, mask, valid)
    if regressed:
        scores |= concentration_scores([(concentration(chart), prediction, valid)])
    (out / f"{stem}_scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def predict_cube(run, args: argparse.Namespace) -> Path:
    """Every line of the survey ``--cube`` predicted into the SEG-Y ``--out`` (:func:`datasets.survey.map_survey`)."""
    patch = int(run.model.inputs[0].shape[1])
    stride = args.stride or run.setting("stride", patch // 2)
    normalize = args.normalize or run.setting("normalize", "patch")
    mirror = bool(run.setting("tta", False))
    model_file = run.path.resolve()
    signature = (f"salt probability of {model_file} ({model_file.stat().st_mtime}), patch {patch}, stride {stride}, "
                 f"{normalize}" + (", mirrored too" if mirror else ""))

    def probability(section: np.ndarray) -> np.ndarray:
        return predict_section(run.model, np.nan_to_num(section), patch, stride, normalize, args.batch_size,
                               mirror=mirror)

    return map_survey(args.cube, args.out, probability, signature, args.along, headers_from(args, run.setting),
                      share=args.share)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if sum(map(bool, (args.section, args.cube, args.scene))) != 1:
        parser.error("pass --section (one or more sections), --cube (a 3D SEG-Y survey) or --scene (NetCDF sea-ice "
                     "scenes, for a fusion run)")
    if args.cube and (args.mask or args.inline is not None or args.crossline is not None):
        parser.error("--cube predicts every line of the survey: --mask, --inline and --crossline go with --section")
    if args.mask and len(args.mask) != len(args.section):
        parser.error(f"{len(args.mask)} --mask file(s) for {len(args.section)} section(s): give one mask per section")
    try:
        run = load_run(args.model)
    except ExplainError as err:
        parser.error(str(err))
    two_sources = sorted(t.name for t in run.model.inputs) == ["mwr", "sar"]
    if two_sources != bool(args.scene):
        parser.error(f"{run.path} is a sea-ice run (inputs sar and mwr): pass --scene NetCDF files" if two_sources else
                     f"--scene goes with a sea-ice run of fusion_aspp; {run.path} takes "
                     f"{', '.join(t.name for t in run.model.inputs)}")
    if len(run.model.inputs) > 1 and not two_sources:
        parser.error(f"{run.path} takes {len(run.model.inputs)} inputs ({', '.join(t.name for t in run.model.inputs)}); "
                     "training.predict feeds seismic sections to a one-input segmentation run, or sea-ice scenes to a "
                     "fusion run.")
    if not two_sources and not is_segmentation_model(run.model):
        parser.error(f"{run.path} is not a segmentation model (its output is not one map per pixel); pass a run "
                     "of python -m training.run --task segment")
    if args.cube:
        try:
            written = predict_cube(run, args)
            if not args.share[0]:
                print(f"Salt probability of every {args.along} of {args.cube}: {written}", flush=True)
        except UnreadableImageError as err:
            print(f"error: {args.cube} {err}", file=sys.stderr)
            return 2
        return 0
    failed = 0
    for i, section_path in enumerate(args.scene or args.section):
        try:
            scores = (predict_scene_file(run, section_path, args) if args.scene else
                      predict_file(run, section_path, args.mask[i] if args.mask else None, args))
        except UnreadableImageError as err:
            print(f"error: {section_path}: {err}", file=sys.stderr)
            failed += 1
            continue
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items()) if scores else "no mask to score against"
        print(f"{section_path}: {shown}; files in {args.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
