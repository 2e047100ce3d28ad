"""Tasks as plug-ins: what a model is trained to answer, and everything that differs by it.

A task (``classify``, ``detect``, ...) supplies its data, its models, its loss and metrics,
its TensorBoard callbacks, its evaluation report, its export and its summary lines. What every
task shares (run folders, resume, configuration, strategies, the training loop, atomic
writes, HParams, error clean-up, the summary's frame) lives in :mod:`training.runner`, which
drives a task only through the methods of :class:`Task`. Adding a task means writing one
module that subclasses :class:`Task` and calling :func:`register_task`; ``--task`` and its
``--help`` come from :data:`TASKS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol

import keras

from datasets.augment import resolve_mirror_pairs
from datasets.synthetic import cached_dataset
from datasets.tables import DataError
from models import MODELS, build_model, model_names
from training.config import STRATEGIES, ConfigError, Preset, TaskOptions
from training.export import export_saved_model_atomic

if TYPE_CHECKING:
    import tensorflow as tf

    from training.config import TrainConfig


class TaskData(Protocol):
    """What a task's prepared data offers the shared trainer."""

    class_names: list[str]

    def dataset(self, split: str, config: TrainConfig, training: bool = False,
                replicas: int = 1) -> tf.data.Dataset:
        """Batches of one split; ``replicas > 1`` means ``batch_size`` per replica and no
        partial last batch (Keras cannot split one across replicas)."""


def global_batch(split: str, count: int, items: str, config: TrainConfig, replicas: int, remedy: str) -> int:
    """The global batch of ``split``; with several replicas, the last partial batch is dropped,
    so a split of fewer than one global batch would give no batch at all.

    Raises:
        DataError: ``split`` has fewer than ``batch_size * replicas`` ``items``.
    """
    size = config.batch_size * replicas
    if replicas > 1 and count < size:
        raise DataError(f"The {split} split has {count} {items}, fewer than one global batch of {size} "
                        f"({replicas} replicas); lower --batch-size or {remedy}.")
    return size


class Task:
    """The base of every task; subclasses set the class attributes and override the methods.

    Attributes:
        name: the ``--task`` value.
        description: one line for ``--help``.
        defaults: configuration values that differ from :class:`TrainConfig`'s for this task;
            the user's YAML and flags still win. The bare defaults train offline on the task's
            synthetic set with the best recipe measured here.
        options: the dataclass of the task's own options (``TrainConfig.options``); a flag
            of another task's options is refused.
        presets: the studies' own settings by name (``--preset NAME``).
        strategies: the ``--strategy`` values it can train under.
        speed_switches: whether ``--mixed-precision`` and ``--jit`` apply to it.
        synthetic_options: per synthetic data set name, the generator options this task
            needs (e.g. several clasts per image for detection).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    defaults: ClassVar[Mapping[str, Any]] = {}
    options: ClassVar[type[TaskOptions]] = TaskOptions
    presets: ClassVar[Mapping[str, Preset]] = {}
    strategies: ClassVar[tuple[str, ...]] = STRATEGIES
    speed_switches: ClassVar[bool] = True
    synthetic_options: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def models(self) -> list[str]:
        """The registry models trained for this task."""
        return model_names(self.name)

    def resolve_source(self, config: TrainConfig) -> Path:
        """The data path; ``synthetic:NAME`` is generated once and cached under the log root."""
        if not config.data.startswith("synthetic:"):
            return Path(config.data).expanduser()
        name = config.data.split(":", 1)[1]
        return cached_dataset(name, config.logdir, n=config.synthetic_n, seed=config.seed,
                              size=config.synthetic_size, **self.synthetic_options.get(name, {}))

    def config_problems(self, config: TrainConfig) -> list[str]:
        """What is wrong with the task's own settings, one phrase each (checked before any heavy work)."""
        return []

    def prepare_data(self, config: TrainConfig, run_dir: Path) -> TaskData:
        """Reads, checks and splits the data; writes ``split.csv`` and ``bad_files.csv``.

        Raises:
            datasets.tables.DataError: the data cannot be used; the message names the file.
        """
        raise NotImplementedError

    def build_model(self, config: TrainConfig, data: TaskData) -> keras.Model:
        """The registry model ``config.model`` with the builder options its entry takes from the config."""
        entry = MODELS[config.model]
        options = {name: config.setting(name) for name in entry.config_options}
        return build_model(config.model, len(data.class_names),
                           (config.image_size, config.image_size, self.input_channels(data)),
                           weights=config.weights, **options)

    def input_channels(self, data: TaskData) -> int:
        """The channels of the model's (image) input: 3 for RGB photographs."""
        return 3

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                jit: bool) -> None:
        """Compiles ``model`` with the task's loss and metrics."""
        raise NotImplementedError

    def epoch_metrics(self, config: TrainConfig, run_dir: Path, data: TaskData) -> list[keras.callbacks.Callback]:
        """Callbacks that add scalars to each epoch's logs (they run before the logs are written)."""
        return []

    def summaries(self, config: TrainConfig, run_dir: Path, data: TaskData) -> list[keras.callbacks.Callback]:
        """Callbacks that write the task's own TensorBoard pictures and histograms."""
        return []

    def evaluate(self, model: keras.Model, config: TrainConfig, data: TaskData, run_dir: Path) -> dict:
        """Scores every split of the best model; writes ``metrics.json`` and the task's reports."""
        raise NotImplementedError

    def final_scalars(self, metrics: dict) -> dict[str, float]:
        """The scores shown as ``final/<name>`` next to the HParams summary."""
        return {}

    def export(self, model: keras.Model, config: TrainConfig, path: Path) -> None:
        """Writes the SavedModel (``serving_default`` takes one tensor per model input)."""
        export_saved_model_atomic(model, path)

    def headline(self, metrics: dict) -> str:
        """The summary's first line after the time, e.g. the test scores."""
        return ""

    def report_lines(self, run_dir: Path) -> list[tuple[str, str]]:
        """(what, where) of the task's own reports, for the summary."""
        return []

    def export_note(self) -> str:
        return "tf.saved_model.load; signature serving_default"


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Adds a task to :data:`TASKS`; a duplicate name is an error."""
    if task.name in TASKS:
        raise ValueError(f"A task named {task.name!r} is already registered.")
    TASKS[task.name] = task
    return task


def chiral_pairs(class_names: list[str], mirror_pairs: str) -> list[tuple[str, str]]:
    """The label pairs a mirror flip swaps (``--mirror-pairs``), announced on stdout.

    Raises:
        ConfigError: the pairs name unknown classes or are malformed.
    """
    try:
        pairs = resolve_mirror_pairs(class_names, mirror_pairs)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if pairs:
        print("Chiral labels: a mirror flip swaps " + ", ".join(f"{a}<->{b}" for a, b in pairs), flush=True)
    return pairs


from training.tasks import classify, detect, regress, segment  # noqa: E402  (the built-in tasks register themselves)

__all__ = ["TASKS", "Task", "TaskData", "chiral_pairs", "classify", "detect", "register_task", "regress", "segment"]
