"""Devices and ``tf.distribute`` strategies: the one place that decides where training runs.

Call :func:`configure_devices` before TensorFlow touches a device (logical CPU devices and
GPU memory growth can only be set then), then :func:`make_strategy`.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from training.config import STRATEGIES


class StrategyError(ValueError):
    """The requested strategy cannot run here; the message says what to pass instead."""


def configure_devices(logical_cpus: int = 1) -> None:
    """Turns on GPU memory growth and, when asked, splits the CPU into logical devices
    (a MirroredStrategy over them exercises multi-device code on a laptop)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for ``--strategy``.

    ``auto`` is ``mirrored`` with more than one GPU, else the default strategy. ``mirrored``
    spans all GPUs, or all logical CPUs when there is no GPU; with a single device it falls
    back to the default strategy with a warning.

    Raises:
        StrategyError: unknown name, a missing or malformed ``TF_CONFIG`` for
            ``multiworker``, or no TPU for ``tpu``.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "multiworker":  # first: collective ops must be set up before TensorFlow starts its context
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devices) < 2:
            print("warning: --strategy mirrored needs two or more devices and found one; "
                  "training with the default strategy.", flush=True)
            return tf.distribute.get_strategy()
        return tf.distribute.MirroredStrategy(devices)
    return _tpu_strategy()


def set_cluster(workers: str, task_index: int) -> None:
    """Builds ``TF_CONFIG`` from ``--workers host:port,host:port --task-index I``."""
    addresses = [w.strip() for w in workers.split(",") if w.strip()]
    if len(addresses) < 2 or any(":" not in a for a in addresses) or not 0 <= task_index < len(addresses):
        raise StrategyError(f"--workers {workers!r} --task-index {task_index}: give two or more host:port "
                            "addresses and this process's index among them.")
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                          "task": {"type": "worker", "index": task_index}})


def _parsed_tf_config() -> dict:
    """``TF_CONFIG`` as a dict; empty when unset.

    Raises:
        StrategyError: it is not a JSON object.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError as err:
        raise StrategyError(f"TF_CONFIG is not JSON ({err}); unset it, or set it as "
                            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                            '"task": {"type": "worker", "index": 0}}.') from err
    if not isinstance(config, dict):
        raise StrategyError(f"TF_CONFIG must be a JSON object with cluster and task; got {raw!r}.")
    return config


def is_chief() -> bool:
    """Whether this process writes logs: True without a cluster, else for the chief (or worker 0)."""
    config = _parsed_tf_config()
    task, cluster = config.get("task") or {}, config.get("cluster") or {}
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def worker_identity() -> tuple[str, int]:
    """This process's task type and index in the cluster (``("worker", 0)`` without one)."""
    task = _parsed_tf_config().get("task") or {}
    return str(task.get("type", "worker")), int(task.get("index", 0))


def read_tf_config() -> dict:
    """Parses and checks ``TF_CONFIG`` (cluster and task) for multi-worker training."""
    config = _parsed_tf_config()
    if not config:
        raise StrategyError("--strategy multiworker needs TF_CONFIG, e.g. "
                            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                            '"task": {"type": "worker", "index": 0}}.')
    try:
        workers = config["cluster"]["worker"]
        task_type, index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise StrategyError(f"TF_CONFIG is malformed ({err!r}); it needs cluster.worker (a list of "
                            "host:port) and task.type / task.index.") from err
    members = config["cluster"].get(task_type)
    if not isinstance(workers, list) or not workers or not members or not 0 <= index < len(members):
        raise StrategyError(f"TF_CONFIG's task {task_type}:{index} is not in its cluster {config['cluster']}.")
    return config


def _tpu_strategy() -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise StrategyError(f"--strategy tpu found no TPU ({err}). On Colab choose Runtime > Change "
                            "runtime type > TPU; elsewhere use --strategy auto.") from err
    return tf.distribute.TPUStrategy(resolver)


def speed_switches(mixed_precision: bool, jit: bool) -> tuple[bool, bool]:
    """Applies ``--mixed-precision`` (mixed_float16) on a GPU; returns what is in effect.

    On a CPU both switches are accepted and do nothing, and one line says so.
    """
    if not tf.config.list_logical_devices("GPU"):
        if mixed_precision or jit:
            print("note: no GPU, so --mixed-precision and --jit do nothing here.", flush=True)
        return False, False
    if mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    return mixed_precision, jit
