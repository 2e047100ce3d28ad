"""Synthetic 2D seismic sections with salt bodies and their exact salt masks.

A section is drawn as an acoustic-impedance model, turned into reflectivity and convolved
trace by trace with a Ricker wavelet, as a seismic section is modelled to first order:

- sediments: layers of random impedance whose interfaces are folded (a sum of sines) and
  offset by one or two dipping normal faults;
- salt: one body per section, a dome (a Gaussian diapir rising from the base), a sheet (a
  lens-shaped lid) or an overhang (a stem under a wider cap). Salt has a high, nearly
  constant impedance, so its top gives a strong reflection and its interior only a weak,
  chaotic one (a little random impedance);
- noise: white noise at a set signal-to-noise ratio, after the convolution.

Rows are time samples (depth downwards), columns are traces. The mask is exact: the salt
pixels of the impedance model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

SHAPES = ("dome", "sheet", "overhang")


@dataclass
class Section:
    amplitude: np.ndarray  # float32 (H, W), unit standard deviation
    salt: np.ndarray  # bool (H, W)
    shape: str  # one of SHAPES


def ricker(peak_frequency: float, dt: float, half_length: int) -> np.ndarray:
    """The Ricker wavelet (the second derivative of a Gaussian) sampled every ``dt`` seconds."""
    t = np.arange(-half_length, half_length + 1) * dt
    a = (np.pi * peak_frequency * t) ** 2
    return (1 - 2 * a) * np.exp(-a)


def layered_impedance(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Folded, faulted sediment layers: (H, W) impedance."""
    z, x = np.mgrid[0:height, 0:width].astype(np.float64)
    folds = sum(rng.uniform(min(2, 0.03 * height), 0.06 * height) * np.sin(2 * np.pi * x / rng.uniform(0.4, 2.0) / width
                                                     + rng.uniform(0, 2 * np.pi)) for _ in range(2))
    depth = z - folds - rng.uniform(-0.15, 0.15) * x * height / width  # regional dip
    for _ in range(rng.integers(1, 3)):
        x0, dip = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 1.0) * rng.choice([-1, 1])
        hanging_wall = x > x0 + dip * z
        depth = depth - hanging_wall * rng.uniform(min(4, 0.04 * height), 0.08 * height)  # throw
    interfaces = np.cumsum(rng.uniform(3, 14, size=4 * height // 3 + 8)) - 0.3 * height
    layer = np.searchsorted(interfaces, depth)
    compaction = np.linspace(2.0, 3.5, len(interfaces) + 1)  # impedance grows with depth
    layer_impedance = compaction * np.exp(rng.normal(0, 0.08, size=len(interfaces) + 1))
    return layer_impedance[layer]


def salt_body(rng: np.random.Generator, height: int, width: int, shape: str) -> np.ndarray:
    """A boolean (H, W) salt mask of the given ``shape``."""
    z, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    centre = rng.uniform(0.3, 0.7)
    if shape == "dome":
        top = 1.05 - rng.uniform(0.45, 0.75) * np.exp(-((x - centre) / rng.uniform(0.08, 0.2)) ** 2)
        return z > top
    if shape == "sheet":
        depth, half_width, thickness = rng.uniform(0.35, 0.65), rng.uniform(0.25, 0.4), rng.uniform(0.08, 0.18)
        profile = 1 - ((x - centre) / half_width) ** 2
        return (profile > 0) & (np.abs(z - depth) < thickness * np.sqrt(np.clip(profile, 0, None)))
    cap_depth, cap_width = rng.uniform(0.25, 0.45), rng.uniform(0.18, 0.3)
    cap = ((x - centre) / cap_width) ** 2 + ((z - cap_depth) / rng.uniform(0.08, 0.14)) ** 2 < 1
    stem = (np.abs(x - centre) < rng.uniform(0.05, 0.1)) & (z > cap_depth)
    return cap | stem


def generate(rng: np.random.Generator, height: int, width: int, shape: str | None = None,
             snr: float = 8.0, peak_frequency: float = 30.0, dt: float = 0.002) -> Section:
    """One section: amplitudes with unit standard deviation and the exact salt mask.

    Args:
        shape: the salt body's shape (one of :data:`SHAPES`), or None for a random one.
        snr: ratio of the signal's to the noise's standard deviation.
        peak_frequency: the Ricker wavelet's peak frequency in Hz, sampled every ``dt`` s.
    """
    shape = shape or str(rng.choice(SHAPES))
    impedance = layered_impedance(rng, height, width)
    salt = salt_body(rng, height, width, shape)
    salt_impedance = impedance.max() * rng.uniform(1.1, 1.3)
    impedance = np.where(salt, salt_impedance * (1 + rng.normal(0, 0.02, impedance.shape)), impedance)
    reflectivity = np.zeros_like(impedance)
    reflectivity[1:] = np.diff(np.log(impedance), axis=0)
    wavelet = ricker(peak_frequency, dt, half_length=int(1.5 / (peak_frequency * dt)))
    traces = fftconvolve(reflectivity, wavelet[:, None], mode="same", axes=0)
    traces /= traces.std() + 1e-12
    traces += rng.normal(0, 1 / snr, traces.shape)
    return Section((traces / traces.std()).astype(np.float32), salt, shape)
