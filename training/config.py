"""The one configuration object of ``python -m training.run``.

The CLI is generated from the dataclass fields; an optional YAML file (``--config``) is read
first and flags override it. Unknown keys, wrong types and bad values are reported, all at
once, before any heavy work starts. The resolved config is saved in the run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import yaml

from datasets.synthetic import GENERATORS
from datasets.seismic import NORMALIZATIONS
from models import MODELS
from models.fusion import SIZES as FUSION_SIZES
from models.losses import SEGMENTATION_LOSSES
from training.distribute import STRATEGIES
from training.errors import ConfigError
from training.tasks import TASKS, task_help
from training.trainer import OPTIMIZERS

__all__ = ["ConfigError", "TrainConfig", "build_parser", "parse_config", "read_yaml"]


def _option(default, help: str | Callable[[], str], choices: Callable[[], Iterable] | Iterable | None = None):
    """A config field; ``help`` and ``choices`` may be callables, read when used, so that
    models and tasks registered after this module was imported count."""
    return field(default=default, metadata={"help": help, "choices": choices})


def _resolved(value):
    return value() if callable(value) else value


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults give the main job on synthetic sigma clasts."""

    task: str = _option("classify", task_help, choices=lambda: TASKS)
    model: str = _option("sednet", lambda: "model to train: " + "; ".join(
        f"{task.name}: {', '.join(task.models())}" for task in TASKS.values()), choices=lambda: sorted(MODELS))
    data: str = _option("synthetic:sigma_clasts", lambda: (
        "a folder of class sub-folders, a CSV manifest (path,label[,split][,xmin,ymin,xmax,ymax]), or "
        + " / ".join(f"synthetic:{name}" for name in GENERATORS) + "; detect: a YOLO folder (classes.txt, images/, "
        "labels/) or a box CSV (path,box_label,xmin,ymin,xmax,ymax[,split]), and the synthetic sigma clasts have "
        "up to 3 per image; segment: a CSV section,mask[,split][,inline] of SEG-Y/.npy/PNG/TIFF sections, or for "
        "fusion_aspp a CSV sar,mwr,mask[,split] of .npy arrays; regress: a CSV path,TARGET[,lot][,split]"))
    detect_classes: str = _option("one", "detect: one (every box is one class, e.g. sigma_clast) or labels (the "
                                         "box labels, e.g. cw/ccw: the detector predicts shear sense too)",
                                  choices=("one", "labels"))
    loss: str = _option("bce+dice", lambda: f"segment: the loss, one of the salt thesis's eleven: "
                                            f"{', '.join(SEGMENTATION_LOSSES)} (bce+dice is its baseline)",
                        choices=lambda: SEGMENTATION_LOSSES)
    target_column: str = _option("cps", "regress: the manifest's numeric column to predict")
    group_column: str = _option("auto", "regress: the column whose groups (e.g. production lots) never straddle two "
                                        "splits; auto takes 'lot' when present, none splits by image")
    patch_size: int = _option(64, "segment: side in pixels of the square patches cut from the sections (a multiple "
                                  "of 32)")
    stride: int = _option(32, "segment: pixels between patch origins, in training and when whole sections are "
                              "predicted (overlaps are blended)")
    normalize: str = _option("patch", "segment: z-score each patch (the thesis) or each whole section",
                             choices=NORMALIZATIONS)
    encoder_width: int = _option(64, "segment: filters of the U-Net encoder's first stage (64 is ResNet34; "
                                     "smaller is faster)")
    fusion_size: str = _option("small", "segment, fusion_aspp: small (14 components in every group of the mixing "
                                        "layer) or large (28 in the atrous Scales 2-16)", choices=FUSION_SIZES)
    image_size: int = _option(96, "side in pixels the (whole) image is resized to")
    local_size: int = _option(48, "side in pixels of SedNet's local crop (ignored by other models)")
    epochs: int = _option(20, "training epochs")
    batch_size: int = _option(32, "batch size")
    lr: float = _option(2e-3, "learning rate")
    lr_schedule: str = _option("cosine", "learning-rate schedule of the first phase: cosine to 0, exponential to a "
                                         "tenth, or constant", choices=("cosine", "exponential", "constant"))
    weight_decay: float = _option(0.0, "decoupled weight decay of the optimizer (0: none)")
    optimizer: str = _option("adam", "optimizer", choices=lambda: OPTIMIZERS)
    seed: int = _option(0, "seed of the split, the shuffling, the augmentation and the weights")
    deterministic: bool = _option(True, "TensorFlow op determinism, so that a run with the same seed repeats "
                                        "exactly (tf.config.experimental.enable_op_determinism; for the "
                                        "whole process)")
    weights: str = _option("default", "default (imagenet for backbones, none for sednet), imagenet, none, "
                                      "a local weights file, or a trained run (its folder or .keras file) of the "
                                      "same network to start from: every layer but the output is copied, so a "
                                      "regressor can start from a texture classifier")
    logdir: str = _option("tensorboard_logs", "log root; the run writes into LOGDIR/RUN_NAME")
    run_name: str = _option("", "run folder name (default: MODEL-DATA); an unfinished run of that name resumes, "
                                "a finished one gets a -2 suffix")
    overwrite: bool = _option(False, "reuse an existing run folder instead of adding a suffix")
    split: str = _option("0.6,0.2,0.2", "train,val,test fractions of a stratified split (a manifest's split "
                                        "column wins)")
    augment: bool = _option(True, "random flips and 90-degree rotations, label-aware (segment: left-right flips only)")
    mirror_pairs: str = _option("auto", "class pairs a mirror flip swaps, a:b,c:d; auto finds cw:ccw and "
                                        "dextral:sinistral; none")
    shared_branches: bool = _option(False, "SedNet: one set of weights for both branches")
    dropout: float = _option(0.3, "classifiers: dropout rate between the two head layers")
    train_backbone: bool = _option(False, "backbones: train every layer, not only the two head layers (do so "
                                          "with --weights none: a frozen random backbone learns nothing)")
    fine_tune_layers: int = _option(0, "backbones: unfreeze the top N base layers for a second phase")
    fine_tune_epochs: int = _option(0, "epochs of the fine-tuning phase")
    fine_tune_lr: float = _option(1e-5, "learning rate of the fine-tuning phase")
    synthetic_n: int = _option(600, "synthetic data: number of images")
    synthetic_size: int = _option(128, "synthetic data: side of the generated images in pixels")
    cache: bool = _option(True, "keep decoded images in memory after the first epoch")
    strategy: str = _option("auto", "tf.distribute strategy: auto (mirrored with 2+ GPUs, else default), default, "
                                    "mirrored, multiworker, tpu", choices=STRATEGIES)
    workers: str = _option("", "multiworker: all workers' host:port, comma-separated (instead of TF_CONFIG)")
    task_index: int = _option(0, "multiworker: this process's index in --workers")
    logical_cpus: int = _option(1, "split the CPU into N logical devices (try --strategy mirrored without GPUs)")
    mixed_precision: bool = _option(False, "GPU: mixed_float16 compute with loss scaling; logits stay float32")
    jit: bool = _option(False, "GPU: compile the training step with XLA")
    tb_gradcam_freq: int = _option(1, "TensorBoard: Grad-CAM overlays of fixed validation images every N epochs (detect: "
                                                "validation mAP and detections; segment: pictures of validation "
                                                "sections; 0: off)")
    tb_gradcam_images: int = _option(8, "TensorBoard: how many class-balanced validation images to explain (segment: "
                                              "validation sections to show)")
    tb_histogram_freq: int = _option(1, "TensorBoard: weight and activation histograms every N epochs (0: off)")
    tb_scores: bool = _option(True, "TensorBoard: per-class precision/recall/F1 and the confusion matrix each epoch")
    tb_hparams: bool = _option(True, "TensorBoard: hyperparameters and final metrics for the HParams dashboard")
    tb_model_summary: bool = _option(True, "TensorBoard: the model's summary and config as text")

    def split_fractions(self) -> tuple[float, float, float]:
        return tuple(float(part) for part in self.split.split(","))

    def problems(self) -> list[str]:
        """Every bad value (types are checked on parsing), each naming the key and what it may be."""
        problems = []
        for name, choices in ((f.name, _resolved(f.metadata.get("choices"))) for f in dataclasses.fields(self)):
            if choices and getattr(self, name) not in choices:
                problems.append(f"{name}={getattr(self, name)!r} is not one of {list(choices)}")
        minimum = MODELS[self.model].min_input_size if self.model in MODELS else 1
        for name, low in (("image_size", minimum), ("local_size", 16), ("epochs", 1), ("batch_size", 1),
                          ("fine_tune_layers", 0), ("fine_tune_epochs", 0), ("synthetic_n", 6),
                          ("synthetic_size", 32), ("tb_gradcam_freq", 0), ("tb_gradcam_images", 1),
                          ("tb_histogram_freq", 0), ("logical_cpus", 1), ("encoder_width", 8)):
            if getattr(self, name) < low:
                problems.append(f"{name}={getattr(self, name)} must be >= {low}"
                                + (f" (the minimum input of {self.model})" if name == "image_size" else ""))
        for name in ("lr", "fine_tune_lr"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} must be > 0")
        if self.weight_decay < 0:
            problems.append(f"weight_decay={self.weight_decay} must be >= 0")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout} must be in [0, 1)")
        try:
            fractions = self.split_fractions()
            if len(fractions) != 3 or min(fractions) <= 0:
                raise ValueError
        except ValueError:
            problems.append(f"split={self.split!r} must be three positive fractions train,val,test")
        problems += self._task_problems()
        if self.data.startswith("synthetic:") and self.data.split(":", 1)[1] not in GENERATORS:
            problems.append(f"data={self.data!r}: the synthetic sets are "
                            + ", ".join(f"synthetic:{name}" for name in GENERATORS))
        return problems

    def _task_problems(self) -> list[str]:
        """What this task cannot do with these settings: another task's model, a strategy or
        speed switch it does not support."""
        task = TASKS.get(self.task)
        if task is None:
            return []
        problems = []
        if self.model in MODELS and self.model not in task.models():
            problems.append(f"model={self.model!r} does not {self.task}: pass --task {MODELS[self.model].task} "
                            f"or a model of {task.models()}")
        if self.strategy not in task.strategies:
            problems.append(f"strategy={self.strategy!r}: --task {self.task} trains under "
                            f"{' or '.join(task.strategies)} only")
        problems += task.config_problems(self)
        if not task.speed_switches:
            problems += [f"{name}=True: --task {self.task} does not support --{name.replace('_', '-')}"
                         for name in ("mixed_precision", "jit") if getattr(self, name)]
        return problems

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))


def _field_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def read_yaml(path: str | Path) -> tuple[dict, dict[str, str]]:
    """Reads a YAML config: the values of known keys with the right type, and per unknown key
    or wrong type its problem (reported with the bad values at once, see :func:`parse_config`).

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys to values.")
    types = _field_types()
    values, problems = {}, {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in types:
            problems[name] = f"{path}: unknown key {key!r} (valid keys: {', '.join(sorted(types))})"
        elif not _has_type(value, types[name]):
            problems[name] = f"{path}: {key}={value!r} should be of type {types[name].__name__}"
        else:
            values[name] = float(value) if types[name] is float else value
    return values, problems


def _has_type(value, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.run",
        description=f"Train a model for one of the tasks {', '.join(TASKS)} and write TensorBoard logs, the "
                    "best model, a SavedModel export and evaluation reports into LOGDIR/RUN_NAME. With no "
                    "arguments: SedNet classifies a generated synthetic sigma-clast set (cw/ccw shear sense).")
    parser.add_argument("--config", help="YAML file with any of the keys below; flags override it")
    for f, kind in zip(dataclasses.fields(TrainConfig), _field_types().values()):
        flag, help = "--" + f.name.replace("_", "-"), f"{_resolved(f.metadata['help'])} (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(), help=help)
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """YAML first, then flags, then the model's defaults (``ModelEntry.defaults``), then the
    task's (``Task.defaults``); validated.

    Raises:
        ConfigError, or SystemExit for argparse errors.
    """
    args = vars(build_parser().parse_args(argv))
    values, problems = read_yaml(args.pop("config")) if args.get("config") else ({}, {})
    flags = {k: v for k, v in args.items() if v is not None}
    values.update(flags)
    problems = [problem for key, problem in problems.items() if key not in flags]
    task = TASKS.get(values.get("task", TrainConfig.task))
    if task is not None:
        model = MODELS.get(values.get("model", task.defaults.get("model", TrainConfig.model)))
        values = {**task.defaults, **(model.defaults if model else {}), **values}
    config = TrainConfig(**values)
    problems += config.problems()
    if problems:
        raise ConfigError("Bad configuration: " + "; ".join(problems) + ".")
    return config
