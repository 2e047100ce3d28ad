"""Manifests of numbers to predict: a numeric target column per image and, optionally, a group
column (production lots) whose images belong together.

Read by ``--task regress`` to train and by ``python -m explain.concepts`` to relate what a
model sees to the target, lot by lot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datasets.tables import DataError, list_images


def read_targets(source: Path, target_column: str) -> pd.DataFrame:
    """The manifest's rows with a numeric ``target`` column; a row whose target is empty or not
    a number gets that reason, with its line, in the ``problem`` column.

    Raises:
        DataError: not a CSV, no such column, or no row with a number in it.
    """
    if not (source.is_file() and source.suffix.lower() == ".csv"):
        raise DataError(f"{source} is not a CSV manifest; pass one with the columns path,{target_column}[,lot].")
    table = list_images(source)
    if target_column not in table.columns:
        raise DataError(f"Manifest {source} has no column {target_column!r} to regress; it has "
                        f"{[c for c in table.columns if c not in ('line', 'problem')]}. Pass --target-column.")
    target = pd.to_numeric(table[target_column], errors="coerce")
    target = target.where(np.isfinite(target))  # an infinite target is as unusable as a missing one
    bad = target.isna() & table["problem"].isna()
    table.loc[bad, "problem"] = [f"{line}: no {target_column}" if pd.isna(value) else
                                 f"{line}: {target_column}={value!r} is not a finite number"
                                 for line, value in zip(table.loc[bad, "line"], table.loc[bad, target_column])]
    if target.isna().all():
        raise DataError(f"No row of {source} has a number in its {target_column!r} column (e.g. "
                        f"{table.loc[bad, 'line'].iloc[0] if bad.any() else 'every line'}).")
    return table.assign(target=target)


def resolve_group_column(table: pd.DataFrame, name: str) -> str | None:
    """``--group-column``: ``auto`` takes ``lot`` when the manifest has it, ``none`` splits by image.

    Raises:
        DataError: a named column the manifest lacks.
    """
    if name == "none":
        return None
    if name == "auto":
        return "lot" if "lot" in table.columns else None
    if name not in table.columns:
        raise DataError(f"The manifest has no group column {name!r}; pass --group-column auto, none or one of "
                        f"{[c for c in table.columns if c not in ('line', 'problem')]}.")
    return name


def group_labels(table: pd.DataFrame, column: str | None) -> pd.Series:
    """Each row's group as text: the column's value, or the row's own index (every image its
    own group) when there is no group column."""
    if column:
        return table[column].astype(str)
    return pd.Series(table.index.astype(str), index=table.index)


def single_image_note(groups: pd.Series, noun: str, consequence: str) -> str | None:
    """A console note naming the groups of a single image and what that means, or None."""
    sizes = groups.value_counts()
    single = sorted(sizes.index[sizes == 1])
    if not single:
        return None
    names = ", ".join(single[:5]) + (", ..." if len(single) > 5 else "")
    return f"note: {len(single)} {noun}(s) have a single image ({names}); {consequence}."
