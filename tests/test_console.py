"""Importing geoxai changes nothing of the user's; a command filters TensorFlow's known noise."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

IMPORT_PROBE = """
import os, sys
redirected = []
real_dup2 = os.dup2
os.dup2 = lambda *args, **kwargs: redirected.append(args) or real_dup2(*args, **kwargs)
stdout_errors, stderr_errors = sys.stdout.errors, sys.stderr.errors
import explain, training, datasets, models
print(redirected, sys.stdout.errors == stdout_errors, sys.stderr.errors == stderr_errors)
"""

FILTER_PROBE = """
import os, sys
from datasets.console import quiet_command
quiet_command()
os.write(2, b"E0000 00:00:1.0 1 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool x\\n")
os.write(2, b"I0000 00:00:1.0 1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\\n")
print("a real warning", file=sys.stderr)
os.write(2, b"E0000 onednn_ops.cc] oneDNN supports DT_UINT8 only on platforms with AVX-512\\n")
os.write(2, b"the last line, without an end")
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_importing_the_packages_redirects_no_descriptor_and_reconfigures_no_stream():
    """Break tried: ``quiet_command()`` called in ``explain/__init__.py`` whatever the command
    (not only ``python -m explain.…``); the probe then sees ``dup2`` called and the streams'
    error mode changed."""
    result = run_python(IMPORT_PROBE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]", "True", "True"]


def test_a_command_drops_the_known_noise_and_passes_every_other_line_before_it_exits():
    """Break tried: the ``atexit`` hand-back removed (the last line is lost), and the run-time
    patterns left out of ``NOISE`` (the E0000 lines come through)."""
    result = run_python(FILTER_PROBE)
    assert result.returncode == 0
    assert result.stderr == "a real warning\nthe last line, without an end"


def test_python_m_explain_starts_without_tensorflows_start_up_lines():
    """``python -m explain.run`` imports the explainers (and TensorFlow) with the package, before
    its own module runs. Break tried: the ``-m`` check in ``explain/__init__.py`` removed; the
    start-up lines (cpu_feature_guard, the CUDA stubs) then come through."""
    result = subprocess.run([sys.executable, "-m", "explain.run", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={k: v for k, v in os.environ.items()
                                                         if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0 and "usage: python -m explain.run" in result.stdout
    assert result.stderr == ""
