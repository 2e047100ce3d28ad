"""The README and docs/ stay true: every relative link and picture resolves, every command they
name answers ``--help``, the configuration reference is current, and the README stays short."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from training.config import reference_markdown
from training.tasks import TASKS

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"python -m ((?:datasets|explain|training)\.[a-z_.]+)(?: ([a-z][a-z-]*))?")
RENAMED = ("training.compare", "training.compare_losses", "training.compare_encoders", "training.compare_fusion",
           "explain.visualize")  # first names: a stub that names the new command, run as a process


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_read_in_five_minutes():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_picture_resolves(page):
    """Break tried: a picture moved out of docs/ (or a link to a page renamed); this names it."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path) if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def documented_commands() -> list[tuple[str, ...]]:
    """Each ``python -m MODULE`` the pages name (with the experiment's name for training.experiments)."""
    commands = set()
    for page in PAGES:
        for module, word in COMMAND.findall(page.read_text()):
            if module.endswith("."):
                continue  # a placeholder: python -m explain.NAME
            commands.add((module, word) if module == "training.experiments" and word else (module,))
    return sorted(commands)


@pytest.mark.parametrize("command", documented_commands(), ids=" ".join)
def test_every_documented_command_answers_help(command):
    """Break tried: a command renamed without its pages (``explain.featurevis`` back to
    ``explain.visualize`` in its package): the pages' name then fails to import."""
    module, *words = command
    if module in RENAMED:
        result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0 and result.stdout.startswith("usage:") and "is now python -m" in result.stderr
        return
    try:
        entry = importlib.import_module(f"{module}.__main__")
    except ModuleNotFoundError:
        entry = importlib.import_module(module)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            code = entry.main([*words, "--help"])
        except SystemExit as stopped:  # argparse's --help
            code = stopped.code
    assert code in (0, None) and "usage:" in printed.getvalue()


def test_the_configuration_reference_is_current():
    """Regenerate with ``python -m training.reference > docs/configuration.md``."""
    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown(TASKS)
