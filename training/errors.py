"""The errors ``python -m training.run`` turns into one line and exit code 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message names every bad key or value."""
