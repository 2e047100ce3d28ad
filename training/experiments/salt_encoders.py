"""The salt thesis's feature visualisations, reproduced (``python -m training.experiments salt-encoders``).

The thesis asks whether an encoder trained to *segment* salt has learned more than one
trained to *classify* patches. It trains the U-Net-ResNet34, puts its encoder under a
classifier head ("is more than 20 % of this patch salt?") and compares with the same
classifier trained from scratch, by two feature visualisations
(:mod:`explain.featurevis`): activation maximisation (AM) of class "salt" (the segmentation
encoder shows one sharp salt body, the scratch classifier a vague discontinuity) and network
inversion (NI) at each encoder stage (the segmentation encoder keeps the input almost intact
at depth, the classifier loses detail from shallow layers on).

This command does the same on the synthetic seismic sections: it trains (or reuses) a
segmentation run with the settings of the salt-losses experiment, cuts its sections into
labelled patches (split as the run split them), trains both classifiers on the same patches
with the same budget (the transferred one first with its encoder frozen, then all layers at a
tenth of the learning rate), and writes AM and NI pictures, the SSIM of every inversion per
stage, and whether the thesis's finding holds (``compare_encoders.md``).

With ``--patches DATA`` the classifiers learn the thesis's second data set instead: seismic
facies patches (LANDMASS's four classes, or ``synthetic:seismic_facies``), read as
``--task classify`` reads one-channel patches (split by class, z-scored per patch, resized
to the U-Net's patch side), with one AM picture per class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from datasets.pipeline import load_example
from datasets.tables import DataError
from explain import LayerError
from explain.featurevis import Objective, VisualizeError, activation_maximization, check_objectives, network_inversion
from explain.featurevis.figures import save_grid
from models.saving import ModelFileError, load_keras_file
from models.unet import build_resnet34_classifier, copy_encoder, encoder_layers
from training.config import parse_config
from training.experiments import (Experiment, Finding, Result, comma_list, markdown_table, register_experiment,
                                  train_or_reuse)
from training.experiments.salt_losses import add_segmentation_arguments, run_name, train_argv, write_data
from training.tasks import TASKS
from training.tasks.classify import label_indices
from training.tasks.segment import prepare_segmentation_data

ZSCORE_RANGE = (-3.0, 3.0)  # patches are z-scored: AM and NI images stay within three deviations
STAGES = ("stem_out", "stage1_out", "stage2_out", "stage3_out", "stage4_out")
CLASS_NAMES = ["no_salt", "salt"]
NO_BOX = np.full(4, np.nan, np.float32)


def segmentation_run(args: argparse.Namespace) -> Path:
    """The U-Net run whose encoder is transferred: ``--segmentation``, or the salt-losses
    experiment's bce run (trained, or reused when it finished with the same settings)."""
    if args.segmentation:
        return Path(args.segmentation)
    manifest = write_data(args.out / "data", args.n, args.size, args.seed)
    settings = argparse.Namespace(**{**vars(args), "stride": 32, "batch_size": 16})
    return train_or_reuse("segmentation", train_argv("bce", manifest, settings),
                          args.out / "runs" / run_name("bce"))


def labelled_patches(run: Path, stride: int, salt_share: float, out: Path) -> dict[str, tuple[np.ndarray, ...]]:
    """Per split, the run's sections cut into patches every ``stride`` pixels, their labels (1
    where more than ``salt_share`` of the patch is salt) and their salt shares."""
    config = parse_config(["--config", str(run / "config.yaml"), "--stride", str(stride)], TASKS)
    data = prepare_segmentation_data(Path(config.data), config, out)
    labelled = {}
    for split in ("train", "val", "test"):
        patches, masks = data.patches(split)
        shares = masks.mean(axis=(1, 2, 3))
        labelled[split] = patches, (shares > salt_share).astype(np.int32), shares
    return labelled


def facies_patches(source: str, size: int, seed: int, out: Path) -> tuple[dict[str, tuple], list[str]]:
    """Per split, a classify data set's seismic patches (``--patches``) at ``size`` pixels, their
    class indices and no salt shares, and the class names; split and checked as ``--task
    classify`` does (``bad_files.csv`` in ``out``)."""
    config = parse_config(["--data", source, "--input-kind", "seismic", "--image-size", str(size), "--model",
                           "resnet34_classifier", "--seed", str(seed), "--logdir", str(out)], TASKS)
    data = TASKS["classify"].prepare_data(config, out)
    labelled = {}
    for split in ("train", "val", "test"):
        table = data.split_table(split)
        patches = np.stack([load_example(path, NO_BOX, data.spec)[0] for path in table["path"]])
        labelled[split] = patches, label_indices(table, data.class_names).astype(np.int32), None
    return labelled, data.class_names


def train_classifier(model: keras.Model, data: dict, epochs: int, lr: float, batch_size: int) -> keras.Model:
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(*data["train"][:2], validation_data=data["val"][:2], epochs=epochs, batch_size=batch_size, verbose=2,
              shuffle=True)
    return model


def transferred_classifier(unet: keras.Model, data: dict, classes: int, args: argparse.Namespace) -> keras.Model:
    """The U-Net's encoder under a new head: the head trained alone for half the epochs, then
    every layer at a tenth of the learning rate (the thesis's lower rate on the encoder)."""
    model = build_resnet34_classifier(classes, data["train"][0].shape[1:], encoder_width=args.encoder_width)
    copy_encoder(unet, model)
    frozen = set(encoder_layers(model))
    for layer in model.layers:
        layer.trainable = layer.name not in frozen
    train_classifier(model, data, args.classifier_epochs // 2, args.lr, args.batch_size)
    for layer in model.layers:
        layer.trainable = True
    return train_classifier(model, data, args.classifier_epochs - args.classifier_epochs // 2, args.lr / 10,
                            args.batch_size)


def scratch_classifier(data: dict, classes: int, args: argparse.Namespace) -> keras.Model:
    keras.utils.set_random_seed(args.seed)
    model = build_resnet34_classifier(classes, data["train"][0].shape[1:], encoder_width=args.encoder_width)
    return train_classifier(model, data, args.classifier_epochs, args.lr, args.batch_size)


def accuracy(model: keras.Model, patches: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(model.predict(patches, verbose=0).argmax(-1) == labels))


def inverted_patches(patches: np.ndarray, labels: np.ndarray, shares: np.ndarray | None, count: int) -> np.ndarray:
    """The patches to invert: those nearest half salt (their salt boundary is what NI should
    keep), or for facies the first of each class in turn."""
    if shares is not None:
        return patches[np.argsort(np.abs(shares - 0.5))[:count]]
    turns = pd.Series(labels).groupby(labels).cumcount().sort_values(kind="stable")
    return patches[turns.index[:count]]


def inversions(models: dict[str, keras.Model], images: np.ndarray, args: argparse.Namespace) -> list[dict]:
    """NI of ``images`` at each of ``--stages`` of every model: the reconstructions and SSIM."""
    rows = []
    for name, model in models.items():
        for layer in args.stages:
            print(f"Network inversion: {name} at {layer}", flush=True)
            result = network_inversion(model, images, layer, steps=args.steps, value_range=ZSCORE_RANGE,
                                       seed=args.seed)
            rows += [{"model": name, "layer": layer, "image": i, "ssim": float(s), "feature_error": float(e),
                      "reconstruction": result.images[i]}
                     for i, (s, e) in enumerate(zip(result.ssim, result.feature_error))]
    return rows


def finding(ssim: pd.DataFrame) -> Finding:
    """Whether "the segmentation encoder keeps more detail at depth" holds, from the mean SSIM
    at the two deepest stages inverted (a margin of 0.02 is required)."""
    deep = ssim.iloc[-2:]
    transferred, scratch = deep["segmentation encoder"].mean(), deep["from scratch"].mean()
    return Finding("the segmentation encoder keeps more detail at depth", transferred > scratch + 0.02,
                   f"mean SSIM at {', '.join(deep.index)} {transferred:.3f} (segmentation encoder) vs {scratch:.3f} "
                   "(from scratch); a margin of 0.02 is required")


def write_pictures(models: dict, images: np.ndarray, rows: list[dict], class_names: list[str], out: Path,
                   args) -> list[Path]:
    """AM of class salt (of every facies class with ``--patches``) and NI of each inverted patch."""
    paths = []
    for target in ([1] if class_names == CLASS_NAMES else range(len(class_names))):
        am = {name: activation_maximization(model, [target] * args.am_images, steps=args.steps,
                                            value_range=ZSCORE_RANGE, seed=args.seed) for name, model in models.items()}
        paths.append(save_grid([list(images) for images in am.values()], out / f"am_{class_names[target]}.png",
                               ZSCORE_RANGE, row_titles=list(am),
                               title=f"Activation maximisation of class \"{class_names[target]}\" (each from its own "
                                     "noise)"))
    table = pd.DataFrame(rows)
    for i in range(len(images)):
        cells, captions = [], []
        for name in models:
            mine = table[(table["model"] == name) & (table["image"] == i)].set_index("layer").loc[args.stages]
            cells.append([images[i], *mine["reconstruction"]])
            captions.append(["", *(f"SSIM {s:.2f}" for s in mine["ssim"])])
        paths.append(save_grid(cells, out / f"inversion_{i}.png", ZSCORE_RANGE, row_titles=list(models),
                               column_titles=["original", *args.stages], captions=captions,
                               title="Network inversion per encoder stage"))
    return paths


def markdown(ssim: pd.DataFrame, accuracies: dict, class_names: list[str], size: int, args: argparse.Namespace) -> str:
    if args.patches:
        data = (f"Seismic facies patches of {args.patches} ({', '.join(class_names)}) at {size} pixels, classified "
                "by a ResNet34 encoder")
        inverted = f"the first test patch of each class in turn ({args.ni_images})"
    else:
        data = (f"{size}-pixel patches of synthetic seismic sections, salt when more than {args.salt_share:.0%} is "
                "salt; ResNet34 encoder")
        inverted = f"the {args.ni_images} test patches nearest half salt"
    return "\n".join([
        "# Segmentation encoder vs classifier from scratch: feature visualisation (the salt thesis)",
        "",
        f"{data} of width {args.encoder_width}; {args.classifier_epochs} classifier epochs each. "
        "Test accuracy: " + ", ".join(f"{name} {value:.3f}" for name, value in accuracies.items()) + ".",
        "",
        f"Network inversion ({args.steps} steps, TV 0.05) of {inverted}; "
        "mean SSIM of reconstruction to original per encoder stage (the U-Net's own encoder for reference):",
        "",
        markdown_table(ssim.reset_index()),
        "",
        "The thesis's finding:",
        finding(ssim).line(),
        "",
    ])


class SaltEncoders(Experiment):
    name = "salt-encoders"
    stem = "compare_encoders"
    description = ("Reproduce the salt thesis's feature visualisations: a segmentation encoder under a salt classifier "
                   "head against the same classifier from scratch, by activation maximisation of class salt and "
                   "network inversion per encoder stage; with --patches, on seismic facies patches (LANDMASS) "
                   "instead of salt / no salt. Writes compare_encoders.md/.csv and PNGs into --out.")
    errors = (RuntimeError, ModelFileError, DataError)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--segmentation", help="a finished --task segment run to take the encoder from "
                                                   "(default: train one like the salt-losses experiment's bce run)")
        add_segmentation_arguments(parser)
        parser.add_argument("--patches", help="seismic facies patches for the classifiers instead of salt / no salt: "
                                              "class folders or a manifest of one-channel patches (LANDMASS), or "
                                              "synthetic:seismic_facies; resized to the U-Net's patch side")
        parser.add_argument("--classifier-epochs", type=int, default=10, help="classifier epochs (default 10)")
        parser.add_argument("--stride", type=int, default=16, help="pixels between classifier patches (default 16)")
        parser.add_argument("--salt-share", type=float, default=0.2, help="a patch is salt above this share (0.2)")
        parser.add_argument("--lr", type=float, default=1e-3, help="classifier learning rate (default 1e-3)")
        parser.add_argument("--batch-size", type=int, default=32, help="classifier batch size (default 32)")
        parser.add_argument("--steps", type=int, default=256, help="AM and NI optimisation steps (default 256)")
        parser.add_argument("--am-images", type=int, default=4, help="AM images per model (default 4)")
        parser.add_argument("--ni-images", type=int, default=3, help="test patches inverted (default 3)")
        parser.add_argument("--stages", type=comma_list, default=list(STAGES),
                            help=f"encoder layers inverted, comma-separated (default {','.join(STAGES)})")

    def check(self, args: argparse.Namespace) -> str | None:
        try:  # the classifier's encoder layers are named as the U-Net's, at any width
            check_objectives(build_resnet34_classifier(2, (32, 32, 1), encoder_width=8),
                             [Objective(stage, 0) for stage in args.stages])
        except (LayerError, VisualizeError) as err:
            return str(err)
        return None

    def run(self, args: argparse.Namespace) -> Result:
        run = segmentation_run(args)
        unet = load_keras_file(run / "model.keras")
        size = int(unet.inputs[0].shape[1])
        if args.patches:
            data, class_names = facies_patches(args.patches, size, args.seed, args.out)
        else:
            data, class_names = labelled_patches(run, args.stride, args.salt_share, args.out), CLASS_NAMES
        print("Patches per split and class: " + "; ".join(
            f"{split} " + ", ".join(f"{name} {int((labels == i).sum())}" for i, name in enumerate(class_names))
            for split, (_, labels, _) in data.items()), flush=True)
        models = {"segmentation encoder": transferred_classifier(unet, data, len(class_names), args),
                  "from scratch": scratch_classifier(data, len(class_names), args)}
        for name, model in models.items():
            model.save(args.out / f"{name.replace(' ', '_')}.keras")
        test_patches, test_labels, test_shares = data["test"]
        images = inverted_patches(test_patches, test_labels, test_shares, args.ni_images)
        rows = inversions({**models, "segmentation U-Net": unet}, images, args)
        pictures = write_pictures(models, images, [r for r in rows if r["model"] in models], class_names, args.out,
                                  args)
        table = pd.DataFrame(rows).drop(columns="reconstruction")
        ssim = table.pivot_table(index="layer", columns="model", values="ssim").loc[args.stages,
                                                                                   table["model"].unique()]
        accuracies = {name: accuracy(model, test_patches, test_labels) for name, model in models.items()}
        return Result(table, markdown(ssim, accuracies, class_names, size, args),
                      "pictures: " + ", ".join(str(p) for p in pictures))


register_experiment(SaltEncoders())
