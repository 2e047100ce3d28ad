"""The one configuration object of ``python -m training.run``: what every task shares, plus the
chosen task's own options.

:class:`TrainConfig` holds the settings every task uses; each task declares a
:class:`TaskOptions` dataclass of its own (``Task.options``), carried in ``TrainConfig.options``.
The CLI is generated from both, flags grouped by task; an optional YAML file (``--config``,
shared keys at the top and a block per task) is read first and flags override it. Unknown keys,
wrong types, bad values and a flag of another task are reported, all at once, before any heavy
work starts. The resolved config is saved in the run folder in the same layout.

This module depends on nothing else in ``training/``: the tasks are handed in by the caller
(``parse_config(argv, TASKS)``), so a task may import it without a circle.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from datasets.synthetic import GENERATORS
from models import MODELS

__all__ = ["ConfigError", "OPTIMIZERS", "Preset", "STRATEGIES", "TaskOptions", "TrainConfig", "build_parser",
           "option", "parse_config", "read_yaml", "reference_markdown"]

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


class ConfigError(ValueError):
    """A configuration problem; the message names every bad key or value."""


def option(default, help: str | Callable[[], str], choices: Callable[[], Iterable] | Iterable | None = None):
    """A config field; ``help`` and ``choices`` may be callables, read when used, so that
    models and tasks registered after this module was imported count."""
    return field(default=default, metadata={"help": help, "choices": choices})


def _resolved(value):
    return value() if callable(value) else value


def _choice_problems(settings) -> list[str]:
    problems = []
    for name, choices in ((f.name, _resolved(f.metadata.get("choices"))) for f in _cli_fields(type(settings))):
        if choices and getattr(settings, name) not in choices:
            problems.append(f"{name}={getattr(settings, name)!r} is not one of {list(choices)}")
    return problems


@dataclass
class TaskOptions:
    """The base of a task's own options: a dataclass whose fields are made with :func:`option`.

    A subclass adds its fields and, where a value can be wrong beyond its choices, overrides
    :meth:`value_problems`.
    """

    def problems(self) -> list[str]:
        """Every bad value, one phrase each."""
        return _choice_problems(self) + self.value_problems()

    def value_problems(self) -> list[str]:
        return []


@dataclass(frozen=True)
class Preset:
    """A study's own setting, one ``--preset NAME`` away: the values it sets and what it is."""

    description: str
    values: Mapping[str, Any]

    def summary(self) -> str:
        return f"{self.description} ({', '.join(f'{k}={v}' for k, v in self.values.items())})"


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults give the main job on synthetic sigma clasts."""

    task: str = option("classify", "what the model is trained to answer (see the task groups below)")
    preset: str = option("", "a study's own setting, applied over the task's defaults (flags and YAML still win); "
                             "see each task's group below for its presets")
    model: str = option("sednet", "model to train (each task's group lists its models)",
                        choices=lambda: sorted(MODELS))
    data: str = option("synthetic:sigma_clasts", lambda: (
        "a folder of class sub-folders, a CSV manifest (path,label[,split][,xmin,ymin,xmax,ymax]), or "
        + " / ".join(f"synthetic:{name}" for name in GENERATORS) + "; each task's group says what it reads"))
    image_size: int = option(96, "side in pixels the (whole) image is resized to")
    local_size: int = option(48, "SedNet: side in pixels of its local crop (ignored by other models)")
    epochs: int = option(20, "training epochs")
    batch_size: int = option(32, "batch size")
    lr: float = option(2e-3, "learning rate")
    lr_schedule: str = option("cosine", "learning-rate schedule of the first phase: cosine to 0, exponential to a "
                                        "tenth, or constant", choices=("cosine", "exponential", "constant"))
    weight_decay: float = option(0.0, "decoupled weight decay of the optimizer (0: none)")
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    seed: int = option(0, "seed of the split, the shuffling, the augmentation and the weights")
    deterministic: bool = option(True, "TensorFlow op determinism, so that a run with the same seed repeats "
                                       "exactly (tf.config.experimental.enable_op_determinism; for the "
                                       "whole process)")
    weights: str = option("default", "default (imagenet for backbones, none for sednet), imagenet, none, "
                                     "a local weights file, or a trained run (its folder or .keras file) of the "
                                     "same network to start from: every layer but the output is copied, so a "
                                     "regressor can start from a texture classifier")
    logdir: str = option("tensorboard_logs", "log root; the run writes into LOGDIR/RUN_NAME")
    run_name: str = option("", "run folder name (default: MODEL-DATA); an unfinished run of that name resumes, "
                               "a finished one gets a -2 suffix")
    overwrite: bool = option(False, "reuse an existing run folder instead of adding a suffix")
    split: str = option("0.6,0.2,0.2", "train,val,test fractions of a stratified split (a manifest's split "
                                       "column wins)")
    augment: bool = option(True, "random flips and 90-degree rotations, label-aware (segment: left-right flips only)")
    shared_branches: bool = option(False, "SedNet: one set of weights for both branches")
    dropout: float = option(0.3, "classifier networks: dropout rate between the two head layers")
    train_backbone: bool = option(False, "backbones: train every layer, not only the two head layers (do so "
                                         "with --weights none: a frozen random backbone learns nothing)")
    fine_tune_layers: int = option(0, "backbones: unfreeze the top N base layers for a second phase")
    fine_tune_epochs: int = option(0, "epochs of the fine-tuning phase")
    fine_tune_lr: float = option(1e-5, "learning rate of the fine-tuning phase")
    synthetic_n: int = option(600, "synthetic data: number of images")
    synthetic_size: int = option(128, "synthetic data: side of the generated images in pixels")
    cache: bool = option(True, "keep decoded images in memory after the first epoch")
    strategy: str = option("auto", "tf.distribute strategy: auto (mirrored with 2+ GPUs, else default), default, "
                                   "mirrored, multiworker, tpu", choices=STRATEGIES)
    workers: str = option("", "multiworker: all workers' host:port, comma-separated (instead of TF_CONFIG)")
    task_index: int = option(0, "multiworker: this process's index in --workers")
    logical_cpus: int = option(1, "split the CPU into N logical devices (try --strategy mirrored without GPUs)")
    mixed_precision: bool = option(False, "GPU: mixed_float16 compute with loss scaling; logits stay float32")
    jit: bool = option(False, "GPU: compile the training step with XLA")
    tb_gradcam_freq: int = option(1, "TensorBoard: the task's pictures of fixed validation images every N epochs "
                                     "(classify: Grad-CAM overlays; detect: mAP and detections; segment: "
                                     "validation sections; 0: off)")
    tb_gradcam_images: int = option(8, "TensorBoard: how many validation images (segment: sections) to show")
    tb_histogram_freq: int = option(1, "TensorBoard: weight and activation histograms every N epochs (0: off)")
    tb_hparams: bool = option(True, "TensorBoard: hyperparameters and final metrics for the HParams dashboard")
    tb_model_summary: bool = option(True, "TensorBoard: the model's summary and config as text")
    options: TaskOptions = field(default_factory=TaskOptions, metadata={"cli": False})

    def split_fractions(self) -> tuple[float, float, float]:
        return tuple(float(part) for part in self.split.split(","))

    def setting(self, name: str):
        """A value by name, from the task's options first: what a model entry's
        ``config_options`` read."""
        return getattr(self.options, name) if hasattr(self.options, name) else getattr(self, name)

    def problems(self) -> list[str]:
        """Every bad shared value (types are checked on parsing), each naming the key and what it may be."""
        problems = _choice_problems(self)
        minimum = MODELS[self.model].min_input_size if self.model in MODELS else 1
        for name, low in (("image_size", minimum), ("local_size", 16), ("epochs", 1), ("batch_size", 1),
                          ("fine_tune_layers", 0), ("fine_tune_epochs", 0), ("synthetic_n", 6),
                          ("synthetic_size", 32), ("tb_gradcam_freq", 0), ("tb_gradcam_images", 1),
                          ("tb_histogram_freq", 0), ("logical_cpus", 1)):
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
        if self.data.startswith("synthetic:") and self.data.split(":", 1)[1] not in GENERATORS:
            problems.append(f"data={self.data!r}: the synthetic sets are "
                            + ", ".join(f"synthetic:{name}" for name in GENERATORS))
        return problems + self.options.problems()

    def to_dict(self) -> dict:
        """The shared settings, then the task's options as a block under its name (the YAML layout)."""
        shared = {f.name: getattr(self, f.name) for f in _cli_fields(TrainConfig)}
        return {**shared, self.task: dataclasses.asdict(self.options)}

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _cli_fields(kind: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(kind) if f.metadata.get("cli", True)]


def _field_types(kind: type) -> dict[str, type]:
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in _cli_fields(kind)}


def _option_owners(tasks: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each task option's name and the tasks that have it."""
    owners: dict[str, list[str]] = {}
    for task in tasks.values():
        for name in _field_types(task.options):
            owners.setdefault(name, []).append(task.name)
    return owners


def _has_type(value, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _typed(values: Mapping, types: Mapping[str, type], where: str, problems: dict[str, str]) -> dict:
    """The values whose type is right (ints widened to float where a float is meant); a problem per other one."""
    typed = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if not _has_type(value, types[name]):
            problems[name] = f"{where}: {key}={value!r} should be of type {types[name].__name__}"
        else:
            typed[name] = float(value) if types[name] is float else value
    return typed


def read_yaml(path: str | Path, tasks: Mapping[str, Any]) -> tuple[dict, dict[str, dict], dict[str, str]]:
    """Reads a YAML config: the shared values and task options at its top, the blocks per task,
    and per unknown key or wrong type its problem (reported with the bad values at once, see
    :func:`parse_config`).

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
    shared_types, owners, problems = _field_types(TrainConfig), _option_owners(tasks), {}
    top, blocks = {}, {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name in tasks:
            if not isinstance(value, dict):
                problems[name] = f"{path}: the {name} block must be a mapping of that task's options"
                continue
            types = _field_types(tasks[name].options)
            for unknown in (k for k in value if str(k).replace("-", "_") not in types):
                problems[f"{name}.{unknown}"] = (f"{path}: unknown key {unknown!r} in the {name} block (its "
                                                 f"options: {', '.join(types) or 'none'})")
            blocks[name] = _typed({k: v for k, v in value.items() if str(k).replace("-", "_") in types}, types,
                                  f"{path} ({name} block)", problems)
        elif name in shared_types or name in owners:
            types = shared_types if name in shared_types else _field_types(tasks[owners[name][0]].options)
            top.update(_typed({key: value}, types, str(path), problems))
        else:
            problems[name] = (f"{path}: unknown key {key!r} (shared keys: {', '.join(sorted(shared_types))}; "
                              f"task blocks: {', '.join(tasks)})")
    return top, blocks, problems


def build_parser(tasks: Mapping[str, Any]) -> argparse.ArgumentParser:
    """The CLI: the shared flags, then one group per task with its description, models, presets
    and options (an option several tasks have is listed with the first)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.run",
        description=f"Train a model for one of the tasks {', '.join(tasks)} and write TensorBoard logs, the "
                    "best model, a SavedModel export and evaluation reports into LOGDIR/RUN_NAME. With no "
                    "arguments: SedNet classifies a generated synthetic sigma-clast set (cw/ccw shear sense). "
                    "Every task's bare default trains offline on its synthetic set.")
    parser.add_argument("--config", help="YAML file with any of the keys below, a task's options at the top or "
                                         "in a block under the task's name; flags override it")
    shared = parser.add_argument_group("shared by every task")
    _add_flags(shared, TrainConfig)
    owners, added = _option_owners(tasks), set()
    for task in tasks.values():
        group = parser.add_argument_group(f"--task {task.name}", _task_description(task))
        new = {name for name in _field_types(task.options) if name not in added}
        _add_flags(group, task.options, only=new, owners=owners)
        added |= new
    return parser


def _task_description(task) -> str:
    lines = [task.description, f"models: {', '.join(task.models())}"]
    if task.defaults:
        lines.append("defaults: " + ", ".join(f"{k}={v}" for k, v in task.defaults.items()))
    lines += [f"--preset {name}: {preset.summary()}" for name, preset in task.presets.items()]
    return "; ".join(lines)


def _add_flags(group, kind: type, only: set[str] | None = None,
               owners: Mapping[str, list[str]] | None = None) -> None:
    types = _field_types(kind)
    for f in _cli_fields(kind):
        if only is not None and f.name not in only:
            continue
        kind_of = types[f.name]
        shared_by = f" (also {', '.join(owners[f.name][1:])})" if owners and len(owners[f.name]) > 1 else ""
        help = f"{_resolved(f.metadata['help'])}{shared_by} (default: {f.default})"
        flag = "--" + f.name.replace("_", "-")
        if kind_of is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            group.add_argument(flag, type=kind_of, default=None, metavar=f.name.upper(), help=help)


def reference_markdown(tasks: Mapping[str, Any]) -> str:
    """The configuration reference (``docs/configuration.md``): every shared setting, then each
    task's defaults, presets and options, from the same fields the CLI is generated from."""
    lines = ["# Configuration reference", "",
             "Generated from the options themselves by `python -m training.reference > docs/configuration.md`; "
             "`tests/test_docs.py` checks that it is current. Every setting is a flag of `python -m training.run` "
             "(`image_size` is `--image-size`) and a key of its YAML file (`--config`): the shared ones at the "
             "top, a task's own options at the top or in a block under the task's name. Precedence, lowest "
             "first: the defaults below, the task's defaults, a synthetic set's, the model's, the preset's, the YAML "
             "file, the flags.",
             "", "## Shared by every task", "", *_options_table(TrainConfig)]
    for task in tasks.values():
        lines += ["", f"## --task {task.name}", "", f"{task.description}.", "",
                  f"Models: {', '.join(f'`{m}`' for m in task.models())}.", ""]
        if task.defaults:
            lines += ["Defaults over the shared ones: " + ", ".join(f"`{k}={v}`" for k, v in task.defaults.items())
                      + ".", ""]
        lines += [f"Preset `{name}`: {preset.summary()}." for name, preset in task.presets.items()]
        lines += [""] if task.presets else []
        lines += _options_table(task.options) if _cli_fields(task.options) else ["No options of its own."]
    return "\n".join(lines) + "\n"


def _options_table(kind: type) -> list[str]:
    rows, types = ["| setting | type | default | what |", "| --- | --- | --- | --- |"], _field_types(kind)
    for f in _cli_fields(kind):
        choices = _resolved(f.metadata.get("choices"))
        what = _resolved(f.metadata["help"]) + (f" (one of: {', '.join(map(str, choices))})" if choices else "")
        rows.append(f"| `{f.name}` | {types[f.name].__name__} | `{f.default!r}` | "
                    f"{what.replace('|', '/')} |")
    return rows


def parse_config(argv: list[str] | None, tasks: Mapping[str, Any]) -> TrainConfig:
    """The resolved configuration: the task's defaults, then a synthetic data set's
    (``SyntheticSet.training_defaults``), the model's (``ModelEntry.defaults``), the preset's,
    YAML, flags; validated.

    Raises:
        ConfigError: every problem at once, in one line (a flag or key of another task among
            them), or SystemExit for argparse errors.
    """
    args = vars(build_parser(tasks).parse_args(argv))
    top, blocks, file_problems = read_yaml(args.pop("config"), tasks) if args.get("config") else ({}, {}, {})
    flags = {k: v for k, v in args.items() if v is not None}
    problems = [problem for key, problem in file_problems.items() if key not in flags]
    task = tasks.get(flags.get("task", top.get("task", TrainConfig.task)))
    if task is None:
        raise ConfigError(f"Bad configuration: task={flags.get('task', top.get('task'))!r} is not one of "
                          f"{list(tasks)}.")
    user = {**top, **blocks.get(task.name, {}), **flags}
    problems += _foreign_options(user, task, _option_owners(tasks), flags)
    preset = task.presets.get(user.get("preset", ""), Preset("", {}))
    if user.get("preset") and user["preset"] not in task.presets:
        problems.append(f"preset={user['preset']!r}: --task {task.name} has "
                        + (f"the presets {list(task.presets)}" if task.presets else "no presets"))
    model = MODELS.get(user.get("model", preset.values.get("model", task.defaults.get("model", TrainConfig.model))))
    data = _synthetic_defaults(user.get("data", preset.values.get("data", (model.defaults if model else {}).get(
        "data", task.defaults.get("data", TrainConfig.data)))))
    values = {**task.defaults, **data, **(model.defaults if model else {}), **preset.values, **user}
    option_names, shared_names = set(_field_types(task.options)), set(_field_types(TrainConfig))
    config = TrainConfig(**{k: v for k, v in values.items() if k in shared_names},
                         options=task.options(**{k: v for k, v in values.items() if k in option_names}))
    problems += config.problems() + _task_problems(config, task)
    if problems:
        raise ConfigError("Bad configuration: " + "; ".join(problems) + ".")
    return config


def _synthetic_defaults(data: str) -> Mapping[str, Any]:
    """The training settings a synthetic set needs to meet its measured goal (e.g. more patches)."""
    spec = GENERATORS.get(data.split(":", 1)[1]) if data.startswith("synthetic:") else None
    return spec.training_defaults if spec else {}


def _foreign_options(user: Mapping, task, owners: Mapping[str, list[str]], flags: Mapping) -> list[str]:
    """One phrase per option of another task that the user set, naming the task it belongs to."""
    problems = []
    for name in user:
        if name in owners and task.name not in owners[name]:
            given = f"--{name.replace('_', '-')}" if name in flags else name
            problems.append(f"{given} belongs to --task {' or '.join(owners[name])}, not --task {task.name}")
    return problems


def _task_problems(config: TrainConfig, task) -> list[str]:
    """What this task cannot do with these settings: another task's model, a strategy or
    speed switch it does not support, its own checks."""
    problems = []
    if config.model in MODELS and config.model not in task.models():
        problems.append(f"model={config.model!r} does not {task.name}: pass --task {MODELS[config.model].task} "
                        f"or a model of {task.models()}")
    if config.strategy not in task.strategies:
        problems.append(f"strategy={config.strategy!r}: --task {task.name} trains under "
                        f"{' or '.join(task.strategies)} only")
    problems += task.config_problems(config)
    if not task.speed_switches:
        problems += [f"{name}=True: --task {task.name} does not support --{name.replace('_', '-')}"
                     for name in ("mixed_precision", "jit") if getattr(config, name)]
    return problems
