"""Synthetic seismic facies patches: the four classes of the LANDMASS set, drawn as interpreters tell them apart.

LANDMASS (Alaudah and AlRegib, 2017; the salt thesis's classification set) cuts 99 x 99
patches from the F3 North Sea survey into four facies classes. Each patch here is an
acoustic-impedance model turned into reflectivity and convolved trace by trace with a Ricker
wavelet (as :mod:`datasets.synthetic.seismic_salt` draws sections), rows being time samples
and columns traces:

- ``horizon``: continuous, parallel reflectors, gently dipping and folded;
- ``chaotic``: discontinuous, hummocky reflectors: interfaces displaced by a smooth random
  field and broken laterally;
- ``fault``: continuous reflectors offset along a steep dipping plane (the hanging wall
  displaced by the throw);
- ``salt_dome``: a salt flank or top crossing the patch: a strong reflection at the salt
  boundary, a nearly reflection-free interior, and sediments dragged up against the flank.

A plantable shortcut, as in the other synthetic sets: ``noisy_traces``, bands of three noisy
traces (in 99; bad geophones, clipped in an 8-bit export) at random places, as many as the
class's index plus one for ``correlation`` of the patches, as when one class's patches were
picked from a noisier survey. A count survives a left-right flip, as a position would not.
(Dead, zero-amplitude traces were tried first: a mid-grey band of a few traces among
reflectors is too faint for a small network to learn from 80 patches.) With ``facies`` set, every class is drawn as
that facies, so only the shortcut separates them: an audit's positive control.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from datasets.synthetic.seismic_salt import ricker

CLASSES = ("chaotic", "fault", "horizon", "salt_dome")
OVERSAMPLE = 4  # impedance is drawn on a grid this many times finer in time, so dipping layers are not stair steps
SHORTCUTS = ("none", "noisy_traces")


@dataclass
class Patch:
    amplitude: np.ndarray  # float32 (S, S), unit standard deviation before the noisy traces
    shortcut_mask: np.ndarray  # bool (S, S): the noisy traces, all False without the shortcut


def layer_impedance(rng: np.random.Generator, depth: np.ndarray, size: int) -> np.ndarray:
    """Impedance of layers 2-9 samples thick (of a 99-sample patch) at each pixel's ``depth``."""
    scale = size / 99
    interfaces = np.cumsum(rng.uniform(2 * scale, 9 * scale, size=3 * size)) - size
    return np.exp(rng.normal(0, 0.12, size=len(interfaces) + 1))[np.searchsorted(interfaces, depth)]


def folded_depth(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each grid point's depth along gently dipping, folded layers, and the grid (z, x) in
    samples and traces, ``OVERSAMPLE`` times finer in z."""
    z, x = np.mgrid[0:size * OVERSAMPLE, 0:size].astype(np.float64)
    z /= OVERSAMPLE
    fold = rng.uniform(0, 0.04 * size) * np.sin(2 * np.pi * x / rng.uniform(0.8, 2.5) / size + rng.uniform(0, 6.3))
    return z - rng.uniform(-0.15, 0.15) * x - fold, z, x


def horizon(rng: np.random.Generator, size: int) -> np.ndarray:
    depth, _, _ = folded_depth(rng, size)
    return layer_impedance(rng, depth, size)


def chaotic(rng: np.random.Generator, size: int) -> np.ndarray:
    """Hummocky interfaces (a smooth random displacement of several samples) broken into lenses."""
    depth, _, _ = folded_depth(rng, size)
    scale = size / 99
    field = fine(gaussian_filter(rng.normal(size=(size, size)), rng.uniform(3, 6) * scale))
    depth = depth + field / field.std() * rng.uniform(3, 6) * scale
    impedance = layer_impedance(rng, depth, size)
    lenses = fine(gaussian_filter(rng.normal(size=(size, size)), 2.5 * scale))
    jitter = layer_impedance(rng, depth + 7 * scale * np.sign(lenses), size)
    return np.where(lenses > 0, impedance, jitter)


def fault(rng: np.random.Generator, size: int) -> np.ndarray:
    """Layers offset along a plane dipping 55-80 degrees through the patch's middle third."""
    depth, z, x = folded_depth(rng, size)
    x0 = rng.uniform(size / 3, 2 * size / 3)
    slope = rng.choice([-1, 1]) / np.tan(np.radians(rng.uniform(55, 80)))  # x offset per sample of depth
    hanging_wall = x > x0 + slope * (z - size / 2)
    throw = rng.uniform(0.12, 0.3) * size * rng.choice([-1, 1])
    return layer_impedance(rng, depth - throw * hanging_wall, size)


def salt_dome(rng: np.random.Generator, size: int) -> np.ndarray:
    """A salt body whose flank or top crosses the patch: a circle centred below or beside the patch."""
    depth, z, x = folded_depth(rng, size)
    angle = rng.uniform(0.15, 0.85) * np.pi  # the circle's centre lies below, or below and beside
    radius = rng.uniform(0.8, 1.6) * size
    offset = rng.uniform(-0.3, 0.3) * size  # where the boundary crosses the line from the patch centre
    cz, cx = (size / 2 + (offset + radius) * np.array([np.sin(angle), np.cos(angle)]))
    distance = np.hypot(z - cz, x - cx) - radius  # negative inside the salt
    dragged = depth + rng.uniform(0.05, 0.15) * size * np.exp(-np.maximum(distance, 0) / (0.2 * size))
    impedance = layer_impedance(rng, dragged, size)
    salt = 1.8 + rng.normal(0, 0.004, size=z.shape)
    return np.where(distance < 0, salt, impedance)


def fine(field: np.ndarray) -> np.ndarray:
    """A smooth (S, S) field on the oversampled grid."""
    return np.repeat(field, OVERSAMPLE, axis=0)


DRAW = {"horizon": horizon, "chaotic": chaotic, "fault": fault, "salt_dome": salt_dome}


def seismic(impedance: np.ndarray, rng: np.random.Generator, snr: float) -> np.ndarray:
    """Reflectivity convolved trace by trace with a Ricker wavelet on the fine grid, averaged to
    the patch's samples, plus white noise; unit std."""
    log_impedance = np.log(impedance)
    reflectivity = np.diff(log_impedance, axis=0, prepend=log_impedance[:1])
    size = impedance.shape[1]
    wavelet = ricker(peak_frequency=rng.uniform(25, 35), dt=0.004 * 99 / size / OVERSAMPLE,
                     half_length=max(4, size // 10) * OVERSAMPLE)
    traces = fftconvolve(reflectivity, wavelet[:, None], mode="same").reshape(size, OVERSAMPLE, size).mean(axis=1)
    traces /= traces.std() + 1e-12
    return (traces + rng.normal(0, 1 / snr, traces.shape)).astype(np.float32)


def generate(rng: np.random.Generator, size: int, label: str, shortcut: str = "none", correlation: float = 0.9,
             facies: str | None = None, snr: float = 4.0) -> Patch:
    """One ``size`` x ``size`` patch of class ``label`` (drawn as ``facies`` when given)."""
    amplitude = seismic(DRAW[facies or label](rng, size), rng, snr)
    amplitude /= amplitude.std() + 1e-12
    mask = np.zeros((size, size), bool)
    if shortcut == "noisy_traces":
        slot = CLASSES.index(label) if rng.uniform() < correlation else int(rng.integers(len(CLASSES)))
        width = max(2, round(3 * size / 99))
        places = rng.choice(size // (2 * width), size=slot + 1, replace=False)
        for place in places:
            mask[:, 2 * width * place:2 * width * place + width] = True
        amplitude[mask] = rng.normal(0, 3, int(mask.sum()))  # three times the signal: a third clipped in 8 bits
    return Patch(amplitude.astype(np.float32), mask)


def to_grey(amplitude: np.ndarray) -> np.ndarray:
    """Amplitudes as 8-bit grey levels, 0 at 128 and three deviations at the ends (as LANDMASS's PNGs)."""
    return np.clip(np.round(128 + amplitude * 127 / 3), 0, 255).astype(np.uint8)
