"""``python -m training.experiments NAME [flags]``: reproduce one paper's table; without a name,
list them."""

from __future__ import annotations

if __name__ == "__main__":  # a command: filter TensorFlow's harmless noise before anything imports it
    from datasets.console import quiet_command

    quiet_command()

import sys

from training.experiments import EXPERIMENTS, run_experiment


def usage() -> str:
    width = max(map(len, EXPERIMENTS))
    return "\n".join(["usage: python -m training.experiments NAME [flags]   (NAME --help for its flags)", "",
                      "experiments:", *(f"  {name:<{width}}  {e.description}" for name, e in EXPERIMENTS.items())])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in EXPERIMENTS:
        print(f"error: no experiment {argv[0]!r}; choose from {', '.join(EXPERIMENTS)}.", file=sys.stderr)
        return 2
    return run_experiment(EXPERIMENTS[argv[0]], argv[1:])


def run_renamed(old: str, name: str) -> int:
    """Runs experiment ``name`` for a command still called by its first name ``old``, saying the new one."""
    print(f"note: python -m {old} is now python -m training.experiments {name}", file=sys.stderr)
    return main([name, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
