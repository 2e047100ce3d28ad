"""Z-scores of a linear head: known answers from a logistic regression, the head and groups
found by name, sigma streamed and taken before upsampling, dead inputs, and bad models."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from explain.zscores import (RunningMoments, ablated_logits, ZScoreError, check_groups, find_linear_head, group_sums, input_groups,
                             parse_groups, score_table, zscores)
from models.fusion import build_fusion_aspp

TRUE_STANDARDISED = np.array([2.0, -1.5, 1.0, 0.6, -0.3, 0.1])  # logit change per standard deviation
RESCALED = (1, 4)  # features given in units 100 times smaller (values 100 times larger)


@pytest.fixture(scope="module")
def regression():
    """A logistic regression fitted on features of known standardised effects; two features
    rescaled by 100, and every feature with its own spread."""
    rng = np.random.default_rng(0)
    spread = np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.8])
    features = rng.standard_normal((20000, 6)) * spread
    logits = features @ (TRUE_STANDARDISED / spread)
    labels = rng.uniform(size=len(logits)) < 1 / (1 + np.exp(-logits))
    features[:, RESCALED] *= 100
    fitted = LogisticRegression(C=1e6, max_iter=5000).fit(features, labels)
    return features, fitted


def test_standardised_coefficient_recovers_the_true_ranking_and_the_papers_z_does_not(regression):
    """Break tried: c / sigma and c * sigma swapped in score_table."""
    features, fitted = regression
    table = score_table(fitted.coef_.T, features.std(axis=0), [("x", 0, 6)])
    truth = np.argsort(-np.abs(TRUE_STANDARDISED))
    np.testing.assert_array_equal(np.argsort(-table["standardized"].abs().to_numpy()), truth)
    np.testing.assert_allclose(table["standardized"], TRUE_STANDARDISED, atol=0.08)
    paper = np.argsort(-table["z"].abs().to_numpy())
    assert list(paper) != list(truth)
    assert set(paper[-2:]) == set(RESCALED)  # the rescaled features sink to the bottom under c / sigma
    np.testing.assert_allclose(table["z"] * table["sigma"] ** 2, table["standardized"])


def test_keras_head_streams_sigma_over_uneven_batches_like_numpy(regression):
    """The same regression as a Keras Dense head: sigma streamed over batches of uneven size
    equals numpy's over all rows. Break tried: the parallel update without its delta term."""
    features, fitted = regression
    inputs = keras.Input((6,), name="x")
    head = keras.layers.Dense(1, activation="sigmoid", name="head")
    model = keras.Model(inputs, head(inputs))
    head.set_weights([fitted.coef_.T.astype(np.float32), fitted.intercept_.astype(np.float32)])
    batches = [features[:700], features[700:701], features[701:]]
    result = zscores(model, batches)
    assert result.layer == "head" and list(result.table["group"].unique()) == ["x"]
    np.testing.assert_allclose(result.table["sigma"], features.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(result.table["coefficient"], fitted.coef_[0], rtol=1e-6)


def test_running_moments_merge_batches_with_different_means():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(5, 1, (50, 3)), rng.normal(-40, 9, (7, 3)), rng.normal(0, 0.1, (300, 3))])
    moments = RunningMoments(3)
    for part in np.split(values, [50, 57]):
        moments.update(part)
    np.testing.assert_allclose(moments.std, values.std(axis=0), rtol=1e-10)


@pytest.fixture(scope="module")
def fusion_batches():
    rng = np.random.default_rng(2)
    return [{"sar": rng.normal(size=(3, 32, 32, 2)).astype(np.float32),
             "mwr": (rng.normal(size=(3, 8, 8, 14)) * np.arange(1, 15)).astype(np.float32)} for _ in range(2)]


@pytest.mark.parametrize("size, atrous", [("small", 14), ("large", 28)])
def test_fusion_groups_are_found_by_name_and_the_radiometer_sigma_is_taken_before_upsampling(fusion_batches, size,
                                                                                              atrous):
    """Break tried: sigma of the upsampled radiometer (the layer feeding the concatenation)."""
    keras.utils.set_random_seed(0)
    model = build_fusion_aspp(1, (32, 32, 2), mwr_scale=4, fusion_size=size, width=4)
    head = find_linear_head(model)
    groups = input_groups(head)
    assert head.name == "mixing"
    assert [(g.name, g.stop - g.start) for g in groups] == [
        ("scale0", 14), ("scale2", atrous), ("scale4", atrous), ("scale8", atrous), ("scale16", atrous), ("mwr", 14)]
    result = zscores(model, fusion_batches, outputs=["ice"])
    mwr = np.concatenate([b["mwr"] for b in fusion_batches]).reshape(-1, 14)
    np.testing.assert_allclose(result.table.loc[result.table["group"] == "mwr", "sigma"], mwr.std(axis=0), rtol=1e-5)
    upsampled = np.concatenate([keras.ops.convert_to_numpy(model.get_layer("mwr_up")(b["mwr"]))
                                for b in fusion_batches]).reshape(-1, 14)
    assert not np.allclose(upsampled.std(axis=0), mwr.std(axis=0), rtol=1e-3)
    kernel = keras.ops.convert_to_numpy(model.get_layer("mixing").kernel).reshape(-1)
    np.testing.assert_allclose(result.table["coefficient"], kernel, rtol=1e-6)


def test_dead_inputs_are_reported_and_never_divided_by():
    """A ReLU unit that is never positive feeds the head zero variance."""
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3, activation="relu", name="hidden")
    x = hidden(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    hidden.set_weights([np.array([[1, 0, -1], [0, 1, -1], [0, 0, -1]], np.float32), np.array([0, 0, -5], np.float32)])
    data = [np.abs(np.random.default_rng(3).normal(size=(64, 3))).astype(np.float32)]
    result = zscores(model, data, outputs=["a", "b"])
    dead = result.table[result.table["dead"]]
    assert sorted(dead["input"].unique()) == [2] and len(dead) == 2
    assert dead[["z", "standardized"]].isna().all().all()
    assert np.isfinite(result.table.loc[~result.table["dead"], ["z", "standardized"]].to_numpy()).all()
    sums = group_sums(result.table)
    assert list(sums["dead"]) == [1, 1] and np.isfinite(sums[["sum_abs_z", "share_z"]].to_numpy()).all()


def test_a_project_classifier_head_is_its_last_dense_through_dropout():
    from models.blocks import classifier_head

    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Conv2D(4, 3, name="features")(inputs)
    model = keras.Model(inputs, classifier_head(features, 3, hidden=8))
    result = zscores(model, [np.random.default_rng(4).normal(size=(5, 16, 16, 3)).astype(np.float32)],
                     outputs=["a", "b", "c"])
    assert result.layer == "logits" and list(result.table["group"].unique()) == ["head_dropout"]
    assert list(result.table["output"].unique()) == ["a", "b", "c"] and len(result.table) == 24


def test_a_model_without_a_linear_head_is_refused_naming_its_last_layers():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, name="conv3x3")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(pooled))
    with pytest.raises(ZScoreError, match=r"probabilities <- pool \(GlobalAveragePooling2D\)"):
        find_linear_head(model)
    with pytest.raises(ZScoreError, match="not a Dense layer or 1x1 convolution"):
        find_linear_head(model, "conv3x3")
    with pytest.raises(ZScoreError, match="no layer 'nope'"):
        find_linear_head(model, "nope")
    relu_head = keras.Model(inputs, keras.layers.Dense(2, activation="relu", name="relu_dense")(pooled))
    with pytest.raises(ZScoreError, match="relu_dense"):
        find_linear_head(relu_head)


def test_groups_must_cover_the_head_inputs_once():
    assert parse_groups("sar:0-13, mwr:14-27") == [("sar", 0, 14), ("mwr", 14, 28)]
    check_groups(parse_groups("a:0-1,b:2"), 3)
    with pytest.raises(ZScoreError, match="NAME:FROM-TO"):
        parse_groups("sar=0-13")
    with pytest.raises(ZScoreError, match="more than once"):
        check_groups(parse_groups("a:0-2,b:2"), 3)
    with pytest.raises(ZScoreError, match="cover 2 of them"):
        check_groups(parse_groups("a:0-1"), 3)


def test_the_command_reads_a_classifiers_images_and_names_its_classes(tmp_path):
    """A .keras classifier without a run folder: images resized as in training, one table row per
    class and head input."""
    import cv2

    from explain.zscores.__main__ import main
    from models.blocks import classifier_head

    inputs = keras.Input((24, 24, 3), name="image")
    model = keras.Model(inputs, classifier_head(keras.layers.Conv2D(4, 3, name="features")(inputs), 2, hidden=6))
    model.save(tmp_path / "classifier.keras")
    rng = np.random.default_rng(5)
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["--model", str(tmp_path / "classifier.keras"), "--data", str(tmp_path), "--out", str(out),
                 "--batch-size", "2"]) == 0
    table = pd.read_csv(out / "zscores.csv")
    assert table["output"].unique().tolist() == ["class_0", "class_1"] and len(table) == 12
    assert (out / "class_1_groups.png").is_file() and "broken.png" in (out / "bad_files.csv").read_text()


def test_a_groups_contribution_spread_lets_correlated_inputs_cancel():
    """Two copies of one input weighted +10 and -10 score high one by one, but their summed
    contribution is constant; the other group's spread is numpy's std of c * x.
    Break tried: the contribution taken as the sum of |c| * sigma."""
    inputs = keras.Input((3,))
    copies = keras.layers.Concatenate(name="both")([keras.layers.Identity(name="pair")(inputs[:, :2]),
                                                    keras.layers.Identity(name="single")(inputs[:, 2:])])
    head = keras.layers.Dense(1, name="head")
    model = keras.Model(inputs, head(copies))
    head.set_weights([np.array([[10.0], [-10.0], [0.5]], np.float32), np.zeros(1, np.float32)])
    column = np.random.default_rng(6).normal(size=(400, 1)).astype(np.float32)
    data = np.concatenate([column, column, 3 * column], axis=1)
    result = zscores(model, [data[:150], data[150:]])
    groups = result.groups.set_index("group")
    assert groups.loc["pair", "sum_abs_standardized"] > 15
    assert groups.loc["pair", "contribution_std"] == pytest.approx(0, abs=1e-6)
    assert groups.loc["single", "contribution_std"] == pytest.approx(np.std(0.5 * data[:, 2]), rel=1e-5)
    assert groups.loc["single", "share_contribution"] == pytest.approx(1)


def test_mean_ablation_holds_a_group_at_its_mean_not_at_zero():
    """Issue 32, point 10, a linear head worked by hand: the ablated logits are the head applied
    to the features with the group's columns replaced by their mean over the inputs. Break
    tried: the group held at zero."""
    inputs = keras.Input((4,), name="x")
    head = keras.layers.Dense(2, name="head")
    model = keras.Model(inputs, head(inputs))
    kernel = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0], [-1.0, 4.0]], np.float32)
    head.set_weights([kernel, np.array([0.25, -0.5], np.float32)])
    x = np.array([[2.0, 5.0, 1.0, 0.0], [4.0, 7.0, -1.0, 2.0], [6.0, 9.0, 3.0, 4.0]], np.float32)
    logits, ablated = ablated_logits(model, x, groups=[("a", 0, 2), ("b", 2, 4)])
    np.testing.assert_allclose(logits, x @ kernel + [0.25, -0.5], rtol=1e-6)
    held = x.copy()
    held[:, :2] = [4.0, 7.0]  # the columns' means
    np.testing.assert_allclose(ablated["a"], held @ kernel + [0.25, -0.5], rtol=1e-6)
    # row 0 by hand: (4 * 1 + 7 * 0.5 + 1 * 3 + 0 * -1 + 0.25, 4 * -2 + 0 + 1 * 1 + 0 * 4 - 0.5)
    np.testing.assert_allclose(ablated["a"][0], [10.75, -7.5], rtol=1e-6)
