"""Epoch-time cost of the TensorBoard callbacks on the main job.

Trains the default main job's model (SedNet on the synthetic sigma clasts, default config)
in one process, alternately with every TensorBoard callback at its default settings and
with no callback, order-alternated over ``--rounds`` rounds. Each fit's first epoch (tracing,
filling the image cache) is dropped; the epoch timer runs last, so it includes the other
callbacks' end-of-epoch work. The last line is a JSON object with ``epoch_time_ratio``
(median epoch time with / without callbacks; goal <= 1.05) and ``lower_quartile_ratio``
(the same for the first quartiles, less sensitive to other load on a shared machine).

    python benchmarks/callback_overhead.py [--rounds 4 --epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from training.config import TrainConfig  # noqa: E402
from training.data import prepare_data  # noqa: E402
from training.trainer import create_model, fit, tensorboard_callbacks  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def timed_fit(config, data, datasets, run_dir: Path | None) -> list[float]:
    keras.utils.set_random_seed(config.seed)
    model = create_model(config, len(data.class_names), data.spec.local_size)
    timer = EpochTimer()
    callbacks = (tensorboard_callbacks(config, run_dir, data) if run_dir else []) + [timer]
    fit(model, config, *datasets, callbacks)
    return timer.seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logdir:
        config = TrainConfig(logdir=logdir, epochs=args.epochs)
        (Path(logdir) / "data").mkdir()
        data = prepare_data(config, Path(logdir) / "data")
        datasets = (data.dataset("train", config, training=True), data.dataset("val", config))
        times = {"with": [], "without": []}
        for round_ in range(args.rounds):
            order = ("with", "without") if round_ % 2 == 0 else ("without", "with")
            for kind in order:
                run_dir = Path(logdir) / f"run{round_}" if kind == "with" else None
                times[kind] += timed_fit(config, data, datasets, run_dir)
                print(f"round {round_} {kind:>7} callbacks: epochs {[round(t, 2) for t in times[kind][-(args.epochs - 1):]]} s",
                      flush=True)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    quartiles = {kind: statistics.quantiles(values, n=4)[0] for kind, values in times.items()}
    print(json.dumps({"epoch_time_ratio": round(medians["with"] / medians["without"], 3),
                      "lower_quartile_ratio": round(quartiles["with"] / quartiles["without"], 3),
                      "median_epoch_seconds": {k: round(v, 3) for k, v in medians.items()},
                      "epochs_measured": {k: len(v) for k, v in times.items()}}))


if __name__ == "__main__":
    main()
