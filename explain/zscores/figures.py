"""Charts of a Z-score analysis: the sorted scores (the paper's fig. 2) and the group sums (fig. 3),
under both definitions and beside the spread of each group's contribution, drawn on
``matplotlib.figure.Figure`` (no global backend)."""

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


GROUP_SCORES = {**{f"share_{column}": f"share of summed |{title}|" for column, title in SCORES.items()},
                "share_contribution": "share of std(group's contribution)"}


def group_sums_figure(groups: pd.DataFrame, output: str) -> Figure:
    """Each group's share of one output's importance: summed |Z|, summed |c * sigma| and the
    spread of the group's whole contribution, side by side (the paper's fig. 3 is the first)."""
    rows = groups[groups["output"] == output]
    colours = _colours(list(rows["group"]))
    figure = Figure(figsize=(13, 3.6), layout="constrained")
    for axes, (column, title) in zip(figure.subplots(1, 3), GROUP_SCORES.items()):
        axes.bar(rows["group"], rows[column], color=[colours[g] for g in rows["group"]])
        axes.set_title(f"{output}: {title}", fontsize=9)
        axes.set_ylim(0, 1)
        axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    return figure
