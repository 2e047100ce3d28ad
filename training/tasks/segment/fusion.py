"""The segment task's two-source data: sea-ice scenes of SAR and a coarse radiometer.

A model whose registry entry takes the inputs ``sar`` and ``mwr`` (``fusion_aspp``) trains on
these: ``.npy`` scenes of a manifest, fed whole, or AI4Arctic NetCDF scene files cut into
patches with their land and no-data pixels marked invalid (:func:`prepare_scene_data`).
Scenes are split as wholes (a manifest's ``split`` column wins). The SAR (patch) size decides
the model's input, the radiometer grid ``mwr_scale``. Training flips in both directions (SAR,
radiometer grid and mask together: a satellite scene has no up or down); each scene or patch
is scored by Dice, IoU and perimetric similarity.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.ai4arctic import (MIN_VALID_SHARE, PatchSampler, ScenePatch, grid_patches, ice_from_concentration,
                                is_scene_folder, open_scene, patch_origins, scene_files)
from datasets.fusion import FusionSample, load_fusion_samples, read_fusion_manifest, stack_sources
from datasets.images import read_each
from datasets.seismic import split_sections
from datasets.tables import SPLITS, DataError, write_bad_files
from models import MODELS
from models.fusion import INPUT_NAMES
from training.tasks import global_batch
from training.tasks.segment.inference import predict_batches
from training.tasks.segment.metrics import concentration_scores
from training.tasks.segment.panels import error_panel, gray, strip

if TYPE_CHECKING:
    from training.config import TrainConfig

PREVIEW_CHANNEL = 6  # the radiometer's 18.7 GHz H channel in the synthetic set's order (and AI4Arctic's)
INVALID_COLOUR = (90, 20, 20)


def is_fusion_model(model: str) -> bool:
    """Whether a registry model takes the two sources ``sar`` and ``mwr``."""
    return model in MODELS and MODELS[model].input_names == INPUT_NAMES


@dataclass
class FusionData:
    """Labelled two-source scenes, split as wholes, and the target learnt from them: the ice
    mask (``"ice"``), or the chart's ice concentration (``"sic"``, NetCDF scenes), regressed as
    a fraction and cut into an ice mask at ``threshold`` tenths for the mask scores."""

    samples: list[FusionSample | ScenePatch]
    class_names: list[str] = field(default_factory=lambda: ["ice"])
    sampler: PatchSampler | None = None  # NetCDF scenes: training patches drawn anew each epoch
    target: str = "ice"
    threshold: int = 2

    @property
    def picture_legend(self) -> str:
        shown = "true and predicted concentration" if self.target == "sic" else "true ice, predicted probability"
        return (f"SAR HH, radiometer (one channel, upsampled), {shown}, error (blue: missed ice, red: false ice; "
                "dark red: land or no data, not scored)")

    def items(self, split: str) -> list[FusionSample]:
        return [s for s in self.samples if s.split == split]

    def mask(self, prediction: np.ndarray) -> np.ndarray:
        """The ice mask of a predicted probability, or of a predicted concentration at the threshold."""
        return ice_from_concentration(prediction, self.threshold) if self.target == "sic" else prediction > 0.5

    def target_scores(self, items: list[FusionSample | ScenePatch], predictions: list[np.ndarray]) -> dict:
        """R² and RMSE of the predicted concentration (``sic_r2``, ``sic_rmse``) for the SIC target."""
        if self.target != "sic":
            return {}
        loaded = [item.load() for item in items]
        return concentration_scores([(s.concentration, p, s.valid) for s, p in zip(loaded, predictions)])

    @property
    def mwr_scale(self) -> int:
        return self.samples[0].sar.shape[0] // self.samples[0].mwr.shape[0]

    def model_options(self, config: TrainConfig) -> dict:
        return {"input_shape": self.samples[0].sar.shape, "mwr_scale": self.mwr_scale,
                "mwr_channels": self.samples[0].mwr.shape[-1]}

    def settings(self, config: TrainConfig) -> dict:
        sample = self.samples[0]
        return {"sar_shape": list(sample.sar.shape), "mwr_shape": list(sample.mwr.shape), "mwr_scale": self.mwr_scale,
                "ice_target": self.target}

    def arrays(self, items: list[FusionSample]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The stacked inputs and the targets of ``items``: (N, H, W, 1) float32 masks (or
        concentrations), or (N, H, W, 2) with the valid pixels second when some pixels have no
        truth (``models.losses.IgnoringInvalid``)."""
        items = [item.load() for item in items]
        return stack_sources(items), np.stack([s.target(self.target) for s in items])

    def dataset(self, split: str, config: TrainConfig, training: bool = False, replicas: int = 1) -> tf.data.Dataset:
        """Batches of ({sar, mwr}, mask); training shuffles (or, from NetCDF scenes, draws patches
        anew) and flips (both axes)."""
        items = self.items(split)
        batch = global_batch(split, len(items), "scenes", config, replicas, "add scenes")
        if training and self.sampler is not None:
            data = self._drawn_patches()
        else:
            data = tf.data.Dataset.from_tensor_slices(self.arrays(items))
            data = data.shuffle(len(items), seed=config.seed) if training else data
        if training and config.augment:
            data = data.map(lambda x, y: _flip(x, y, config.seed), num_parallel_calls=tf.data.AUTOTUNE)
        return data.batch(batch, drop_remainder=replicas > 1).prefetch(tf.data.AUTOTUNE)

    def _drawn_patches(self) -> tf.data.Dataset:
        """The sampler's patches, a new draw each time the dataset is iterated (each epoch)."""
        inputs, target = next(self.sampler.epoch(0))
        signature = ({name: tf.TensorSpec(value.shape, tf.float32) for name, value in inputs.items()},
                     tf.TensorSpec(target.shape, tf.float32))
        epochs = itertools.count()
        drawn = tf.data.Dataset.from_generator(lambda: self.sampler.epoch(next(epochs)), output_signature=signature)
        return drawn.apply(tf.data.experimental.assert_cardinality(self.sampler.count))  # steps known: the schedule

    def predict(self, model: keras.Model, items: list[FusionSample | ScenePatch], batch_size: int) -> list[np.ndarray]:
        """Ice probability (H, W) of each scene or patch, a few batches read at a time."""
        probabilities = []
        for start in range(0, len(items), 4 * batch_size):
            logits = predict_batches(model, self.arrays(items[start:start + 4 * batch_size])[0], batch_size)
            probabilities += list(1 / (1 + np.exp(-logits[..., 0])))
        return probabilities

    def picture(self, item: FusionSample | ScenePatch, prediction: np.ndarray) -> np.ndarray:
        item = item.load()
        truth = item.concentration if self.target == "sic" else item.truth.astype(np.float32)
        return fusion_picture(item, truth, prediction, self.mask(prediction))


def _flip(inputs, mask, seed: int):
    for axis in (0, 1):
        flip = tf.random.uniform((), seed=seed + axis) < 0.5
        inputs = {name: tf.cond(flip, lambda v=value: tf.reverse(v, [axis]), lambda v=value: v)
                  for name, value in inputs.items()}
        mask = tf.cond(flip, lambda: tf.reverse(mask, [axis]), lambda: mask)
    return inputs, mask


def fusion_picture(sample: FusionSample, truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """SAR HH, one radiometer channel upsampled, the truth and the prediction (0-1: an ice mask
    and probability, or concentrations), and the error of the predicted ice ``mask`` side by side
    (RGB uint8); pixels without truth (land, no data) are dark red on the truth and error panels."""
    rows, cols = sample.sar.shape[:2]
    channel = sample.mwr[..., min(PREVIEW_CHANNEL, sample.mwr.shape[-1] - 1)]
    radiometer = cv2.resize(channel, (cols, rows), interpolation=cv2.INTER_NEAREST)
    truth, error = gray(truth), error_panel(sample.truth, mask)
    if sample.valid is not None:
        truth[~sample.valid] = error[~sample.valid] = INVALID_COLOUR
    return strip([_stretch(sample.sar[..., 0]), _stretch(radiometer), truth, gray(prediction), error])


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(values, (1, 99))
    return gray((values - low) / max(high - low, 1e-6))


def prepare_fusion_data(source: Path, config: TrainConfig, run_dir: Path) -> FusionData:
    """Reads and checks the scenes, splits them as wholes, writes split.csv and bad_files.csv.

    Raises:
        DataError: no usable manifest, fewer than three usable labelled scenes, or a bad split
            column.
    """
    if is_scene_folder(source):
        return prepare_scene_data(source, config, run_dir)
    if config.options.ice_target == "sic":
        raise DataError(f"{source}: --ice-target sic learns the SIC chart of AI4Arctic NetCDF scenes; a sar,mwr,mask "
                        "manifest has only ice masks (train it with --ice-target ice)")
    table = read_fusion_manifest(source)
    bad: list[dict] = []
    samples = load_fusion_samples(table, bad)
    print(write_bad_files(pd.DataFrame(bad, columns=["path", "reason"]), run_dir / "bad_files.csv"), flush=True)
    if not samples:
        raise DataError(f"No usable labelled scene in {source}; see {run_dir / 'bad_files.csv'}.")
    splits = split_sections([s.split for s in samples], config.split_fractions(), config.seed)
    for sample, split in zip(samples, splits):
        sample.split = split
    pd.DataFrame({"scene": [s.name for s in samples], "split": splits}).to_csv(run_dir / "split.csv", index=False)
    counts = {split: splits.count(split) for split in SPLITS}
    first = samples[0]
    print(f"{len(samples)} labelled scenes; split {counts}; SAR {first.sar.shape[0]} x {first.sar.shape[1]} x "
          f"{first.sar.shape[2]}, radiometer {first.mwr.shape[0]} x {first.mwr.shape[1]} x {first.mwr.shape[2]} "
          f"(1/{first.sar.shape[0] // first.mwr.shape[0]} resolution)", flush=True)
    return FusionData(samples)


def prepare_scene_data(source: Path, config: TrainConfig, run_dir: Path) -> FusionData:
    """AI4Arctic NetCDF scenes (:mod:`datasets.ai4arctic`): each opened lazily and checked (a bad
    one goes to ``bad_files.csv`` and the run goes on) and split as wholes. Training draws
    patches of ``--patch-cells`` coarse cells at random places anew each epoch
    (:class:`datasets.ai4arctic.PatchSampler`); validation, test and the final scores use a
    grid of such patches, shifted by a seeded whole number of cells per scene. A patch is used
    when at least half its chart is valid; land and no-data pixels are marked invalid, so that
    no loss or score counts them. Patches are read from the files when used, never held.

    Raises:
        DataError: fewer than three usable scenes, or a split left without a patch.
    """
    options = config.options
    bad: list[dict] = []
    scenes = [scene for _, scene in read_each(scene_files(source), bad, path_of=str,
                                              read=lambda path: open_scene(path, *options.variables()))]
    for other in [s for s in scenes if s.ratio != scenes[0].ratio]:
        bad.append({"path": str(other.path), "reason": f"its grids differ by {other.ratio} SAR pixels a cell, the first "
                                                       f"scene's by {scenes[0].ratio}; every scene needs one ratio"})
        other.close()
    scenes = [s for s in scenes if s.ratio == scenes[0].ratio]
    print(write_bad_files(pd.DataFrame(bad, columns=["path", "reason"]), run_dir / "bad_files.csv"), flush=True)
    splits = split_sections([None] * len(scenes), config.split_fractions(), config.seed)
    rng = np.random.default_rng(config.seed)
    origins = [patch_origins(scene, options.patch_cells, options.ice_threshold) for scene in scenes]
    patches = [patch for scene, usable, split in zip(scenes, origins, splits)
               for patch in grid_patches(scene, usable, options.patch_cells, options.ice_threshold, split, rng)]
    pd.DataFrame({"scene": [str(s.path) for s in scenes], "split": splits}).to_csv(run_dir / "split.csv", index=False)
    counts = {split: sum(p.split == split for p in patches) for split in SPLITS}
    if not all(counts.values()):
        raise DataError(f"The scenes of {source} give no patch of {options.patch_cells} cells with at least "
                        f"{MIN_VALID_SHARE:.0%} valid pixels to the {'/'.join(k for k, v in counts.items() if not v)} "
                        "split(s); lower --patch-cells or add scenes.")
    train = [i for i, split in enumerate(splits) if split == "train"]
    sampler = PatchSampler([scenes[i] for i in train], [origins[i] for i in train], options.patch_cells,
                           options.ice_threshold, counts["train"], config.seed, options.ice_target)
    size = options.patch_cells * scenes[0].ratio
    print(f"{len(scenes)} scenes (split {dict(zip(SPLITS, (splits.count(s) for s in SPLITS)))}); training draws "
          f"{counts['train']} patches of {size} px anew each epoch from {sum(map(len, sampler.origins))} places; "
          f"validation and test: {counts['val']} and {counts['test']} patches; the target: "
          + ("the chart's concentration (SIC)" if options.ice_target == "sic" else
             f"ice where SIC >= {options.ice_threshold} tenths")
          + ". Land and no-data pixels are left out of losses and scores", flush=True)
    return FusionData(patches, sampler=sampler, target=options.ice_target, threshold=options.ice_threshold)

