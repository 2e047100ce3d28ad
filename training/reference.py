"""``python -m training.reference``: print the configuration reference in Markdown (the source
of ``docs/configuration.md``), generated from the shared settings and every task's options."""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import sys

from training.config import reference_markdown
from training.tasks import TASKS


def main(argv: list[str] | None = None) -> int:
    if argv if argv is not None else sys.argv[1:]:
        print("usage: python -m training.reference > docs/configuration.md  (takes no arguments)")
        return 0
    sys.stdout.write(reference_markdown(TASKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
