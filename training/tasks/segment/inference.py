"""Running a segmentation model over many inputs, on whichever worker asks."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def predict_batches(model: keras.Model, inputs, batch_size: int, verbose: int = 0, mirror: bool = False) -> np.ndarray:
    """The model's outputs on ``inputs`` (an array, or a dict of arrays by input name), batch by
    batch. Inside a distribution strategy (the validation scores each epoch) the batches are run
    on this worker alone: ``model.predict`` would spread them over the strategy's workers, and
    under MultiWorkerMirroredStrategy it fails.

    ``mirror`` (test-time augmentation of (N, H, W, C) images): the mean of the outputs on the
    images and, mirrored back, on their left-right mirrors; a section may be mirrored along its
    traces, so both are equally good views of it."""
    if mirror:
        mirrored = predict_batches(model, inputs[:, :, ::-1], batch_size, verbose)[:, :, ::-1]
        return (predict_batches(model, inputs, batch_size, verbose) + mirrored) / 2
    if not tf.distribute.has_strategy():
        return model.predict(inputs, batch_size=batch_size, verbose=verbose)
    count = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
    batches = ({k: v[start:start + batch_size] for k, v in inputs.items()} if isinstance(inputs, dict)
               else inputs[start:start + batch_size] for start in range(0, count, batch_size))
    return np.concatenate([keras.ops.convert_to_numpy(model(batch, training=False)) for batch in batches])
