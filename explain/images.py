"""Explaining image files: a table of images (a folder or a manifest) through several
methods, written as overlays and raw maps, with one record per image (its prediction, and per
method the map's peak and entropy) for ``explanations.csv`` and the gallery.

The library behind ``python -m explain.run --images``; a regression run is explained by the
sign of its output (``--target raise`` or ``lower``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.images import read_each, write_image
from datasets.pipeline import InputSpec, for_model, model_inputs, picture, read_source, stack_inputs
from datasets.proposals import local_box
from datasets.tables import BOX_COLUMNS, read_listed
from explain import DEFAULT_LAYER, METHODS
from explain.loading import ExplainError, LoadedModel
from explain.metrics import softmax
from explain.overlay import overlay, peak_and_entropy
from explain.targets import ScalarTarget

TRUE_VALUE = "true_value"  # a regressor's target column, renamed while its rows are read


def parse_target(target: str, loaded: LoadedModel) -> str | int | float:
    """``--target`` as a class choice (pred, label, an index) or, for a regressor, a sign (+1 raise, -1 lower)."""
    if loaded.target_name:
        signs = {"pred": 1.0, "raise": 1.0, "lower": -1.0}
        if target not in signs:
            raise ExplainError(f"--target {target!r}: this model regresses {loaded.target_name}; use raise (what "
                               "raises the prediction, the default) or lower (what lowers it).")
        return signs[target]
    class_names = loaded.class_names
    if target in ("pred", "label"):
        return target
    if target in class_names:
        return class_names.index(target)
    if target.isdigit() and int(target) < len(class_names):
        return int(target)
    raise ExplainError(f"--target {target!r}: use pred, label, a class index below {len(class_names)} "
                       f"or a class name of {class_names}.")


def _batches(table: pd.DataFrame, size: int):
    for start in range(0, len(table), size):
        yield table.iloc[start:start + size]


def _decode(rows: pd.DataFrame, spec: InputSpec, bad: list):
    """The batch's source images and model inputs; unreadable files go to ``bad``."""
    kept, sources, arrays = [], [], []
    rows = rows.assign(label=rows["label"].astype(object).where(rows["label"].notna(), None))
    for row, image in read_each(rows.itertuples(index=False), bad,
                                 read=partial(read_listed, min_size=spec.min_source_size,
                                              read=partial(read_source, spec=spec))):
        box = np.array([getattr(row, c) for c in BOX_COLUMNS], np.float32)
        kept.append((row, box))
        sources.append(image)
        arrays.append(model_inputs(image, box, spec))
    return kept, sources, arrays


def explain_images(loaded: LoadedModel, table: pd.DataFrame, methods: list[str], out: Path,
                   target="pred", layer: str = DEFAULT_LAYER, batch_size: int = 8) -> tuple[pd.DataFrame, list]:
    """Explains every image of ``table``; returns the explanations table and the bad files.

    ``target`` is what ``--target`` takes (pred, label, a class name or index; raise or lower
    for a regressor, pred meaning raise) or what :func:`parse_target` made of it.
    """
    import keras

    if isinstance(target, str):
        target = parse_target(target, loaded)
    names, model = loaded.spec.input_names, loaded.model
    describe = _describe_regression if loaded.target_name else _describe_classes
    if loaded.target_name:  # under a fixed name: itertuples renames columns that are not identifiers
        table = table.rename(columns={loaded.target_name: TRUE_VALUE})
    rows, bad = [], []
    progress = keras.utils.Progbar(len(table), unit_name="image")
    for chunk in _batches(table, batch_size):
        kept, sources, arrays = _decode(chunk, loaded.spec, bad)
        if not kept:
            progress.add(len(chunk))
            continue
        batch = for_model(stack_inputs(arrays, loaded.spec))
        targets, records = describe(loaded, model.predict(batch, verbose=0), [row for row, _ in kept], target)
        maps = {m: METHODS[m](model, batch, targets, layer=layer) for m in methods}
        for i, ((row, box), source, record) in enumerate(zip(kept, sources, records)):
            stem = f"{len(rows):05d}_{Path(row.path).stem}"
            for method in methods:
                per_input = maps[method] if isinstance(maps[method], dict) else {names[0]: maps[method]}
                record.update(_write_maps(out / method, stem, method, per_input, i, source, box, loaded.spec))
            rows.append(record)
        progress.add(len(chunk))
    return pd.DataFrame(rows), bad


def _describe_classes(loaded: LoadedModel, logits: np.ndarray, rows: list, target) -> tuple[np.ndarray, list[dict]]:
    """The class explained per image and each image's record: label, prediction, probability."""
    probabilities = softmax(logits)
    predicted = probabilities.argmax(1)
    targets = _targets(target, predicted, [row.label for row in rows], loaded.class_names)
    names = loaded.class_names
    records = [{"file": row.path, "label": row.label, "predicted": names[predicted[i]],
                "probability": float(probabilities[i, predicted[i]]),
                "correct": None if row.label is None else row.label == names[predicted[i]],
                "target": names[targets[i]]} for i, row in enumerate(rows)]
    return targets, records


def _describe_regression(loaded: LoadedModel, values: np.ndarray, rows: list, sign: float
                         ) -> tuple[ScalarTarget, list[dict]]:
    """The signed output explained and each image's record: the true value where the manifest
    has the model's target column, and the prediction."""
    name = loaded.target_name
    truths = pd.to_numeric(pd.Series([getattr(row, TRUE_VALUE, None) for row in rows], dtype=object), errors="coerce")
    records = [{"file": row.path, f"true_{name}": None if pd.isna(truth) else float(truth),
                f"predicted_{name}": float(value), "target": "raise" if sign > 0 else "lower"}
               for row, truth, value in zip(rows, truths, values.reshape(len(rows), -1)[:, 0])]
    return ScalarTarget(sign), records


def _targets(target, predicted: np.ndarray, labels: list, class_names: list[str]) -> np.ndarray:
    if target == "pred":
        return predicted
    if target == "label":
        unknown = [label for label in labels if label not in class_names]
        if unknown:
            raise ExplainError(f"--target label needs known labels; got {sorted(set(map(str, unknown)))} "
                               f"for classes {class_names}.")
        return np.array([class_names.index(label) for label in labels])
    return np.full(len(predicted), target)


def _write_maps(folder: Path, stem: str, method: str, maps: dict, i: int, source: np.ndarray, box,
                spec: InputSpec) -> dict:
    """Writes overlay PNG and raw .npy per input; returns the CSV columns of the main input."""
    folder.mkdir(parents=True, exist_ok=True)
    record, names = {}, spec.input_names
    for name in names:
        heatmap = maps[name][i]
        image = source
        if name == spec.crop_input:
            x0, y0, x1, y1 = local_box(source, box)
            image = source[y0:y1, x0:x1]
        suffix = "" if len(names) == 1 else f"_{name}"
        write_image(folder / f"{stem}{suffix}.png", overlay(picture(image), heatmap))
        np.save(folder / f"{stem}{suffix}.npy", heatmap)
        if name == names[0]:
            x, y, entropy = peak_and_entropy(heatmap, image.shape[:2])
            record.update({f"{method}_peak_x": x, f"{method}_peak_y": y, f"{method}_entropy": round(entropy, 4),
                           f"{method}_overlay": f"{method}/{stem}{suffix}.png"})
    return record
