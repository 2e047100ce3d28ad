"""Seeded synthetic geoscience image sets with ground-truth evidence masks.

Each generator writes the class-folder layout (``OUT/<class>/<image>.png``), the evidence
masks under ``OUT/_masks/`` (a leading underscore, so no class folder), and
``OUT/manifest.csv`` with boxes and mask paths, so the same files exercise the real-data
path. ``python -m datasets.synthetic --help`` writes them from the command line;
:func:`cached_dataset` makes them on first use for ``--data synthetic:NAME``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import cv2
import numpy as np
import pandas as pd

from datasets.ai4arctic import write_scene
from datasets.images import read_image, write_image
from datasets.seismic import section_image, write_segy
from datasets.synthetic import (sea_ice, seismic_facies, seismic_salt, sem_crystals, sigma_clasts, textures,
                                thin_sections)


@dataclass(frozen=True)
class Option:
    """A generator option: the command line's ``--NAME`` and a keyword of :func:`write_dataset`."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    bounds: tuple[float, float] | None = None  # inclusive

    def check(self, value) -> None:
        """Raises ValueError naming the option when ``value`` is not allowed."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name}={value!r} is not one of {list(self.choices)}.")
        if self.bounds is not None and not self.bounds[0] <= value <= self.bounds[1]:
            raise ValueError(f"{self.name}={value!r} must lie in [{self.bounds[0]}, {self.bounds[1]}].")


@dataclass(frozen=True)
class SyntheticSet:
    """A registered generator: what it draws, its classes, its mirror-swapped label pairs, its
    options and its writer."""

    description: str
    classes: tuple[str, ...]
    mirror_pairs: tuple[tuple[str, str], ...]
    write_sample: Callable  # (rng, size, label, stem, out, options) -> list of manifest rows
    options: tuple[Option, ...] = ()
    preview: Callable | None = None  # (out, manifest rows) -> an RGB uint8 picture of a few samples
    classes_for: Callable | None = None  # (options) -> the classes, when the options decide them
    input_kind: str = "photo"  # or "seismic": one-channel amplitude patches (datasets.pipeline)
    training_defaults: Mapping[str, Any] = field(default_factory=dict)  # over the task's, for --data synthetic:NAME
    scenes: str | None = None  # a folder of NetCDF scenes beside the manifest, which two-source models read
    version: int = 1  # raised when the files written change, so that older caches are written anew

    def source(self, manifest: Path, two_source: bool) -> Path:
        """What a reader of this set takes: its manifest, or a two-source model its scene folder."""
        return manifest.parent / self.scenes if two_source and self.scenes else manifest

    def labels(self, options: dict[str, Any]) -> tuple[str, ...]:
        return self.classes_for(options) if self.classes_for else self.classes

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every option's value, the defaults filled in.

        Raises:
            ValueError: an unknown option or a value out of its range, named.
        """
        known = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown}; this generator takes {sorted(known) or 'none'}.")
        values = {name: given.get(name, option.default) for name, option in known.items()}
        for name, value in values.items():
            known[name].check(value)
        return values


def _write_sigma_clasts(rng, size, label, stem, out: Path, options) -> list[dict]:
    sample = sigma_clasts.generate(rng, size, max_clasts=options["max_clasts"], label=label)
    path, mask_path = f"{label}/{stem}.png", f"_masks/{stem}_tails.png"
    write_image(out / path, sample.image)
    write_image(out / mask_path, sample.tail_mask.astype(np.uint8) * 255)
    return [dict(path=path, label=label, xmin=b[0], ymin=b[1], xmax=b[2], ymax=b[3], box_label=label,
                 tail_mask=mask_path) for b in sample.boxes]


def _write_thin_section(rng, size, label, stem, out: Path, options) -> list[dict]:
    sample = thin_sections.generate(rng, size, label=label, shortcut=options["shortcut"],
                                    correlation=options["correlation"], rock=options["rock"])
    path, grains, bar = f"{label}/{stem}.png", f"_masks/{stem}_grains.png", f"_masks/{stem}_scale_bar.png"
    write_image(out / path, sample.image)
    write_image(out / grains, sample.grain_mask.astype(np.uint8) * 255)
    write_image(out / bar, sample.scale_bar_mask.astype(np.uint8) * 255)
    b = sample.box
    return [dict(path=path, label=label, xmin=b[0], ymin=b[1], xmax=b[2], ymax=b[3],
                 grain_mask=grains, scale_bar_mask=bar)]


def _write_seismic_section(rng, size, label, stem, out: Path, options) -> list[dict]:
    width = options["width"] or round(size * 4 / 3)
    section = seismic_salt.generate(rng, size, width, shape=options["shape"], snr=options["snr"])
    paths = {"section": f"sections/{stem}.npy", "segy": f"segy/{stem}.sgy", "mask": f"masks/{stem}.png"}
    (out / "sections").mkdir(parents=True, exist_ok=True)
    np.save(out / paths["section"], section.amplitude)
    write_segy(out / paths["segy"], section.amplitude)
    write_image(out / paths["mask"], section.salt.astype(np.uint8) * 255)
    return [dict(**paths, label=label, shape=section.shape)]


def _preview_sections(out: Path, rows: list[dict], count: int = 3) -> np.ndarray:
    """The first sections side by side, their salt outlined in orange."""
    pictures = []
    for row in rows[:count]:
        picture = np.ascontiguousarray(section_image(np.load(out / row["section"])))
        salt = (read_image(out / row["mask"])[..., 0] > 127).astype(np.uint8)
        contours, _ = cv2.findContours(salt, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, contours, -1, (255, 140, 0), 1)
        pictures += [picture, np.full((picture.shape[0], 6, 3), 255, np.uint8)]
    return np.concatenate(pictures[:-1], axis=1)


def _write_seismic_facies(rng, size, label, stem, out: Path, options) -> list[dict]:
    patch = seismic_facies.generate(rng, size, label, shortcut=options["shortcut"],
                                    correlation=options["correlation"], facies=options["facies"])
    path, mask = f"{label}/{stem}.png", f"_masks/{stem}_noisy_traces.png"
    write_image(out / path, seismic_facies.to_grey(patch.amplitude))
    write_image(out / mask, patch.shortcut_mask.astype(np.uint8) * 255)
    return [dict(path=path, label=label, shortcut_mask=mask)]


def _preview_facies(out: Path, rows: list[dict]) -> np.ndarray:
    """One patch of each class in a row, on the grey variable-density display."""
    first = {}
    for row in rows:
        first.setdefault(row["label"], section_image(read_image(out / row["path"])[..., 0].astype(np.float32)))
    gap = np.full((next(iter(first.values())).shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([p for picture in first.values() for p in (picture, gap)][:-1], axis=1)


def _write_sea_ice(rng, size, label, stem, out: Path, options) -> list[dict]:
    scene = sea_ice.generate(rng, size, mwr_scale=options["mwr_scale"])
    paths = {"sar": f"sar/{stem}.npy", "mwr": f"mwr/{stem}.npy", "mask": f"masks/{stem}.png"}
    for source in ("sar", "mwr"):
        (out / source).mkdir(parents=True, exist_ok=True)
        np.save(out / paths[source], getattr(scene, source))
    write_image(out / paths["mask"], scene.ice.astype(np.uint8) * 255)
    write_scene(out / "scenes" / f"{stem}.nc", scene.sar, scene.mwr,
                sea_ice.ice_chart(scene.ice, options["mwr_scale"], options["chart"]))
    return [dict(**paths, label=label, wind=round(scene.wind, 3), ice_roughness=round(scene.ice_roughness, 3),
                 ice_fraction=round(float(scene.ice.mean()), 3))]


def _preview_sea_ice(out: Path, rows: list[dict], count: int = 3) -> np.ndarray:
    """Per scene: SAR HH, the radiometer's 18.7 GHz H channel upsampled, the ice mask."""
    strips = []
    for row in rows[:count]:
        sar, mwr = np.load(out / row["sar"]), np.load(out / row["mwr"])
        size = sar.shape[1::-1]
        panels = [sar[..., 0], cv2.resize(mwr[..., 6], size, interpolation=cv2.INTER_NEAREST),
                  read_image(out / row["mask"])[..., 0] / 255.0]
        gap = np.full((sar.shape[0], 4), 255, np.uint8)
        scaled = [np.clip((p - p.min()) / max(np.ptp(p), 1e-6) * 255, 0, 255).astype(np.uint8) for p in panels]
        strips.append(np.concatenate([scaled[0], gap, scaled[1], gap, scaled[2]], axis=1))
    gap = np.full((6, strips[0].shape[1]), 255, np.uint8)
    picture = np.concatenate([p for strip in strips for p in (strip, gap)][:-1], axis=0)
    return np.repeat(picture[..., None], 3, axis=-1)


def _lot_names(options) -> tuple[str, ...]:
    return tuple(f"lot_{lot:03d}" for lot in range(options["lots"]))


def _write_sem_crystals(rng, size, label, stem, out: Path, options) -> list[dict]:
    lot = sem_crystals.draw_lot(np.random.default_rng([options["seed"], int(label.removeprefix("lot_")), 7919]))
    sample = sem_crystals.generate(rng, lot, size)
    path, pits, cracks = f"{label}/{stem}.png", f"_masks/{stem}_pits.png", f"_masks/{stem}_cracks.png"
    write_image(out / path, sample.image)
    write_image(out / pits, sample.pit_mask.astype(np.uint8) * 255)
    write_image(out / cracks, sample.crack_mask.astype(np.uint8) * 255)
    return [dict(path=path, label=label, lot=label, cps=round(lot.cps, 4), pitting=round(lot.pitting, 4),
                 cracks=round(lot.cracks, 4), crystal_size=round(lot.size, 4), faceting=round(lot.faceting, 4),
                 pit_mask=pits, crack_mask=cracks)]


def _write_texture(rng, size, label, stem, out: Path, options) -> list[dict]:
    path = f"{label}/{stem}.png"
    write_image(out / path, textures.generate(rng, label, size))
    return [dict(path=path, label=label)]


def _preview_textures(out: Path, rows: list[dict]) -> np.ndarray:
    """One image of each class in a row."""
    first = {}
    for row in rows:
        first.setdefault(row["label"], read_image(out / row["path"]))
    gap = np.full((next(iter(first.values())).shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([p for picture in first.values() for p in (picture, gap)][:-1], axis=1)


GENERATORS: dict[str, SyntheticSet] = {}


def register(name: str, synthetic_set: SyntheticSet) -> None:
    """Adds a generator to the registry; a duplicate name is an error."""
    if name in GENERATORS:
        raise ValueError(f"A synthetic data set named {name!r} is already registered.")
    GENERATORS[name] = synthetic_set


register("sigma_clasts", SyntheticSet(
    "sigma clasts in a mylonite matrix, labelled by shear sense (cw/ccw), with tail masks",
    sigma_clasts.CLASSES, sigma_clasts.MIRROR_PAIRS, _write_sigma_clasts,
    (Option("max_clasts", int, 1, "up to this many clasts per image", bounds=(1, 16)),)))
register("thin_sections", SyntheticSet(
    "thin sections of six rock types (the SedNet paper's classes), with grain and scale-bar masks",
    thin_sections.CLASSES, (), _write_thin_section,
    (Option("shortcut", str, "none", "plant a class-correlated scale bar", choices=thin_sections.SHORTCUTS),
     Option("correlation", float, 0.9, "share of images whose scale bar style follows the class", bounds=(0, 1)),
     Option("rock", str, None, "draw this rock type for every class, so only the shortcut separates the "
                               "classes (an audit's positive control)", choices=(None, *thin_sections.CLASSES)))))


register("seismic_salt", SyntheticSet(
    "2D seismic sections (rows: time samples, columns: traces) with salt domes, sheets and overhangs and "
    "exact salt masks; .npy and SEG-Y sections, PNG masks; --size is the number of samples per trace",
    ("salt",), (), _write_seismic_section,
    (Option("width", int, 0, "traces per section (0: 4/3 of --size)", bounds=(0, 8192)),
     Option("shape", str, None, "draw only this salt shape", choices=(None, *seismic_salt.SHAPES)),
     Option("snr", float, 8.0, "signal-to-noise ratio (standard deviations)", bounds=(0.1, 1000))),
    preview=_preview_sections))


register("seismic_facies", SyntheticSet(
    "seismic facies patches of the LANDMASS classes (horizon, chaotic, fault, salt_dome) as 8-bit grey PNGs: "
    "continuous, hummocky, faulted and salt-flanked reflectors from an impedance model convolved with a Ricker "
    "wavelet; a plantable noisy-trace shortcut with its mask",
    seismic_facies.CLASSES, (), _write_seismic_facies,
    (Option("shortcut", str, "none", "plant bands of noisy traces whose count follows the class",
            choices=seismic_facies.SHORTCUTS),
     Option("correlation", float, 0.9, "share of patches with their class's count of noisy-trace bands",
            bounds=(0, 1)),
     Option("facies", str, None, "draw this facies for every class, so only the shortcut separates the classes "
                                 "(an audit's positive control)", choices=(None, *seismic_facies.CLASSES))),
    preview=_preview_facies, input_kind="seismic", training_defaults={"synthetic_n": 1200, "synthetic_size": 99}))


register("sea_ice", SyntheticSet(
    "sea-ice scenes from two sensors: SAR (HH, HV) at full resolution, where rough open water can be as bright as "
    "ice, and a 14-channel radiometer at 1/mwr_scale resolution with clear ice/water contrast; exact ice masks; "
    ".npy arrays and, under scenes/, the same scenes as AI4Arctic NetCDF files (which two-source runs read); --size "
    "is the SAR side in pixels",
    ("ice",), (), _write_sea_ice,
    (Option("mwr_scale", int, 8, "SAR pixels per radiometer pixel along a side (must divide --size)",
            bounds=(1, 64)),
     Option("chart", str, "exact", "the NetCDF scenes' SIC chart: exact (10 tenths on the ice mask, 0 elsewhere) or "
                                   "cells (each radiometer cell's ice fraction in tenths, a chart of graded "
                                   "concentrations)", choices=sea_ice.CHARTS)),
    preview=_preview_sea_ice, scenes="scenes", version=2,
    training_defaults={"patch_cells": 12}))  # a default 96-pixel scene whole: 12 cells of 8 pixels


register("sem_crystals", SyntheticSet(
    "SEM images of crystal powders in production lots whose strength (cps) rises with surface pitting and "
    "falls with cracks (see datasets/synthetic/sem_crystals.py for the formula), with pit and crack masks; "
    "images of a lot share its hidden parameters",
    (), (), _write_sem_crystals,
    (Option("lots", int, 30, "production lots; image i belongs to lot i mod lots", bounds=(1, 100000)),),
    classes_for=_lot_names))


register("textures", SyntheticSet(
    "describable textures, a reference set for python -m explain.concepts: procedural dotted, flecked, porous, "
    "cracked, striped, fibrous, wrinkled, grid, banded and smooth patterns, and crops of scikit-image's brick, "
    "grass and gravel photographs", textures.CLASSES, (), _write_texture, preview=_preview_textures))


def write_dataset(name: str, out: str | os.PathLike, n: int = 600, seed: int = 0, size: int = 128,
                  **options) -> Path:
    """Writes ``n`` images, balanced over the classes, and returns the manifest's path.

    Image ``i`` is drawn from its own generator seeded by ``(seed, i)``, so a set is
    reproducible and a larger ``n`` extends a smaller one.
    """
    if name not in GENERATORS:
        raise ValueError(f"Unknown synthetic data set {name!r}; choose one of {sorted(GENERATORS)}.")
    spec = GENERATORS[name]
    options = spec.resolve_options(options)
    out = Path(out)
    rows, classes = [], spec.labels(options)
    for i in range(n):
        label = classes[i % len(classes)]
        rng = np.random.default_rng([seed, i])
        rows += spec.write_sample(rng, size, label, f"{name}_{i:05d}", out, {**options, "seed": seed})
    manifest = out / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    if spec.preview is not None:
        write_image(out / "preview.png", spec.preview(out, rows))
    return manifest


def cached_dataset(name: str, cache_root: str | os.PathLike, n: int, seed: int, size: int,
                   **options) -> Path:
    """Returns the manifest of a synthetic set under ``cache_root``, writing it on first use."""
    if name not in GENERATORS:
        raise ValueError(f"Unknown synthetic data set {name!r}; choose one of {sorted(GENERATORS)}.")
    spec = GENERATORS[name]
    key = {"name": name, "n": n, "seed": seed, "size": size, **spec.resolve_options(options), "version": spec.version}
    tag = "-".join(str(v) for v in key.values())
    folder = Path(cache_root) / "_synthetic" / tag
    manifest = folder / "manifest.csv"
    stamp = folder / "complete.json"
    if not stamp.exists():
        print(f"Generating synthetic {name} ({n} images, {size} px, seed {seed}) in {folder} ...", flush=True)
        write_dataset(name, folder, n=n, seed=seed, size=size, **options)
        stamp.write_text(json.dumps(key))
    return manifest
