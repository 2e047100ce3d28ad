"""Times the main job, ``python -m training.run`` with no arguments, from an empty log root.

The clock includes generating the synthetic sigma-clast set, training, evaluation and export.
Goal (Foundation issue): under 5 minutes on a 2-core CPU with test accuracy >= 0.90.
The last line printed is a JSON object with ``minutes`` and the test metrics, per seed. Any
other flags go to ``training.run`` as they are (the tests pass tiny settings that way).

    python benchmarks/main_job.py [--seeds 0 1 2] [training.run flags]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_main_job(seed: int, flags: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as logdir:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "training.run", "--seed", str(seed), "--logdir", logdir,
                        "--run-name", "bench", *flags], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        minutes = (time.perf_counter() - started) / 60
        test = json.loads((Path(logdir) / "bench" / "metrics.json").read_text())["test"]
    return {"seed": seed, "minutes": round(minutes, 2), "test_accuracy": round(test["accuracy"], 4),
            "test_f1_macro": round(test["f1_macro"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args, flags = parser.parse_known_args()
    results = [run_main_job(seed, flags) for seed in args.seeds]
    for result in results:
        print(f"seed {result['seed']}: {result['minutes']:.2f} min, test accuracy {result['test_accuracy']:.3f}")
    print(json.dumps({"runs": results, "max_minutes": max(r["minutes"] for r in results),
                      "min_test_accuracy": min(r["test_accuracy"] for r in results)}))


if __name__ == "__main__":
    main()
