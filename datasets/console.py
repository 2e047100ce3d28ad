"""A quiet, readable start for the command-line entry points.

TensorFlow writes 6-10 lines at start-up on a machine without a GPU (absl's "before
InitializeLog" notice, CUDA driver stubs, cpu_feature_guard, oneDNN), some twice, before the
first line of ours; a newcomer reads them as errors. :func:`quiet_start` hides exactly those
known lines while TensorFlow (through Keras) is imported and passes everything else on, so
real warnings still reach the user. It also makes stdout and stderr print file names that are
not valid UTF-8 instead of failing on them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

# Start-up lines that say nothing is wrong on a machine without a GPU.
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub|cuda_platform|cuda_executor|cuInit"
    r"|Could not find cuda drivers|cpu_feature_guard|rebuild TensorFlow with the appropriate compiler flags"
    r"|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered|TF-TRT Warning")

_started = False


def quiet_start() -> None:
    """Imports Keras (and its TensorFlow) with the start-up noise filtered out; idempotent.

    Respects a ``TF_CPP_MIN_LOG_LEVEL`` the user set, else hides TensorFlow's C++ info lines
    (level 1), keeping its warnings and errors.
    """
    global _started
    if _started:
        return
    _started = True
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    with filtered_stderr(STARTUP_NOISE):
        import keras  # noqa: F401
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe's lines come here, still filtered


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern) -> Iterator[None]:
    """Captures what C++ libraries write to file descriptor 2 and passes on the lines that do
    not match ``noise`` when done."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
