"""From ``--data`` to checked, split ``tf.data`` pipelines, with split.csv and bad_files.csv."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.augment import mirror_permutation, resolve_mirror_pairs
from datasets.pipeline import InputSpec, load_example, make_dataset
from datasets.synthetic import cached_dataset
from datasets.tables import (BOX_COLUMNS, SPLITS, DataError, check_images, load_table, stratified_split,
                             write_bad_files, write_split)
from models import MODELS
from training.config import ConfigError, TrainConfig

DETECTION_CLASTS = 3  # most sigma clasts per synthetic image for --task detect


@dataclass
class PreparedData:
    """The split table, the class names and what the model's inputs look like."""

    table: pd.DataFrame  # one row per usable image, with a split column
    class_names: list[str]
    spec: InputSpec
    mirror_pairs: list[tuple[str, str]]
    replicas: int = 1  # batches hold batch_size images per replica

    def split_table(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def fixed_validation_sample(self, count: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Up to ``count`` validation images, classes taken in turn: the model inputs and labels."""
        table = self.split_table("val")
        order = table.groupby("label").cumcount().sort_values(kind="stable").index[:count]
        rows = table.loc[order]
        examples = [load_example(r.path, np.array([getattr(r, c) for c in BOX_COLUMNS], np.float32), self.spec)
                    for r in rows.itertuples()]
        images = {name: np.stack([e[i] for e in examples]).astype(np.float32)
                  for i, name in enumerate(self.spec.input_names)}
        return images, label_indices(rows, self.class_names)

    def dataset(self, split: str, config: TrainConfig, training: bool = False,
                distributed: bool = False) -> tf.data.Dataset:
        """Batches of one split. ``distributed`` datasets (for ``fit`` under a strategy of
        several replicas) hold ``batch_size`` images per replica and drop the last, partial
        batch, which Keras cannot split across replicas."""
        mirror = mirror_permutation(self.class_names, self.mirror_pairs) if config.augment else None
        replicas = self.replicas if distributed else 1
        return make_dataset(self.split_table(split), self.class_names, self.spec, config.batch_size * replicas,
                            training=training, mirror=mirror, seed=config.seed, cache=config.cache,
                            drop_remainder=replicas > 1)


def resolve_source(config: TrainConfig) -> Path:
    """The data path; ``synthetic:NAME`` is generated once and cached under the log root."""
    if not config.data.startswith("synthetic:"):
        return Path(config.data).expanduser()
    name = config.data.split(":", 1)[1]
    clasts = DETECTION_CLASTS if config.task == "detect" else 1
    options = {"max_clasts": clasts} if name == "sigma_clasts" else {"shortcut": "none"}
    return cached_dataset(name, config.logdir, n=config.synthetic_n, seed=config.seed,
                          size=config.synthetic_size, **options)


def prepare_data(config: TrainConfig, run_dir: Path) -> PreparedData:
    """Loads, checks and splits the data and writes split.csv and bad_files.csv.

    Raises:
        DataError: missing path, no images, empty class folder, a single class, too few
            images per class for the split, or images smaller than the model's minimum input.
    """
    entry = MODELS[config.model]
    table = load_table(resolve_source(config))
    checked = check_images(table, entry.min_input_size)
    print(write_bad_files(checked.bad_files, run_dir / "bad_files.csv"), flush=True)
    table = stratified_split(checked.table, config.split_fractions(), config.seed)
    missing = [s for s in SPLITS if not (table["split"] == s).any()]
    if missing:
        raise DataError(f"The {'/'.join(missing)} split(s) hold no usable image; add images or fix the "
                        "manifest's split column.")
    write_split(table, run_dir / "split.csv")
    class_names = sorted(table["label"].unique())
    pairs = chiral_pairs(class_names, config)
    spec = InputSpec(config.image_size, config.local_size if entry.uses_local_input else None)
    counts = table.groupby("split")["label"].count().reindex(list(SPLITS)).to_dict()
    print(f"{len(table)} images, {len(class_names)} classes {class_names}; split {counts}", flush=True)
    return PreparedData(table, class_names, spec, pairs)


def chiral_pairs(class_names: list[str], config: TrainConfig) -> list[tuple[str, str]]:
    """The label pairs a mirror flip swaps (``--mirror-pairs``), announced on stdout.

    Raises:
        ConfigError: the pairs name unknown classes or are malformed.
    """
    try:
        pairs = resolve_mirror_pairs(class_names, config.mirror_pairs)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if pairs:
        print("Chiral labels: a mirror flip swaps " + ", ".join(f"{a}<->{b}" for a, b in pairs), flush=True)
    return pairs


def label_indices(table: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return table["label"].map(index).to_numpy(np.int64)
