"""Label-aware flips and 90-degree rotations (the SedNet paper's augmentation).

Shear sense is chiral: a mirror image of a clockwise (dextral) sigma clast is a
counter-clockwise one, while any rotation keeps the sense. So a flip must also swap the
label through a mirror permutation; rock types are not chiral and map to themselves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

KNOWN_MIRROR_PAIRS = (("cw", "ccw"), ("dextral", "sinistral"), ("clockwise", "counterclockwise"))


def resolve_mirror_pairs(class_names: Sequence[str], spec: str) -> list[tuple[str, str]]:
    """Parses ``spec``: ``auto`` (known chiral name pairs found among the classes), ``none``,
    or explicit pairs ``a:b,c:d``.

    Raises:
        ValueError: a named class does not exist or appears in two pairs.
    """
    spec = spec.strip()
    if spec == "auto":
        lower = {name.lower(): name for name in class_names}
        return [(lower[a], lower[b]) for a, b in KNOWN_MIRROR_PAIRS if a in lower and b in lower]
    if spec in ("", "none"):
        return []
    pairs = [tuple(part.split(":")) for part in spec.split(",")]
    named = [name for pair in pairs for name in pair]
    if any(len(pair) != 2 for pair in pairs) or len(set(named)) != len(named):
        raise ValueError(f"mirror_pairs {spec!r}: write disjoint pairs as a:b,c:d (or auto, none).")
    unknown = sorted(set(named) - set(class_names))
    if unknown:
        raise ValueError(f"mirror_pairs names unknown class(es) {unknown}; the classes are {list(class_names)}.")
    return pairs


def mirror_permutation(class_names: Sequence[str], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Index map from each class to the class its mirror image belongs to."""
    permutation = np.arange(len(class_names), dtype=np.int32)
    index = {name: i for i, name in enumerate(class_names)}
    for a, b in pairs:
        permutation[index[a]], permutation[index[b]] = index[b], index[a]
    return permutation


def dihedral_augment(images: tuple[tf.Tensor, ...], label: tf.Tensor, mirror: tf.Tensor | None,
                     seed: tf.Tensor, rotate: bool = True) -> tuple[tuple[tf.Tensor, ...], tf.Tensor]:
    """Applies one random element of the dihedral group D4 to every image of a sample.

    The same rotation by ``k`` quarter turns and the same optional left-right flip go to all
    images (SedNet's whole image and its local crop must stay consistent); a flip maps the
    label through ``mirror`` (None: the label is kept, e.g. a regression target).

    Args:
        images: (H, W, C) tensors of one sample.
        label: scalar int class index, or a number to regress.
        mirror: int vector, the class index map of :func:`mirror_permutation`, or None.
        seed: shape-(2,) int seed for the stateless random draws.
        rotate: False leaves the left-right flip alone (seismic: depth has a direction).
    """
    draws = tf.random.stateless_uniform([2], seed, maxval=8, dtype=tf.int32)
    quarter_turns, flip = (draws[0] % 4 if rotate else 0), draws[1] % 2 == 1
    out = []
    for image in images:
        image = tf.image.rot90(image, quarter_turns)
        out.append(tf.cond(flip, lambda img=image: tf.image.flip_left_right(img), lambda img=image: img))
    if mirror is None:
        return tuple(out), label
    return tuple(out), tf.where(flip, tf.gather(mirror, label), label)
