"""Charts of a Z-score analysis: the sorted scores (the paper's fig. 2) and the group sums (fig. 3),
each under both definitions, drawn on ``matplotlib.figure.Figure`` (no global backend)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

SCORES = {"z": "paper's Z = c / sigma", "standardized": "standardised c * sigma"}


def _colours(groups: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {group: palette(i % 10) for i, group in enumerate(groups)}


def sorted_scores_figure(table: pd.DataFrame, output: str) -> Figure:
    """|score| of every live input of one output, sorted, coloured by group; one panel per definition."""
    rows = table[(table["output"] == output) & ~table["dead"]]
    colours = _colours(list(dict.fromkeys(table["group"])))
    figure = Figure(figsize=(10, 6), layout="constrained")
    for axes, (column, title) in zip(figure.subplots(2, 1), SCORES.items()):
        ranked = rows.assign(magnitude=rows[column].abs()).sort_values("magnitude", ascending=False)
        axes.bar(range(len(ranked)), ranked["magnitude"], color=[colours[g] for g in ranked["group"]], width=0.9)
        axes.set_title(f"{output}: |{title}|, sorted", fontsize=10)
        axes.set_xlabel("input of the linear head, by rank")
        axes.set_xlim(-1, max(len(ranked), 1))
    handles = [axes.bar(0, 0, color=colour, label=group) for group, colour in colours.items()]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, title="group")
    return figure


def group_sums_figure(groups: pd.DataFrame, output: str) -> Figure:
    """Each group's share of the summed |score| of one output, both definitions side by side."""
    rows = groups[groups["output"] == output]
    colours = _colours(list(rows["group"]))
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    for axes, (column, title) in zip(figure.subplots(1, 2), SCORES.items()):
        axes.bar(rows["group"], rows[f"share_{column}"], color=[colours[g] for g in rows["group"]])
        axes.set_title(f"{output}: share of summed |{title}|", fontsize=10)
        axes.set_ylim(0, 1)
        axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    return figure
