"""``--task regress``: one number per image, e.g. a material's critical peak stress (CPS)
from SEM images of its crystals (Palmer, Mundhenk et al., LLNL).

Data are a CSV manifest with a numeric target column (``--target-column``) and optionally a
group column (``--group-column``, the paper's production lots): images of one group never
straddle two splits. The model is a registry classifier with a one-unit linear head whose
output is rescaled to the target's units (the training targets' mean and spread), trained on
the mean squared error. The report is RMSE, MAE, R² and Pearson r per split
(``metrics.json``), each group's mean prediction against its target (``groups.csv``) and a
predicted-against-true scatter (``scatter.png``, and in TensorBoard every epoch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import GroupShuffleSplit

from datasets.pipeline import InputSpec, load_example, make_dataset, stack_inputs
from datasets.tables import SPLITS, DataError, check_images, write_bad_files, write_csv
from datasets.targets import group_labels, read_targets, resolve_group_column, single_image_note
from models import MODELS, build_model, model_names
from training import summaries as tb
from training.config import Preset, TaskOptions, TrainConfig, option
from training.tasks import Task, global_batch, register_task

SCORES = ("rmse", "mae", "r2", "pearson_r", "loss")
SPLIT_COLOURS = {"train": "#9aa5b1", "val": "#f28e2b", "test": "#4e79a7"}


@dataclass
class RegressionData:
    """The split table (with a ``target`` column), the target's name and statistics, the input spec."""

    table: pd.DataFrame
    target_name: str
    group_column: str | None
    spec: InputSpec
    mean: float  # of the training targets
    scale: float  # their standard deviation (1 when they are all equal)

    @property
    def class_names(self) -> list[str]:
        """One output, named after the target (the trainer builds ``len(class_names)`` outputs)."""
        return [self.target_name]

    def split_table(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def validation_inputs(self, count: int) -> dict[str, np.ndarray]:
        """The first ``count`` validation images as model inputs, keyed by input name."""
        rows = self.split_table("val").head(count)
        return stack_inputs([load_example(r.path, np.full(4, np.nan, np.float32), self.spec)
                             for r in rows.itertuples()], self.spec)

    def dataset(self, split: str, config: TrainConfig, training: bool = False, replicas: int = 1) -> tf.data.Dataset:
        table = self.split_table(split)
        batch = global_batch(split, len(table), "images", config, replicas, "add images")
        return make_dataset(table, table["target"].to_numpy(), self.spec, batch, training=training,
                            augment=config.augment, seed=config.seed, cache=config.cache,
                            drop_remainder=replicas > 1)


def group_split(table: pd.DataFrame, groups: pd.Series, fractions: tuple[float, float, float],
                seed: int) -> pd.DataFrame:
    """Adds a ``split`` column drawn by group (a manifest's own split column wins): the
    fractions are of groups, so each group lies in one split.

    Raises:
        DataError: fewer than three groups.
    """
    if "split" in table.columns and table["split"].notna().all():
        return table
    if groups.nunique() < 3:
        raise DataError(f"{groups.nunique()} group(s) cannot make train, validation and test sets; "
                        "add groups or pass --group-column none.")
    train_fraction, val_fraction, test_fraction = (f / sum(fractions) for f in fractions)
    first = GroupShuffleSplit(n_splits=1, train_size=train_fraction, random_state=seed)
    train, rest = next(first.split(table, groups=groups))
    second = GroupShuffleSplit(n_splits=1, test_size=test_fraction / (val_fraction + test_fraction),
                               random_state=seed)
    val, test = next(second.split(rest, groups=groups.iloc[rest]))
    split = np.full(len(table), "train", dtype=object)
    split[rest[val]], split[rest[test]] = "val", "test"
    return table.assign(split=split)


def prepare_regression_data(source: Path, config: TrainConfig, run_dir: Path) -> RegressionData:
    """Reads the targets, checks every image, splits by group and writes split.csv and bad_files.csv.

    Raises:
        DataError: see :func:`datasets.targets.read_targets` and :func:`group_split`; or a split
            without an image.
    """
    entry = MODELS[config.model]
    table = read_targets(source, config.options.target_column)
    group_column = resolve_group_column(table, config.options.group_column)
    checked = check_images(table, entry.min_input_size)
    print(write_bad_files(checked.bad_files, run_dir / "bad_files.csv"), flush=True)
    table = checked.table
    groups = group_labels(table, group_column)
    table = group_split(table.assign(group=groups.to_numpy()), groups, config.split_fractions(), config.seed)
    missing = [s for s in SPLITS if not (table["split"] == s).any()]
    if missing:
        raise DataError(f"The {'/'.join(missing)} split(s) hold no usable image; add images or fix the "
                        "manifest's split column.")
    write_csv(table[["path", "target", "group", "split"]].rename(columns={"target": config.options.target_column}),
              run_dir / "split.csv")
    _report_groups(table, group_column)
    train = table.loc[table["split"] == "train", "target"]
    scale = float(train.std(ddof=0)) or 1.0
    local_size = config.local_size if len(entry.input_names) > 1 else None
    spec = InputSpec(config.image_size, local_size, entry.input_names)
    counts = table["split"].value_counts().reindex(list(SPLITS)).to_dict()
    print(f"{len(table)} images; {config.options.target_column} from {table['target'].min():.4g} to "
          f"{table['target'].max():.4g}; split {counts}", flush=True)
    return RegressionData(table, config.options.target_column, group_column, spec, float(train.mean()), scale)


def _report_groups(table: pd.DataFrame, group_column: str | None) -> None:
    """Says how the groups fell, and names those of one image (their mean is that image)."""
    if not group_column:
        return
    per_split = table.groupby("split")["group"].nunique().reindex(list(SPLITS)).to_dict()
    print(f"Split by {group_column!r}: groups per split {per_split}", flush=True)
    note = single_image_note(table["group"], "group", "their group mean is that one prediction")
    if note:
        print(note, flush=True)


def regression_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R², Pearson r and the loss (mean squared error) of one split."""
    pearson = float(np.corrcoef(truth, predicted)[0, 1]) if len(truth) > 1 and np.std(predicted) > 0 else float("nan")
    return {"rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
            "mae": float(mean_absolute_error(truth, predicted)),
            "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else float("nan"),
            "pearson_r": pearson, "loss": float(mean_squared_error(truth, predicted)), "count": int(len(truth))}


def group_means(table: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """Per group: the split, the target, the number of images and their mean prediction."""
    frame = table.assign(predicted=predicted)
    return (frame.groupby("group", sort=True)
            .agg(split=("split", "first"), target=("target", "mean"), images=("path", "count"),
                 predicted=("predicted", "mean"))
            .reset_index())


def scatter_figure(points: dict[str, tuple[np.ndarray, np.ndarray]], target_name: str, title: str,
                   groups: pd.DataFrame | None = None) -> Figure:
    """Predicted against true per split, the identity line, and the groups' means as rings."""
    figure = Figure(figsize=(4.8, 4.6))
    axes = figure.subplots()
    values = np.concatenate([v for pair in points.values() for v in pair])
    low, high = float(values.min()), float(values.max())
    axes.plot([low, high], [low, high], color="0.3", lw=1, ls="--", label="predicted = true")
    for split, (truth, predicted) in points.items():
        axes.scatter(truth, predicted, s=10, alpha=0.6, color=SPLIT_COLOURS.get(split, "k"), label=split)
    if groups is not None and len(groups):
        axes.scatter(groups["target"], groups["predicted"], s=60, facecolors="none", edgecolors="k",
                     label="group mean")
    axes.set(xlabel=f"true {target_name}", ylabel=f"predicted {target_name}", title=title)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure


def figure_array(figure: Figure) -> np.ndarray:
    """An RGB uint8 array of a matplotlib figure."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ValidationScatter(tb.SummaryCallback):
    """The validation set's predicted-against-true scatter every ``freq`` epochs, as an image."""

    def __init__(self, log_dir, data: RegressionData, dataset: tf.data.Dataset, freq: int):
        super().__init__(log_dir)
        self.data, self.dataset, self.freq = data, dataset, freq

    def on_epoch_end(self, epoch, logs=None):
        if not self.active or epoch % self.freq:
            return
        truth = self.data.split_table("val")["target"].to_numpy()
        predicted = self.model.predict(self.dataset, verbose=0)[:, 0]
        picture = figure_array(scatter_figure({"val": (truth, predicted)}, self.data.target_name,
                                              f"validation, epoch {epoch + 1}"))
        with self.writer("validation").as_default(step=epoch):
            tf.summary.image("scatter", picture[None], description="Predicted against true on the validation set.")


@dataclass
class RegressOptions(TaskOptions):
    """``--task regress``'s own options."""

    target_column: str = option("cps", "the manifest's numeric column to predict")
    group_column: str = option("auto", "the column whose groups (e.g. production lots) never straddle two splits; "
                                       "auto takes 'lot' when present, none splits by image")


class RegressTask(Task):
    name = "regress"
    description = ("one number per image (e.g. a material's critical peak stress from SEM images): a CSV manifest "
                   "with --target-column, split by --group-column")
    # The recipe measured best here (README, "Material strength"): SedNet from random weights, so
    # the bare default needs no download; the study's own setting is the sem-study preset.
    defaults = {"model": "sednet", "data": "synthetic:sem_crystals", "synthetic_n": 2500, "synthetic_size": 96,
                "image_size": 96, "local_size": 48, "epochs": 60, "batch_size": 32, "optimizer": "adam", "lr": 3e-3,
                "lr_schedule": "cosine", "weight_decay": 0.0, "dropout": 0.0, "tb_histogram_freq": 0}
    synthetic_options = {"sem_crystals": {"lots": 500}}
    options = RegressOptions
    presets = {"sem-study": Preset(
        "the SEM study's setting (Palmer, Mundhenk et al.): ResNet-50 from ImageNet (a download), SGD with Nesterov "
        "momentum, weight decay, exponential decay",
        {"model": "resnet50", "weights": "imagenet", "optimizer": "sgd", "lr": 0.01, "lr_schedule": "exponential",
         "weight_decay": 2e-4, "batch_size": 32, "dropout": 0.3})}

    def models(self) -> list[str]:
        """The classifiers' networks, with a one-unit head."""
        return model_names("classify")

    def prepare_data(self, config: TrainConfig, run_dir: Path) -> RegressionData:
        return prepare_regression_data(self.resolve_source(config), config, run_dir)

    def build_model(self, config: TrainConfig, data: RegressionData) -> keras.Model:
        """The registry network with one linear output, rescaled to the target's units, so the
        exported model predicts the target itself."""
        entry = MODELS[config.model]
        options = {name: config.setting(name) for name in entry.config_options}
        network = build_model(config.model, 1, (config.image_size, config.image_size, 3), weights=config.weights,
                              **options)
        output = keras.layers.Rescaling(data.scale, offset=data.mean, name="target_units")(network.outputs[0])
        return keras.Model(network.input, output, name=network.name)  # .input keeps SedNet's (whole, local) order

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                jit: bool) -> None:
        """Mean squared error; RMSE, MAE and R² per epoch (TensorBoard ``epoch_*``)."""
        model.compile(optimizer=optimizer, loss="mse", jit_compile=jit,
                      metrics=[keras.metrics.RootMeanSquaredError(name="rmse"),
                               keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.R2Score(name="r2")])

    def summaries(self, config: TrainConfig, run_dir: Path, data: RegressionData) -> list:
        callbacks = []
        if config.tb_gradcam_freq:
            callbacks.append(ValidationScatter(run_dir, data, data.dataset("val", config), config.tb_gradcam_freq))
        if config.tb_histogram_freq:
            callbacks.append(tb.Histograms(run_dir, data.validation_inputs(config.tb_gradcam_images),
                                           config.tb_histogram_freq))
        return callbacks

    def evaluate(self, model: keras.Model, config: TrainConfig, data: RegressionData, run_dir: Path) -> dict:
        """Predicts every split; writes metrics.json, groups.csv, predictions.csv and scatter.png."""
        metrics, points, tables = {}, {}, []
        for split in SPLITS:
            table = data.split_table(split)
            predicted = model.predict(data.dataset(split, config), verbose=0)[:, 0]
            metrics[split] = regression_scores(table["target"].to_numpy(), predicted)
            points[split] = (table["target"].to_numpy(), predicted)
            tables.append(table.assign(predicted=predicted))
        predictions = pd.concat(tables, ignore_index=True)
        write_csv(predictions[["path", "group", "split", "target", "predicted"]], run_dir / "predictions.csv")
        groups = group_means(predictions, predictions["predicted"].to_numpy()) if data.group_column else None
        if groups is not None:
            groups.to_csv(run_dir / "groups.csv", index=False)
            test = groups[groups["split"] == "test"]
            metrics["test_groups"] = regression_scores(test["target"].to_numpy(), test["predicted"].to_numpy())
        figure = scatter_figure(points, data.target_name, f"{config.model}: test R² {metrics['test']['r2']:.3f}",
                                None if groups is None else groups[groups["split"] == "test"])
        figure.savefig(run_dir / "scatter.png", dpi=120)
        (run_dir / "metrics.json").write_text(json.dumps(
            {"target": data.target_name, "group_column": data.group_column, **metrics}, indent=2))
        return metrics

    def final_scalars(self, metrics: dict) -> dict[str, float]:
        return {f"{split}_{key}": metrics[split][key] for split in SPLITS for key in SCORES}

    def headline(self, metrics: dict) -> str:
        test = metrics["test"]
        return f"Test R² {test['r2']:.3f}, RMSE {test['rmse']:.3g}, Pearson r {test['pearson_r']:.3f}."

    def report_lines(self, run_dir: Path) -> list[tuple[str, str]]:
        return [("metrics", f"{run_dir / 'metrics.json'} (train/val/test, test groups)"),
                ("predictions", f"{run_dir / 'predictions.csv'}, per group {run_dir / 'groups.csv'}"),
                ("scatter", str(run_dir / "scatter.png"))]


register_task(RegressTask())
