"""The tables, charts, neighbour grids and HTML page of ``python -m explain.concepts``."""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from datasets.images import read_image
from datasets.tables import write_csv
from explain.concepts import ConceptAnalysis

SALIENT_LEVEL = 0.5  # the outlined salient region: the saliency map at least half its peak


def write_report(analysis: ConceptAnalysis, out: Path, grids: int) -> Path:
    """Writes every output of the analysis under ``out``; returns ``report.html``."""
    write_tables(analysis, out)
    strength_chart(analysis).savefig(out / "texture_strength.png", dpi=110)
    lot_chart(analysis).savefig(out / "lot_relevance.png", dpi=110)
    lot_grid(analysis, grids).savefig(out / "lot_textures.png", dpi=100)
    if analysis.properties is not None:
        properties_chart(analysis).savefig(out / "texture_properties.png", dpi=110)
    grid_paths = [_write_grid(analysis, i, out / "neighbours") for i in grid_images(analysis, grids)]
    return write_html(analysis, out, grid_paths)


def write_tables(analysis: ConceptAnalysis, out: Path) -> None:
    """salient_points.csv, neighbours.csv, lot_distances.csv, texture_strength.csv and, with
    ``--properties``, texture_properties.csv."""
    name = analysis.target_name
    data, peaks = analysis.data, analysis.data_features.peaks
    write_csv(pd.DataFrame({"file": data["path"], "lot": data["lot"], name: data["target"],
                            "peak_x": peaks[:, 0].round(4), "peak_y": peaks[:, 1].round(4)}), out / "salient_points.csv")
    write_csv(analysis.neighbours, out / "neighbours.csv")
    targets = data.groupby("lot")["target"].mean()
    long = []
    for stage, table in analysis.per_lot.items():
        frame = table.stack(level=1, future_stack=True).reset_index()
        frame.columns = ["lot", "class", *frame.columns[2:]]
        long.append(frame.assign(stage=stage, **{name: frame["lot"].map(targets)}))
    columns = ["lot", name, "stage", "class", "distance", "relevance"]
    pd.concat(long, ignore_index=True).reindex(columns=columns).to_csv(out / "lot_distances.csv", index=False)
    analysis.strength.rename_axis("texture").round(4).to_csv(out / "texture_strength.csv")
    if analysis.properties is not None:
        tables = {stage: table.rename_axis("texture") for stage, table in analysis.properties.items()}
        long = pd.concat(tables, names=["stage"]).swaplevel().reset_index()
        long.round(4).to_csv(out / "texture_properties.csv", index=False)


def strength_chart(analysis: ConceptAnalysis) -> Figure:
    """Figure 5: each texture's affinity with the target, combined (bars) and per stage (dots)."""
    strength = analysis.strength.iloc[::-1]
    figure = Figure(figsize=(6.4, 0.32 * len(strength) + 1.4))
    axes = figure.subplots()
    combined = strength["combined"]
    axes.barh(strength.index, combined, color=np.where(combined >= 0, "#4e79a7", "#e15759"), alpha=0.8,
              label="stages combined")
    for column, marker in zip(strength.columns.drop("combined"), "os^Dv"):
        axes.scatter(strength[column], strength.index, s=14, marker=marker, color="0.25", label=column)
    axes.axvline(0, color="0.3", lw=0.8)
    axes.set(xlim=(-1.05, 1.05), xlabel=f"affinity with {analysis.target_name} (+: higher-{analysis.target_name} "
                                         "lots look more like it)", title="Which textures go with the target")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def properties_chart(analysis: ConceptAnalysis) -> Figure:
    """Each texture's affinity with the target and with each ``--properties`` column, one
    red-blue table per stage and one for the stages combined: which property a texture's
    relation to the target follows, and at which depth."""
    tables = analysis.properties
    first = next(iter(tables.values()))
    figure = Figure(figsize=(len(tables) * (0.9 * first.shape[1] + 0.6) + 1.4, 0.3 * len(first) + 1.6))
    for i, (axes, (stage, table)) in enumerate(zip(figure.subplots(1, len(tables), squeeze=False)[0],
                                                   tables.items())):
        axes.imshow(table.to_numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for (row, column), value in np.ndenumerate(table.to_numpy()):
            axes.text(column, row, f"{value:+.2f}", ha="center", va="center", fontsize=6,
                      color="white" if abs(value) > 0.6 else "black")
        axes.set_xticks(range(table.shape[1]), table.columns, fontsize=7, rotation=30)
        axes.set_yticks(range(len(table)), table.index if i == 0 else [], fontsize=7)
        axes.set_title(stage, fontsize=8)
    figure.suptitle("Affinity with each lot property (+: lots with more of it look more like the texture)",
                    fontsize=8)
    figure.tight_layout()
    return figure


def lot_chart(analysis: ConceptAnalysis) -> Figure:
    """Figure 4: the lots' relevance to each class (stages combined), lots ordered by target."""
    targets = analysis.data.groupby("lot")["target"].mean().sort_values()
    relevance = analysis.per_lot["combined"]["relevance"].loc[targets.index, analysis.strength.index]
    figure = Figure(figsize=(0.45 * relevance.shape[1] + 2.4, 0.22 * len(relevance) + 1.8))
    axes = figure.subplots()
    image = axes.imshow(relevance.to_numpy(), aspect="auto", cmap="viridis_r")
    axes.set_xticks(range(relevance.shape[1]), relevance.columns, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(relevance)), [f"{lot} ({value:.3g})" for lot, value in targets.items()], fontsize=6)
    axes.set(title=f"Relevance r (lower: closer), lots by {analysis.target_name}")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.tight_layout()
    return figure


def lot_grid(analysis: ConceptAnalysis, count: int, classes: int = 5) -> Figure:
    """Figure 4: for the strongest and weakest lots, an image of the lot and its ``classes``
    closest texture classes (lowest relevance, stages combined), each shown by its first image."""
    relevance = analysis.per_lot["combined"]["relevance"]
    examples = analysis.textures.groupby("label")["path"].first()
    shown = analysis.data.iloc[grid_images(analysis, max(count, 2))]
    figure = Figure(figsize=(1.3 * (classes + 1), 1.5 * len(shown)))
    axes = figure.subplots(len(shown), classes + 1, squeeze=False)
    for row_axes, (_, row) in zip(axes, shown.iterrows()):
        for ax in row_axes:
            ax.set_axis_off()
        row_axes[0].imshow(read_image(row["path"]))
        row_axes[0].set_title(f"{row['lot']}\n{analysis.target_name} {row['target']:.3g}", fontsize=7)
        for ax, (name, value) in zip(row_axes[1:], relevance.loc[row["lot"]].nsmallest(classes).items()):
            ax.imshow(read_image(examples[name]))
            ax.set_title(f"{name} r={value:.3f}", fontsize=6)
    figure.tight_layout()
    return figure


def grid_images(analysis: ConceptAnalysis, count: int) -> list[int]:
    """The first image of each of the ``count / 2`` lots with the highest and the lowest target."""
    firsts = analysis.data.reset_index().groupby("lot").first()
    order = firsts.sort_values("target")["index"].tolist()
    high, low = order[::-1][:(count + 1) // 2], order[:count // 2]
    return list(dict.fromkeys(high + low))


def _write_grid(analysis: ConceptAnalysis, i: int, folder: Path) -> Path:
    """Figure 3: one image with its salient region outlined, and per stage its nearest textures."""
    row = analysis.data.iloc[i]
    stages = list(analysis.data_features.stages)
    neighbours = analysis.neighbours[analysis.neighbours["file"] == row["path"]]
    k = int(neighbours["rank"].max())
    figure = Figure(figsize=(1.3 * (k + 1), 1.45 * len(stages)))
    axes = figure.subplots(len(stages), k + 1, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    axes[0, 0].imshow(outlined(read_image(row["path"]), analysis.data_features.saliency[i]))
    axes[0, 0].set_title(f"{row['lot']}\n{analysis.target_name} {row['target']:.3g}", fontsize=7)
    for r, stage in enumerate(stages):
        axes[r, 0].text(-0.1, 0.5, stage, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=6)
        for _, hit in neighbours[neighbours["stage"] == stage].iterrows():
            ax = axes[r, int(hit["rank"])]
            ax.imshow(read_image(hit["texture"]))
            ax.set_title(f"{hit['texture_class']} {hit['distance']:.3g}", fontsize=6)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{i:05d}_{Path(row['path']).stem}.png"
    figure.savefig(path, dpi=100)
    return path


def outlined(image: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """The image with the salient region (the map at least half its peak) outlined in orange and
    the peak marked."""
    height, width = image.shape[:2]
    resized = cv2.resize(saliency.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    region = (resized >= SALIENT_LEVEL * resized.max()).astype(np.uint8)
    picture = np.ascontiguousarray(image.copy())
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, (255, 140, 0), max(1, width // 128))
    y, x = np.unravel_index(resized.argmax(), resized.shape)
    cv2.drawMarker(picture, (int(x), int(y)), (255, 40, 40), cv2.MARKER_CROSS, max(5, width // 16), max(1, width // 128))
    return picture


def write_html(analysis: ConceptAnalysis, out: Path, grids: list[Path]) -> Path:
    """report.html: the convention, the strength table and chart, the lots and the grids."""
    name = html.escape(analysis.target_name)
    table = analysis.strength.round(3).rename_axis("texture").to_html(classes="scores", border=0)
    pictures = "".join(f"<img src='{html.escape(p.relative_to(out).as_posix())}' loading='lazy'>" for p in grids)
    saliency = {"fastcam": "Fast-CAM map", "raise": f"Fast-CAM map gated by what raises {name}",
                "lower": f"Fast-CAM map gated by what lowers {name}"}[analysis.saliency]
    properties = "" if analysis.properties is None else _PROPERTIES.format(
        name=name, table=analysis.properties["combined"].round(3).rename_axis("texture").to_html(classes="scores",
                                                                                                border=0))
    page = _PAGE.format(name=name, table=table, pictures=pictures, lots=analysis.data["lot"].nunique(), saliency=saliency,
                        images=len(analysis.data), textures=len(analysis.textures), classes=len(analysis.classes),
                        properties=properties)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8", errors="surrogateescape")
    return path


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>geoxai texture concepts</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 70em; }}
table.scores td, table.scores th {{ padding: 2px 8px; text-align: right; font-size: 13px; }}
img {{ max-width: 100%; margin: 4px; }}
</style></head><body>
<h1>Which textures go with {name}?</h1>
<p>{images} images in {lots} lots, against {textures} texture images of {classes} classes. For each image the
features of every stage are read at the peak of its {saliency} and compared with the textures' (eq. 1); per lot, the
distances are averaged over the lot's images and the k nearest textures of each class (eq. 2) and divided by
the lot's mean over the classes (eq. 3: the relevance r).</p>
<p><b>Convention.</b> r is a distance, so the paper's eq. 4 (the cosine similarity over lots of the centred r and
the centred {name}) is negative for a texture that high-{name} lots look like. The table reports the
<b>affinity</b>, minus that value: positive when lots with a higher {name} look more like the texture,
negative when they look less like it. <i>combined</i> uses r averaged over the stages.</p>
{table}
<h2>Affinity per texture</h2><img src="texture_strength.png">
{properties}<h2>Relevance per lot</h2><img src="lot_relevance.png">
<p>The strongest and weakest lots with their closest texture classes (lowest r):</p><img src="lot_textures.png">
<h2>Nearest textures at the salient point</h2>
<p>The strongest and weakest lots' first images: the salient region (at least half the map's peak) outlined,
the peak marked, and per stage the nearest textures with their distance.</p>
{pictures}
</body></html>
"""

_PROPERTIES = """<h2>Affinity with the lots' other properties</h2>
<p>The same affinity against the lots' mean of each --properties column, beside {name}'s: a texture's
relation to {name} is only read as "this property" when it follows that property's column. The table has the
stages combined; the picture and texture_properties.csv have each stage too.</p>
{table}<img src="texture_properties.png">
"""
