"""``--task segment``: a mask per pixel, of salt in seismic sections or of sea ice in fused scenes.

Salt (the salt thesis, model ``unet_resnet34``):

Sections are split as wholes, cut into overlapping patches (``--patch-size``, ``--stride``),
z-scored per patch or per section (``--normalize``) and fed to the U-Net-ResNet34 with one of
the thesis's eleven losses (``--loss``). Whole sections are predicted patch by patch and
blended back (:func:`predict_section`); they are scored by Dice, IoU and perimetric
similarity (:mod:`training.tasks.segment.metrics`): on the validation sections each epoch
(``val_dice``, ``val_iou``, ``val_ps`` next to the loss in TensorBoard, with pictures of
section, truth, prediction and error) and on every split of the best model in
``metrics.json``, with overlays of the test sections.

Sea ice (the fusion paper, model ``fusion_aspp``; :mod:`training.tasks.segment.fusion`): each sample
is a SAR scene with its coarse radiometer grid, fed whole; scored and pictured the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.ai4arctic import SAR_VARIABLES, TARGETS, chosen_variables
from datasets.images import write_image
from datasets.synthetic import GENERATORS
from datasets.seismic import (NORMALIZATIONS, LabelledSection, SegyHeaders, load_labelled_sections,
                              read_section_manifest, section_image, section_patches, split_sections)
from datasets.tables import SPLITS, DataError, write_bad_files
from datasets.tiles import blend_tiles
from models import MODELS, build_model
from models.fusion import SIZES as FUSION_SIZES
from models.losses import FRACTIONAL_TARGET_LOSSES, SEGMENTATION_LOSSES, IgnoringInvalid
from models.metrics import ValidPixelIoU
from training import summaries as tb
from training.config import Preset, TaskOptions, TrainConfig, option
from training.tasks.segment.inference import predict_batches
from training.tasks.segment.metrics import (BAND_WIDTH, EMPTY_BELOW_CANDIDATES, best_empty_below,
                                            competition_by_empty_below, emptied_below, grouped_scores, mask_scores)
from training.tasks import Task, global_batch, register_task
from training.tasks.segment.fusion import FusionData, is_fusion_model, prepare_fusion_data
from training.tasks.segment.panels import error_panel, gray, strip

SCORES = ("dice", "iou", "ps")
GROUP_SCORES = ("bearing_dice", "bearing_iou", "bearing_ps", "empty_right", "competition")  # where a group has members
CONCENTRATION_SCORES = ("sic_r2", "sic_rmse")  # a sea-ice concentration target's


@dataclass
class SegmentationData:
    """The labelled sections, split as wholes, and how they are cut into patches."""

    sections: list[LabelledSection]
    patch_size: int
    stride: int
    normalize: str
    class_names: list[str] = field(default_factory=lambda: ["salt"])
    mirror: bool = False  # test-time augmentation: each patch also predicted mirrored
    empty_below: int = 0  # a predicted mask of fewer pixels is emptied
    _patches: dict = field(default_factory=dict, repr=False)

    def items(self, split: str) -> list[LabelledSection]:
        """The labelled sections of one split (each has ``name`` and ``truth``)."""
        return [s for s in self.sections if s.split == split]

    def predict(self, model: keras.Model, items: list[LabelledSection], batch_size: int) -> list[np.ndarray]:
        """Salt probability of each whole section, patch by patch and blended. The patches of
        several sections share one call (up to ``PATCHES_PER_CALL``), so thousands of small
        sections, such as 101-pixel TGS patches, do not each pay for a call of their own."""
        probabilities = []
        for group in _groups_of_patches(items, self.patch_size, self.stride, self.normalize):
            logits = predict_batches(model, np.concatenate([patches for _, patches, _ in group]), batch_size,
                                     mirror=self.mirror)
            start = 0
            for section, patches, origins in group:
                probabilities.append(blended_probability(logits[start:start + len(patches)], origins,
                                                         section.amplitude.shape))
                start += len(patches)
        return probabilities

    def picture(self, item: LabelledSection, probability: np.ndarray) -> np.ndarray:
        return section_picture(item.amplitude, item.salt, probability, self.mask(probability))

    def mask(self, probability: np.ndarray) -> np.ndarray:
        return emptied_below(probability > 0.5, self.empty_below)

    def target_scores(self, items: list[LabelledSection], probabilities: list[np.ndarray]) -> dict:
        """Scores beyond the mask's: none for salt."""
        return {}

    picture_legend = "section, true salt, predicted probability, error (blue: missed salt, red: false salt)"

    def model_options(self, config: TrainConfig) -> dict:
        """``input_shape`` and the builder options the data decide."""
        return {"input_shape": (config.options.patch_size, config.options.patch_size, 1)}

    def settings(self, config: TrainConfig) -> dict:
        """What metrics.json records about how the data were fed and predicted."""
        return {"patch_size": self.patch_size, "stride": self.stride, "normalize": self.normalize, "tta": self.mirror,
                "empty_below": self.empty_below}

    def patches(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """All patches of a split's sections and their salt masks, (N, P, P, 1) float32 each."""
        if split not in self._patches:
            cut = [section_patches(s.amplitude, self.patch_size, self.stride, self.normalize, s.salt)
                   for s in self.items(split)]
            self._patches[split] = (np.concatenate([c[0] for c in cut]), np.concatenate([c[2] for c in cut]))
        return self._patches[split]

    def dataset(self, split: str, config: TrainConfig, training: bool = False, replicas: int = 1) -> tf.data.Dataset:
        """Batches of (patch, mask); training shuffles and flips left-right (a seismic section
        may be mirrored along its traces, never upside down)."""
        patches, masks = self.patches(split)
        batch = global_batch(split, len(patches), "patches", config, replicas, "--stride, or add sections")
        data = tf.data.Dataset.from_tensor_slices((patches, masks))
        if training:
            data = data.shuffle(len(patches), seed=config.seed)
            if config.augment:
                data = data.map(lambda x, y: _flip_left_right(x, y, config.seed), num_parallel_calls=tf.data.AUTOTUNE)
        return data.batch(batch, drop_remainder=replicas > 1).prefetch(tf.data.AUTOTUNE)


SegmentData = SegmentationData | FusionData


def _flip_left_right(patch, mask, seed: int):
    flip = tf.random.uniform((), seed=seed) < 0.5
    return (tf.cond(flip, lambda: tf.reverse(patch, [1]), lambda: patch),
            tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask))


def prepare_segmentation_data(source: Path, config: TrainConfig, run_dir: Path) -> SegmentationData:
    """Reads and checks the labelled sections, splits them as wholes, writes split.csv and
    bad_files.csv.

    Raises:
        DataError: no usable manifest, fewer than three usable labelled sections, or a bad
            split column.
    """
    bad: list[dict] = []
    table = read_section_manifest(source, bad)
    if table["mask"].isna().all():
        raise DataError(f"No section of {source} has a mask (column 'mask', a salt mask per section): training needs "
                        "them; python -m training.predict predicts sections without one.")
    headers = SegyHeaders(config.options.iline_byte, config.options.xline_byte)
    loaded = load_labelled_sections(table, bad, headers)
    print(write_bad_files(pd.DataFrame(bad, columns=["path", "reason"]), run_dir / "bad_files.csv"), flush=True)
    unlabelled = int(table["mask"].isna().sum())
    if unlabelled:
        print(f"{unlabelled} section(s) without a mask are left out of training; predict them with "
              "python -m training.predict.", flush=True)
    given = [split if isinstance(split := getattr(row, "split", None), str) else None for row, _, _ in loaded]
    splits = split_sections(given, config.split_fractions(), config.seed)
    sections = [LabelledSection(row.section, amplitude, salt, split)
                for (row, amplitude, salt), split in zip(loaded, splits)]
    small = [s.name for s in sections if min(s.amplitude.shape) < config.options.patch_size]
    if small:
        print(f"note: {len(small)} section(s) are smaller than a {config.options.patch_size}-pixel patch and are padded "
              f"by mirroring (e.g. {small[0]})", flush=True)
    pd.DataFrame({"section": [s.name for s in sections], "split": splits,
                  "samples": [s.amplitude.shape[0] for s in sections],
                  "traces": [s.amplitude.shape[1] for s in sections]}).to_csv(run_dir / "split.csv", index=False)
    counts = {split: splits.count(split) for split in SPLITS}
    print(f"{len(sections)} labelled sections; split {counts}; {config.options.patch_size}-pixel patches every "
          f"{config.options.stride} pixels, z-scored per {config.options.normalize}", flush=True)
    options = config.options
    return SegmentationData(sections, options.patch_size, options.stride, options.normalize, mirror=options.tta,
                            empty_below=0 if options.empty_below == "auto" else int(options.empty_below))


PATCHES_PER_CALL = 2048  # bounds the memory of predicting many sections at once


def _groups_of_patches(items: list[LabelledSection], patch_size: int, stride: int, normalize: str):
    """Lists of (section, patches, origins) of about ``PATCHES_PER_CALL`` patches each (a larger
    section is a group of its own), in the sections' order."""
    group, count = [], 0
    for section in items:
        patches, origins, _ = section_patches(section.amplitude, patch_size, stride, normalize)
        if group and count + len(patches) > PATCHES_PER_CALL:
            yield group
            group, count = [], 0
        group.append((section, patches, origins))
        count += len(patches)
    if group:
        yield group


def predict_section(model: keras.Model, amplitude: np.ndarray, patch_size: int, stride: int, normalize: str,
                    batch_size: int = 16, verbose: int = 0, mirror: bool = False) -> np.ndarray:
    """Salt probability (H, W) of a whole section: overlapping patches predicted in batches
    (``mirror``: each also mirrored, :func:`predict_batches`) and blended with a window
    (:func:`datasets.tiles.blend_tiles`), so there are no seams."""
    patches, origins, _ = section_patches(amplitude, patch_size, stride, normalize)
    return blended_probability(predict_batches(model, patches, batch_size, verbose, mirror), origins, amplitude.shape)


def blended_probability(logits: np.ndarray, origins, shape: tuple[int, int]) -> np.ndarray:
    """The patches' salt logits (N, P, P, 1) as one (H, W) probability, overlaps blended."""
    return blend_tiles(1 / (1 + np.exp(-logits[..., 0])), origins, shape)


def section_picture(amplitude: np.ndarray, truth: np.ndarray | None, probability: np.ndarray,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Section, truth, prediction and the error of ``mask`` (default: probability above 0.5)
    side by side as one RGB uint8 strip (the error panel: missed salt blue, false salt red).
    Without a truth: section and prediction."""
    section = section_image(amplitude)
    if truth is None:
        return strip([section, gray(probability)])
    mask = probability > 0.5 if mask is None else mask
    return strip([section, gray(truth.astype(np.float32)), gray(probability), error_panel(truth, mask)])


class SectionScores(tb.SummaryCallback):
    """Predicts the validation sections (or scenes) whole at each epoch's end and adds
    ``val_dice``, ``val_iou`` and ``val_ps`` (means over them), the salt-bearing ones' and the
    share of salt-free ones predicted salt-free (``val_bearing_dice``, ``val_empty_right``, ...)
    and the competition score to the logs; every
    ``picture_freq`` epochs (0: never) it writes pictures of input, truth, prediction and error
    of the first ``picture_count`` as TensorBoard images ``sections/<nn>``."""

    def __init__(self, log_dir, data: SegmentData, batch_size: int, picture_count: int, picture_freq: int):
        super().__init__(log_dir)
        self.items, self.data, self.batch_size = data.items("val"), data, batch_size
        self.picture_count, self.picture_freq = picture_count, picture_freq

    def on_epoch_end(self, epoch, logs=None):
        probabilities = self.data.predict(self.model, self.items, self.batch_size)
        scores = grouped_scores([(item.truth, self.data.mask(p), item.valid)
                                 for item, p in zip(self.items, probabilities)])
        scores |= self.data.target_scores(self.items, probabilities)
        if logs is not None:
            logs.update({f"val_{name}": scores[name] for name in (*SCORES, *GROUP_SCORES, *CONCENTRATION_SCORES)
                         if scores.get(name) is not None and not np.isnan(scores[name])})
        if self.active and self.picture_freq and epoch % self.picture_freq == 0:
            self._write_pictures(epoch, probabilities)

    def _write_pictures(self, epoch: int, probabilities: list[np.ndarray]) -> None:
        with self.writer("validation").as_default(step=epoch):
            for i, (item, probability) in enumerate(zip(self.items[:self.picture_count], probabilities)):
                tf.summary.image(f"sections/{i:02d}", self.data.picture(item, probability)[None],
                                 description=f"{item.name}: {self.data.picture_legend}")


@dataclass
class SegmentOptions(TaskOptions):
    """``--task segment``'s own options."""

    loss: str = option("auto", lambda: f"the loss, one of the salt thesis's eleven: {', '.join(SEGMENTATION_LOSSES)}; "
                                       "auto: its baseline bce+dice, or mse for --ice-target sic",
                       choices=lambda: ("auto", *SEGMENTATION_LOSSES))
    patch_size: int = option(64, "side in pixels of the square patches cut from the sections (a multiple of 32)")
    stride: int = option(32, "pixels between patch origins, in training and when whole sections are predicted "
                             "(overlaps are blended)")
    normalize: str = option("patch", "z-score each patch (the thesis) or each whole section", choices=NORMALIZATIONS)
    encoder_width: int = option(64, "filters of the U-Net encoder's first stage (64 is ResNet34; smaller is faster)")
    full_resolution_skip: bool = option(False, "give the U-Net's last decoder stage a skip at full resolution, which "
                                               "the thesis's ResNet34 stem lacks (for bodies a few pixels across)")
    tta: bool = option(False, "salt: predict each patch also mirrored left-right and average the two (test-time "
                              "augmentation) in the scores, and in training.predict")
    empty_below: str = option("0", "salt: empty a predicted mask of fewer salt pixels than this (a few scattered "
                                   "pixels are more often a false alarm on a salt-free patch); auto: chosen among "
                                   f"{', '.join(map(str, EMPTY_BELOW_CANDIDATES))} on the validation sections after "
                                   "training, by the competition score; training.predict uses the run's")
    iline_byte: int = option(189, "SEG-Y: the trace-header byte of the inline number (segyio's iline; 189 by the "
                                  "standard, e.g. 9 in older surveys)")
    xline_byte: int = option(193, "SEG-Y: the trace-header byte of the crossline number (segyio's xline; 193 by the "
                                  "standard, e.g. 21 in older surveys)")
    fusion_size: str = option("small", "fusion_aspp: small (14 components in every group of the mixing layer) or "
                                       "large (28 in the atrous Scales 2-16)", choices=FUSION_SIZES)
    patch_cells: int = option(10, "NetCDF sea-ice scenes: side of the training patches in radiometer cells (10 cells "
                                  "of AI4Arctic's 2 km are 250 SAR pixels)")
    ice_threshold: int = option(2, "NetCDF sea-ice scenes: ice where the chart's SIC is at least this many tenths "
                                   "(2: 20 per cent, the first class above the 15 per cent ice edge)")
    ice_target: str = option("ice", "NetCDF sea-ice scenes: what the model learns, ice (the study's ice/water map, "
                                    "SIC >= --ice-threshold) or sic (the chart's concentration per pixel, regressed "
                                    "0-100 per cent and scored by R2 and RMSE as the AutoICE challenge)",
                             choices=TARGETS)
    sar_variables: str = option(",".join(SAR_VARIABLES), "NetCDF sea-ice scenes: the SAR variables fed to the model, "
                                                         "comma-separated (default HH and HV)")
    mwr_variables: str = option("amsr2", "NetCDF sea-ice scenes: the coarse-grid variables fed to the model, "
                                         "comma-separated; amsr2 is all 14 AMSR2 brightness temperatures")

    def __post_init__(self):
        self.empty_below = str(self.empty_below)  # YAML gives a number, the command line a string

    def variables(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The SAR and coarse-grid variable names of NetCDF scenes."""
        return chosen_variables(self.sar_variables, self.mwr_variables)

    def resolved_loss(self) -> str:
        """The loss's name, ``auto`` resolved: mse for a concentration, the thesis's bce+dice for a mask."""
        if self.loss != "auto":
            return self.loss
        return "mse" if self.ice_target == "sic" else "bce+dice"

    def value_problems(self) -> list[str]:
        problems = [f"encoder_width={self.encoder_width} must be >= 8"] if self.encoder_width < 8 else []
        problems += [f"ice_threshold={self.ice_threshold} must be 1..10 (tenths of concentration)"
                     ] if not 1 <= self.ice_threshold <= 10 else []
        problems += [f"patch_cells={self.patch_cells} must be >= 1"] if self.patch_cells < 1 else []
        if self.empty_below != "auto" and not self.empty_below.isdigit():
            problems.append(f"empty_below={self.empty_below!r} must be a number of pixels (0 or more) or auto")
        return problems + [f"{name}={getattr(self, name)} must be a trace-header byte in 1..237"
                           for name in ("iline_byte", "xline_byte") if not 1 <= getattr(self, name) <= 237]


class SegmentTask(Task):
    name = "segment"
    description = ("per-pixel masks: salt bodies in 2D seismic sections (U-Net-ResNet34, eleven losses, patches "
                   "stitched back; data a manifest section,mask[,split][,inline][,crossline] of SEG-Y/.npy/PNG/TIFF "
                   "sections, or a folder of images/ and masks/ as the TGS salt set), or sea ice from SAR and a coarse "
                   "radiometer (fusion_aspp; data a manifest sar,mwr,mask[,split] of .npy arrays, or a folder of AI4Arctic "
                   "NetCDF scenes, land and no-data left out)")
    defaults = {"model": "unet_resnet34", "data": "synthetic:seismic_salt", "synthetic_n": 40, "synthetic_size": 128,
                "epochs": 12, "batch_size": 16, "lr": 1e-3, "tb_histogram_freq": 0, "tb_gradcam_images": 2}
    strategies = ("auto", "default", "mirrored", "multiworker")
    options = SegmentOptions
    presets = {"tgs-salt": Preset(
        "the recipe measured best here on the real 101-px TGS salt patches, about 12 minutes on 2 CPU cores "
        "(docs/segment.md): one 128-px patch each, a narrow encoder with a full-resolution skip, mirrored "
        "predictions averaged, and masks below an area chosen on the validation patches emptied; measured without "
        "op determinism",
        {"patch_size": 128, "stride": 64, "encoder_width": 16, "full_resolution_skip": True, "epochs": 24,
         "batch_size": 16, "lr": 3e-3, "deterministic": False, "tta": True, "empty_below": "auto"})}

    def config_problems(self, config: TrainConfig) -> list[str]:
        problems = self._concentration_problems(config) if config.options.ice_target == "sic" else []
        if is_fusion_model(config.model):
            return problems + [f"{name}={getattr(config.options, name)!r} applies to salt sections, not to sea-ice "
                               "scenes" for name, default in (("tta", False), ("empty_below", "0"))
                               if getattr(config.options, name) != default]
        if config.options.patch_size < 32 or config.options.patch_size % 32:
            problems.append(f"patch_size={config.options.patch_size} must be a multiple of 32 (the U-Net halves it five times)")
        if not 1 <= config.options.stride <= config.options.patch_size:
            problems.append(f"stride={config.options.stride} must lie in [1, patch_size={config.options.patch_size}]")
        return problems

    def resolve_source(self, config: TrainConfig) -> Path:
        """The data path; a two-source model reads a synthetic set's NetCDF scenes (sea ice)."""
        source = super().resolve_source(config)
        if not config.data.startswith("synthetic:"):
            return source
        return GENERATORS[config.data.split(":", 1)[1]].source(source, is_fusion_model(config.model))

    @staticmethod
    def _concentration_problems(config: TrainConfig) -> list[str]:
        problems = [] if is_fusion_model(config.model) else [
            f"ice_target=sic: a concentration is learnt by a sea-ice model (fusion_aspp), not {config.model}"]
        loss = config.options.resolved_loss()
        return problems + ([] if loss in FRACTIONAL_TARGET_LOSSES else [
            f"loss={loss} needs a mask; a concentration (ice_target=sic) trains with "
            f"{' or '.join(FRACTIONAL_TARGET_LOSSES)}"])

    def prepare_data(self, config: TrainConfig, run_dir: Path) -> SegmentData:
        prepare = prepare_fusion_data if is_fusion_model(config.model) else prepare_segmentation_data
        return prepare(self.resolve_source(config), config, run_dir)

    def build_model(self, config: TrainConfig, data: SegmentData) -> keras.Model:
        options = {name: config.setting(name) for name in MODELS[config.model].config_options}
        return build_model(config.model, 1, weights=config.weights, **data.model_options(config), **options)

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                jit: bool) -> None:
        model.compile(optimizer=optimizer, loss=IgnoringInvalid(config.options.resolved_loss()),
                      metrics=[ValidPixelIoU(target_class_ids=[1], threshold=0.0, name="patch_iou")],
                      jit_compile=jit)

    def epoch_metrics(self, config: TrainConfig, run_dir: Path, data: SegmentData) -> list:
        return [SectionScores(run_dir, data, config.batch_size, config.tb_gradcam_images, config.tb_gradcam_freq)]

    def evaluate(self, model: keras.Model, config: TrainConfig, data: SegmentData, run_dir: Path) -> dict:
        """Predicts every labelled section (or scene) whole; writes metrics.json (per item and
        the mean over each split's items) and ``sections/<name>.png`` pictures of the test ones."""
        metrics, chosen = {}, {}
        pictures = run_dir / "sections"
        predictions = {}  # a split's predictions, held only while it is scored
        if config.options.empty_below == "auto":
            predictions["val"] = data.predict(model, data.items("val"), config.batch_size)
            by_area = competition_by_empty_below(
                [(item.truth, p > 0.5) for item, p in zip(data.items("val"), predictions["val"])])
            chosen["empty_below"] = data.empty_below = best_empty_below(by_area)
            chosen["val_competition_by_empty_below"] = by_area
            print(f"empty_below: masks of fewer than {data.empty_below} salt pixels are emptied (chosen on the "
                  "validation sections by the competition score: "
                  + ", ".join(f"{area} px {score:.3f}" for area, score in by_area.items()) + ")", flush=True)
        for split in SPLITS:
            items = data.items(split)
            per_item, pairs = {}, []
            probabilities = predictions.pop(split, None) or data.predict(model, items, config.batch_size)
            for item, probability in zip(items, probabilities):
                pairs.append((item.truth, data.mask(probability), item.valid))
                per_item[item.name] = {**mask_scores(*pairs[-1]), **data.target_scores([item], [probability]),
                                       "salt": bool(item.truth.any()), "predicted_salt": bool(pairs[-1][1].any())}
                if split == "test":
                    write_image(pictures / f"{Path(item.name).stem}.png", data.picture(item, probability))
            grouped = {name: None if isinstance(v, float) and np.isnan(v) else v
                       for name, v in grouped_scores(pairs).items()}
            metrics[split] = {**grouped, **data.target_scores(items, probabilities), "count": len(per_item),
                              "sections": per_item}
        (run_dir / "metrics.json").write_text(json.dumps(
            {"class_names": data.class_names, "loss": config.options.resolved_loss(), "ps_band_width": BAND_WIDTH,
             **data.settings(config), "chosen": chosen, **metrics}, indent=2))
        return {"class_names": data.class_names, **metrics}

    def final_scalars(self, metrics: dict) -> dict[str, float]:
        return {f"{split}_{name}": metrics[split][name] for split in SPLITS
                for name in (*SCORES, *GROUP_SCORES, *CONCENTRATION_SCORES) if metrics[split].get(name) is not None}

    def headline(self, metrics: dict) -> str:
        test = metrics["test"]
        line = f"Test: Dice {test['dice']:.3f}, PS {test['ps']:.3f}, IoU {test['iou']:.3f} (mean of {test['count']})"
        if test.get("sic_rmse") is not None:
            r2 = "undefined (one concentration)" if test["sic_r2"] is None else f"{test['sic_r2']:.3f}"
            line += f"; concentration R² {r2}, RMSE {test['sic_rmse']:.1f} percentage points"
        if test["empty_count"] and test["bearing_count"]:
            name = self.target_name(metrics)
            line += (f"; {name}-bearing ({test['bearing_count']}): Dice {test['bearing_dice']:.3f}, IoU "
                     f"{test['bearing_iou']:.3f}, PS {test['bearing_ps']:.3f}; {name}-free ({test['empty_count']}): "
                     f"{test['empty_right']:.0%} predicted {name}-free; competition score {test['competition']:.3f}")
            line += f".\n{name.capitalize()}-bearing Dice by cover: " + ", ".join(
                f"{band} {scores['dice']:.3f} ({scores['count']})"
                for band, scores in test["bearing_dice_by_cover"].items() if scores["count"])
        return line + "."

    @staticmethod
    def target_name(metrics: dict) -> str:
        return (metrics.get("class_names") or ["salt"])[0]

    def report_lines(self, run_dir: Path) -> list[tuple[str, str]]:
        metrics = run_dir / "metrics.json"
        fused = metrics.is_file() and "mwr_scale" in json.loads(metrics.read_text())
        return [("metrics", f"{metrics} (Dice, IoU, PS per section or scene, and per split)"),
                ("test pictures", f"{run_dir / 'sections'}/*.png (input, truth, prediction, error)"),
                ("z-scores", f"python -m explain.zscores --model {run_dir} --out DIR") if fused else
                ("whole sections", f"python -m training.predict --model {run_dir} --section FILE --out DIR")]


register_task(SegmentTask())

__all__ = ["NORMALIZATIONS", "FusionData", "SegmentData", "SegmentTask", "SegmentationData", "predict_section",
           "section_picture"]
