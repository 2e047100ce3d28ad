"""A distributed training loop for strategies under which Keras 3's ``model.fit`` fails.

Under ``MultiWorkerMirroredStrategy`` ``model.fit`` raises a PerReplica conversion error
(keras-team/keras#20585). This loop runs the model's own ``train_step`` / ``test_step``
(the steps ``fit`` runs: loss scaling for distribution, gradient all-reduce in the
optimizer, compiled metrics) inside ``strategy.run``, on a dataset the strategy shards
across workers, and drives Keras callbacks with the same hooks and logs as ``fit`` —
including ``BackupAndRestore``'s resume epoch — so the TensorBoard callbacks and users' own
callbacks keep working.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset) -> tf.distribute.DistributedDataset:
    """Shards by element across workers (our file reading is a numpy_function, so the file-based
    auto-sharding cannot see the files)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def fit_distributed(model: keras.Model, strategy: tf.distribute.Strategy, train: tf.data.Dataset,
                    val: tf.data.Dataset, epochs: int, callbacks: list[keras.callbacks.Callback],
                    initial_epoch: int = 0, verbose: int = 2) -> keras.callbacks.History:
    """Trains like ``model.fit(train, validation_data=val, epochs=..., callbacks=...)``.

    Args:
        train, val: batched datasets of global batches, with the remainder dropped.
    """
    history = keras.callbacks.History()
    steps = int(train.cardinality())
    callback_list = keras.callbacks.CallbackList(
        callbacks + [history], add_progbar=verbose > 0, model=model, verbose=verbose, epochs=epochs, steps=steps)
    train_step = _compiled(strategy, model.train_step)
    test_step = _compiled(strategy, model.test_step)
    train_batches, val_batches = distribute(strategy, train), distribute(strategy, val)
    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = max(initial_epoch, getattr(model, "_initial_epoch", None) or 0)  # set by BackupAndRestore
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        examples = 0
        for step, batch in enumerate(train_batches):
            callback_list.on_train_batch_begin(step)
            train_step(batch)
            examples += _local_examples(strategy, batch)
            callback_list.on_train_batch_end(step, _scalars(model.get_metrics_result()))
        if epoch == initial_epoch:
            print(f"This worker's shard: {examples} training examples per epoch", flush=True)
        logs = _scalars(model.get_metrics_result())
        callback_list.on_test_begin()
        model.reset_metrics()
        for step, batch in enumerate(val_batches):
            callback_list.on_test_batch_begin(step)
            test_step(batch)
            callback_list.on_test_batch_end(step)
        val_logs = _scalars(model.get_metrics_result())
        callback_list.on_test_end(val_logs)
        logs.update({f"val_{name}": value for name, value in val_logs.items()})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs=None)
    return history


def _compiled(strategy: tf.distribute.Strategy, step):
    @tf.function
    def run(batch):
        strategy.run(step, args=(batch,))
    return run


def _local_examples(strategy: tf.distribute.Strategy, batch) -> int:
    """How many examples of a distributed batch this worker's replicas hold."""
    first = tf.nest.flatten(batch)[0]
    return sum(int(tf.shape(part)[0]) for part in strategy.experimental_local_results(first))


def _scalars(results: dict) -> dict[str, float]:
    """Metric results as Python floats (aggregated across replicas and workers on read)."""
    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in results.items()
            if keras.ops.ndim(value) == 0}
