"""Run folders: where a run writes, when an unfinished one resumes, and its saved configuration."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from training.distribute import is_chief, worker_identity
from training.config import ConfigError

if TYPE_CHECKING:
    from training.config import TrainConfig

BACKUP = "backup"  # the training state of an unfinished run, inside its folder


def make_run_dir(config: TrainConfig) -> tuple[Path, str]:
    """Creates or finds ``LOGDIR/RUN_NAME``; returns it and ``"new"``, ``"resume"`` or ``"reuse"``.

    A run folder holding an unfinished training's backup is resumed when the configuration
    is the same. Any other existing run folder is never overwritten: a numeric suffix is
    added, unless ``--overwrite`` asks to reuse it (and start its training over).

    Raises:
        ConfigError: the log root cannot be written, or an unfinished run of that name was
            started with another configuration.
    """
    root = Path(config.logdir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as err:
        raise ConfigError(f"The log root {root} cannot be written ({err.strerror or err}); "
                          "pass --logdir with a writable folder.") from err
    if not is_chief():  # other workers write where the user does not look, stable so a restart resumes
        task_type, index = worker_identity()
        root = Path(tempfile.gettempdir()) / f"geoxai-{task_type}-{index}"
    name = config.run_name or default_run_name(config)
    run_dir = root / name
    if (run_dir / BACKUP).is_dir() and not config.overwrite:
        _require_same_config(run_dir, config)
        return run_dir, "resume"
    suffix = 1
    while run_dir.exists() and not config.overwrite:
        suffix += 1
        run_dir = root / f"{name}-{suffix}"
    state = "reuse" if run_dir.exists() else "new"
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, state


def default_run_name(config: TrainConfig) -> str:
    """``MODEL-DATA``, with DATA the synthetic set's name or the data path's stem."""
    data = config.data.split(":", 1)[1] if config.data.startswith("synthetic:") else Path(config.data).stem
    return re.sub(r"[^\w.-]+", "_", f"{config.model}-{data}")


def config_changes(run_dir: Path, config: TrainConfig) -> list[str]:
    """The settings the run uses in which ``config`` differs from the one saved in ``run_dir``
    (all, if none is): the shared ones and the task's own options, never another task's.
    A config saved before options moved into a block per task has them at its top."""
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    saved_options = saved.get(config.task) if isinstance(saved.get(config.task), dict) else saved
    current = config.to_dict()
    changed = [k for k, value in current.items() if k not in ("overwrite", config.task) and saved.get(k) != value]
    changed += [k for k, value in current[config.task].items() if saved_options.get(k) != value]
    return sorted(changed)


def _require_same_config(run_dir: Path, config: TrainConfig) -> None:
    changed = config_changes(run_dir, config)
    if changed:
        raise ConfigError(f"{run_dir} holds an unfinished run started with other values of {changed}. "
                          "Repeat its command to resume it, pass --overwrite to start it over, or choose "
                          "another --run-name.")
