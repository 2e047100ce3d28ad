"""Evaluation reports: metrics.json (the SedNet paper's table 2) and confusion matrices (its figure 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, confusion_matrix, precision_recall_fscore_support

from training.data import label_indices


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def split_metrics(y_true: np.ndarray, logits: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, macro precision/recall/F1, mean cross-entropy and per-class scores."""
    y_pred = logits.argmax(axis=1)
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    loss = -log_softmax(logits)[np.arange(len(y_true)), y_true].mean()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "loss": float(loss),
        "count": int(len(y_true)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1, support)},
    }


def write_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                           out_stem: Path, title: str) -> None:
    """Writes ``<stem>.csv`` (rows: true class, columns: predicted) and ``<stem>.png``."""
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names)))
    frame = pd.DataFrame(matrix, index=pd.Index(class_names, name="true"), columns=class_names)
    frame.to_csv(out_stem.with_suffix(".csv"))
    side = 2.5 + 0.6 * len(class_names)
    figure = Figure(figsize=(side, side))  # no pyplot: leaves the user's matplotlib backend alone
    axes = figure.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(out_stem.with_suffix(".png"), dpi=120)


def write_metrics(metrics: dict, path: Path) -> None:
    path.write_text(json.dumps(metrics, indent=2))


def evaluate_splits(model, data, config, run_dir: Path) -> dict:
    """Predicts every split, writes metrics.json and the confusion matrices; returns the metrics."""
    metrics = {}
    for split in ("train", "val", "test"):
        y_true = label_indices(data.split_table(split), data.class_names)
        logits = model.predict(data.dataset(split, config), verbose=0)
        metrics[split] = split_metrics(y_true, logits, data.class_names)
        write_confusion_matrix(y_true, logits.argmax(axis=1), data.class_names,
                               run_dir / f"confusion_matrix_{split}", f"{config.model}: {split}")
    write_metrics({"class_names": data.class_names, **metrics}, run_dir / "metrics.json")
    return metrics
