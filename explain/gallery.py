"""Static HTML galleries: per class, true positives, false positives and false negatives; for a
regressor, the images from the highest prediction to the lowest."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd


def write_gallery(table: pd.DataFrame, out: Path, methods: list[str], per_group: int = 12) -> Path:
    """Writes ``gallery.html`` from the explanations table.

    ``table`` needs columns file, label, predicted, probability and, per method, the overlay
    path ``<method>_overlay`` relative to ``out``. Images without a known label appear under
    "unlabelled", by predicted class.
    """
    sections = []
    for name in sorted(set(table["predicted"]) | set(table["label"].dropna())):
        sections.append(f"<h2>{html.escape(str(name))}</h2>")
        labelled = table[table["label"].notna()]
        groups = {
            "true positives": labelled[(labelled["label"] == name) & (labelled["predicted"] == name)],
            "false positives": labelled[(labelled["predicted"] == name) & (labelled["label"] != name)],
            "false negatives": labelled[(labelled["label"] == name) & (labelled["predicted"] != name)],
            "unlabelled": table[table["label"].isna() & (table["predicted"] == name)],
        }
        for title, rows in groups.items():
            if rows.empty:
                continue
            sections.append(f"<h3>{title} ({len(rows)})</h3><div class='row'>")
            sections += [_card(row, methods, _class_caption(row)) for _, row in rows.head(per_group).iterrows()]
            sections.append("</div>")
    return _write_page(out, methods, _CLASS_INTRO, sections)


def write_regression_gallery(table: pd.DataFrame, out: Path, methods: list[str], target_name: str) -> Path:
    """Writes ``gallery.html`` for a regressor's explanations: every image, highest prediction
    first, with its true value where known (columns ``predicted_<target>``, ``true_<target>``)."""
    predicted, truth = f"predicted_{target_name}", f"true_{target_name}"
    ordered = table.sort_values(predicted, ascending=False, kind="stable")
    explained = "raises" if (ordered["target"] == "raise").all() else "lowers"
    cards = [_card(row, methods, f"{html.escape(Path(row['file']).name)}<br>predicted {row[predicted]:.4g}"
                   + ("" if pd.isna(row[truth]) else f", true {row[truth]:.4g}"))
             for _, row in ordered.iterrows()]
    intro = (f"<p>Each map shows what {explained} the predicted {html.escape(target_name)}; images from the "
             "highest prediction to the lowest.</p>")
    return _write_page(out, methods, intro, ["<div class='row'>", *cards, "</div>"])


def _write_page(out: Path, methods: list[str], intro: str, sections: list[str]) -> Path:
    path = out / "gallery.html"
    page = _PAGE.format(methods=", ".join(methods), intro=intro, body="\n".join(sections))
    path.write_text(page, encoding="utf-8", errors="surrogateescape")  # file names as they are on disk
    return path


def _class_caption(row: pd.Series) -> str:
    truth = "?" if pd.isna(row["label"]) else row["label"]
    return (f"{html.escape(Path(row['file']).name)}<br>true: {html.escape(str(truth))}, "
            f"predicted: {html.escape(str(row['predicted']))} ({row['probability']:.2f})")


def _card(row: pd.Series, methods: list[str], caption: str) -> str:
    images = "".join(f"<figure><img src='{html.escape(row[f'{m}_overlay'])}' loading='lazy'>"
                     f"<figcaption>{html.escape(m)}</figcaption></figure>" for m in methods)
    return f"<div class='card'><div class='maps'>{images}</div><p>{caption}</p></div>"


_CLASS_INTRO = """<p>Per class: true positives, false positives (predicted as the class but
truly another), false negatives (truly the class but predicted as another).</p>"""


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>geoxai explanations</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.row {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ border: 1px solid #ccc; padding: 6px; }}
.maps {{ display: flex; gap: 4px; }}
figure {{ margin: 0; }} img {{ width: 160px; }} figcaption, p {{ font-size: 12px; margin: 2px; }}
</style></head><body>
<h1>Where the model looks</h1>
<p>Methods: {methods}.</p>
{intro}
{body}
</body></html>
"""
