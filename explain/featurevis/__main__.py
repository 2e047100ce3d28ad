"""``python -m explain.featurevis`` (first named ``explain.visualize``): what a trained model's
units and layers have learned.

Activation maximisation (AM) grids, per class or per channel of a layer, and network
inversion (NI) strips of given images over several layers (the salt thesis's figure 4
layout), as PNGs, each with its images as arrays in the model's input range (``.npz`` beside
the PNG), plus ``figures.csv`` with each picture's numbers: the objective reached and the
share of high-frequency energy for AM, the SSIM to the original and the relative feature
error for NI. See :mod:`explain.featurevis` for the methods and ``--help`` for the objectives.
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from datasets.images import UnreadableImageError
from datasets.pipeline import for_model, load_example, stack_inputs
from datasets.seismic import finite_samples, read_section, section_patches
from explain import LayerError
from explain.featurevis import (PARAMETRIZATIONS, Objective, Range, Transforms, VisualizeError,
                                activation_maximization, check_objectives, high_frequency_share, inputs_feeding,
                                named_layers, network_inversion, objective_scores, parse_objective)
from explain.featurevis.figures import save_grid
from explain.loading import ExplainError, LoadedModel, load_run, loaded_model
from explain.views import spatial_layers

OBJECTIVES_HELP = """objectives, comma-separated: a class index (1) is that class's logit (for a
per-pixel output, averaged over pixels); LAYER:C is the mean activation of channel C of a
layer (features:12); LAYER:C@ROW,COL is one neuron of that channel (features:12@3,4)"""
SEISMIC_RANGE = (-3.0, 3.0)  # z-scored amplitudes
IMAGE_RANGE = (0.0, 255.0)  # the project's image models take RGB in [0, 255]
INVERSION_LAYERS = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explain.featurevis",
        description="Feature visualisation of a trained model: activation maximisation (the input that most "
                    "excites a class, a channel or a neuron; Erhan et al. 2009, with the transformation "
                    "robustness and Fourier parametrisation of Olah et al. 2017) and network inversion (the "
                    "input whose activations at a layer match an image's; Mahendran & Vedaldi 2015). With "
                    "only --model and --out, every class is visualised.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="objectives:\n  " + OBJECTIVES_HELP.replace("\n", "\n  ") + "\n\nexamples:\n"
               "  python -m explain.featurevis --model RUN --out vis/                       # every class\n"
               "  python -m explain.featurevis --model RUN --channels features:0-15 --out vis/\n"
               "  python -m explain.featurevis --model RUN --invert a.png b.png --out vis/  # NI at 4 layers\n"
               "  python -m explain.featurevis --model RUN --objectives 1,features:3@2,2 --out vis/")
    parser.add_argument("--model", required=True, help="a run folder (holding model.keras) or a .keras file")
    parser.add_argument("--out", required=True, help="output folder; created, or reused without deleting anything")
    parser.add_argument("--classes", help="AM of these classes: indices or names, comma-separated, or 'all'")
    parser.add_argument("--channels", help="AM of a layer's channels: LAYER (its first 16) or LAYER:FROM-TO")
    parser.add_argument("--objectives", help="AM of any " + OBJECTIVES_HELP)
    parser.add_argument("--invert", nargs="+", metavar="IMAGE",
                        help="images to reconstruct by NI (RGB models: image files; one-channel seismic models: "
                             ".npy, SEG-Y or grey images, whose centre patch is taken)")
    parser.add_argument("--invert-layers", help=f"comma-separated layers for NI (default {INVERSION_LAYERS} 4-D "
                                                "layers spread from the first to `features`)")
    parser.add_argument("--invert-input", help="two-input models: the input reconstructed (default the first, "
                                               "e.g. SedNet's whole); the other is held at the image's")
    parser.add_argument("--hold", metavar="INPUT=IMAGE",
                        help="two-input models (SedNet): hold one input at an image's (e.g. local=clast.png) and "
                             "optimise the other; default both are optimised")
    parser.add_argument("--per-objective", type=int, default=1,
                        help="AM images per objective, each from its own noise (default 1)")
    parser.add_argument("--steps", type=int, default=256, help="optimisation steps (default 256)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    parser.add_argument("--parametrization", choices=PARAMETRIZATIONS, default="fourier",
                        help="AM image parameters: decorrelated Fourier (default) or pixels")
    parser.add_argument("--no-transforms", action="store_true",
                        help="AM by plain gradient ascent (no random jitter, scaling, rotation)")
    parser.add_argument("--polish", type=float, default=0.25,
                        help="share of the AM steps run last in pixels without transformations, gradients smoothed, "
                             "so patterns of a few pixels' period reach the unit's attainable objective (default "
                             "0.25; 0: Olah et al.'s images as published)")
    parser.add_argument("--l2", type=float, default=0.0, help="AM L2 penalty weight (default 0)")
    parser.add_argument("--tv", type=float, default=0.0, help="AM total-variation penalty weight (default 0)")
    parser.add_argument("--inversion-tv", type=float, default=0.05, help="NI total-variation weight (default 0.05)")
    parser.add_argument("--value-range", help="LOW,HIGH of the model's inputs (default -3,3 for one-channel "
                                              "seismic models, whose patches are z-scored; else 0,255)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and transformations (default 0)")
    parser.add_argument("--unsafe", action="store_true", help="allow models with Python lambdas (Keras safe_mode off)")
    return parser


def class_objectives(text: str, class_names: list[str]) -> list[int]:
    """``all``, or indices and names, as class indices."""
    if text.strip() == "all":
        return list(range(len(class_names)))
    indices = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        if item in class_names:
            indices.append(class_names.index(item))
        elif item.isdigit() and int(item) < len(class_names):
            indices.append(int(item))
        else:
            raise ExplainError(f"--classes {item!r}: use 'all', a class index below {len(class_names)} or one of "
                               f"{class_names}.")
    return indices


def channel_objectives(text: str, model: keras.Model) -> list[str]:
    """``LAYER`` (its first 16 channels) or ``LAYER:FROM-TO`` as channel objectives."""
    layer, _, span = text.partition(":")
    layers = named_layers(model)
    if layer not in layers:
        raise LayerError(f"--channels: model {model.name!r} has no layer {layer!r}. Candidates (last ones first): "
                         f"{', '.join(reversed(list(layers)[-12:]))}.")
    count = int(layers[layer].output.shape[-1])
    first, _, last = span.partition("-")
    try:
        start, stop = (int(first), int(last or first)) if span else (0, min(count, 16) - 1)
    except ValueError:
        raise ExplainError(f"--channels {text!r}: write LAYER or LAYER:FROM-TO, e.g. features:0-15.") from None
    if not 0 <= start <= stop < count:
        raise ExplainError(f"--channels {text!r}: layer {layer!r} has {count} channels (0 to {count - 1}).")
    return [f"{layer}:{c}" for c in range(start, stop + 1)]


def default_inversion_layers(model: keras.Model, input_name: str) -> list[str]:
    """Four 4-D layers that depend on ``input_name``, spread evenly over the model, ending at its
    last one before the head."""
    layers = named_layers(model)
    candidates = [name for name in spatial_layers(model) if input_name in inputs_feeding(model, name)
                  and not isinstance(layers.get(name), keras.layers.Rescaling)]
    if "features" in candidates:
        candidates = candidates[:candidates.index("features") + 1]
    picks = np.linspace(0, len(candidates) - 1, min(INVERSION_LAYERS, len(candidates))).round().astype(int)
    return [candidates[i] for i in dict.fromkeys(picks)]


def is_seismic(model: keras.Model) -> bool:
    return int(model.inputs[0].shape[-1]) == 1


def value_range(text: str | None, model: keras.Model) -> Range:
    if not text:
        return SEISMIC_RANGE if is_seismic(model) else IMAGE_RANGE
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ExplainError(f"--value-range {text!r}: write LOW,HIGH, e.g. 0,255.") from None
    if not low < high:
        raise ExplainError(f"--value-range {text!r}: LOW must be below HIGH.")
    return low, high


def read_inputs(paths: list[str], loaded: LoadedModel, normalize: str) -> dict[str, np.ndarray]:
    """The model's inputs for image files: a classifier's as in training (SedNet: its local crop
    too; a seismic patch z-scored whole); a segmentation model's, the centre patch of a
    section, z-scored as in training.

    Raises:
        ExplainError: a file cannot be read (the message names it).
    """
    per_pixel = len(loaded.model.outputs[0].shape) == 4
    examples = []
    for path in paths:
        try:
            examples.append(centre_patch(finite_samples(read_section(path), path), loaded.spec.image_size, normalize)
                            if per_pixel else load_example(path, np.full(4, np.nan, np.float32), loaded.spec))
        except UnreadableImageError as err:
            raise ExplainError(f"{path} {err}") from err
    return stack_inputs(examples, loaded.spec)


def centre_patch(amplitude: np.ndarray, size: int, normalize: str) -> tuple[np.ndarray]:
    """The section's patch nearest its centre, cut and z-scored as in training."""
    tiles, origins, _ = section_patches(amplitude, size, size, normalize)
    centre = np.array(amplitude.shape) / 2 - size / 2
    return (tiles[np.argmin(np.abs(origins - centre).sum(axis=1))],)


def parse_hold(text: str | None, loaded: LoadedModel, normalize: str) -> dict[str, np.ndarray] | None:
    """``INPUT=IMAGE`` as {input: that input's array for the image}."""
    if not text:
        return None
    name, _, path = text.partition("=")
    if name not in loaded.spec.input_names or not path:
        raise ExplainError(f"--hold {text!r}: write INPUT=IMAGE with INPUT one of {list(loaded.spec.input_names)}.")
    return {name: read_inputs([path], loaded, normalize)[name]}


def am_figures(loaded: LoadedModel, objectives: list, title: str, stem: str, out: Path, args, hold) -> list[dict]:
    """AM of ``objectives``: one grid PNG (a row per optimised input) and its CSV rows."""
    print(f"Activation maximisation: {title} ({len(objectives)} image(s), {args.steps} steps)", flush=True)
    images = activation_maximization(
        loaded.model, objectives, steps=args.steps, learning_rate=args.lr, parametrization=args.parametrization,
        transforms=None if args.no_transforms else Transforms(), l2=args.l2, tv=args.tv, polish=args.polish,
        value_range=args.range, hold=hold, seed=args.seed, progress=True)
    per_input = ({name: images[name] for name in loaded.spec.input_names if name in images}
                 if isinstance(images, dict) else {loaded.spec.input_names[0]: images})
    reached = objective_scores(loaded.model, {**(hold or {}), **per_input}, objectives)
    names = [loaded.class_names[o] if isinstance(o, int) else str(parse_objective(o)) for o in objectives]
    np.savez(out / f"{stem}.npz", **per_input)
    path = save_grid([list(x) for x in per_input.values()], out / f"{stem}.png", args.range,
                     row_titles=list(per_input) if len(per_input) > 1 else (), column_titles=names,
                     captions=[[f"{v:.3g}" for v in reached]] * len(per_input), title=title)
    shares = np.mean([high_frequency_share(x) for x in per_input.values()], axis=0)
    return [{"figure": path.name, "kind": "activation_maximization", "objective": name, "score": float(v),
             "high_frequency_share": float(s)} for name, v, s in zip(names, reached, shares)]


def inversion_figure(loaded: LoadedModel, images: dict[str, np.ndarray], name: str, layers: list[str],
                     paths: list[str], out: Path, args) -> list[dict]:
    """NI of input ``name`` of each image at each layer: one strip per image (original, then the
    layers) in one PNG."""
    results = []
    for layer in layers:
        print(f"Network inversion at {layer} ({len(paths)} image(s), {args.steps} steps)", flush=True)
        results.append(network_inversion(loaded.model, for_model(images), layer, steps=args.steps,
                                         learning_rate=args.lr, tv=args.inversion_tv, value_range=args.range,
                                         input_name=name, seed=args.seed, progress=True))
    np.savez(out / "inversion.npz", original=images[name], **{r.layer: r.images for r in results})
    cells = [[images[name][i], *(r.images[i] for r in results)] for i in range(len(paths))]
    captions = [["", *(f"SSIM {r.ssim[i]:.2f}" for r in results)] for i in range(len(paths))]
    figure = save_grid(cells, out / "inversion.png", args.range, row_titles=[Path(p).stem for p in paths],
                       column_titles=["original", *layers], captions=captions, title="Network inversion")
    return [{"figure": figure.name, "kind": "network_inversion", "image": path, "layer": r.layer,
             "ssim": float(r.ssim[i]), "feature_error": float(r.feature_error[i])}
            for r in results for i, path in enumerate(paths)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        if args.steps < 1 or args.per_objective < 1:
            raise ExplainError(f"--steps and --per-objective must be >= 1; got {args.steps}, {args.per_objective}.")
        if not 0 <= args.polish < 1:
            raise ExplainError(f"--polish is a share of the steps, from 0 to below 1; got {args.polish}.")
        run = load_run(args.model, args.unsafe)
        loaded, normalize = loaded_model(run), run.setting("normalize", "patch")
        args.range = value_range(args.value_range, loaded.model)
        hold = parse_hold(args.hold, loaded, normalize)
        jobs = []
        if args.classes or not (args.channels or args.objectives or args.invert):
            jobs.append((class_objectives(args.classes or "all", loaded.class_names), "classes", "am_classes"))
        if args.channels:
            jobs.append((channel_objectives(args.channels, loaded.model), f"channels of {args.channels}",
                         "am_channels"))
        if args.objectives:
            jobs.append(([o.strip() for o in args.objectives.split(",") if o.strip()], "objectives",
                         "am_objectives"))
        inverted = read_inputs(args.invert, loaded, normalize) if args.invert else None
        inverted_input = args.invert_input or loaded.spec.input_names[0]
        if inverted_input not in loaded.spec.input_names:
            raise ExplainError(f"--invert-input {inverted_input!r}: the model takes {list(loaded.spec.input_names)}.")
        layers = ([l.strip() for l in args.invert_layers.split(",")] if args.invert_layers
                  else default_inversion_layers(loaded.model, inverted_input))
        check_objectives(loaded.model, [parse_objective(o) for objectives, _, _ in jobs for o in objectives]
                         + [Objective(layer, 0) for layer in (layers if inverted is not None else [])])
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for objectives, title, stem in jobs:
            repeated = [o for o in objectives for _ in range(args.per_objective)]
            rows += am_figures(loaded, repeated, title, stem, out, args, hold)
        if inverted is not None:
            rows += inversion_figure(loaded, inverted, inverted_input, layers, args.invert, out, args)
    except (ExplainError, LayerError, VisualizeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pd.DataFrame(rows).to_csv(out / "figures.csv", index=False)
    print(f"Pictures: {', '.join(sorted(set(r['figure'] for r in rows)))} in {out}\nNumbers: {out / 'figures.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
