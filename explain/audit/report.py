"""The audit's report files: the tables as CSV and JSON, and one HTML page with the verdicts,
the measures, the sanity check and example overlays (:mod:`explain.audit` measures)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from datasets.tables import write_csv

MASK_COLOURS = (("green", (0, 220, 0)), ("magenta", (255, 0, 255)), ("cyan", (0, 200, 255)))  # in --masks order


def write_report(out: Path, images: pd.DataFrame, summary: pd.DataFrame, decided: dict, sanity: pd.DataFrame,
                 threshold: float, settings: dict) -> None:
    """Writes audit_images.csv, audit.csv, audit.json and audit.html; ``threshold`` is the
    excess probability drop from which a class relies on the shortcut."""
    write_csv(images, out / "audit_images.csv")
    summary.to_csv(out / "audit.csv", index=False)
    report = {"reliance_threshold": threshold, "settings": settings, "verdicts": decided,
              "summary": json.loads(summary.to_json(orient="records")),
              "randomisation_check": json.loads(sanity.to_json(orient="records"))}
    (out / "audit.json").write_text(json.dumps(report, indent=2))
    (out / "audit.html").write_text(_html(images, summary, decided, sanity, threshold, settings), encoding="utf-8",
                                    errors="surrogateescape")


def _html(images: pd.DataFrame, summary: pd.DataFrame, decided: dict, sanity: pd.DataFrame, threshold: float,
          settings: dict) -> str:
    table = summary.pivot_table(index=["class", "method"], columns=["mask", "metric"], values="value",
                                sort=False).round(3)
    lines = "".join(f"<li class='{'yes' if v['relies_on_shortcut'] else 'no'}'>{html.escape(v['verdict'])}</li>"
                    for v in decided.values())
    figures = "".join(f"<figure><img src='{html.escape(r.example)}'><figcaption>{html.escape(r.label)} -> "
                      f"{html.escape(r.predicted)} ({r.p_true:.2f})</figcaption></figure>"
                      for r in images.dropna(subset=["example"]).itertuples()) if "example" in images else ""
    legend = ", ".join(f"{name}: {MASK_COLOURS[i % len(MASK_COLOURS)][0]}" for i, name in enumerate(settings["masks"]))
    return _PAGE.format(model=html.escape(settings["model"]), data=html.escape(settings["data"]), verdicts=lines,
                        threshold=threshold, table=table.to_html(na_rep="", border=0),
                        sanity=sanity.round(3).to_html(index=False, border=0) if not sanity.empty else "<p>skipped</p>",
                        method=html.escape(settings["methods"][0]), legend=html.escape(legend), figures=figures)


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>geoxai audit</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1400px; }}
li.yes {{ color: #a00; }} li.no {{ color: #060; }} li {{ margin: 4px 0; }}
table {{ border-collapse: collapse; font-size: 12px; }} td, th {{ padding: 2px 6px; border-bottom: 1px solid #ddd; }}
.row {{ display: flex; flex-wrap: wrap; gap: 8px; }} figure {{ margin: 0; }} img {{ width: 160px; }}
figcaption {{ font-size: 12px; }}
</style></head><body>
<h1>Does the model look at the evidence or at the shortcut?</h1>
<p>Model {model}; data {data}.</p>
<h2>Verdicts</h2>
<p>A class relies on the shortcut when inpainting the shortcut region lowers its mean true-class
probability at least {threshold:.2f} more than inpainting an equal-area random region.</p>
<ul>{verdicts}</ul>
<h2>Measures</h2>
<p>energy: share of the map's mass on the mask (a uniform map scores mask_area); pointing: share of
maps whose peak lies on the mask; rank: relevance rank accuracy; deletion_auc (lower is better) and
insertion_auc (higher is better); intervention rows under the shortcut mask.</p>
{table}
<h2>Sanity check: cascading weight randomisation (Adebayo et al., 2018)</h2>
<p>The model's weights are re-initialised from the logits down, cumulatively; similarity of each
method's maps with the trained model's. A method that explains the model loses similarity; one that
keeps it explains the image.</p>
{sanity}
<h2>Examples</h2>
<p>{method} maps; mask outlines {legend}. Caption: true class -> predicted (true-class probability).</p>
<div class="row">{figures}</div>
</body></html>
"""
