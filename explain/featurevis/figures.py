"""Pictures of feature visualisations: grids of images with row and column titles."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from explain.featurevis import Range


def displayable(image: np.ndarray, value_range: Range) -> np.ndarray:
    """An (H, W, C) image in ``value_range`` as (H, W) grey or (H, W, 3) RGB floats in [0, 1]."""
    low, high = value_range
    scaled = np.clip((np.asarray(image, np.float32) - low) / (high - low), 0, 1)
    return scaled[..., 0] if scaled.shape[-1] == 1 else scaled[..., :3]


def save_grid(cells: Sequence[Sequence[np.ndarray | None]], path: str | Path, value_range: Range,
              row_titles: Sequence[str] = (), column_titles: Sequence[str] = (), captions=None,
              title: str = "", cell_inches: float = 1.6) -> Path:
    """Writes a grid of images as a PNG; None leaves a cell empty.

    Args:
        cells: rows of (H, W, C) images in ``value_range``.
        captions: optional rows of short texts shown under each image (e.g. the SSIM).
    """
    rows, columns = len(cells), max(len(row) for row in cells)
    figure = Figure(figsize=(cell_inches * columns + (1.2 if row_titles else 0), cell_inches * rows + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False)
    for r, row in enumerate(cells):
        for c in range(columns):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            image = row[c] if c < len(row) else None
            if image is None:
                axis.axis("off")
                continue
            axis.imshow(displayable(image, value_range), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if captions is not None and captions[r][c]:
                axis.set_xlabel(captions[r][c], fontsize=8)
            if r == 0 and c < len(column_titles):
                axis.set_title(column_titles[c], fontsize=9)
            if c == 0 and r < len(row_titles):
                axis.set_ylabel(row_titles[r], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
