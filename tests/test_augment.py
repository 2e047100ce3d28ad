import numpy as np
import pytest
import tensorflow as tf
from conftest import shear_handedness

from datasets.augment import dihedral_augment, mirror_permutation, resolve_mirror_pairs
from datasets.synthetic import sigma_clasts


def _all_d4_draws(image, label, mirror):
    """Runs the augmentation with many seeds; returns the outputs keyed by the D4 element."""
    outputs = {}
    for seed in range(64):
        (augmented,), new_label = dihedral_augment((tf.constant(image),), tf.constant(label),
                                                   tf.constant(mirror), tf.constant([seed, 1]))
        key = augmented.numpy().tobytes()
        outputs.setdefault(key, (augmented.numpy(), int(new_label)))
    return list(outputs.values())


def test_chiral_flip_swaps_shear_sense_and_rotation_keeps_it():
    classes = list(sigma_clasts.CLASSES)
    mirror = mirror_permutation(classes, resolve_mirror_pairs(classes, "auto"))
    sample = sigma_clasts.generate(np.random.default_rng(5), 64, label="cw")
    draws = _all_d4_draws(sample.tail_mask.astype(np.uint8)[..., None], classes.index("cw"), mirror)
    assert len(draws) == 8  # every element of the dihedral group came up
    labels = []
    for mask, label in draws:
        handedness = shear_handedness(mask[..., 0] > 0)
        assert np.sign(handedness) == (1 if classes[label] == "cw" else -1)
        labels.append(classes[label])
    assert labels.count("cw") == labels.count("ccw") == 4  # 4 rotations keep, 4 mirror images swap


def test_rock_type_labels_survive_flips():
    classes = ["dolomite", "siltstone"]
    mirror = mirror_permutation(classes, resolve_mirror_pairs(classes, "auto"))
    image = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    draws = _all_d4_draws(image, 1, mirror)
    assert len(draws) == 8 and {label for _, label in draws} == {1}


def test_mirror_pairs_spec():
    assert resolve_mirror_pairs(["CCW", "CW", "x"], "auto") == [("CW", "CCW")]
    assert resolve_mirror_pairs(["cw", "ccw"], "none") == []
    assert resolve_mirror_pairs(["a", "b", "c"], "a:c") == [("a", "c")]
    np.testing.assert_array_equal(mirror_permutation(["a", "b", "c"], [("a", "c")]), [2, 1, 0])
    with pytest.raises(ValueError, match="unknown class"):
        resolve_mirror_pairs(["a", "b"], "a:z")
    with pytest.raises(ValueError, match="disjoint pairs"):
        resolve_mirror_pairs(["a", "b", "c"], "a:b,b:c")


def test_sednets_whole_image_and_local_crop_turn_and_flip_together():
    """Issue 32, point 2: the two inputs of one sample get the same element of D4, and the label
    follows the flip. The crop is the image at half scale, so any difference between the
    two shows. Break tried: a rotation drawn per image inside the loop."""
    def half(x):  # 2x2 block means: they commute with quarter turns and flips
        return x.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))

    classes = ["ccw", "cw"]
    mirror = mirror_permutation(classes, resolve_mirror_pairs(classes, "auto"))
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.float32)
    local = half(image)
    seen = set()
    for seed in range(32):
        (whole, crop), label = dihedral_augment((tf.constant(image), tf.constant(local)), tf.constant(1),
                                                tf.constant(mirror), tf.constant([seed, 7]))
        np.testing.assert_allclose(half(whole.numpy()), crop.numpy(), rtol=1e-6)
        flipped = not any(np.array_equal(whole.numpy(), np.rot90(image, k)) for k in range(4))
        assert int(label) == (0 if flipped else 1)
        seen.add(whole.numpy().tobytes())
    assert len(seen) == 8
