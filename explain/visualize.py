"""``python -m explain.visualize``, the first name of ``python -m explain.featurevis``: kept so
that commands written with it go on working; it says the new name and runs it."""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    from datasets.console import quiet_command

    quiet_command()
    print("note: python -m explain.visualize is now python -m explain.featurevis", file=sys.stderr)
    from explain.featurevis.__main__ import main

    sys.exit(main())
