"""Whole-section prediction: what cutting, normalising and blending cost beyond the forward passes.

The U-Net-ResNet34 (random weights) predicts one synthetic section patch by patch, on the
CPU, in one process. Two timings, taken in turn ``--repeats`` times after a warm-up, and
their medians:

- ``forward``: ``model.predict`` on the section's patches, already cut and normalised;
- ``whole``: :func:`training.tasks.segment.predict_section` on the section (cut, z-score
  each patch, the same ``model.predict``, sigmoid, blend with the window).

The last line is a JSON object with ``stitching_overhead`` = whole / forward - 1 (goal <= 0.10),
the two medians and the number of patches.

    python benchmarks/stitching.py [--repeats 5] [--size 256] [--patch-size 64] [--stride 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.console import quiet_command  # noqa: E402

if __name__ == "__main__":
    quiet_command()

import numpy as np  # noqa: E402

from datasets.seismic import section_patches  # noqa: E402
from datasets.synthetic.seismic_salt import generate  # noqa: E402
from models import build_model  # noqa: E402
from training.tasks.segment import predict_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="samples per trace; traces are 4/3 of it")
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--encoder-width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    model = build_model("unet_resnet34", 1, (args.patch_size, args.patch_size, 1), weights="none",
                        encoder_width=args.encoder_width)
    amplitude = generate(np.random.default_rng(0), args.size, round(args.size * 4 / 3)).amplitude
    patches = section_patches(amplitude, args.patch_size, args.stride, "patch")[0]
    timers = {
        "forward": lambda: model.predict(patches, batch_size=args.batch_size, verbose=0),
        "whole": lambda: predict_section(model, amplitude, args.patch_size, args.stride, "patch", args.batch_size),
    }
    timings = {name: [] for name in timers}
    for function in timers.values():
        function()  # warm-up: tracing and first allocations
    for _ in range(args.repeats):
        for name, function in timers.items():
            started = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - started)
    forward, whole = (statistics.median(timings[name]) for name in ("forward", "whole"))
    print(f"{len(patches)} patches of {args.patch_size} px: forward passes {forward:.3f} s, whole section "
          f"{whole:.3f} s (medians of {args.repeats})")
    print(json.dumps({"stitching_overhead": round(whole / forward - 1, 4), "forward_seconds": round(forward, 4),
                      "whole_seconds": round(whole, 4), "patches": len(patches)}))


if __name__ == "__main__":
    main()
