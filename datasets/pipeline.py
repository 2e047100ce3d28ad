"""``tf.data`` pipelines from image tables.

Images are decoded once by OpenCV (through ``tf.numpy_function``), resized, cached as
``uint8`` and, for training, shuffled and augmented with label-aware D4 transforms. Models
take float32 RGB in [0, 255]; each model scales its own input. A single-input model gets the
image tensor; a two-input model such as SedNet gets ``{first: image, second: crop}`` (SedNet:
``whole`` and ``local``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.augment import dihedral_augment
from datasets.images import read_image, resize
from datasets.proposals import local_box
from datasets.tables import BOX_COLUMNS


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: its input names, the whole image's side and, for a second input
    (SedNet's ``local``), the side of the crop it takes."""

    image_size: int
    local_size: int | None = None
    input_names: tuple[str, ...] = ("image",)

    def __post_init__(self):
        if len(self.input_names) != (2 if self.local_size else 1):
            raise ValueError(f"InputSpec: {self.input_names} need local_size exactly when there are two inputs.")

    @property
    def crop_input(self) -> str | None:
        """The input that takes the local crop, if any."""
        return self.input_names[1] if self.local_size else None

    @property
    def min_source_size(self) -> int:
        """The smallest image side worth reading: a quarter of the smallest input side (an
        image enlarged more than four times holds no detail for the model to see)."""
        return max(1, min(self.image_size, self.local_size or self.image_size) // 4)


def load_example(path: str, box: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ...]:
    """Decodes one image into the model's inputs: uint8 (S, S, 3) and, for SedNet, its crop."""
    return model_inputs(read_image(path), box, spec)


def model_inputs(image: np.ndarray, box: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ...]:
    """A decoded RGB image as the model's inputs: the resized image and, for SedNet, its crop."""
    whole = resize(image, spec.image_size)
    if not spec.local_size:
        return (whole,)
    x0, y0, x1, y1 = local_box(image, box)
    return whole, resize(image[y0:y1, x0:x1], spec.local_size)


def stack_inputs(examples: Sequence[tuple[np.ndarray, ...]], spec: InputSpec) -> dict[str, np.ndarray]:
    """Per-example input tuples (from :func:`model_inputs`) as float32 batches keyed by input name."""
    return {name: np.stack([example[i] for example in examples]).astype(np.float32)
            for i, name in enumerate(spec.input_names)}


def for_model(inputs: dict[str, np.ndarray]):
    """What ``model.predict`` and the explainers take: the dict, or a single-input model's array."""
    return inputs if len(inputs) > 1 else next(iter(inputs.values()))


def make_dataset(table: pd.DataFrame, labels: np.ndarray, spec: InputSpec, batch_size: int,
                 num_classes: int | None = None, training: bool = False, augment: bool = False,
                 mirror: np.ndarray | None = None, seed: int = 0, cache: bool = True,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of ``(inputs, targets)`` for ``model.fit`` / ``model.evaluate``.

    Args:
        table: rows with ``path`` and box columns (see datasets.tables).
        labels: per row, a class index (``num_classes`` given: the targets are one-hot) or a
            number to regress (the targets have shape (1,)).
        training: shuffle (seeded, reshuffled every epoch), and augment if asked.
        augment: a random flip and quarter turn per image (the dihedral group D4).
        mirror: class index map applied on a flip (datasets.augment.mirror_permutation); None
            keeps the label, as for a regression target.
        cache: keep decoded images in memory after the first epoch.
    """
    labels = labels.astype(np.int32 if num_classes else np.float32)
    boxes = table[BOX_COLUMNS].to_numpy(np.float32)
    sizes = [spec.image_size] + ([spec.local_size] if spec.local_size else [])

    def load(path, box, label):
        arrays = tf.numpy_function(lambda p, b: load_example(os.fsdecode(p), b, spec), [path, box],
                                   [tf.uint8] * len(sizes), stateful=False)
        for array, size in zip(arrays, sizes):
            array.set_shape((size, size, 3))
        return tuple(arrays), label

    dataset = tf.data.Dataset.from_tensor_slices((np.array([os.fsencode(p) for p in table["path"]]), boxes, labels))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(len(table), seed=seed, reshuffle_each_iteration=True)
        if augment:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            mirror = None if mirror is None else tf.constant(mirror, tf.int32)
            dataset = tf.data.Dataset.zip(dataset, seeds).map(
                lambda example, s: dihedral_augment(*example, mirror, s),
                num_parallel_calls=tf.data.AUTOTUNE)
    names = spec.input_names

    def to_model_inputs(arrays, label):
        floats = [tf.cast(a, tf.float32) for a in arrays]
        inputs = dict(zip(names, floats)) if len(floats) > 1 else floats[0]
        return inputs, tf.one_hot(label, num_classes) if num_classes else label[None]

    return dataset.map(to_model_inputs).batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
