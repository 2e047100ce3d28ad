"""AI4Arctic NetCDF scenes: what reading windows and whole-scene prediction cost beside the model.

One synthetic scene in the ready-to-train layout (``--size`` SAR pixels a side, the coarse grid
``--ratio`` times coarser, as AI4Arctic's 80 m and 2 km) is written to a temporary folder and
opened lazily; ``fusion_aspp`` (random weights) takes patches of ``--cells`` coarse cells. Two
ratios, each from medians of ``--repeats`` rounds that time every step in turn after a warm-up:

- ``sampling_over_step``: reading one batch of windows at random places (SAR and AMSR2, from
  the file) over one training step on that batch (goal <= 0.10: the reader is no bottleneck);
- ``scene_prediction_overhead``: :func:`datasets.ai4arctic.predict_scene` on the whole scene
  (read every tile's window, predict, blend) over the same tiles' forward passes alone, the
  tiles already in memory (goal <= 0.10).

The last line is a JSON object with both ratios and the timings behind them.

    python benchmarks/scene_io.py [--repeats 5] [--size 1000] [--ratio 25] [--cells 10] [--batch-size 8]
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
import numpy as np  # noqa: E402

from datasets.ai4arctic import open_scene, predict_scene, write_scene  # noqa: E402
from datasets.tiles import tile_origins  # noqa: E402
from models import build_model  # noqa: E402
from models.losses import IgnoringInvalid  # noqa: E402


def interleaved_medians(timers: dict, repeats: int) -> dict[str, float]:
    """Each function's median time over ``repeats`` rounds that run every function in turn (after
    one warm-up call each), so that the machine's drifts fall on all of them alike."""
    for function in timers.values():
        function()
    timings = {name: [] for name in timers}
    for _ in range(repeats):
        for name, function in timers.items():
            started = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=1000, help="SAR pixels a side (a multiple of --ratio)")
    parser.add_argument("--ratio", type=int, default=25, help="SAR pixels per coarse cell along a side")
    parser.add_argument("--cells", type=int, default=10, help="patch side in coarse cells")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    coarse = args.size // args.ratio
    patch = args.cells * args.ratio
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scene.nc"
        write_scene(path, rng.normal(size=(args.size, args.size, 2)), rng.normal(size=(coarse, coarse, 14)),
                    rng.integers(0, 11, (args.size, args.size)))
        scene = open_scene(path)
        model = build_model("fusion_aspp", 1, weights="none", input_shape=(patch, patch, 2), mwr_scale=args.ratio)
        model.compile(keras.optimizers.Adam(1e-3), IgnoringInvalid("bce+dice"))
        places = [tuple(int(v) * args.ratio for v in rng.integers(0, coarse - args.cells + 1, 2))
                  for _ in range(args.batch_size)]

        def read_batch():
            windows = [scene.window(row, col, patch) for row, col in places]
            return {"sar": np.stack([w[0] for w in windows]), "mwr": np.stack([w[1] for w in windows])}

        batch = read_batch()
        target = np.zeros((args.batch_size, patch, patch, 2), np.float32)
        target[..., 1] = 1
        origins = tile_origins(scene.shape, patch, max(args.cells // 2, 1) * args.ratio)
        tiles = [scene.window(row, col, patch) for row, col in origins]
        chunks = [{"sar": np.stack([t[0] for t in tiles[i:i + args.batch_size]]),
                   "mwr": np.stack([t[1] for t in tiles[i:i + args.batch_size]])}
                  for i in range(0, len(tiles), args.batch_size)]
        timers = {"read_batch": read_batch, "train_step": lambda: model.train_on_batch(batch, target),
                  "forward_tiles": lambda: [model.predict_on_batch(chunk) for chunk in chunks],
                  "predict_scene": lambda: predict_scene(model, scene, args.batch_size)}
        seconds = interleaved_medians(timers, args.repeats)
        scene.close()
    print(f"{args.size} px scene, {patch} px patches ({len(origins)} tiles): " +
          ", ".join(f"{name} {value:.4f} s" for name, value in seconds.items()) + f" (medians of {args.repeats})")
    print(json.dumps({"sampling_over_step": round(seconds["read_batch"] / seconds["train_step"], 4),
                      "scene_prediction_overhead": round(seconds["predict_scene"] / seconds["forward_tiles"] - 1, 4),
                      **{f"{name}_seconds": round(value, 5) for name, value in seconds.items()}, "tiles": len(origins)}))


if __name__ == "__main__":
    main()
