"""``python -m training.run``: train, evaluate and export one model; see ``--help``.

With no arguments it generates (once, cached under the log root) a synthetic sigma-clast set
and trains SedNet on it; ``--task`` picks another task of :data:`training.tasks.TASKS` (e.g.
``detect``, the sigma-clast detector). Everything a run writes goes into ``LOGDIR/RUN_NAME/``.
"""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import sys
import time

from training.config import parse_config
from training.runner import USER_ERRORS, print_summary, run_training
from training.tasks import TASKS


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        config = parse_config(argv, TASKS)
        run_dir, metrics = run_training(config)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_summary(TASKS[config.task], run_dir, metrics, time.perf_counter() - started, config.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
