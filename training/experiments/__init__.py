"""Experiments: a paper's table reproduced, one module per reproduction over this small base.

An experiment writes its (synthetic) data once, trains its runs through ``training.run`` or
reuses them (:func:`train_or_reuse`: the same configuration, finished), measures, and hands
back a table and a Markdown page that puts the measured values beside the paper's and says
which of the paper's findings hold (:class:`Finding`). :func:`run_experiment` does everything
else the same way for each: the command line, the checks before any work, the errors that
stop it (one line, exit 2), ``STEM.csv`` and ``STEM.md`` in ``--out``, the time taken.

``python -m training.experiments NAME`` runs one of :data:`EXPERIMENTS`; adding one means a
module with an :class:`Experiment` subclass and :func:`register_experiment`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from datasets.console import quiet_if_starting_command

quiet_if_starting_command()  # `python -m training.experiments`: before the runner below imports TensorFlow

import pandas as pd  # noqa: E402

from datasets.synthetic import write_dataset  # noqa: E402
from training.config import parse_config  # noqa: E402
from training.runner import USER_ERRORS, run_training  # noqa: E402
from training.run_folders import config_changes  # noqa: E402
from training.tasks import TASKS  # noqa: E402


@dataclass(frozen=True)
class Finding:
    """One of a paper's findings, checked against the measured table."""

    claim: str
    holds: bool
    evidence: str

    def line(self) -> str:
        return f"- {self.claim}: {'holds' if self.holds else 'does not hold'} here ({self.evidence})"


@dataclass
class Result:
    """What an experiment measured: its table (``STEM.csv``), its page (``STEM.md``, without the
    time, which the base adds) and a line naming any other outputs."""

    table: pd.DataFrame
    markdown: str
    outputs: str = ""


class Experiment:
    """The base of every reproduction; subclasses set the class attributes and override the methods.

    Attributes:
        name: the command's name, ``python -m training.experiments NAME``.
        stem: the tables' file name (``STEM.csv``, ``STEM.md``) and the default ``--out``.
        description: what it reproduces and writes, for ``--help``.
        errors: what stops it after its checks passed (a failed training, a failed audit).
    """

    name: ClassVar[str]
    stem: ClassVar[str]
    description: ClassVar[str]
    errors: ClassVar[tuple[type[Exception], ...]] = (RuntimeError,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The experiment's own flags (``--out`` is the base's)."""

    def check(self, args: argparse.Namespace) -> str | None:
        """What is wrong with the flags, before any work; None when nothing is."""
        return None

    def run(self, args: argparse.Namespace) -> Result:
        """Writes the data, trains or reuses the runs, measures."""
        raise NotImplementedError


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(experiment: Experiment) -> Experiment:
    """Adds an experiment to :data:`EXPERIMENTS`; a duplicate name is an error."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"An experiment named {experiment.name!r} is already registered.")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def build_parser(experiment: Experiment) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m training.experiments {experiment.name}",
                                     description=experiment.description)
    parser.add_argument("--out", type=Path, default=Path(experiment.stem),
                        help=f"output folder (default {experiment.stem}); a second run reuses what is there")
    experiment.add_arguments(parser)
    return parser


def run_experiment(experiment: Experiment, argv: list[str] | None = None) -> int:
    """Runs ``experiment`` with the flags ``argv``: checks, measures, writes ``STEM.csv`` and
    ``STEM.md`` into ``--out`` and prints the page; 2 with one line on stderr when it cannot."""
    args = build_parser(experiment).parse_args(argv)
    problem = experiment.check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        result = experiment.run(args)
    except experiment.errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table_path, page_path = args.out / f"{experiment.stem}.csv", args.out / f"{experiment.stem}.md"
    result.table.to_csv(table_path, index=False)
    page_path.write_text(f"{result.markdown.rstrip()}\n\n{(time.perf_counter() - started) / 60:.1f} min in all.\n")
    print("\n" + page_path.read_text())
    print(f"Tables: {table_path}, {page_path}" + (f"; {result.outputs}" if result.outputs else ""))
    return 0


def comma_list(text: str) -> list[str]:
    """``a, b,c`` as ``["a", "b", "c"]``: the type of list flags."""
    return [part.strip() for part in text.split(",") if part.strip()]


def synthetic_data(name: str, out: Path, what: str, **options) -> Path:
    """The synthetic set ``name`` written into ``out`` once and reused; returns its manifest.

    Args:
        what: how the log names it, e.g. "30 synthetic seismic sections".
        options: :func:`datasets.synthetic.write_dataset`'s (n, seed, size and the set's own).
    """
    manifest = out / "manifest.csv"
    if not manifest.is_file():
        print(f"Writing {what} to {out}", flush=True)
        write_dataset(name, out, **options)
    return manifest


def train_or_reuse(label: str, argv: list[str], run_dir: Path) -> Path:
    """Trains ``python -m training.run ARGV`` into ``run_dir`` unless a finished run of the same
    configuration is there: the one train-unless-finished rule of the project. A finished run
    of other settings is started over, an unfinished one resumes.

    Raises:
        RuntimeError: the training stopped on a user error (the message says which).
    """
    config = parse_config([*argv, "--logdir", str(run_dir.parent), "--run-name", run_dir.name], TASKS)
    if (run_dir / "metrics.json").is_file() and not config_changes(run_dir, config):
        print(f"{label}: reusing the finished run in {run_dir}", flush=True)
        return run_dir
    if (run_dir / "metrics.json").is_file():
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


from training.experiments import salt_encoders, salt_losses, sea_ice_fusion, sednet_paper  # noqa: E402,F401

__all__ = ["EXPERIMENTS", "Experiment", "Finding", "Result", "markdown_table", "register_experiment",
           "run_experiment", "synthetic_data", "train_or_reuse", "comma_list"]
