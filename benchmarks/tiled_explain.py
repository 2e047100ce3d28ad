"""Tiled Grad-CAM over a whole image: what it costs beside the tiles' forward passes alone.

A classifier of the registry (random weights) explains one large synthetic thin section tile by
tile, on the CPU, in one process. Two timings, taken in turn ``--repeats`` times after a
warm-up, and their medians:

- ``forward``: the model's forward passes over the image's tiles, already cut and prepared,
  in batches of ``--batch-size``;
- ``tiled``: :func:`explain.tiled.explain_tiled` with Grad-CAM on the image (cut a batch at a
  time, prepare, Grad-CAM with its logits, softmax, blend the probabilities and the maps).

Each model of ``--models`` is measured in turn. The last line is a JSON object with, per model,
``tiled_over_forward`` = tiled / forward (goal <= 1.2) and the two medians, and the number of
tiles.

    python benchmarks/tiled_explain.py [--repeats 5] [--models resnet50,sednet] [--size 512] [--tile 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.console import quiet_command  # noqa: E402

if __name__ == "__main__":
    quiet_command()

import numpy as np  # noqa: E402

from datasets.pipeline import for_model, model_inputs, stack_inputs  # noqa: E402
from datasets.synthetic import thin_sections  # noqa: E402
from datasets.tiles import cut_tiles, tile_origins  # noqa: E402
from explain.loading import LoadedModel, input_spec  # noqa: E402
from explain.tiled import NO_BOX, explain_tiled  # noqa: E402
from models import MODELS, build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="resnet50,sednet",
                        help=f"comma-separated, of {', '.join(n for n, e in MODELS.items() if e.task == 'classify')}")
    parser.add_argument("--size", type=int, default=512, help="side of the synthetic thin section")
    parser.add_argument("--tile", type=int, default=128, help="tile side, also the models' input side")
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    image = thin_sections.generate(np.random.default_rng(0), args.size, shortcut="scale_bar").image
    results = {name: measure(name, image, args) for name in args.models.split(",")}
    print(json.dumps({"tiled_over_forward": {name: r["ratio"] for name, r in results.items()},
                      "seconds": {name: {"forward": r["forward"], "tiled": r["tiled"]} for name, r in results.items()},
                      "tiles": len(tile_origins(image.shape, args.tile, args.stride))}))


def measure(name: str, image: np.ndarray, args: argparse.Namespace) -> dict:
    """Medians of the two timings for one model, taken in turn."""
    options = {"local_size": args.tile // 2} if len(MODELS[name].input_names) > 1 else {}
    model = build_model(name, 2, (args.tile, args.tile, 3), weights="none", **options)
    loaded = LoadedModel(model, ["a", "b"], input_spec(model))
    tiles = cut_tiles(image, args.tile, args.stride)[0]
    batches = [for_model(stack_inputs([model_inputs(t, NO_BOX, loaded.spec) for t in tiles[s:s + args.batch_size]],
                                      loaded.spec)) for s in range(0, len(tiles), args.batch_size)]
    timers = {
        "forward": lambda: [model.predict_on_batch(batch) for batch in batches],
        "tiled": lambda: explain_tiled(loaded, image, ["gradcam"], args.tile, args.stride,
                                       batch_size=args.batch_size),
    }
    timings = {timer: [] for timer in timers}
    for function in timers.values():
        function()  # warm-up: tracing and first allocations
    for _ in range(args.repeats):
        for timer, function in timers.items():
            started = time.perf_counter()
            function()
            timings[timer].append(time.perf_counter() - started)
    forward, tiled = (statistics.median(timings[timer]) for timer in timers)
    print(f"{name}: {len(tiles)} tiles of {args.tile} px over a {image.shape[0]} px image: forward passes "
          f"{forward:.3f} s, tiled Grad-CAM {tiled:.3f} s, ratio {tiled / forward:.2f} (medians of {args.repeats})",
          flush=True)
    return {"ratio": round(tiled / forward, 4), "forward": round(forward, 4), "tiled": round(tiled, 4)}


if __name__ == "__main__":
    main()
