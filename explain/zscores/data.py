"""The data a Z-score analysis streams: batches of model inputs read from the files a run trained on.

A two-source model (inputs ``sar`` and ``mwr``) reads a manifest ``sar,mwr[,mask]`` of ``.npy``
arrays, or a folder of AI4Arctic NetCDF scenes, cut into patches of the model's size with their
valid pixels (land and no-data are left out of the statistics); an image classifier reads a
folder or manifest of images, resized (and cropped, for SedNet) as in training; a one-channel
classifier reads seismic patches as amplitudes. ``synthetic:NAME`` (also the default: the run's
own data) is the cached set the run was trained on (a two-source model's: its NetCDF scenes).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from datasets.ai4arctic import (SAR_VARIABLES, chosen_variables, grid_patches, is_scene_folder, open_scene,
                                patch_origins, scene_files)
from datasets.fusion import read_fusion_manifest, stack_sources, usable_samples
from datasets.images import read_each
from datasets.pipeline import for_model, model_inputs, read_source, stack_inputs
from datasets.synthetic import GENERATORS, cached_dataset
from datasets.tables import BOX_COLUMNS, list_images, read_listed
from explain.loading import ExplainError, LoadedRun, input_spec
from models.fusion import INPUT_NAMES as FUSION_INPUTS


def resolve_data(run: LoadedRun, data: str | None) -> Path:
    """The data path: ``data``, or the run's own; ``synthetic:NAME`` becomes the cached set (for a
    two-source model, its NetCDF scenes).

    Raises:
        ExplainError: no data given and the run does not say what it trained on.
    """
    data = data or run.config.get("data")
    if not data:
        raise ExplainError(f"{run.path} has no config.yaml naming its data; pass --data.")
    if not str(data).startswith("synthetic:"):
        return Path(data).expanduser()
    name = str(data).split(":", 1)[1]
    options = {"n": run.config.get("synthetic_n", 600), "seed": run.config.get("seed", 0),
               "size": run.config.get("synthetic_size", 128)}
    return GENERATORS[name].source(cached_dataset(name, run.path.parent.parent, **options),
                                   _takes_two_sources(run.model))


def _takes_two_sources(model) -> bool:
    names = tuple(model.input) if isinstance(model.input, dict) else tuple(t.name for t in model.inputs)
    return names == FUSION_INPUTS


def fusion_batches(manifest: Path, batch_size: int, bad: list[dict], limit: int | None = None) -> Iterator[dict]:
    """Batches ``{"sar", "mwr"}`` of every usable sample (masks are not needed); a sample whose
    sizes differ from the first one's goes to ``bad``."""
    chunk = []
    for sample in usable_samples(read_fusion_manifest(manifest).head(limit), bad, masks=False):
        chunk.append(sample)
        if len(chunk) == batch_size:
            yield stack_sources(chunk)
            chunk = []
    if chunk:
        yield stack_sources(chunk)


def scene_batches(run: LoadedRun, source: Path, batch_size: int, bad: list[dict],
                  limit: int | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """Batches ``({"sar", "mwr"}, valid)`` of NetCDF scenes' patches at the model's input size,
    read with the run's variables and ice threshold, from each scene's corner; an unusable scene
    goes to ``bad``. ``valid`` (B, H, W) marks the pixels the statistics count."""
    cells = int(run.model.input["mwr"].shape[1])
    variables = chosen_variables(run.setting("sar_variables", ",".join(SAR_VARIABLES)),
                                 run.setting("mwr_variables", "amsr2"))
    threshold, chunk = run.setting("ice_threshold", 2), []
    for _, scene in read_each(scene_files(source)[:limit], bad, path_of=str,
                              read=lambda path: open_scene(path, *variables)):
        for patch in grid_patches(scene, patch_origins(scene, cells, threshold), cells, threshold):
            patch = patch.load()
            chunk.append((patch.inputs, patch.valid))
            if len(chunk) == batch_size:
                yield _stacked(chunk)
                chunk = []
        scene.close()
    if chunk:
        yield _stacked(chunk)


def _stacked(chunk: list[tuple[dict, np.ndarray]]) -> tuple[dict, np.ndarray]:
    return {name: np.stack([inputs[name] for inputs, _ in chunk]) for name in FUSION_INPUTS}, \
        np.stack([valid for _, valid in chunk])


def image_batches(run: LoadedRun, source: Path, batch_size: int, bad: list[dict], limit: int | None = None) -> Iterator:
    """Batches of a classifier's inputs from a folder or manifest of images (or of one-channel
    seismic patches), prepared as in training."""
    spec = input_spec(run.model, run.amplitude_stats)
    table = list_images(source).head(limit)
    chunk = []
    read = partial(read_listed, min_size=spec.min_source_size, read=partial(read_source, spec=spec))
    for row, image in read_each(table.itertuples(index=False), bad, read=read):
        box = np.array([getattr(row, c, np.nan) for c in BOX_COLUMNS], np.float32)
        chunk.append(model_inputs(image, box, spec))
        if len(chunk) == batch_size:
            yield for_model(stack_inputs(chunk, spec))
            chunk = []
    if chunk:
        yield for_model(stack_inputs(chunk, spec))


def model_batches(run: LoadedRun, data: str | None, batch_size: int, bad: list[dict],
                  limit: int | None = None) -> tuple[Path, Iterator]:
    """The data path and its batches, read the way the run's model takes them.

    Raises:
        ExplainError: the model takes inputs no reader makes (e.g. a sequence).
    """
    source = resolve_data(run, data)
    if _takes_two_sources(run.model) and is_scene_folder(source):
        return source, scene_batches(run, source, batch_size, bad, limit)
    if _takes_two_sources(run.model):
        return source, fusion_batches(source, batch_size, bad, limit)
    if len(run.model.inputs[0].shape) == 4 and run.model.inputs[0].shape[-1] in (1, 3):
        return source, image_batches(run, source, batch_size, bad, limit)
    raise ExplainError(f"{run.path}: Z-scores read two-source (sar, mwr) scenes, RGB images or one-channel seismic "
                       f"patches; this model takes {[tuple(t.shape) for t in run.model.inputs]}.")


__all__ = ["fusion_batches", "image_batches", "model_batches", "resolve_data", "scene_batches"]
