"""TensorBoard for every task: the writers, and the callbacks every run has.

- :class:`EpochScalars`: the epoch's logs (loss, the task's metrics) and learning rate.
- :class:`Histograms`: every trainable weight and bias, and the activations of the
  ``features`` layers on the fixed validation images.
- :class:`HParams`: the run's hyperparameters for TensorBoard's HParams dashboard.
- :class:`ModelSummary`: the model's architecture as text (Keras 3 writes no graph TensorBoard can show).

Only the chief of a ``tf.distribute`` cluster writes (:func:`is_chief`). A task's own pictures
and scores sit beside it (e.g. :mod:`training.tasks.classify.callbacks`) over
:class:`SummaryCallback`.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.histogram import metadata as histogram_metadata

from explain.views import DEFAULT_LAYER, resolve_layers
from training.distribute import is_chief

_WRITERS: dict[str, tf.summary.SummaryWriter] = {}


def writer_for(directory: str | Path) -> tf.summary.SummaryWriter:
    """One summary writer per folder, shared by all callbacks, so each folder gets one event file."""
    key = str(Path(directory).resolve())
    if key not in _WRITERS:
        _WRITERS[key] = tf.summary.create_file_writer(key)
    return _WRITERS[key]


def close_writers(run_dir: str | Path) -> None:
    """Closes the summary writers of ``run_dir`` and its sub-folders, so a process that trains
    several runs (``training.compare``) keeps no file open per finished run."""
    root = Path(run_dir).resolve()
    for key in [k for k in _WRITERS if Path(k) == root or root in Path(k).parents]:
        _WRITERS.pop(key).close()


class SummaryCallback(keras.callbacks.Callback):
    """A callback that writes summaries into ``log_dir/<subdir>``, on the chief only."""

    def __init__(self, log_dir: str | Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.active = is_chief()

    def writer(self, subdir: str = "") -> tf.summary.SummaryWriter:
        return writer_for(self.log_dir / subdir)

    def on_train_end(self, logs=None):
        for subdir in ("", "train", "validation"):
            writer_for(self.log_dir / subdir).flush()


class EpochScalars(SummaryCallback):
    """Every scalar of the epoch's logs as ``epoch_<name>``: train to ``train/``, ``val_*`` to
    ``validation/`` (the layout of Keras' TensorBoard callback)."""

    def on_epoch_end(self, epoch, logs=None):
        if not self.active:
            return
        for key, value in (logs or {}).items():
            subdir, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if np.ndim(value) == 0:
                with self.writer(subdir).as_default(step=epoch):
                    tf.summary.scalar(f"epoch_{name}", float(value))


class FlushSummaries(SummaryCallback):
    """Flushes the run's summary writers at each epoch's end (put it after the other
    writers), so a killed run loses no step it had finished."""

    def on_epoch_end(self, epoch, logs=None):
        if self.active:
            self.on_train_end()


def histogram_buckets(values: tf.Tensor, buckets: int = 30) -> tf.Tensor:
    """TensorBoard's histogram layout: a (buckets, 3) float64 tensor of [left, right, count].

    One ``tf.histogram_fixed_width`` over the tensor's range: no Python loop over elements,
    and far cheaper to trace than ``tf.summary.histogram``.
    """
    values = tf.reshape(tf.cast(values, tf.float64), [-1])
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    high = tf.where(high > low, high, low + 1.0)
    counts = tf.cast(tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=buckets), tf.float64)
    edges = tf.linspace(low, high, buckets + 1)
    return tf.stack([edges[:-1], edges[1:], counts], axis=1)


class Histograms(SummaryCallback):
    """Weights and biases of every trainable layer (train run) and activations of the
    ``features`` layers on the fixed validation images (validation run), every ``freq`` epochs.

    One compiled call computes and writes every histogram of an epoch (eager writes of some
    sixty tags cost SedNet's epoch about 30 ms more).
    """

    def __init__(self, log_dir, images: dict[str, np.ndarray], freq: int = 1):
        super().__init__(log_dir)
        self.images, self.freq = images, freq
        self._write = None

    def set_model(self, model):
        super().set_model(model)
        if not self.active:
            return
        names = set(resolve_layers(model).values())  # each input's explained layer, e.g. SedNet's branches
        names |= {layer.name for layer in model.layers if layer.name == DEFAULT_LAYER}
        activations = keras.Model(model.inputs, {n: model.get_layer(n).output for n in sorted(names)})
        inputs = [tf.constant(self.images[t.name]) for t in model.inputs]
        train, validation = self.writer("train"), self.writer("validation")

        @tf.function
        def write(step):
            with train.as_default(step=step):
                for weight in model.trainable_weights:
                    tf.summary.write(f"weights/{weight.path}", histogram_buckets(weight.value),
                                     metadata=_HISTOGRAM_METADATA)
            with validation.as_default(step=step):
                for name, values in activations(inputs, training=False).items():
                    tf.summary.write(f"activations/{name}", histogram_buckets(values), metadata=_HISTOGRAM_METADATA)

        self._write = write

    def on_epoch_end(self, epoch, logs=None):
        if self.active and self.freq >= 1 and epoch % self.freq == 0:
            self._write(tf.constant(epoch, tf.int64))


_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name=None, description=None)


class HParams(SummaryCallback):
    """The run's hyperparameters, for TensorBoard's HParams dashboard, written at the start."""

    def __init__(self, log_dir, hyperparameters: dict, run_name: str):
        super().__init__(log_dir)
        self.hyperparameters = {k: v for k, v in hyperparameters.items() if isinstance(v, (bool, int, float, str))}
        self.run_name = run_name

    def on_train_begin(self, logs=None):
        if self.active:
            with self.writer().as_default():
                hparams_api.hparams(self.hyperparameters, trial_id=self.run_name)


def write_final_metrics(log_dir: str | Path, scalars: dict[str, float], step: int) -> None:
    """The final scores as ``final/<name>`` scalars next to the HParams summary, so the
    HParams dashboard can compare runs by them."""
    if not is_chief():
        return
    writer = writer_for(log_dir)
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.scalar(f"final/{name}", value)
    writer.flush()


class ModelSummary(SummaryCallback):
    """``model.summary()`` and the model's JSON config as text under TensorBoard's *Text* tab."""

    def on_train_begin(self, logs=None):
        if not self.active:
            return
        lines = []
        self.model.summary(print_fn=lambda line, **kwargs: lines.append(line), line_length=110)
        config = json.dumps(json.loads(self.model.to_json()), indent=1)
        with self.writer().as_default(step=0):
            tf.summary.text("model/summary", "```\n" + "\n".join(lines) + "\n```")
            tf.summary.text("model/config", "```\n" + config[:200_000] + "\n```")
