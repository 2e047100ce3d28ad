"""Activation maximisation: what one optimisation step costs beside a forward plus backward pass.

The salt thesis's AM subject, the ResNet34 salt classifier (random weights), on one-channel
patches, on the CPU, in one process. Two timings, taken in turn ``--repeats`` times after a
warm-up, and their medians:

- ``forward_backward``: a compiled forward pass of a batch and the gradient of its logits
  with respect to the input, the least any gradient-ascent step can cost;
- ``am_step``: one step of :func:`explain.featurevis.activation_maximization` with its
  defaults (Fourier parametrisation, random jitter, scale and rotation, Adam) on a batch of
  the same size, as (time of ``--steps`` + 1 steps - time of 1 step) / ``--steps``, so that
  tracing and set-up are left out. The polish phase is turned off (``polish=0``), since its
  own tracing would count as steps: this is the cost of a step of the Fourier phase.

The last line is a JSON object with ``am_step_over_forward_backward`` (goal <= 1.5) and the
two medians.

    python benchmarks/visualize_speed.py [--repeats 5] [--size 128] [--batch 8] [--steps 20]
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
import tensorflow as tf  # noqa: E402

from explain.featurevis import activation_maximization  # noqa: E402
from models.unet import build_resnet34_classifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=128, help="patch side")
    parser.add_argument("--batch", type=int, default=8, help="images per batch (AM objectives)")
    parser.add_argument("--steps", type=int, default=20, help="AM steps per timing")
    parser.add_argument("--encoder-width", type=int, default=64)
    args = parser.parse_args()
    model = build_resnet34_classifier(2, (args.size, args.size, 1), encoder_width=args.encoder_width)
    batch = tf.constant(np.random.default_rng(0).normal(size=(args.batch, args.size, args.size, 1)), tf.float32)

    @tf.function
    def forward_backward(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            score = tf.reduce_sum(model(images, training=False)[:, 1])
        return tape.gradient(score, images)

    def am(steps: int):
        return activation_maximization(model, [1] * args.batch, steps=steps, value_range=(-3.0, 3.0), polish=0)

    def timed(function) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    forward_backward(batch).numpy()  # warm-up: tracing and first allocations
    am(1)
    timings = {"forward_backward": [], "am_step": []}
    for _ in range(args.repeats):
        timings["forward_backward"].append(timed(lambda: forward_backward(batch).numpy()))
        timings["am_step"].append((timed(lambda: am(args.steps + 1)) - timed(lambda: am(1))) / args.steps)
    reference, step = (statistics.median(timings[name]) for name in ("forward_backward", "am_step"))
    print(f"batch {args.batch} of {args.size} px: forward + backward {reference * 1000:.1f} ms, AM step "
          f"{step * 1000:.1f} ms (medians of {args.repeats})")
    print(json.dumps({"am_step_over_forward_backward": round(step / reference, 3),
                      "forward_backward_seconds": round(reference, 4), "am_step_seconds": round(step, 4)}))


if __name__ == "__main__":
    main()
