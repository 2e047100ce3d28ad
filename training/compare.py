"""``python -m training.compare``, the first name of ``python -m training.experiments sednet-paper``."""

if __name__ == "__main__":
    import sys

    from datasets.console import quiet_command

    quiet_command()
    from training.experiments.__main__ import run_renamed

    sys.exit(run_renamed("training.compare", "sednet-paper"))
