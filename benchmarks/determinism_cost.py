"""What TensorFlow's op determinism costs a training step of the salt U-Net on this machine.

``--deterministic`` (on by default) makes a seeded run repeat exactly, through
``tf.config.experimental.enable_op_determinism``; on a CPU it also keeps some kernels from
running in parallel. Determinism is set for a whole process, so each timing runs in a child
process of its own: the same U-Net-ResNet34 (random weights), the same batches, with and
without determinism, in turns ``--rounds`` times, each child timing ``--steps`` training steps
after a warm-up. The last line is a JSON object with ``determinism_cost`` = the median
deterministic step time over the median free one, and both medians in milliseconds.

    python benchmarks/determinism_cost.py [--rounds 3] [--steps 10] [--size 128] [--encoder-width 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_steps(args: argparse.Namespace) -> float:
    """Milliseconds per training step in this process, determinism as ``args.child`` says."""
    import keras
    import numpy as np
    import tensorflow as tf

    from models import build_model
    from models.losses import bce_dice

    keras.utils.set_random_seed(0)
    if args.child == "deterministic":
        tf.config.experimental.enable_op_determinism()
    model = build_model("unet_resnet34", 1, (args.size, args.size, 1), weights="none",
                        encoder_width=args.encoder_width)
    model.compile(keras.optimizers.Adam(1e-3), loss=bce_dice)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch * args.steps, args.size, args.size, 1)).astype(np.float32)
    y = (rng.random(x.shape) > 0.5).astype(np.float32)
    model.fit(x[:args.batch * 2], y[:args.batch * 2], batch_size=args.batch, verbose=0)  # warm-up: tracing
    started = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, verbose=0)
    return (time.perf_counter() - started) / args.steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--encoder-width", type=int, default=16)
    parser.add_argument("--child", choices=("deterministic", "free"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(time_steps(args))
        return
    flags = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in ("steps", "batch", "size", "encoder_width")]
    timings = {"deterministic": [], "free": []}
    for round_ in range(args.rounds):
        for mode in timings:
            child = subprocess.run([sys.executable, __file__, *flags, "--child", mode], capture_output=True, text=True,
                                   check=True)
            timings[mode].append(float(child.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1}: {mode} {timings[mode][-1]:.0f} ms/step", flush=True)
    medians = {mode: statistics.median(values) for mode, values in timings.items()}
    print(json.dumps({"determinism_cost": round(medians["deterministic"] / medians["free"], 3),
                      "deterministic_ms": round(medians["deterministic"], 1), "free_ms": round(medians["free"], 1),
                      "size": args.size, "encoder_width": args.encoder_width, "batch": args.batch}))


if __name__ == "__main__":
    main()
