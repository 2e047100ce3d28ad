"""The detector benchmarks run as committed, on tiny settings (see ``test_benchmarks.py``)."""

import pytest
from test_benchmarks import DETECTOR_BENCHMARKS, run_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("script", DETECTOR_BENCHMARKS)
def test_a_detector_benchmark_runs_as_committed(script, tmp_path, request):
    run_benchmark(script, tmp_path, request)
