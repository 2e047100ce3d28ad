"""Texture concepts: which describable textures make a material strong? (``python -m explain.concepts``)

SEM saliency maps are hard to read, so Palmer, Mundhenk et al. (LLNL, material strength
from SEM images) name what a strength regressor sees by comparing its features at the most
salient location with those of a reference set of describable textures (DTD; here a folder
of class folders, e.g. ``python -m datasets.synthetic textures OUT``). For every image, of the
data and of the textures, the activations of each Fast-CAM stage ``Z1..Z5`` are read at the
peak of the image's own Fast-CAM map (:func:`explain.fastcam.fastcam_with_stages`). Then, per
stage ``z``:

1. Distance (eq. 1): ``d_z(x, t) = ||a_z(x) - a_z(t)||_2`` (``--metric cosine``: ``1 - cos``),
   with the ``k`` nearest textures of each image found by scikit-learn.
2. Class-averaged distance of a lot ``L`` to a texture class ``c`` (eq. 2): the mean, over the
   lot's images, of the mean distance to the image's ``k`` nearest textures of class ``c``.
3. Relevance (eq. 3): ``r_z(L, c)`` is that distance divided by the lot's mean over all classes,
   so a lot whose features are far from every texture is not far from each in particular.
4. Strength relation (eq. 4): the cosine similarity, over lots, of ``r_z(., c)`` and the lots'
   target, both centred (mean over lots removed) and scaled to unit length: a Pearson
   correlation.

Convention: ``r`` is a distance, so a texture that strong lots look like has a *smaller* ``r``
in them and eq. 4 as written comes out *negative*. Every table and chart here reports the
**affinity** ``a(c) = -s(c)``: positive when lots with a higher target look more like ``c``
(the paper's "dotted 0.84" reading), negative when they look less like it. ``combined`` is
the affinity of ``r`` averaged over the stages.

``--saliency raise`` (or ``lower``) reads the features at the peak of Fast-CAM gated by the
Grad-CAM of what raises (or lowers) the prediction instead: where the evidence for a strong
(or a weak) material is, rather than where the network responds at all.

``--properties pitting,cracks`` (any numeric manifest columns) computes the same affinity
against each column's lot means, per stage: a texture whose affinity with the target is read as
"cracks weaken the material" should follow the lots' measured crack density, not something else
that moves the target.

Activations are cached under ``OUT/cache`` keyed by the model file, the layer, the saliency and
each image's path, size and modification time, so a second report on the same data is quick.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from datasets.images import read_each
from datasets.pipeline import for_model, model_inputs, stack_inputs
from datasets.tables import DataError, read_listed, scan_class_folders
from datasets.targets import group_labels, read_targets, resolve_group_column, single_image_note
from explain import DEFAULT_LAYER
from explain.loading import LoadedModel
from explain.targets import ScalarTarget

METRICS = ("euclidean", "cosine")
SALIENCY = {"fastcam": None, "raise": 1.0, "lower": -1.0}  # the sign of the gated forms' ScalarTarget


@dataclass
class SalientFeatures:
    """Per image: its path, the Fast-CAM peak (x, y as fractions of the side), the map, and each
    stage's activation vector at that peak."""

    paths: list[str]
    peaks: np.ndarray  # (N, 2)
    saliency: np.ndarray  # (N, side, side), in [0, 1]
    stages: dict[str, np.ndarray]  # stage layer name -> (N, channels)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, paths=np.array(self.paths, dtype=object), peaks=self.peaks, saliency=self.saliency,
                            stage_names=np.array(list(self.stages)), **{f"stage_{i}": v for i, v in
                                                                        enumerate(self.stages.values())})

    @classmethod
    def load(cls, path: Path) -> SalientFeatures:
        with np.load(path, allow_pickle=True) as data:
            stages = {str(name): data[f"stage_{i}"] for i, name in enumerate(data["stage_names"])}
            return cls(list(data["paths"]), data["peaks"], data["saliency"], stages)


def salient_features(loaded: LoadedModel, table: pd.DataFrame, layer: str = DEFAULT_LAYER, batch_size: int = 16,
                     bad: list | None = None, title: str = "images", saliency: str = "fastcam") -> SalientFeatures:
    """Reads every image of ``table`` (unreadable ones go to ``bad``) and its stages' activations
    at its saliency peak, in batches, with a progress bar.

    Args:
        saliency: one of :data:`SALIENCY`: ``fastcam`` (where the network responds, as the
            study), ``raise`` or ``lower`` (Fast-CAM gated by the Grad-CAM of the prediction's
            sign: where the evidence that raises, or lowers, the prediction is).
    """
    import keras

    from explain.fastcam import fastcam_with_stages, stage_layers

    spec, model = loaded.spec, loaded.model
    first = spec.input_names[0]
    stages = stage_layers(model, layer)[first]
    read = partial(read_listed, min_size=spec.min_source_size)
    paths, peaks, saliency_maps, vectors = [], [], [], {s: [] for s in stages}
    print(f"Reading Fast-CAM peaks and the activations of {', '.join(stages)} for {len(table)} {title} ...",
          flush=True)
    progress = keras.utils.Progbar(len(table), unit_name="image")
    rows = list(table.itertuples(index=False))
    for start in range(0, len(rows), batch_size):
        chunk = list(read_each(rows[start:start + batch_size], bad if bad is not None else [], read=read))
        progress.add(min(batch_size, len(rows) - start))
        if not chunk:
            continue
        batch = stack_inputs([model_inputs(image, np.full(4, np.nan, np.float32), spec) for _, image in chunk], spec)
        gate = None if saliency == "fastcam" else ScalarTarget(SALIENCY[saliency])
        maps, activations = fastcam_with_stages(model, for_model(batch), gate, layer=layer)
        peak_map = maps[first]
        at_peak, chunk_peaks = _at_peaks(peak_map, activations, stages)
        paths += [row.path for row, _ in chunk]
        peaks.append(chunk_peaks)
        saliency_maps.append(peak_map.astype(np.float16))  # kept for the grids' outlines only
        for stage in stages:
            vectors[stage].append(at_peak[stage])
    if not paths:
        raise DataError(f"None of the {len(table)} {title} could be read; see bad_files.csv.")
    return SalientFeatures(paths, np.concatenate(peaks), np.concatenate(saliency_maps),
                           {stage: np.concatenate(v) for stage, v in vectors.items()})


def _at_peaks(maps: np.ndarray, activations: dict[str, np.ndarray], stages: list[str]
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each stage's activation vector at each map's peak (mapped to the stage's grid), and the
    peaks as (x, y) fractions of the side."""
    count, side = len(maps), maps.shape[1]
    y, x = np.divmod(maps.reshape(count, -1).argmax(1), side)
    vectors = {}
    for stage in stages:
        values = activations[stage]
        rows, cols = (y * values.shape[1] // side, x * values.shape[2] // side)
        vectors[stage] = values[np.arange(count), rows, cols]
    return vectors, np.stack([(x + 0.5) / side, (y + 0.5) / side], axis=1)


def cache_key(model_path: Path, table: pd.DataFrame, layer: str, saliency: str) -> str:
    """A digest of the model file, the explained layer, the saliency and every listed file's
    path, size and modification time: any change to them makes new activations."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{layer}\0{saliency}".encode())
    for path in table["path"]:
        try:
            stat = os.stat(path)
            digest.update(f"{os.fsencode(path)!r}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"{os.fsencode(path)!r}:missing".encode())
    return digest.hexdigest()[:16]


def cached_salient_features(loaded: LoadedModel, model_path: Path, table: pd.DataFrame, cache: Path, name: str,
                            layer: str, batch_size: int, bad: list, saliency: str = "fastcam") -> SalientFeatures:
    """:func:`salient_features`, stored under ``cache`` and reused while nothing it depends on changed
    (the unreadable images are stored with them)."""
    cache.mkdir(parents=True, exist_ok=True)
    key = cache_key(model_path, table, layer, saliency)
    stored, stored_bad = cache / f"{name}-{key}.npz", cache / f"{name}-{key}.bad.json"
    if stored.is_file() and stored_bad.is_file():
        print(f"Reusing the cached activations of the {name}: {stored}", flush=True)
        bad += json.loads(stored_bad.read_text())
        return SalientFeatures.load(stored)
    new_bad: list = []
    features = salient_features(loaded, table, layer, batch_size, new_bad, name, saliency)
    features.save(stored)
    stored_bad.write_text(json.dumps([{"path": os.fsdecode(b["path"]), "reason": b["reason"]} for b in new_bad]))
    bad += new_bad
    return features


def class_distances(data: np.ndarray, textures: np.ndarray, texture_classes: np.ndarray, classes: list[str],
                    k: int, metric: str) -> np.ndarray:
    """Eqs. 1-2 per image: the mean distance from each data vector to its ``k`` nearest
    textures of each class (fewer when a class has fewer images): (N, classes)."""
    columns = []
    for name in classes:
        members = textures[texture_classes == name]
        search = NearestNeighbors(n_neighbors=min(k, len(members)), metric=metric).fit(members)
        columns.append(search.kneighbors(data)[0].mean(axis=1))
    return np.stack(columns, axis=1)


def nearest_textures(data: np.ndarray, textures: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 1: each data vector's ``k`` nearest textures of any class: (distances, indices)."""
    return NearestNeighbors(n_neighbors=min(k, len(textures)), metric=metric).fit(textures).kneighbors(data)


def lot_relevance(distances: np.ndarray, lots: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Eqs. 2-3: per lot, the class-averaged distances and the relevance (each divided by the
    lot's mean over the classes); lots as rows, (distance|relevance, class) as columns."""
    per_lot = pd.DataFrame(distances, columns=classes).groupby(lots, sort=True).mean()
    relevance = per_lot.div(per_lot.mean(axis=1), axis=0)
    return pd.concat({"distance": per_lot, "relevance": relevance}, axis=1)


def affinity(relevance: pd.DataFrame, target: pd.Series) -> pd.Series:
    """Eq. 4 with the sign turned: minus the cosine similarity over lots of each class's
    centred relevance and the centred target, so positive means "higher-target lots look
    more like this texture". NaN for a class (or a target) that does not vary over lots."""
    centred = relevance - relevance.mean()
    goal = (target - target.mean()).reindex(relevance.index).to_numpy()
    norms = np.linalg.norm(centred.to_numpy(), axis=0) * np.linalg.norm(goal)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = centred.to_numpy().T @ goal / norms
    return pd.Series(-cosine, index=relevance.columns, name="affinity")


@dataclass
class ConceptAnalysis:
    """Everything the report shows."""

    data: pd.DataFrame  # the readable data rows: path, target, lot
    textures: pd.DataFrame  # the readable texture rows: path, label
    data_features: SalientFeatures
    texture_features: SalientFeatures
    classes: list[str]
    per_lot: dict[str, pd.DataFrame]  # stage (and "combined") -> lot_relevance table
    strength: pd.DataFrame  # class x (stages..., combined): affinity
    neighbours: pd.DataFrame  # file, stage, rank, texture, texture_class, distance
    target_name: str
    saliency: str = "fastcam"
    properties: dict[str, pd.DataFrame] | None = None  # stage (and "combined") -> class x (target, --properties...)


def analyse(data: pd.DataFrame, data_features: SalientFeatures, textures: pd.DataFrame,
            texture_features: SalientFeatures, k: int, metric: str, target_name: str,
            saliency: str = "fastcam", properties: tuple[str, ...] = ()) -> ConceptAnalysis:
    """Eqs. 1-4 on every stage and on their average; with ``properties`` (numeric columns of
    ``data``), eq. 4 also against each one's lot means, per stage and combined."""
    data = data.set_index("path").loc[data_features.paths].reset_index()
    textures = textures.set_index("path").loc[texture_features.paths].reset_index()
    labels = textures["label"].to_numpy()
    classes = sorted(set(labels))
    lots, per_lot, strength, neighbours = data["lot"].to_numpy(), {}, {}, []
    lot_target = data.groupby("lot", sort=True)["target"].mean()
    for stage, vectors in data_features.stages.items():
        distances = class_distances(vectors, texture_features.stages[stage], labels, classes, k, metric)
        per_lot[stage] = lot_relevance(distances, lots, classes)
        strength[stage] = affinity(per_lot[stage]["relevance"], lot_target)
        nearest, index = nearest_textures(vectors, texture_features.stages[stage], k, metric)
        count, found = index.shape
        neighbours.append(pd.DataFrame({
            "file": np.repeat(data["path"].to_numpy(), found), "stage": stage,
            "rank": np.tile(np.arange(1, found + 1), count), "texture": textures["path"].to_numpy()[index.ravel()],
            "texture_class": labels[index.ravel()], "distance": nearest.ravel()}))
    combined = sum(table["relevance"] for table in per_lot.values()) / len(per_lot)
    per_lot["combined"] = pd.concat({"relevance": combined}, axis=1)
    strength["combined"] = affinity(combined, lot_target)
    strength = pd.DataFrame(strength).sort_values("combined", ascending=False)
    related = None
    if properties:
        lot_values = data.groupby("lot", sort=True)[list(properties)].mean()
        related = {stage: pd.DataFrame({target_name: strength[stage],
                                        **{name: affinity(table["relevance"], lot_values[name]) for name in properties}}
                                       ).loc[strength.index] for stage, table in per_lot.items()}
    return ConceptAnalysis(data, textures, data_features, texture_features, classes, per_lot, strength,
                           pd.concat(neighbours, ignore_index=True), target_name, saliency, related)


def read_data(path: str, target_column: str, group_column: str) -> pd.DataFrame:
    """The manifest's rows with a numeric ``target`` and a ``lot`` (a bad row keeps its reason in
    ``problem``); lots of one image are named on the console.

    Raises:
        DataError: see :func:`datasets.targets.read_targets`; fewer than three lots.
    """
    table = read_targets(Path(path), target_column)
    column = resolve_group_column(table, group_column)
    table = table.assign(lot=group_labels(table, column).to_numpy())
    usable = table[table["problem"].isna()]
    if usable["lot"].nunique() < 3:
        raise DataError(f"{path}: {usable['lot'].nunique()} lot(s) with a {target_column}; relating textures to "
                        f"{target_column} needs at least three (pass --group-column none to treat each image as one).")
    note = single_image_note(usable["lot"], "lot", "their class-averaged distances rest on that image alone")
    if note and column:
        print(note, flush=True)
    return table


def read_properties(table: pd.DataFrame, columns: list[str], path: str) -> pd.DataFrame:
    """The usable rows with each ``--properties`` column as numbers.

    Raises:
        DataError: a column the manifest lacks, or a usable row with no number in one.
    """
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise DataError(f"--properties {','.join(missing)}: {path} has no such column; it has "
                        f"{[c for c in table.columns if c not in ('line', 'problem', 'target', 'lot')]}.")
    values = table[columns].apply(pd.to_numeric, errors="coerce")
    for name in columns:
        if values[name].isna().any():
            first = values[name].isna().idxmax()
            value = table.loc[first, name]
            shown = "no value" if pd.isna(value) else repr(value)
            raise DataError(f"--properties {name}: {table.loc[first, 'line']} has {shown}, not a number; relating "
                            "textures to a property needs it for every image.")
    return table.assign(**values)


def read_textures(folder: str) -> pd.DataFrame:
    """A texture folder's images by class (one sub-folder per class, as DTD's ``images/``).

    Raises:
        DataError: no such folder, no class folder, an empty class, or a single class.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--textures {root} is not a folder: pass a folder of class folders of texture images "
                        "(e.g. DTD's images/, or python -m datasets.synthetic textures OUT).")
    table = scan_class_folders(root)
    classes = sorted(table["label"].unique())
    if len(classes) < 2:
        raise DataError(f"--textures {root} has one class ({classes[0]}); relevance compares texture classes, so "
                        "it needs at least two class folders.")
    return table
