"""Auditing explanations: does a model decide on the evidence or on a shortcut?

The audit reads a labelled manifest with ground-truth mask columns (the synthetic thin
sections have ``grain_mask``, the diagnostic grains, and ``scale_bar_mask``, a planted
shortcut) and measures, per mask, explainer and class:

- where the maps lie: energy in mask, pointing game and relevance rank accuracy
  (``explain.metrics``), next to the mask's share of the image, which is what a uniform map
  would score;
- how faithful the maps are: deletion and insertion AUC;
- what the decision needs, the causal test: accuracy and true-class probability when the
  region of the mask named ``shortcut`` is inpainted away (OpenCV, Telea), against an
  equal-area random region inpainted the same way.

A class **relies on the shortcut** when inpainting the shortcut lowers its mean true-class
probability by at least :data:`RELIANCE_THRESHOLD` more than inpainting the random region
does. The explanation metrics are reported beside the verdict, not folded into it: a map can
sit on the shortcut while the model does not need it, and the reverse.

Each method also gets Adebayo et al.'s weight-randomisation sanity check on a few images.
:func:`run_audit` measures and hands the tables to :mod:`explain.audit.report`;
``python -m explain.audit`` is its command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from datasets.images import UnreadableImageError, read_each, read_mask, resize_mask, write_image
from datasets.pipeline import InputSpec, for_model, model_inputs, picture, read_source, stack_inputs
from datasets.tables import BOX_COLUMNS, list_images, write_bad_files
from explain import DEFAULT_LAYER, METHODS
from explain.audit.report import MASK_COLOURS, write_report
from explain.metrics import (deletion_insertion, energy_in_mask, main_map, mask_area, pointing_game,
                             randomisation_check, relevance_rank_accuracy, softmax)
from explain.overlay import overlay
from explain.loading import LoadedModel, load_model, require_layer

SHORTCUT = "shortcut"
RELIANCE_THRESHOLD = 0.10
LOCALISATION = {"energy": energy_in_mask, "pointing": pointing_game, "rank": relevance_rank_accuracy}


class AuditError(ValueError):
    """Bad masks or data for an audit; the message names the file or column and the fix."""


@dataclass
class Sample:
    """One image with its boolean masks at the image's resolution (all False where none)."""

    path: str
    label: str
    box: np.ndarray
    image: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def parse_masks(text: str) -> dict[str, str]:
    """``evidence=grain_mask,shortcut=scale_bar_mask`` as {mask name: manifest column}."""
    pairs = {}
    for part in text.split(","):
        name, sep, column = (s.strip() for s in part.partition("="))
        if not (sep and name and column):
            raise AuditError(f"--masks {text!r}: write NAME=COLUMN pairs, e.g. "
                             "evidence=grain_mask,shortcut=scale_bar_mask.")
        pairs[name] = column
    return pairs


def load_audit_table(data: str, masks: dict[str, str], split: str | None = None) -> pd.DataFrame:
    """The labelled images of a manifest (or of ``FOLDER/manifest.csv``) with absolute mask paths."""
    source = Path(data)
    manifest = source / "manifest.csv" if source.is_dir() else source
    if manifest.suffix.lower() != ".csv" or not manifest.is_file():
        raise AuditError(f"{data}: an audit needs a CSV manifest with mask columns (or a folder holding "
                         "manifest.csv), e.g. the one python -m datasets.synthetic writes.")
    table = list_images(manifest)
    missing = [column for column in masks.values() if column not in table.columns]
    if missing:
        raise AuditError(f"Manifest {manifest} has no mask column(s) {missing}; its columns are "
                         f"{list(table.columns)}. Pass --masks NAME=COLUMN with columns it has.")
    if table["label"].isna().any():
        raise AuditError(f"Manifest {manifest}: {int(table['label'].isna().sum())} image(s) lack a label; "
                         "the audit scores decisions against labels.")
    if split:
        if "split" not in table.columns:
            raise AuditError(f"--split {split}: manifest {manifest} has no split column.")
        table = table[table["split"] == split].reset_index(drop=True)
        if table.empty:
            raise AuditError(f"Manifest {manifest} lists no image of split {split!r}.")
    for column in set(masks.values()):
        table[column] = [None if pd.isna(p) else str((manifest.parent / p).resolve()) for p in table[column]]
    return table


def load_sample(row, masks: dict[str, str], spec: InputSpec) -> Sample:
    """Decodes an image (as ``spec``'s kind reads it) and its masks; a mask that is unreadable
    or of another size is an error.

    Raises:
        UnreadableImageError: the image itself cannot be decoded (the caller skips it).
        AuditError: a mask file cannot be read or does not match its image's size.
    """
    image = read_source(row["path"], spec)
    sample = Sample(row["path"], row["label"], np.array([row[c] for c in BOX_COLUMNS], np.float32), image)
    for name, column in masks.items():
        mask_path = row[column]
        if mask_path is None:
            sample.masks[name] = np.zeros(image.shape[:2], bool)
            continue
        try:
            mask = read_mask(mask_path)
        except UnreadableImageError as err:
            raise AuditError(f"Mask {mask_path} (column {column}, image {row['path']}) {err}.") from err
        if mask.shape != image.shape[:2]:
            raise AuditError(f"Mask {mask_path} (column {column}) is {mask.shape[1]}x{mask.shape[0]} px but its "
                             f"image {row['path']} is {image.shape[1]}x{image.shape[0]} px: a mask must cover its "
                             "image pixel for pixel.")
        sample.masks[name] = mask
    return sample


def check_masks(table: pd.DataFrame, masks: dict[str, str], spec: InputSpec) -> tuple[pd.DataFrame, list[dict]]:
    """Reads every image and mask once before any model runs; returns the usable rows and the
    unreadable images. Raises AuditError on the first bad mask."""
    bad: list[dict] = []
    rows = enumerate(table.to_dict("records"))
    usable = [index for (index, _), _ in read_each(rows, bad, path_of=lambda item: item[1]["path"],
                                                    read=lambda item: load_sample(item[1], masks, spec))]
    return table.iloc[usable].reset_index(drop=True), bad


def inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills ``mask`` (grown by one pixel, to catch anti-aliased edges) from its surroundings;
    RGB uint8 or one-channel float32 amplitudes."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    return cv2.inpaint(image, grown, 3, cv2.INPAINT_TELEA).reshape(image.shape)


def random_region(mask: np.ndarray, rng: np.random.Generator, tries: int = 16) -> np.ndarray:
    """``mask`` moved to a random place (wrapping at the borders): the same area and shape, on
    whichever of ``tries`` places overlaps the original least."""
    height, width = mask.shape
    shifts = [(int(rng.integers(height)), int(rng.integers(width))) for _ in range(tries)]
    moved = [np.roll(mask, shift, axis=(0, 1)) for shift in shifts]
    return moved[int(np.argmin([(m & mask).sum() for m in moved]))]


def _stack_inputs(images: list[np.ndarray], boxes: list[np.ndarray], loaded: LoadedModel) -> dict[str, np.ndarray]:
    return stack_inputs([model_inputs(image, box, loaded.spec) for image, box in zip(images, boxes)], loaded.spec)


def _probabilities(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return softmax(model.predict(for_model(inputs), verbose=0))


@dataclass
class AuditSettings:
    methods: list[str]
    layer: str = DEFAULT_LAYER
    target: str = "pred"
    deletion_steps: int = 16
    tolerance: int | None = None  # pointing game, model pixels; None: the paper's 15 px at 224, scaled
    batch_size: int = 8
    seed: int = 0
    examples: int = 2
    sanity_images: int = 8  # images for the randomisation sanity check; 0 skips it


def audit_images(loaded: LoadedModel, table: pd.DataFrame, masks: dict[str, str], settings: AuditSettings,
                 out: Path) -> pd.DataFrame:
    """Scores every image; writes example overlays under ``out/examples``; returns one row per image."""
    import keras

    rng = np.random.default_rng(settings.seed)
    size = loaded.spec.image_size
    tolerance = settings.tolerance if settings.tolerance is not None else round(15 * size / 224)
    rows, shown = [], {}
    progress = keras.utils.Progbar(len(table), unit_name="image")
    for start in range(0, len(table), settings.batch_size):
        samples = [load_sample(row, masks, loaded.spec)
                   for row in table.iloc[start:start + settings.batch_size].to_dict("records")]
        rows += _audit_batch(loaded, samples, settings, tolerance, rng, out, shown)
        progress.add(len(samples))
    return pd.DataFrame(rows)


def _audit_batch(loaded, samples: list[Sample], settings: AuditSettings, tolerance: int, rng, out: Path,
                 shown: dict) -> list[dict]:
    size, names = loaded.spec.image_size, loaded.class_names
    boxes = [s.box for s in samples]
    inputs = _stack_inputs([s.image for s in samples], boxes, loaded)
    probabilities = _probabilities(loaded.model, inputs)
    truth = np.array([names.index(s.label) if s.label in names else -1 for s in samples])
    if (truth < 0).any():
        unknown = sorted({s.label for s in samples if s.label not in names})
        raise AuditError(f"Label(s) {unknown} are not classes of the model {names}.")
    predicted = probabilities.argmax(1)
    targets = predicted if settings.target == "pred" else truth
    rows = [{"file": s.path, "label": s.label, "predicted": names[p], "p_true": float(probabilities[i, truth[i]]),
             "correct": bool(p == truth[i])} for i, (s, p) in enumerate(zip(samples, predicted))]
    small_masks = {m: np.stack([resize_mask(s.masks[m], (size, size)) for s in samples]) for m in samples[0].masks}
    for name, stack in small_masks.items():
        for row, area in zip(rows, mask_area(stack)):
            row[f"area_{name}"] = float(area)
    first_maps = None
    for method in settings.methods:
        maps = METHODS[method](loaded.model, for_model(inputs), targets, layer=settings.layer)
        maps = main_map(loaded.model, maps)
        first_maps = maps if first_maps is None else first_maps
        for name, stack in small_masks.items():
            for metric, function in LOCALISATION.items():
                values = function(maps, stack, tolerance) if metric == "pointing" else function(maps, stack)
                for row, value in zip(rows, values):
                    row[f"{method}_{name}_{metric}"] = float(value)
        if settings.deletion_steps:
            deletion, insertion = deletion_insertion(loaded.model, inputs, maps, targets,
                                                     steps=settings.deletion_steps)
            for row, d, i in zip(rows, deletion, insertion):
                row.update({f"{method}_deletion": float(d), f"{method}_insertion": float(i)})
    if SHORTCUT in small_masks:
        _intervene(loaded, samples, boxes, truth, rows, rng)
    _write_examples(samples, first_maps, settings, rows, out, shown)
    return rows


def _intervene(loaded, samples: list[Sample], boxes, truth: np.ndarray, rows: list[dict], rng) -> None:
    """Adds each image's true-class probability and correctness with the shortcut, and with an
    equal-area random region, inpainted."""
    regions = {"shortcut": [s.masks[SHORTCUT] for s in samples]}
    regions["random"] = [random_region(m, rng) for m in regions["shortcut"]]
    for kind, masks in regions.items():
        edited = [inpaint(s.image, m) if m.any() else s.image for s, m in zip(samples, masks)]
        probabilities = _probabilities(loaded.model, _stack_inputs(edited, boxes, loaded))
        for i, row in enumerate(rows):
            row[f"p_true_without_{kind}"] = float(probabilities[i, truth[i]])
            row[f"correct_without_{kind}"] = bool(probabilities[i].argmax() == truth[i])
    for row, mask in zip(rows, regions["shortcut"]):
        row["has_shortcut"] = bool(mask.any())


def _write_examples(samples, maps, settings: AuditSettings, rows, out: Path, shown: dict) -> None:
    """The first ``examples`` images of each class: the first method's map with mask outlines."""
    folder = out / "examples"
    for sample, heatmap, row in zip(samples, maps, rows):
        if shown.get(sample.label, 0) >= settings.examples:
            continue
        shown[sample.label] = shown.get(sample.label, 0) + 1
        scale = max(1, 192 // max(sample.image.shape[:2]))  # small images grow, so outlines stay visible
        shown_image = overlay(_enlarged(picture(sample.image), scale), heatmap)
        for index, mask in enumerate(sample.masks.values()):
            contours, _ = cv2.findContours(_enlarged(mask.astype(np.uint8), scale), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(shown_image, contours, -1, MASK_COLOURS[index % len(MASK_COLOURS)][1], 1)
        name = f"{sample.label}_{shown[sample.label]}.png"
        write_image(folder / name, shown_image)
        row["example"] = f"examples/{name}"


def _enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else image


def summarize(images: pd.DataFrame, masks: list[str], methods: list[str]) -> pd.DataFrame:
    """The long summary: per class (and ``all``), method and mask, each metric's mean.

    Deletion and insertion do not depend on a mask (mask is empty); the intervention's rows
    (method empty, mask ``shortcut``) average over the images that have a shortcut region.
    """
    records = []
    for label, group in [("all", images), *images.groupby("label", sort=True)]:
        def add(method, mask, metric, values):
            values = pd.to_numeric(values, errors="coerce")
            records.append({"class": label, "method": method, "mask": mask, "metric": metric,
                            "value": values.mean(), "images": int(values.notna().sum())})

        for mask in masks:
            add("", mask, "mask_area", group[f"area_{mask}"])
        for method in methods:
            for mask in masks:
                for metric in LOCALISATION:
                    add(method, mask, metric, group[f"{method}_{mask}_{metric}"])
            for metric in ("deletion", "insertion"):
                if f"{method}_{metric}" in group:
                    add(method, "", f"{metric}_auc", group[f"{method}_{metric}"])
        if "has_shortcut" in group:
            affected = group[group["has_shortcut"]]
            for metric, column in (("accuracy", "correct"), ("accuracy_without_shortcut", "correct_without_shortcut"),
                                   ("accuracy_without_random", "correct_without_random"), ("p_true", "p_true"),
                                   ("p_true_without_shortcut", "p_true_without_shortcut"),
                                   ("p_true_without_random", "p_true_without_random")):
                add("", SHORTCUT, metric, affected[column].astype(float))
    return pd.DataFrame(records)


def verdicts(summary: pd.DataFrame, methods: list[str], masks: list[str]) -> dict[str, dict]:
    """Per class: whether it relies on the shortcut, with the numbers behind the verdict."""
    value = summary.set_index(["class", "method", "mask", "metric"])["value"]
    result = {}
    for label in summary["class"].unique():
        p, p_short, p_random = (value.get((label, "", SHORTCUT, m), np.nan)
                                for m in ("p_true", "p_true_without_shortcut", "p_true_without_random"))
        excess = float(p_random - p_short)
        relies = bool(excess >= RELIANCE_THRESHOLD)
        accuracy = [value.get((label, "", SHORTCUT, m), np.nan) for m in
                    ("accuracy", "accuracy_without_shortcut", "accuracy_without_random")]
        energies = "; ".join(f"{methods[0]} energy on {m} {value.get((label, methods[0], m, 'energy'), np.nan):.2f} "
                             f"(area {value.get((label, '', m, 'mask_area'), np.nan):.2f})" for m in masks)
        line = (f"{label}: relies on the shortcut: {'yes' if relies else 'no'} (true-class probability "
                f"{p:.2f} -> {p_short:.2f} with the shortcut inpainted, {p_random:.2f} with an equal-area "
                f"random region: excess drop {excess:+.2f}, threshold {RELIANCE_THRESHOLD:.2f}; accuracy "
                f"{accuracy[0]:.2f} -> {accuracy[1]:.2f} / {accuracy[2]:.2f}; {energies})")
        result[str(label)] = {"relies_on_shortcut": relies, "excess_probability_drop": excess,
                              "accuracy_drop": float(accuracy[0] - accuracy[1]), "verdict": line}
    return result


def sanity_check(loaded: LoadedModel, table: pd.DataFrame, masks: dict[str, str],
                 settings: AuditSettings) -> pd.DataFrame:
    """Adebayo et al.'s cascading randomisation (``explain.metrics.randomisation_check``) of each
    method on the first ``settings.sanity_images`` images, in four steps."""
    samples = [load_sample(row, masks, loaded.spec) for row in table.head(settings.sanity_images).to_dict("records")]
    inputs = for_model(_stack_inputs([s.image for s in samples], [s.box for s in samples], loaded))
    checks = [randomisation_check(loaded.model, METHODS[m], inputs, layer=settings.layer, steps=4).assign(method=m)
              for m in settings.methods]
    return pd.concat(checks, ignore_index=True)[["method", "step", "layers_randomised", "down_to", "ssim", "spearman"]]


def run_audit(model: str, data: str, masks: dict[str, str], settings: AuditSettings, out: Path,
              split: str | None = None, unsafe: bool = False) -> dict:
    """Audits ``model`` on ``data`` and writes the report into ``out``; returns the verdicts.

    Raises:
        AuditError, explain.loading.ExplainError, DataError, LayerError: bad input, with what to
            pass instead.
    """
    loaded = load_model(model, unsafe)
    require_layer(loaded.model, settings.methods, settings.layer)
    table, bad = check_masks(load_audit_table(data, masks, split), masks, loaded.spec)
    if table.empty:
        raise AuditError(f"No readable image in {data}; the first: {bad[0]['path']}: {bad[0]['reason']}.")
    out.mkdir(parents=True, exist_ok=True)
    write_bad_files(bad, out / "bad_files.csv")
    print(f"Auditing {len(table)} image(s) with {', '.join(settings.methods)}; masks {masks} ...", flush=True)
    images = audit_images(loaded, table, masks, settings, out)
    summary = summarize(images, list(masks), settings.methods)
    decided = verdicts(summary, settings.methods, list(masks)) if SHORTCUT in masks else {}
    sanity = sanity_check(loaded, table, masks, settings) if settings.sanity_images else pd.DataFrame()
    settings_used = {"model": str(model), "data": str(data), "masks": masks, "split": split, **vars(settings)}
    write_report(out, images, summary, decided, sanity, RELIANCE_THRESHOLD, settings_used)
    return decided
