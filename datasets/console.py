"""A quiet, readable command line: TensorFlow's harmless noise filtered out of stderr.

TensorFlow writes 6-10 lines at start-up on a machine without a GPU (absl's "before
InitializeLog" notice, CUDA driver stubs, cpu_feature_guard, oneDNN), some twice, and a few
``E0000`` lines while it trains (op determinism in tf.data: "NodeDef mentions attribute
use_unbounded_threadpool"; oneDNN: "supports DT_UINT8 only on platforms with AVX-512"). A
newcomer reads them as errors. :func:`quiet_command` hides exactly those known lines for the
rest of a command's process and passes everything else on, so real warnings and errors still
reach the user.

Nothing here runs on import: a command calls :func:`quiet_command` first thing, in its
``if __name__ == "__main__":`` block before it imports TensorFlow, so that a notebook or a
library user importing geoxai keeps their streams as they are.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# Lines that say nothing is wrong: start-up on a machine without a GPU, then the run-time ones.
NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub|cuda_platform|cuda_executor|cuInit"
    r"|Could not find cuda drivers|cpu_feature_guard|rebuild TensorFlow with the appropriate compiler flags"
    r"|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered|TF-TRT Warning"
    r"|NodeDef mentions attribute use_unbounded_threadpool|oneDNN supports DT_UINT8 only on platforms with AVX-512")

_filter: _StderrFilter | None = None


class _StderrFilter:
    """Routes file descriptor 2 through a pipe whose reader thread drops the lines matching
    ``noise`` and writes the others to the original stderr as they come."""

    def __init__(self, noise: re.Pattern):
        self.noise = noise
        sys.stderr.flush()
        self.original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.reader = threading.Thread(target=self._forward, args=(read_end,), name="stderr-filter", daemon=True)
        self.reader.start()

    def _forward(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not self.noise.search(line.decode(errors="replace")):
                    os.write(self.original, line)

    def close(self) -> None:
        """Gives descriptor 2 back and waits until every line written so far is passed on."""
        try:
            sys.stderr.flush()
        except ValueError:  # closed at interpreter exit
            pass
        os.dup2(self.original, 2)  # the pipe's last writer closes, so the reader meets its end
        self.reader.join(timeout=5)  # a child process still holding the pipe must not hang the exit


def quiet_command() -> None:
    """Filters TensorFlow's known harmless lines out of this process's stderr until it exits;
    also lets stdout and stderr print file names that are not valid UTF-8 instead of failing.

    Respects a ``TF_CPP_MIN_LOG_LEVEL`` the user set, else hides TensorFlow's C++ info lines
    (level 1), keeping its warnings and errors. Idempotent; a process without a real stderr
    (an embedding host) is left as it is.
    """
    global _filter
    if _filter is not None:
        return
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        _filter = _StderrFilter(NOISE)
    except (OSError, ValueError):
        return
    atexit.register(_filter.close)


def quiet_if_starting_command() -> None:
    """:func:`quiet_command` when Python is starting ``python -m PACKAGE.MODULE`` of the package
    that calls this from its ``__init__`` (Python sets ``sys.argv[0]`` to ``"-m"`` while it
    locates the module, which imports the package first); a plain import changes nothing.

    For packages whose ``__init__`` imports TensorFlow itself (``explain``, its methods;
    ``training.experiments``, the runner): their commands' own guard would come too late.
    """
    if sys.argv[:1] == ["-m"]:
        quiet_command()
