"""Sea-ice scenes as the AI4Arctic ready-to-train NetCDF files publish them, read lazily.

One file per Sentinel-1 scene (the AI4Arctic Sea Ice Challenge data set, built on ASIP/ASID;
names as in the challenge's starter kit, github.com/astokholm/AI4ArcticSeaIceChallenge
``utils.py`` and ``loaders.py``, and torchgeo's copy of the layout):

- on the SAR grid (dimensions ``sar_lines`` x ``sar_samples``, 80 m pixels): the SAR
  backscatter ``nersc_sar_primary`` (HH) and ``nersc_sar_secondary`` (HV), normalised, NaN
  where the scene has no data; ``sar_incidenceangle``; ``distance_map`` (distance-to-land zones,
  0 on land); and the ice chart as class codes ``SIC`` (concentration in tenths, 0-10),
  ``SOD`` (stage of development, 0-5) and ``FLOE`` (floe size, 0-6), each 255 where the pixel
  is land or has no chart (the challenge's ``class_fill_values``);
- on the coarse grid (``2km_grid_lines`` x ``2km_grid_samples``, 2 km, so 25 SAR pixels a
  side): the 14 AMSR2 brightness temperatures ``btemp_6_9h`` ... ``btemp_89_0v`` and ERA5
  weather variables.

:func:`open_scene` opens a file with xarray (netCDF4 engine: the reference implementation
for NetCDF-4/HDF5, and the one the challenge's code uses) without loading any array; a
:class:`Scene` cuts windows, so a patch costs its own pixels, not the scene's. Which SAR and
AMSR2 variables feed the model is a setting; the default is the Z-score study's choice: HH,
HV and all 14 AMSR2 channels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from datasets.fusion import FusionSample
from datasets.images import UnreadableImageError

SAR_DIMS = ("sar_lines", "sar_samples")
COARSE_DIMS = ("2km_grid_lines", "2km_grid_samples")
SAR_VARIABLES = ("nersc_sar_primary", "nersc_sar_secondary")
AMSR2_VARIABLES = tuple(f"btemp_{band}{polarisation}" for band in ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0")
                        for polarisation in "hv")
CHART_FILL = 255  # land, or no chart
TARGETS = ("ice", "sic")  # the study's ice/water map from the chart, or the chart's concentration itself
MIN_VALID_SHARE = 0.5  # a patch with less of its chart valid (not land, charted) is not used
OVERVIEW_SIDE = 1000  # pixels: the longer side of a whole scene's picture


@dataclass
class Scene:
    """One opened scene file: its lazy dataset, the variables chosen, and how many SAR pixels
    make one coarse-grid pixel along a side."""

    path: Path
    dataset: object  # xarray.Dataset, lazily loaded
    sar_variables: tuple[str, ...]
    mwr_variables: tuple[str, ...]
    ratio: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(self.dataset.sizes[d]) for d in SAR_DIMS)

    @property
    def has_chart(self) -> bool:
        """Whether the scene has its SIC chart (a challenge's test scene has none)."""
        return "SIC" in self.dataset.variables

    def chart(self, name: str = "SIC") -> np.ndarray:
        """The whole chart (uint8, the SAR grid): a chart is small beside the SAR stack."""
        return np.asarray(self.dataset[name].values)

    def window(self, row: int, col: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The SAR (size, size, C) and coarse (size/ratio, size/ratio, K) arrays of the window at
        (row, col); ``row``, ``col`` and ``size`` are multiples of ``ratio``. NaN stays NaN."""
        return self.sar_window(row, col, size), self.mwr_window(row, col, size)

    def sar_window(self, row: int, col: int, size: int) -> np.ndarray:
        return self._stack(self.sar_variables, SAR_DIMS, row, col, size)

    def mwr_window(self, row: int, col: int, size: int) -> np.ndarray:
        step = self.ratio
        return self._stack(self.mwr_variables, COARSE_DIMS, row // step, col // step, size // step)

    def chart_window(self, row: int, col: int, size: int, name: str = "SIC") -> np.ndarray:
        return self._stack((name,), SAR_DIMS, row, col, size)[..., 0].astype(np.uint8)

    def _stack(self, names: tuple[str, ...], dims: tuple[str, str], row: int, col: int, size: int,
               step: int = 1) -> np.ndarray:
        window = self.dataset[list(names)].isel({dims[0]: slice(row, row + size, step),
                                                 dims[1]: slice(col, col + size, step)})
        return np.stack([np.asarray(window[name].values, np.float32) for name in names], axis=-1)

    def overview_step(self, largest: int = OVERVIEW_SIDE) -> int:
        """The stride that brings the scene's longer side to at most ``largest`` pixels."""
        return -(-max(self.shape) // largest)

    def overview(self, threshold: int, step: int) -> FusionSample:
        """Every ``step``-th SAR pixel of the whole scene (and the coarse grid, the chart's ice and
        concentration at the same places), for a picture; a scene without a chart has no valid pixel."""
        size = max(self.shape)
        sar = self._stack(self.sar_variables, SAR_DIMS, 0, 0, size, step)
        mwr = self._stack(self.mwr_variables, COARSE_DIMS, 0, 0, size, max(step // self.ratio, 1))
        chart = (self._stack(("SIC",), SAR_DIMS, 0, 0, size, step)[..., 0].astype(np.uint8) if self.has_chart
                 else np.full(sar.shape[:2], CHART_FILL, np.uint8))
        ice, charted = ice_target(chart, threshold)
        return FusionSample(self.path.name, np.nan_to_num(sar), np.nan_to_num(mwr), ice,
                            valid=charted & np.isfinite(sar).all(axis=-1), concentration=concentration(chart))

    def close(self) -> None:
        self.dataset.close()


def open_scene(path: str | os.PathLike, sar_variables: tuple[str, ...] = SAR_VARIABLES,
               mwr_variables: tuple[str, ...] = AMSR2_VARIABLES, chart: bool = True) -> Scene:
    """Opens and checks one scene file without reading its arrays; ``chart``: the SIC chart is
    required (for training), else checked only where the scene has one (to predict).

    Raises:
        UnreadableImageError: not a readable NetCDF file, a variable missing or on the wrong
            grid, a chart of another size than the SAR, or a coarse grid whose sides are not the
            SAR's divided by one whole factor; the message names the variable and the sizes.
    """
    import xarray as xr

    path = Path(path)
    try:
        dataset = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise UnreadableImageError(f"is not a readable NetCDF scene ({err})") from err
    try:
        charted = chart or "SIC" in dataset.variables
        _check_variables(dataset, sar_variables + (("SIC",) if charted else ()), SAR_DIMS)
        _check_variables(dataset, mwr_variables, COARSE_DIMS)
        ratio = _grid_ratio(dataset)
    except UnreadableImageError:
        dataset.close()
        raise
    return Scene(path, dataset, tuple(sar_variables), tuple(mwr_variables), ratio)


def _check_variables(dataset, names: tuple[str, ...], dims: tuple[str, str]) -> None:
    missing = [name for name in names if name not in dataset.variables]
    if missing:
        raise UnreadableImageError(f"lacks the variable(s) {', '.join(missing)} (it has "
                                   f"{', '.join(sorted(map(str, dataset.data_vars)))})")
    for name in names:
        if tuple(dataset[name].dims) != dims:
            shape = " x ".join(str(n) for n in dataset[name].shape)
            expected = " x ".join(str(dataset.sizes.get(d, "?")) for d in dims)
            raise UnreadableImageError(f"variable {name} is {shape} on {tuple(dataset[name].dims)}, not {expected} on "
                                       f"{dims}: a chart or input of another size than its grid")


def _grid_ratio(dataset) -> int:
    fine = [int(dataset.sizes[d]) for d in SAR_DIMS]
    coarse = [int(dataset.sizes[d]) for d in COARSE_DIMS]
    ratio = fine[0] // coarse[0] if coarse[0] else 0
    if not ratio or [c * ratio for c in coarse] != fine:
        raise UnreadableImageError(f"its SAR grid is {fine[0]} x {fine[1]} but its coarse grid is {coarse[0]} x "
                                   f"{coarse[1]}: both sides must be the SAR's divided by one whole factor")
    return ratio


def chosen_variables(sar: str, mwr: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The settings ``sar_variables`` and ``mwr_variables`` (comma-separated) as names; ``amsr2``
    stands for the 14 AMSR2 channels."""
    def names(text: str) -> tuple[str, ...]:
        return tuple(name.strip() for name in text.split(",") if name.strip())

    return names(sar), AMSR2_VARIABLES if mwr.strip() == "amsr2" else names(mwr)


def ice_target(sic: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """The study's binary ice map from a SIC chart (ice where the concentration in tenths is at
    least ``threshold``) and the valid pixels (neither land nor without chart)."""
    valid = sic != CHART_FILL
    return valid & (sic >= threshold), valid


def concentration(sic: np.ndarray) -> np.ndarray:
    """A SIC chart in tenths as float32 concentrations 0-1 (0 where land or uncharted)."""
    return np.where(sic == CHART_FILL, 0, sic).astype(np.float32) / 10


def ice_from_concentration(fraction: np.ndarray, threshold: int) -> np.ndarray:
    """Where a concentration (0-1), rounded to the chart's tenths, is at least ``threshold``
    tenths: the ice map a regressed SIC gives, comparable with :func:`ice_target`'s."""
    return fraction * 10 >= threshold - 0.5


def is_scene_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of ``.nc`` scene files (or one ``.nc`` file)."""
    path = Path(path)
    return path.suffix.lower() == ".nc" or (path.is_dir() and any(path.glob("*.nc")))


def scene_files(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    return [path] if path.is_file() else sorted(p for p in path.glob("*.nc") if not p.name.startswith("."))


@dataclass
class ScenePatch:
    """A patch of an open scene, with the attributes of :class:`datasets.fusion.FusionSample`,
    whose arrays are read from the file each time they are asked for: a split of patches holds
    no pixels. Its SAR and coarse arrays have no-data set to 0; ``valid`` leaves out land,
    uncharted pixels and SAR no-data."""

    scene: Scene
    row: int
    col: int
    size: int
    threshold: int
    split: str | None = None

    @property
    def name(self) -> str:
        return f"{self.scene.path.stem}@{self.row},{self.col}"

    @property
    def sar(self) -> np.ndarray:
        return np.nan_to_num(self.scene.sar_window(self.row, self.col, self.size))

    @property
    def mwr(self) -> np.ndarray:
        return np.nan_to_num(self.scene.mwr_window(self.row, self.col, self.size))

    @property
    def truth(self) -> np.ndarray:
        return ice_target(self.scene.chart_window(self.row, self.col, self.size), self.threshold)[0]

    @property
    def valid(self) -> np.ndarray:
        return self.load().valid

    @property
    def concentration(self) -> np.ndarray:
        return concentration(self.scene.chart_window(self.row, self.col, self.size))

    def load(self) -> FusionSample:
        """The patch's arrays, each window read once."""
        sar = self.scene.sar_window(self.row, self.col, self.size)
        chart = self.scene.chart_window(self.row, self.col, self.size)
        ice, charted = ice_target(chart, self.threshold)
        return FusionSample(self.name, np.nan_to_num(sar), self.mwr, ice, self.split,
                            charted & np.isfinite(sar).all(axis=-1), concentration(chart))


def patch_origins(scene: Scene, cells: int, threshold: int, min_valid: float = MIN_VALID_SHARE) -> np.ndarray:
    """(K, 2) row and column, in SAR pixels on whole coarse cells, of every patch of ``cells``
    cells a side whose chart is at least ``min_valid`` valid; reads the chart once."""
    rows, cols = scene.shape
    step = scene.ratio
    valid = ice_target(scene.chart("SIC"), threshold)[1]
    share = valid.reshape(rows // step, step, cols // step, step).mean(axis=(1, 3))
    sums = np.pad(share.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    box = sums[cells:, cells:] - sums[:-cells, cells:] - sums[cells:, :-cells] + sums[:-cells, :-cells]
    return np.argwhere(box / cells ** 2 >= min_valid) * step


def grid_patches(scene: Scene, origins: np.ndarray, cells: int, threshold: int, split: str | None = None,
                 rng: np.random.Generator | None = None) -> list[ScenePatch]:
    """The scene's usable patches (``origins``, of :func:`patch_origins`) of ``cells`` cells a
    side on a grid, shifted by a random whole number of cells (``rng``; None: from the corner)."""
    size = cells * scene.ratio
    usable = {tuple(origin) for origin in origins.tolist()}
    offset = [int(rng.integers(cells)) * scene.ratio if rng is not None else 0 for _ in range(2)]
    starts = [range(o if length >= o + size else 0, length - size + 1, size) for o, length in zip(offset, scene.shape)]
    return [ScenePatch(scene, row, col, size, threshold, split) for row in starts[0] for col in starts[1]
            if (row, col) in usable]


class PatchSampler:
    """Patches of the training scenes drawn at random anew each epoch: a scene with a chance in
    proportion to its usable places (:func:`patch_origins`), then one of its places; each patch
    reads its own window, so memory holds a batch, never the scenes."""

    def __init__(self, scenes: list[Scene], origins: list[np.ndarray], cells: int, threshold: int, count: int,
                 seed: int, target: str = "ice"):
        usable = np.array([len(o) for o in origins], float)
        self.scenes, self.origins, self.weights = scenes, origins, usable / usable.sum()
        self.size, self.threshold, self.count, self.seed = cells * scenes[0].ratio, threshold, count, seed
        self.target = target

    def epoch(self, index: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """``count`` patches as ``({"sar", "mwr"}, target)``, the target (size, size, 2): the ice
        mask (or the concentration, for the target "sic") and the valid pixels; seeded by the
        run's seed and ``index``."""
        rng = np.random.default_rng([self.seed, index])
        for _ in range(self.count):
            k = int(rng.choice(len(self.scenes), p=self.weights))
            row, col = self.origins[k][int(rng.integers(len(self.origins[k])))]
            patch = ScenePatch(self.scenes[k], int(row), int(col), self.size, self.threshold).load()
            yield patch.inputs, patch.target(self.target)


def write_scene(path: str | os.PathLike, sar: np.ndarray, mwr: np.ndarray, sic: np.ndarray) -> None:
    """Writes a scene in the ready-to-train layout: ``sar`` (H, W, 2) as HH and HV, ``mwr`` (H/s,
    W/s, 14) as the AMSR2 channels, ``sic`` (H, W) uint8 as the SIC chart (tenths, 255 masked)."""
    import xarray as xr

    variables = {name: (SAR_DIMS, sar[..., i].astype(np.float32)) for i, name in enumerate(SAR_VARIABLES)}
    variables |= {name: (COARSE_DIMS, mwr[..., i].astype(np.float32)) for i, name in enumerate(AMSR2_VARIABLES)}
    variables["SIC"] = (SAR_DIMS, sic.astype(np.uint8))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset(variables, attrs={"pixel_spacing": 80}).to_netcdf(path, engine="netcdf4")


def predict_scene(model, scene: Scene, batch_size: int = 8) -> np.ndarray:
    """A two-source model's (inputs ``sar`` and ``mwr``) per-pixel sigmoid over a whole scene
    (the ice probability, or the concentration of a model that learnt it), tile by tile at the model's input size with half-tile overlaps on whole radiometer
    cells, blended without seams (:class:`datasets.tiles.TileBlender`); memory holds one batch of
    windows and the result, never the scene's stack of inputs.

    Raises:
        UnreadableImageError: the scene's grids are not the model's ratio, or the scene is smaller
            than one tile.
    """
    from datasets.tiles import TileBlender, tile_origins

    size, cells = int(model.input["sar"].shape[1]), int(model.input["mwr"].shape[1])
    if size // cells != scene.ratio:
        raise UnreadableImageError(f"has {scene.ratio} SAR pixels per coarse cell, but the model was trained on "
                                   f"{size // cells}")
    if min(scene.shape) < size:
        raise UnreadableImageError(f"is {scene.shape[0]} x {scene.shape[1]} SAR pixels, smaller than the model's "
                                   f"{size}-pixel tiles")
    origins = tile_origins(scene.shape, size, max(cells // 2, 1) * scene.ratio)
    blender = TileBlender(scene.shape, size)
    for start in range(0, len(origins), batch_size):
        chunk = origins[start:start + batch_size]
        windows = [scene.window(row, col, size) for row, col in chunk]
        inputs = {name: np.nan_to_num(np.stack([w[i] for w in windows])) for i, name in enumerate(("sar", "mwr"))}
        logits = np.asarray(model.predict_on_batch(inputs))[..., 0]
        blender.add(1 / (1 + np.exp(-logits)), chunk)
    return blender.result()


def write_probability(path: str | os.PathLike, probability: np.ndarray, scene: Scene,
                      variable: str = "ice_probability") -> None:
    """The prediction (an ice probability, or a concentration as ``variable``) as a NetCDF file
    on the scene's SAR grid, with the scene's geolocation variables (``sar_grid2d_latitude`` and
    the like, when it has them) copied, so that a GIS or the AI4Arctic tools place it beside the
    scene."""
    import xarray as xr

    located = [name for name in scene.dataset.variables if "latitude" in name or "longitude" in name]
    output = xr.Dataset({variable: (SAR_DIMS, probability.astype(np.float32))},
                        attrs={"source_scene": scene.path.name, **scene.dataset.attrs})
    for name in located:
        output[name] = scene.dataset[name].load()
    output.to_netcdf(path, engine="netcdf4")
