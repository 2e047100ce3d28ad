"""The parts of salt segmentation, each against a known answer: the synthetic sections and their
readers, patches and blending, the eleven losses, Dice/IoU/PS and the U-Net."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from scipy.ndimage import distance_transform_cdt, maximum_filter, minimum_filter

from datasets.images import UnreadableImageError
from datasets.seismic import read_binary_mask, read_section, section_patches, split_sections, zscore
from datasets.synthetic import write_dataset
from datasets.synthetic.seismic_salt import SHAPES, generate
from datasets.tiles import blend_tiles, cut_tiles, tile_starts
from models import build_model
from models.losses import SEGMENTATION_LOSSES, boundary_distance, lovasz
from training.tasks.segment.metrics import (best_empty_below, boundary_band, competition_by_empty_below,
                                            competition_score, dice, emptied_below, grouped_scores, iou, mask_scores,
                                            perimetric_similarity)


# --- synthetic sections and readers -------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_synthetic_section_is_seeded_and_its_salt_is_where_the_mask_says(shape):
    first = generate(np.random.default_rng(3), 96, 128, shape)
    again = generate(np.random.default_rng(3), 96, 128, shape)
    np.testing.assert_array_equal(first.amplitude, again.amplitude)
    assert first.amplitude.dtype == np.float32 and 0.02 < first.salt.mean() < 0.6
    # the top of salt reflects strongly, its interior is weak and chaotic
    energy = first.amplitude ** 2
    top = first.salt & ~np.roll(first.salt, 3, axis=0)
    interior = cv2.erode(first.salt.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert energy[top].mean() > 3 * energy[interior].mean()


def test_written_set_reads_back_from_npy_segy_and_png(tmp_path):
    manifest = write_dataset("seismic_salt", tmp_path, n=2, size=64, width=80)
    table = pd.read_csv(manifest)
    assert list(table.columns[:3]) == ["section", "segy", "mask"]
    for row in table.itertuples():
        from_npy = read_section(tmp_path / row.section)
        np.testing.assert_array_equal(read_section(tmp_path / row.segy), from_npy)
        assert from_npy.shape == (64, 80) and read_binary_mask(tmp_path / row.mask).shape == (64, 80)


def test_segy_inline_of_a_3d_cube_and_16_bit_png(tmp_path):
    import segyio

    cube = np.random.default_rng(0).normal(size=(3, 5, 12)).astype(np.float32)  # inlines, crosslines, samples
    segyio.tools.from_array3D(str(tmp_path / "cube.sgy"), cube, format=5)
    np.testing.assert_array_equal(read_section(tmp_path / "cube.sgy", inline=3), cube[2].T)
    np.testing.assert_array_equal(read_section(tmp_path / "cube.sgy"), cube[1].T)  # the middle inline
    with pytest.raises(UnreadableImageError, match="no inline 9"):
        read_section(tmp_path / "cube.sgy", inline=9)
    deep = (np.arange(40 * 30).reshape(40, 30) * 50).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    np.testing.assert_array_equal(read_section(tmp_path / "deep.png"), deep.astype(np.float32))


def test_bad_sections_and_masks_are_named(tmp_path):
    (tmp_path / "broken.sgy").write_bytes(b"not a seg-y file" * 20)
    with pytest.raises(UnreadableImageError, match="not a readable SEG-Y"):
        read_section(tmp_path / "broken.sgy")
    np.save(tmp_path / "gray.npy", np.array([[0, 1], [2, 255]], np.uint8))
    with pytest.raises(UnreadableImageError, match="not a binary mask: it holds 4 values"):
        read_binary_mask(tmp_path / "gray.npy")
    np.save(tmp_path / "binary.npy", np.array([[0, 1], [1, 0]], np.uint8))
    assert read_binary_mask(tmp_path / "binary.npy").sum() == 2


def test_sections_are_split_as_wholes_with_every_split_filled():
    splits = split_sections([None] * 10, (0.6, 0.2, 0.2), seed=0)
    assert sorted(splits) == ["test"] * 2 + ["train"] * 6 + ["val"] * 2
    assert split_sections([None, "test", None, None], (0.6, 0.2, 0.2), 0)[1] == "test"
    with pytest.raises(ValueError, match="val/test"):
        split_sections(["train", "train"], (0.6, 0.2, 0.2), 0)
    with pytest.raises(ValueError, match="Unknown split"):
        split_sections(["training", None, None], (0.6, 0.2, 0.2), 0)


# --- patches and blending ------------------------------------------------------------------

def test_tiles_cover_every_pixel_and_blend_back_exactly():
    assert tile_starts(100, 32, 24) == [0, 24, 48, 68]
    image = np.random.default_rng(0).normal(size=(70, 100)).astype(np.float32)
    tiles, origins = cut_tiles(image, 32, 24)
    np.testing.assert_allclose(blend_tiles(tiles, origins, image.shape), image, atol=1e-5)


def test_blending_has_no_seams_and_weights_by_the_window():
    tiles, origins = cut_tiles(np.zeros((70, 100)), 32, 16)
    constant = blend_tiles(np.full(tiles.shape, 0.7, np.float32), origins, (70, 100))
    np.testing.assert_allclose(constant, 0.7, atol=1e-6)
    # two tiles that disagree: each pixel only one covers keeps its value, the two pixels either
    # side of the overlap's middle get mirrored weights, and each side leans to the nearer centre
    tiles, origins = cut_tiles(np.zeros((32, 48)), 32, 16)
    assert origins == [(0, 0), (0, 16)]
    blended = blend_tiles(np.stack([np.zeros((32, 32)), np.ones((32, 32))]), origins, (32, 48))
    assert (blended[:, :16] == 0).all() and (blended[:, 32:] == 1).all()
    assert blended[16, 23] + blended[16, 24] == pytest.approx(1)
    assert blended[16, 20] < 0.5 < blended[16, 28]


def test_small_section_is_padded_and_constant_patches_give_no_nan():
    amplitude = np.full((20, 50), 3.0, np.float32)
    patches, origins, masks = section_patches(amplitude, 32, 16, "patch", amplitude > 10)
    assert patches.shape == (3, 32, 32, 1) and origins == [(0, 0), (0, 16), (0, 18)]
    assert np.isfinite(patches).all() and not patches.any() and not masks.any()
    salt = np.zeros((20, 50), bool)
    salt[15:, :5] = True
    padded_salt = section_patches(amplitude, 32, 16, "patch", salt)[2][0, ..., 0]
    assert padded_salt[15:25, :5].all() and not padded_salt[25:].any()  # mirrored at the bottom edge
    assert np.isfinite(zscore(amplitude)).all()
    normal = np.random.default_rng(1).normal(5, 3, (64, 64)).astype(np.float32)
    per_patch = section_patches(normal, 32, 32, "patch")[0]
    np.testing.assert_allclose(per_patch.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(per_patch.std(axis=(1, 2, 3)), 1, atol=1e-4)
    per_section = section_patches(normal, 32, 32, "section")[0]
    assert abs(per_section.mean()) < 1e-5 and np.abs(per_section.mean(axis=(1, 2, 3))).max() > 1e-3


# --- losses -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def masks():
    y = np.zeros((2, 32, 32, 1), np.float32)
    y[0, 8:20, 5:25] = 1
    y[1, 10:30, 10:14] = 1
    return y


def _value(loss, y, logits) -> float:
    return float(keras.ops.mean(SEGMENTATION_LOSSES[loss](y, logits)))


@pytest.mark.parametrize("loss", list(SEGMENTATION_LOSSES))
def test_each_loss_is_near_zero_when_perfect_worse_on_the_complement_and_has_a_finite_gradient(loss, masks):
    perfect = np.where(masks > 0, 12.0, -12.0).astype(np.float32)
    noisy = np.random.default_rng(0).normal(0, 1, masks.shape).astype(np.float32)
    assert _value(loss, masks, perfect) < 1e-3
    assert _value(loss, masks, -perfect) > _value(loss, masks, noisy) > _value(loss, masks, perfect)
    logits = tf.Variable(noisy)
    with tf.GradientTape() as tape:
        value = keras.ops.mean(SEGMENTATION_LOSSES[loss](masks, logits))
    gradient = tape.gradient(value, logits).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_losses_match_numpy_references(masks):
    z = np.random.default_rng(2).normal(0, 2, masks.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-z))
    y = masks
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert _value("bce", y, z) == pytest.approx(bce.mean(), rel=1e-4)
    assert _value("mse", y, z) == pytest.approx(((p - y) ** 2).mean(), rel=1e-4)
    assert _value("dice", y, z) == pytest.approx(1 - 2 * (p * y).sum() / (p.sum() + y.sum()), rel=1e-4)
    assert _value("jaccard", y, z) == pytest.approx(1 - (p * y).sum() / (p.sum() + y.sum() - (p * y).sum()), rel=1e-4)
    pt = np.where(y > 0, p, 1 - p)
    assert _value("focal", y, z) == pytest.approx((-(1 - pt) ** 2 * np.log(pt)).mean(), rel=1e-3)
    assert _value("bce+dice", y, z) == pytest.approx(_value("bce", y, z) + _value("dice", y, z), rel=1e-5)
    def gradient(m):
        return (maximum_filter(m, size=(1, 3, 3, 1), mode="nearest")
                - minimum_filter(m, size=(1, 3, 3, 1), mode="nearest"))

    gp, gy = gradient(p), gradient(y)
    boundary_dice = 1 - 2 * (gp * gy).sum() / (gp.sum() + gy.sum())
    assert _value("contour", y, z) == pytest.approx(bce.mean() + boundary_dice, rel=1e-4)
    x = np.abs(p - y)
    c = 0.5 - 0.5 * np.log(1 + 0.5 / 0.1)
    assert _value("wing", y, z) == pytest.approx(np.where(x < 0.5, 0.5 * np.log(1 + x / 0.1), x - c).mean(), rel=1e-4)


def _jaccard_loss(truth: np.ndarray, predicted: np.ndarray) -> float:
    union = (truth | predicted).sum()
    return 0.0 if union == 0 else 1 - (truth & predicted).sum() / union


def test_lovasz_hinge_equals_the_lovasz_extension_computed_from_its_definition():
    """Brute force: sort the hinge errors, and weigh each by the increase of the Jaccard loss
    when its pixel joins the set of mispredicted pixels (Berman et al., eq. 8-9)."""
    rng = np.random.default_rng(4)
    for _ in range(5):
        y = (rng.random((2, 3, 3, 1)) > 0.5).astype(np.float32)  # the batch counts as one set
        z = rng.normal(0, 1.5, y.shape).astype(np.float32)
        truth = y.ravel() > 0
        errors = 1 - z.ravel() * (2 * y.ravel() - 1)
        order = np.argsort(-errors, kind="stable")
        expected, previous = 0.0, 0.0
        for k in range(1, len(order) + 1):
            wrong = np.zeros(len(truth), bool)
            wrong[order[:k]] = True
            # the predicted mask when exactly these pixels are wrong
            current = _jaccard_loss(truth, truth ^ wrong)
            expected += max(errors[order[k - 1]], 0) * (current - previous)
            previous = current
        assert float(lovasz(y, z)) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_lovasz_of_binary_errors_is_the_jaccard_loss_of_the_mispredicted_set():
    y = np.zeros((1, 4, 4, 1), np.float32)
    y[0, :2, :2] = 1
    predicted = np.zeros_like(y, dtype=bool)
    predicted[0, :2, :3] = True  # two false positives
    z = np.where(predicted, 0.0, -1.0).astype(np.float32) + np.where(predicted & (y > 0), 1.0, 0.0)
    # hinge errors: 1 for the two false positives (logit 0 on background), 0 elsewhere
    assert float(lovasz(y, z)) == pytest.approx(_jaccard_loss(y.ravel() > 0, predicted.ravel()))


def test_hausdorff_distances_are_the_chessboard_distance_transform_of_the_boundary():
    mask = np.zeros((1, 40, 40, 1), np.float32)
    mask[0, 10:30, 12:25] = 1
    found = boundary_distance(keras.ops.convert_to_tensor(mask), max_distance=50).numpy()[0, ..., 0]
    salt = mask[0, ..., 0] > 0
    inside = distance_transform_cdt(salt, metric="chessboard") - 1  # boundary pixels at 0
    outside = distance_transform_cdt(~salt, metric="chessboard")
    np.testing.assert_array_equal(found, np.where(salt, inside, outside - 1))


# --- scores -------------------------------------------------------------------------------

def test_dice_iou_and_ps_of_known_masks():
    truth = np.zeros((40, 40), bool)
    truth[10:30, 10:30] = True
    assert mask_scores(truth, truth) == {"dice": 1.0, "iou": 1.0, "ps": 1.0}
    empty = np.zeros_like(truth)
    assert mask_scores(empty, empty) == {"dice": 1.0, "iou": 1.0, "ps": 1.0}
    assert mask_scores(truth, empty)["ps"] == 0.0
    shifted = np.roll(truth, 2, axis=1)
    assert dice(truth, shifted) == pytest.approx(2 * 360 / 800)
    assert iou(truth, shifted) == pytest.approx(360 / 440)
    # brute force: the band is every pixel within 3 (chessboard) of either boundary
    band = np.zeros_like(truth)
    for mask in (truth, shifted):
        edge = mask & (cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8),
                                 borderType=cv2.BORDER_REPLICATE) == 0)
        for r, c in zip(*np.nonzero(edge)):
            band[max(r - 3, 0):r + 4, max(c - 3, 0):c + 4] = True
    np.testing.assert_array_equal(boundary_band(truth) | boundary_band(shifted), band)
    expected = 2 * (truth & shifted & band).sum() / ((truth & band).sum() + (shifted & band).sum())
    assert perimetric_similarity(truth, shifted) == pytest.approx(expected)
    assert perimetric_similarity(truth, shifted) < dice(truth, shifted)


def test_ps_punishes_a_ragged_boundary_that_dice_hardly_sees():
    truth = np.zeros((96, 96), bool)
    truth[16:80, 16:80] = True
    ragged = truth.copy()
    ragged[16:80:2, 16:19] = False
    ragged[16:80:2, 77:80] = False
    assert dice(truth, ragged) > 0.97
    assert 1 - perimetric_similarity(truth, ragged) > 3 * (1 - dice(truth, ragged))


# --- the model ----------------------------------------------------------------------------

def test_unet_outputs_one_logit_per_pixel_with_named_stages():
    model = build_model("unet_resnet34", 1, (64, 96, 1), weights="none", encoder_width=8)
    assert model.output.shape == (None, 64, 96, 1)
    strides = {name: 64 // model.get_layer(name).output.shape[1]
               for name in ("stem_out", "stage1_out", "stage2_out", "stage3_out", "stage4_out", "features")}
    assert strides == {"stem_out": 2, "stage1_out": 4, "stage2_out": 8, "stage3_out": 16, "stage4_out": 32,
                       "features": 1}
    assert model.get_layer("merger").output.shape[-1] == 3
    blocks = [sum(1 for layer in model.layers if layer.name.startswith(f"stage{s}_block") and layer.name.endswith("_add"))
              for s in range(1, 5)]
    assert blocks == [3, 4, 6, 3]
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("unet_resnet34", 1, (48, 64, 1), weights="none", encoder_width=8)


def test_unet_loads_a_weights_file_and_refuses_imagenet(tmp_path):
    model = build_model("unet_resnet34", 1, (32, 32, 1), weights="none", encoder_width=8)
    model.save_weights(tmp_path / "w.weights.h5")
    again = build_model("unet_resnet34", 1, (32, 32, 1), weights=str(tmp_path / "w.weights.h5"), encoder_width=8)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6)
    from models import WeightsError

    with pytest.raises(WeightsError, match="no ImageNet weights"):
        build_model("unet_resnet34", 1, (32, 32, 1), weights="imagenet")


def test_the_eleven_losses_of_the_thesis_are_registered():
    assert set(SEGMENTATION_LOSSES) == {"bce", "contour", "dice", "focal", "hausdorff", "jaccard", "kl", "lovasz",
                                        "mse", "wing", "bce+dice"}


def test_the_competition_score_of_known_masks():
    """The TGS challenge's score, worked by hand: IoU 0.72 clears the thresholds 0.50 to 0.70,
    five of ten. Break tried: thresholds from 0.5 to 0.9 only (nine), which gives 5/9."""
    truth = np.zeros((10, 10), bool)
    truth[:, :9] = True  # 90 pixels
    predicted = np.zeros((10, 10), bool)
    predicted[:, 2:] = True  # 80 pixels, 70 of them salt: IoU 70 / 100
    predicted[0, :2] = True  # 2 more salt pixels: IoU 72 / 100
    assert iou(truth, predicted) == pytest.approx(0.72)
    assert competition_score(truth, predicted) == pytest.approx(0.5)
    empty = np.zeros((10, 10), bool)
    assert competition_score(empty, empty) == 1 and competition_score(empty, predicted) == 0
    assert competition_score(truth, empty) == 0


def test_salt_bearing_and_salt_free_masks_are_scored_apart():
    """Break tried: the share of salt-free masks taken over every mask; it then reads 0.25, not 0.5."""
    salt = np.zeros((8, 8), bool)
    salt[2:6, 2:6] = True
    half = np.zeros((8, 8), bool)
    half[2:6, 2:4] = True  # Dice 2*8/(16+8) = 2/3
    empty = np.zeros((8, 8), bool)
    scores = grouped_scores([(salt, salt), (salt, half), (empty, empty), (empty, half)])
    assert scores["bearing_dice"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["empty_right"] == 0.5 and (scores["bearing_count"], scores["empty_count"]) == (2, 2)
    assert scores["dice"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)
    assert scores["competition"] == pytest.approx((1 + competition_score(salt, half) + 1 + 0) / 4)
    assert np.isnan(grouped_scores([(salt, salt)])["empty_right"])
    tiny = np.zeros((8, 8), bool)
    tiny[0, :3] = True  # 3 of 64 pixels: the first cover band
    bands = grouped_scores([(salt, salt), (salt, half), (tiny, empty)])["bearing_dice_by_cover"]
    assert bands == {"0%-10%": {"dice": 0.0, "count": 1}, "10%-30%": {"dice": pytest.approx(5 / 6), "count": 2},
                     "30%-70%": {"dice": None, "count": 0}, "70%-100%": {"dice": None, "count": 0}}


@pytest.mark.parametrize("truth_value, predicted_value, expected", [(True, False, 0.0), (False, True, 0.0),
                                                                      (True, True, 1.0), (False, False, 1.0)])
def test_ps_of_masks_without_a_boundary_follows_whether_they_agree(truth_value, predicted_value, expected):
    """Issue 32, point 1: a patch all salt against an empty prediction (or the reverse) has no
    boundary band. Break tried: the old PS, the Dice of the empty band, which scored 1.0 there
    beside a Dice of 0."""
    truth = np.full((16, 16), truth_value)
    predicted = np.full((16, 16), predicted_value)
    assert perimetric_similarity(truth, predicted) == expected == dice(truth, predicted)


# --- round 2: what a one-line break would change unseen ----------------------------------

def test_each_loss_name_compiles_its_own_function(tmp_path):
    """Issue 32, point 4. Break tried: ``"kl": bce`` in the registry (the two agree on hard
    labels to within clipping, so only a by-name check sees it) and the task compiling
    ``bce_dice`` whatever ``--loss`` says."""
    from training.config import parse_config
    from training.tasks import TASKS

    functions = list(SEGMENTATION_LOSSES.values())
    assert len({id(f) for f in functions}) == len(functions)
    assert all(f.__name__ == name.replace("+", "_") for name, f in SEGMENTATION_LOSSES.items())
    model = build_model("unet_resnet34", 1, (32, 32, 1), weights="none", encoder_width=8)
    for name in SEGMENTATION_LOSSES:
        config = parse_config(["--task", "segment", "--loss", name], TASKS)
        TASKS["segment"].compile(model, keras.optimizers.Adam(), config, jit=False)
        assert model.loss.function is SEGMENTATION_LOSSES[name]


def test_kl_and_hausdorff_losses_match_references_worked_without_the_code(masks):
    """Issue 32, point 4: KL over the two outcomes of each pixel, with Keras' clipping to
    [1e-7, 1]; Hausdorff (Karimi & Salcudean, eq. 8) with SciPy's chessboard distance
    transforms of the true and the thresholded predicted masks. Break tried: alpha 1 instead
    of 2, and the predicted distance taken from the soft probabilities."""
    z = np.random.default_rng(5).normal(0, 2, masks.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-z))
    t = np.clip(np.concatenate([masks, 1 - masks], -1), 1e-7, 1)
    q = np.clip(np.concatenate([p, 1 - p], -1), 1e-7, 1)
    assert _value("kl", masks, z) == pytest.approx((t * np.log(t / q)).sum(-1).mean(), rel=1e-4)

    def distance(mask: np.ndarray) -> np.ndarray:
        salt = mask[..., 0] > 0
        inside = distance_transform_cdt(salt, metric="chessboard") - 1
        outside = distance_transform_cdt(~salt, metric="chessboard") - 1
        return np.minimum(np.where(salt, inside, outside), 16).astype(np.float64)[..., None]

    weight = np.stack([distance(y) ** 2 + distance(prob > 0.5) ** 2 for y, prob in zip(masks, p)])
    expected = ((p - masks) ** 2 * weight).mean()
    assert _value("hausdorff", masks, z) == pytest.approx(expected, rel=1e-4)


def test_each_decoder_stage_takes_the_skip_of_its_own_resolution():
    """Issue 32, point 3: a U-Net without skips builds and trains with plausible scores.
    Break tried: ``skip`` dropped (None) for one decoder stage."""
    model = build_model("unet_resnet34", 1, (64, 64, 1), weights="none", encoder_width=8)
    expected = {"decoder1": "stage3_out", "decoder2": "stage2_out", "decoder3": "stage1_out", "decoder4": "stem_out"}
    for stage, skip in expected.items():
        inputs = model.get_layer(f"{stage}_concat").input
        assert any(tensor is model.get_layer(skip).output for tensor in inputs), f"{stage} lacks {skip}"
        assert inputs[0].shape[1:3] == model.get_layer(skip).output.shape[1:3]


def test_training_flips_each_salt_patch_and_its_mask_together_left_right_only():
    """Issue 32, point 2: each section's amplitude is its own mask (z-scored, so salt is
    positive), so a flip of one without the other shows, and so does an up-down flip.
    Break tried: the mask left unflipped; ``tf.reverse(..., [0])`` (upside down)."""
    from training.config import parse_config
    from training.tasks.segment import SegmentationData
    from training.tasks import TASKS

    from datasets.seismic import LabelledSection

    rng = np.random.default_rng(0)
    sections = []
    for i in range(8):
        salt = np.zeros((32, 32), bool)
        salt[rng.integers(12, 20):, rng.integers(0, 8):rng.integers(12, 24)] = True
        sections.append(LabelledSection(f"s{i}", salt.astype(np.float32), salt, "train"))
    originals = [s.salt for s in sections]
    data = SegmentationData(sections, patch_size=32, stride=32, normalize="patch")
    config = parse_config(["--task", "segment", "--batch-size", "8"], TASKS)
    flipped = 0
    for patches, masks in data.dataset("train", config, training=True).repeat(4):
        for patch, mask in zip(patches.numpy()[..., 0], masks.numpy()[..., 0] > 0):
            np.testing.assert_array_equal(patch > 0, mask)
            assert any(np.array_equal(mask, o) or np.array_equal(mask, o[:, ::-1]) for o in originals)
            flipped += not any(np.array_equal(mask, o) for o in originals)
    assert flipped > 0


def test_the_full_resolution_skip_feeds_the_last_decoder_stage_only_when_asked():
    """``--full-resolution-skip``: the last decoder stage concatenates a full-resolution view of
    the merged input; the thesis's U-Net (the default) has no skip there. Break tried: the
    option accepted but not passed to the builder (``config_options`` without it)."""
    from training.config import parse_config
    from training.tasks import TASKS

    config = parse_config(["--task", "segment", "--patch-size", "32", "--encoder-width", "8",
                           "--full-resolution-skip"], TASKS)
    from training.tasks.segment import SegmentationData

    model = TASKS["segment"].build_model(config, SegmentationData([], 32, 16, "patch"))
    concat = model.get_layer("features_concat").input
    assert any(tensor is model.get_layer("full_res_relu").output for tensor in concat)
    assert model.get_layer("full_res_relu").output.shape[1:3] == (32, 32)
    thesis = build_model("unet_resnet34", 1, (32, 32, 1), weights="none", encoder_width=8)
    assert "features_concat" not in {layer.name for layer in thesis.layers}


def test_the_tgs_salt_preset_is_the_measured_command():
    """docs/segment.md measures the flags; the preset must resolve to the same configuration."""
    from training.config import parse_config
    from training.tasks import TASKS

    flags = ["--patch-size", "128", "--stride", "64", "--encoder-width", "16", "--full-resolution-skip",
             "--epochs", "24", "--batch-size", "16", "--lr", "3e-3", "--no-deterministic", "--tta", "--empty-below",
             "auto"]
    preset = parse_config(["--task", "segment", "--preset", "tgs-salt"], TASKS).to_dict()
    flagged = parse_config(["--task", "segment", *flags], TASKS).to_dict()
    assert preset.pop("preset") == "tgs-salt" and flagged.pop("preset") == ""
    assert preset == flagged


def _asymmetric_run(folder, flags: list[str], chosen: dict | None = None):
    """A run folder holding a one-layer 'U-Net' whose 1x3 kernel looks left only, so a mirrored
    section predicts differently; its config made with ``flags``, its metrics.json ``chosen``."""
    import json

    from training.config import parse_config
    from training.tasks import TASKS

    inputs = keras.Input((32, 32, 1))
    layer = keras.layers.Conv2D(1, (1, 3), padding="same", name="look_left")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.array([3.0, 0.0, 0.0], "float32").reshape(1, 3, 1, 1), np.array([0.5], "float32")])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    parse_config(["--task", "segment", "--patch-size", "32", "--stride", "16", *flags], TASKS).to_yaml(
        folder / "config.yaml")
    (folder / "metrics.json").write_text(json.dumps({"class_names": ["salt"], "chosen": chosen or {}}))
    return model


def test_mirrored_prediction_is_the_mean_of_the_view_and_its_mirror_mapped_back():
    """Break tried: the mirrored view's output not mirrored back."""
    from training.tasks.segment.inference import predict_batches

    inputs = keras.Input((8, 8, 1))
    layer = keras.layers.Conv2D(1, (1, 3), padding="same")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.array([1.0, 0.0, 0.0], "float32").reshape(1, 3, 1, 1), np.zeros(1, "float32")])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    plain = model.predict(x, verbose=0)
    expected = (plain + model.predict(x[:, :, ::-1], verbose=0)[:, :, ::-1]) / 2
    np.testing.assert_allclose(predict_batches(model, x, 4, mirror=True), expected, atol=1e-6)
    assert np.abs(expected - plain).max() > 0.1


def test_the_smallest_area_that_best_scores_the_validation_sections_is_chosen():
    """Salt-free sections with a speck of 8 pixels and sections with bodies of 60: emptying masks below 10
    pixels rights every salt-free one and keeps every body; 25 and 50 score the same, and the smallest wins.
    Break tried: the largest of the best areas (50)."""
    speck, body = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    speck[3:5, 3:7] = True
    body[10:16, 10:20] = True
    pairs = [(np.zeros_like(speck), speck)] * 3 + [(body, body)] * 3
    scores = competition_by_empty_below(pairs)
    assert scores[0] == 0.5 and scores[10] == scores[25] == scores[50] == 1.0 and scores[100] == 0.5
    assert best_empty_below(scores) == 10
    assert not emptied_below(speck, 10).any() and emptied_below(body, 60).sum() == 60
    assert best_empty_below(competition_by_empty_below([(body, body)])) == 0  # nothing to empty: no area


def test_predict_uses_the_runs_mirroring_and_its_chosen_area(tmp_path):
    """A run of ``--tta --empty-below auto`` predicts sections as its scores did: mirrored too, and masks
    emptied below the area it chose on its validation sections (metrics.json). Break tried: training.predict
    reading neither."""
    from training.predict import main as predict_main
    from training.tasks.segment import predict_section

    section = np.random.default_rng(1).normal(size=(40, 48)).astype("float32")
    np.save(tmp_path / "s.npy", section)
    model = _asymmetric_run(tmp_path / "run", ["--tta", "--empty-below", "auto"], {"empty_below": 10 ** 6})
    assert predict_main(["--model", str(tmp_path / "run"), "--section", str(tmp_path / "s.npy"),
                         "--out", str(tmp_path / "out")]) == 0
    probability = np.load(tmp_path / "out" / "s_probability.npy")
    mirrored = predict_section(model, section, 32, 16, "patch", mirror=True)
    np.testing.assert_allclose(probability, mirrored, atol=1e-6)
    assert np.abs(mirrored - predict_section(model, section, 32, 16, "patch")).max() > 0.05
    assert (probability > 0.5).any() and not np.load(tmp_path / "out" / "s_mask.npy").any()
