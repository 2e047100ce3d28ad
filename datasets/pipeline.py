"""``tf.data`` pipelines from image tables.

Inputs come in two kinds, told by :attr:`InputSpec.channels`:

- photographs (three channels): decoded by OpenCV as RGB, resized, cached as ``uint8``; the
  models take float32 RGB in [0, 255] and each scales its own input. Training augments
  them with label-aware D4 transforms (flips and quarter turns).
- seismic patches (one channel): amplitudes read from grey PNG/TIFF, ``.npy`` or SEG-Y,
  resized and z-scored (per patch, or with the training set's mean and deviation), cached as
  float32. Training flips them left-right only: depth has a direction, so an up-down flip
  or a quarter turn would draw geology that does not occur.

Files are decoded once (through ``tf.numpy_function``). A single-input model gets the image
tensor; a two-input model such as SedNet gets ``{first: image, second: crop}`` (SedNet:
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
from datasets.seismic import read_patch, section_image, zscore
from datasets.tables import BOX_COLUMNS

INPUT_KINDS = ("photo", "seismic")


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: its input names, the whole image's side, for a second input
    (SedNet's ``local``) the side of the crop it takes, and its channels: three for RGB
    photographs, one for seismic amplitudes (z-scored per patch, or with ``amplitude_stats``,
    the training set's mean and standard deviation)."""

    image_size: int
    local_size: int | None = None
    input_names: tuple[str, ...] = ("image",)
    channels: int = 3
    amplitude_stats: tuple[float, float] | None = None

    def __post_init__(self):
        if len(self.input_names) != (2 if self.local_size else 1):
            raise ValueError(f"InputSpec: {self.input_names} need local_size exactly when there are two inputs.")
        if self.channels not in (1, 3):
            raise ValueError(f"InputSpec: channels={self.channels}; 3 (photographs) or 1 (seismic amplitudes).")

    @property
    def seismic(self) -> bool:
        return self.channels == 1

    @property
    def crop_input(self) -> str | None:
        """The input that takes the local crop, if any."""
        return self.input_names[1] if self.local_size else None

    @property
    def min_source_size(self) -> int:
        """The smallest image side worth reading: a quarter of the smallest input side (an
        image enlarged more than four times holds no detail for the model to see)."""
        return max(1, min(self.image_size, self.local_size or self.image_size) // 4)


def read_source(path: str | os.PathLike, spec: InputSpec) -> np.ndarray:
    """One file as the spec's kind reads it: RGB uint8 (H, W, 3), or amplitudes float32 (H, W, 1).

    Raises:
        datasets.images.UnreadableImageError: the file cannot be read as that kind.
    """
    return read_patch(path) if spec.seismic else read_image(path)


def picture(source: np.ndarray) -> np.ndarray:
    """What a person looks at: an RGB image as it is, amplitudes (H, W, 1) as a grey
    variable-density section centred on the data's median (:func:`datasets.seismic.section_image`),
    the seismic display under which a heat map's colours stay readable."""
    if source.shape[-1] == 1:
        return section_image(source[..., 0])
    return np.clip(source, 0, 255).astype(np.uint8)


def load_example(path: str, box: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ...]:
    """Decodes one file into the model's inputs: (S, S, C) and, for SedNet, its crop."""
    return model_inputs(read_source(path, spec), box, spec)


def model_inputs(source: np.ndarray, box: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ...]:
    """A decoded file (:func:`read_source`) as the model's inputs: the resized image and, for
    SedNet, its crop; seismic inputs z-scored after resizing."""
    whole = _scaled(resize(source, spec.image_size), spec)
    if not spec.local_size:
        return (whole,)
    x0, y0, x1, y1 = local_box(source, box)
    return whole, _scaled(resize(source[y0:y1, x0:x1], spec.local_size), spec)


def _scaled(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    if not spec.seismic:
        return image
    amplitude = image.reshape(*image.shape[:2], 1)  # OpenCV drops a single channel
    if spec.amplitude_stats is None:
        return zscore(amplitude)
    mean, std = spec.amplitude_stats
    return ((amplitude - mean) / max(std, 1e-6)).astype(np.float32)


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
        augment: a random flip and quarter turn per image (the dihedral group D4); seismic
            patches a left-right flip only.
        mirror: class index map applied on a flip (datasets.augment.mirror_permutation); None
            keeps the label, as for a regression target.
        cache: keep decoded images in memory after the first epoch.
    """
    labels = labels.astype(np.int32 if num_classes else np.float32)
    boxes = table[BOX_COLUMNS].to_numpy(np.float32)
    sizes = [spec.image_size] + ([spec.local_size] if spec.local_size else [])

    def load(path, box, label):
        dtype = tf.float32 if spec.seismic else tf.uint8
        arrays = tf.numpy_function(lambda p, b: load_example(os.fsdecode(p), b, spec), [path, box],
                                   [dtype] * len(sizes), stateful=False)
        for array, size in zip(arrays, sizes):
            array.set_shape((size, size, spec.channels))
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
                lambda example, s: dihedral_augment(*example, mirror, s, rotate=not spec.seismic),
                num_parallel_calls=tf.data.AUTOTUNE)
    names = spec.input_names

    def to_model_inputs(arrays, label):
        floats = [tf.cast(a, tf.float32) for a in arrays]
        inputs = dict(zip(names, floats)) if len(floats) > 1 else floats[0]
        return inputs, tf.one_hot(label, num_classes) if num_classes else label[None]

    return dataset.map(to_model_inputs).batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
