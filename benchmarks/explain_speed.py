"""Grad-CAM and Fast-CAM speed: ours (batched, one compiled call) against a forward pass and tf-explain.

ResNet50 at 224 px, batch 8, random weights, on the CPU, all in one process. Each figure is
the median of ``--repeats`` timings after a warm-up. The last line is a JSON object:

- ``gradcam_over_forward``: our Grad-CAM / one compiled forward pass (goal <= 1.3);
- ``speedup_vs_tf_explain_batch``: tf-explain's ``GradCAM.explain`` on the batch (one class
  for all) / ours (goal >= 3.5);
- ``speedup_vs_tf_explain_per_image``: tf-explain called once per image, which per-sample
  targets require / ours (goal >= 10);
- ``fastcam_over_forward`` and ``fastcam_gradcam_over_forward``: Fast-CAM over ResNet-50's
  five stages, plain and gated by Grad-CAM / one forward pass (goal <= 1.3, Mundhenk et al.).

    python benchmarks/explain_speed.py [--repeats 7]
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
from tf_explain.core.grad_cam import GradCAM  # noqa: E402

import explain  # noqa: E402
from models import build_model  # noqa: E402


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up: tracing and first allocations
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    model = build_model("resnet50", 5, (args.size, args.size, 3), weights=None)
    images = np.random.default_rng(0).random((args.batch, args.size, args.size, 3), np.float32) * 255
    targets = np.arange(args.batch) % 5
    forward = tf.function(lambda x: model(x, training=False))
    tensor = tf.constant(images)

    def tf_explain_per_image():
        for image, target in zip(images, targets):
            GradCAM().explain((image[None], None), model, int(target), layer_name="features", use_guided_grads=False)

    seconds = {
        "forward": median_seconds(lambda: forward(tensor).numpy(), args.repeats),
        "ours": median_seconds(lambda: explain.gradcam(model, images, targets), args.repeats),
        "fastcam": median_seconds(lambda: explain.fastcam(model, images), args.repeats),
        "fastcam_gradcam": median_seconds(lambda: explain.fastcam_gradcam(model, images, targets), args.repeats),
        "tf_explain_batch": median_seconds(lambda: GradCAM().explain(
            (images, None), model, 0, layer_name="features", use_guided_grads=False), args.repeats),
        "tf_explain_per_image": median_seconds(tf_explain_per_image, max(3, args.repeats // 2)),
    }
    for name, value in seconds.items():
        print(f"{name:>22}: {value * 1000:8.1f} ms  ({value / seconds['forward']:.2f} forward passes)")
    print(json.dumps({
        "gradcam_over_forward": round(seconds["ours"] / seconds["forward"], 3),
        "speedup_vs_tf_explain_batch": round(seconds["tf_explain_batch"] / seconds["ours"], 2),
        "speedup_vs_tf_explain_per_image": round(seconds["tf_explain_per_image"] / seconds["ours"], 2),
        "fastcam_over_forward": round(seconds["fastcam"] / seconds["forward"], 3),
        "fastcam_gradcam_over_forward": round(seconds["fastcam_gradcam"] / seconds["forward"], 3),
        "milliseconds": {k: round(v * 1000, 1) for k, v in seconds.items()},
    }))


if __name__ == "__main__":
    main()
