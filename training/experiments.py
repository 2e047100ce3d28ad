"""What the experiment commands (``training.compare``, ``training.compare_losses``) share:
training a run unless the same one already finished, and a Markdown table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.config import parse_config
from training.runner import USER_ERRORS, run_training
from training.runs import config_changes
from training.tasks import TASKS


def train_or_reuse(label: str, argv: list[str], run_dir: Path) -> Path:
    """Trains ``python -m training.run ARGV`` into ``run_dir`` unless a finished run of the same
    configuration is there; a finished run of other settings is started over, an unfinished
    one resumes.

    Raises:
        RuntimeError: the training stopped on a user error (the message says which).
    """
    config = parse_config(argv, TASKS)
    if (run_dir / "metrics.json").is_file() and not config_changes(run_dir, config):
        print(f"{label}: reusing the finished run in {run_dir}", flush=True)
        return run_dir
    if (run_dir / "metrics.json").is_file():
        argv = [*argv, "--overwrite"]
        config.overwrite = True
    print(f"\n=== {label}: python -m training.run {' '.join(argv)}", flush=True)
    try:
        return run_training(config)[0]
    except USER_ERRORS as err:
        raise RuntimeError(f"Training {label} failed: {err}") from err


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table; floats with three decimals."""
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
