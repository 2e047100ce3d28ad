"""Every script under benchmarks/ runs as committed, on tiny settings, and ends with its JSON line.

The figures they print are meaningless at these sizes; what is tested is that the scripts the
README quotes still run against today's code and report what they promise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from models import build_model

TINY_CLASSIFIER = "--synthetic-n 24 --synthetic-size 64 --epochs 1 --image-size 32 --local-size 16 --batch-size 8"
TINY_DETECTOR = "--synthetic-n 12 --synthetic-size 96 --image-size 96 --epochs 1"

BENCHMARKS = {
    "main_job.py": (["--seeds", "0", *TINY_CLASSIFIER.split()], {"runs", "max_minutes", "min_test_accuracy"}),
    "callback_overhead.py": (["--rounds", "1", "--epochs", "3", "--synthetic-n", "24", "--image-size", "32"],
                             {"epoch_time_ratio", "lower_quartile_ratio", "median_epoch_seconds"}),
    "explain_speed.py": (["--repeats", "1", "--batch", "2", "--size", "64"],
                         {"gradcam_over_forward", "speedup_vs_tf_explain_batch", "speedup_vs_tf_explain_per_image",
                          "fastcam_over_forward", "fastcam_gradcam_over_forward"}),
    "determinism_cost.py": (["--rounds", "1", "--steps", "2", "--batch", "2", "--size", "32", "--encoder-width", "8"],
                            {"determinism_cost", "deterministic_ms", "free_ms"}),
    "scene_io.py": (["--repeats", "1", "--size", "96", "--ratio", "8", "--cells", "4", "--batch-size", "2"],
                    {"sampling_over_step", "scene_prediction_overhead", "tiles"}),
    "stitching.py": (["--repeats", "1", "--size", "64", "--patch-size", "32", "--encoder-width", "8"],
                     {"stitching_overhead", "forward_seconds", "whole_seconds", "patches"}),
    "tiled_explain.py": (["--repeats", "1", "--models", "sednet", "--size", "96", "--tile", "32", "--stride", "16"],
                         {"tiled_over_forward", "seconds", "tiles"}),
    "visualize_speed.py": (["--repeats", "1", "--size", "32", "--batch", "2", "--steps", "2", "--encoder-width", "8"],
                           {"am_step_over_forward_backward", "forward_backward_seconds", "am_step_seconds"}),
    "sem_ceiling.py": (["--images", "30", "--lots", "10", "--size", "48"],
                       {"ceiling_r2", "ceiling_r2_lot_means", "images", "lots"}),
    "texture_concepts.py": (["--images", "30", "--lots", "10", "--size", "32", "--epochs", "1", "--pretrain-images",
                             "130", "--pretrain-epochs", "1", "--reference", "26", "--batch-size", "4"],
                            {"scratch", "textures", "pretrained"}),
    "detector_prior.py": (["--images", "10", "--epochs", "1", "--size", "64"],
                          {"val_map50_keras_hub", "val_map50_paper_prior"}),
    "detector_quality.py": (["--held-out", "4", "--size", "96", "--detector-flags", TINY_DETECTOR,
                             "--classifier-flags", TINY_CLASSIFIER],
                            {"map50", "map50_95", "shear_sense_accuracy", "matched", "missed", "false_detections"}),
}


DETECTOR_BENCHMARKS = ("detector_prior.py", "detector_quality.py")  # tested in test_benchmarks_detector.py, so
# that pytest-xdist (a file per worker) can run the two heaviest beside the others


def test_every_benchmark_is_covered():
    assert sorted(BENCHMARKS) == sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
    assert set(DETECTOR_BENCHMARKS) <= set(BENCHMARKS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(set(BENCHMARKS) - set(DETECTOR_BENCHMARKS)))
def test_a_benchmark_runs_as_committed(script, tmp_path, request):
    run_benchmark(script, tmp_path, request)


def run_benchmark(script: str, tmp_path, request) -> None:
    """Runs ``benchmarks/SCRIPT`` with its tiny flags; it must exit 0 and end with its JSON keys."""
    flags, keys = BENCHMARKS[script]
    extra = ["--out", str(tmp_path / "out")] if script.startswith("detector_") else []
    if script == "detector_quality.py":  # it reuses a finished classifier run: the suite's tiny SedNet
        shutil.copytree(request.getfixturevalue("sednet_run")[0], tmp_path / "out" / "runs" / "sednet")
    if script == "texture_concepts.py":  # a local weights file of the network stands in for --pretrained imagenet
        weights = tmp_path / "sednet_regressor.weights.h5"
        build_model("sednet", 1, (32, 32, 3), weights="none", local_size=16).save_weights(weights)
        extra = ["--pretrained", str(weights)]
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *flags, *extra], cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert keys <= set(json.loads(result.stdout.strip().splitlines()[-1]))
