"""Synthetic sea-ice scenes seen by two sensors: SAR at full resolution and a coarse radiometer.

Built so that, by construction, the radiometer decides homogeneous areas and SAR only edges,
as the fusion paper reads its sensors (Malmgren-Hansen et al., DTU):

- ice: a smooth random field thresholded at a drawn level (large pack-ice areas and open
  water), plus small patches and narrow lines of either class (floes and polynyas, leads and
  ice bridges), most of them narrower than one radiometer pixel. The mask is exact.
- SAR (two channels, HH and HV, in dB with multiplicative speckle): open water's backscatter
  rises with the scene's wind, ice's with its deformation, both drawn per scene from the same
  range, in both channels alike, and one texture covers both. Water is brighter than ice as
  often as darker, neither has a level of its own, and small patches and lines of either class
  lie in the other: nothing in SAR says which side of an edge is ice. The edge itself is sharp.
- radiometer (14 channels: seven AMSR2 frequencies, H and V polarisation): brightness
  temperatures mix water's and ice's by the ice concentration inside each sensor footprint
  (a blur wider at low frequencies), sampled at 1/``mwr_scale`` resolution, with noise and a
  per-scene atmospheric offset at the water-vapour and 89 GHz channels. Clear contrast,
  no detail.

Both sources are written scaled to about unit range, as AI4Arctic's ready-to-train files
are: SAR ``(dB - mean) / 5``, radiometer ``(K - 200) / 40``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datasets.synthetic.drawing import smooth_noise

FREQUENCIES_GHZ = (6.9, 7.3, 10.7, 18.7, 23.8, 36.5, 89.0)
MWR_CHANNEL_NAMES = tuple(f"{f:g}{pol}" for f in FREQUENCIES_GHZ for pol in ("H", "V"))
# Brightness temperatures (K) of open water and first-year ice per channel, after the usual
# AMSR2 signatures: water is radiometrically cold, most of all at H polarisation.
WATER_K = np.array([[85, 160], [86, 161], [90, 165], [105, 180], [125, 195], [130, 205], [175, 230]], np.float32).ravel()
ICE_K = np.array([[235, 250], [235, 250], [236, 250], [237, 251], [238, 251], [236, 248], [225, 238]], np.float32).ravel()
HUMID = np.isin(np.arange(14), [8, 9, 12, 13])  # 23.8 GHz (water vapour) and 89 GHz, both polarisations
# Backscatter (dB; HH, HV) of a smooth surface and its rise from smooth to rough: calm to windy
# water, young level ice to deformed ice. Both classes span the same range.
SAR_SMOOTH_DB, SAR_RISE_DB = (-22.0, -30.0), 16.0
SAR_CENTRE_DB = (-16.0, -25.0)


@dataclass
class Scene:
    sar: np.ndarray  # float32 (H, W, 2): HH, HV, scaled dB
    mwr: np.ndarray  # float32 (H/s, W/s, 14): scaled brightness temperatures
    ice: np.ndarray  # bool (H, W)
    wind: float  # 0 (calm) .. 1 (strong): open water's roughness
    ice_roughness: float  # 0 (young level ice) .. 1 (deformed ice)


def ice_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pack ice and open water, with small patches (floes, polynyas) and narrow lines (leads,
    ice bridges) of either class anywhere, so that shape tells neither class: bool (size, size)."""
    field = smooth_noise(rng, size, size / 7, size / 7)
    canvas = (field > np.quantile(field, rng.uniform(0.3, 0.7))).astype(np.uint8)
    for _ in range(rng.integers(3, 9)):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(2, max(3, size // 12), 2))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(0, 2)), -1)
    for _ in range(rng.integers(1, 4)):
        start, end = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), int(rng.integers(0, 2)),
                 int(rng.integers(1, 4)))
    return canvas.astype(bool)


def sar_image(rng: np.random.Generator, ice: np.ndarray, wind: float, ice_roughness: float,
              looks: int = 6) -> np.ndarray:
    """HH and HV backscatter in scaled dB: water as rough as the wind, ice as rough as it is
    deformed, on one scale, and one texture over both."""
    size = ice.shape[0]
    channels = []
    for band in range(2):
        texture = (smooth_noise(rng, size, 1.5, 1.5) - 0.5) * 4.0
        decibels = SAR_SMOOTH_DB[band] + SAR_RISE_DB * np.where(ice, ice_roughness, wind) + texture
        decibels = decibels + 10 * np.log10(rng.gamma(looks, 1 / looks, ice.shape))  # speckle
        channels.append((decibels - SAR_CENTRE_DB[band]) / 5.0)
    return np.stack(channels, axis=-1).astype(np.float32)


def radiometer(rng: np.random.Generator, ice: np.ndarray, scale: int) -> np.ndarray:
    """Brightness temperatures over each footprint's ice concentration, (H/s, W/s, 14), scaled."""
    channels = []
    vapour = rng.uniform(0, 25)  # K, over open water
    for k in range(len(WATER_K)):
        frequency = FREQUENCIES_GHZ[k // 2]
        footprint = scale * (0.35 + 3.0 / frequency)
        concentration = cv2.GaussianBlur(ice.astype(np.float32), (0, 0), footprint, borderType=cv2.BORDER_REFLECT)
        coarse = cv2.resize(concentration, (ice.shape[1] // scale, ice.shape[0] // scale),
                            interpolation=cv2.INTER_AREA)
        kelvin = WATER_K[k] + coarse * (ICE_K[k] - WATER_K[k]) + HUMID[k] * vapour * (1 - coarse)
        kelvin = kelvin + rng.normal(0, 1.5 if frequency < 80 else 4.0, coarse.shape)
        channels.append((kelvin - 200) / 40)
    return np.stack(channels, axis=-1).astype(np.float32)


CHARTS = ("exact", "cells")


def ice_chart(ice: np.ndarray, mwr_scale: int, chart: str = "exact") -> np.ndarray:
    """A SIC chart (uint8 tenths, on the SAR grid) of the ice mask: ``exact`` 10 on ice and 0 on
    water; ``cells`` each radiometer cell's ice fraction rounded to tenths, as an ice chart
    gives one concentration for a polygon."""
    if chart == "exact":
        return np.where(ice, 10, 0).astype(np.uint8)
    rows, cols = ice.shape
    fraction = ice.reshape(rows // mwr_scale, mwr_scale, cols // mwr_scale, mwr_scale).mean(axis=(1, 3))
    tenths = np.rint(fraction * 10).astype(np.uint8)
    return np.repeat(np.repeat(tenths, mwr_scale, axis=0), mwr_scale, axis=1)


def generate(rng: np.random.Generator, size: int, mwr_scale: int = 8, wind: float | None = None,
             ice_roughness: float | None = None) -> Scene:
    """One scene ``size`` x ``size`` SAR pixels; ``size`` must be a multiple of ``mwr_scale``."""
    if size % mwr_scale:
        raise ValueError(f"size={size} is not a multiple of mwr_scale={mwr_scale}")
    ice = ice_mask(rng, size)
    wind = float(rng.uniform(0, 1)) if wind is None else wind
    ice_roughness = float(rng.uniform(0, 1)) if ice_roughness is None else ice_roughness
    return Scene(sar_image(rng, ice, wind, ice_roughness), radiometer(rng, ice, mwr_scale), ice, wind, ice_roughness)
