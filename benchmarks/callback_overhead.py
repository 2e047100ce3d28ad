"""Epoch-time cost of the TensorBoard callbacks on the main job.

Trains the default main job's model (SedNet on the synthetic sigma clasts, default config)
in one process, alternately with every TensorBoard callback at its default settings and
with no callback, order-alternated over ``--rounds`` rounds. Each fit's first epoch (tracing,
filling the image cache) is dropped; the epoch timer runs last, so it includes the other
callbacks' end-of-epoch work. The last line is a JSON object with ``epoch_time_ratio``
(median epoch time with / without callbacks; goal <= 1.05), ``lower_quartile_ratio`` (the
same for the first quartiles) and ``end_of_epoch_share``: the median time the callbacks' epoch-end
hooks take, clocked around them inside the "with" epochs, over the median epoch without
callbacks. On a shared machine single epochs of either arm vary by a second or more, which the
ratios feel and the clocked share does not.

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

from datasets.console import quiet_command  # noqa: E402

if __name__ == "__main__":
    quiet_command()

import keras  # noqa: E402

from training.config import TrainConfig, parse_config  # noqa: E402
from training.runner import tensorboard_callbacks  # noqa: E402
from training.tasks import TASKS  # noqa: E402
from training.phases import BestModelCheckpoint, fit  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch and, from :class:`HooksStart` on, the epoch-end hooks between them."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.hook_seconds: list[float] = []
        self.hooks_started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started, self.hooks_started = time.perf_counter(), None

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.seconds.append(now - self._started)
        if self.hooks_started is not None:
            self.hook_seconds.append(now - self.hooks_started)


class HooksStart(keras.callbacks.Callback):
    """Placed before the measured callbacks: marks when their epoch-end hooks begin."""

    def __init__(self, timer: EpochTimer):
        super().__init__()
        self.timer = timer

    def on_epoch_end(self, epoch, logs=None):
        self.timer.hooks_started = time.perf_counter()


def timed_fit(config, data, datasets, run_dir: Path, with_callbacks: bool) -> EpochTimer:
    """One fit, timed; with every TensorBoard callback when asked. Both arms keep the best model
    and back the training state up each epoch, as every run does."""
    task = TASKS[config.task]
    keras.utils.set_random_seed(config.seed)
    model = task.build_model(config, data)
    timer = EpochTimer()
    run_dir.mkdir(parents=True, exist_ok=True)
    measured = [HooksStart(timer), *tensorboard_callbacks(task, config, run_dir, data)] if with_callbacks else []
    fit(model, config, *datasets, [*measured, timer], backup_dir=run_dir / "backup",
        compile=lambda m, optimizer: task.compile(m, optimizer, config, False),
        best=BestModelCheckpoint(run_dir / "model.keras", run_dir / "backup" / "best.json"))
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--synthetic-n", type=int, default=TrainConfig.synthetic_n, help="images (tiny runs: 24)")
    parser.add_argument("--image-size", type=int, default=TrainConfig.image_size)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logdir:
        config = parse_config(["--logdir", logdir, "--epochs", str(args.epochs), "--synthetic-n", str(args.synthetic_n),
                               "--image-size", str(args.image_size), "--local-size", str(args.image_size // 2)], TASKS)
        (Path(logdir) / "data").mkdir()
        data = TASKS[config.task].prepare_data(config, Path(logdir) / "data")
        datasets = (data.dataset("train", config, training=True), data.dataset("val", config))
        times, hooks = {"with": [], "without": []}, []
        for round_ in range(args.rounds):
            order = ("with", "without") if round_ % 2 == 0 else ("without", "with")
            for kind in order:
                run_dir = Path(logdir) / f"{kind}{round_}"
                timer = timed_fit(config, data, datasets, run_dir, with_callbacks=kind == "with")
                times[kind] += timer.seconds[1:]  # the first epoch traces and fills the cache
                hooks += timer.hook_seconds[1:]
                print(f"round {round_} {kind:>7} callbacks: epochs {[round(t, 2) for t in times[kind][-(args.epochs - 1):]]} s",
                      flush=True)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    quartiles = {kind: statistics.quantiles(values, n=4)[0] for kind, values in times.items()}
    print(json.dumps({"epoch_time_ratio": round(medians["with"] / medians["without"], 3),
                      "lower_quartile_ratio": round(quartiles["with"] / quartiles["without"], 3),
                      "end_of_epoch_share": round(statistics.median(hooks) / medians["without"], 3),
                      "end_of_epoch_seconds": round(statistics.median(hooks), 3),
                      "median_epoch_seconds": {k: round(v, 3) for k, v in medians.items()},
                      "epochs_measured": {k: len(v) for k, v in times.items()}}))


if __name__ == "__main__":
    main()
