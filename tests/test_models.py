import keras
import numpy as np
import pytest

import models
from models import MODELS, WeightsError, build_model, model_names, start_from, trained_model_file, unfreeze_top


def _inputs(name, batch=2, size=32):
    rng = np.random.default_rng(0)
    image = (rng.random((batch, size, size, 3)) * 255).astype("float32")
    return {"whole": image, "local": image[:, : size // 2, : size // 2]} if name == "sednet" else image


def _build(name, size=32, **kwargs):
    options = {"local_size": size // 2} if name == "sednet" else {}
    return build_model(name, 3, (size, size, 3), **{"weights": None, **options, **kwargs})


@pytest.mark.parametrize("name", model_names("classify"))
def test_every_model_builds_and_outputs_logits(name):
    size = max(32, MODELS[name].min_input_size)
    model = _build(name, size)
    logits = model.predict(_inputs(name, size=size), verbose=0)
    assert logits.shape == (2, 3)
    assert len(model.get_layer("features").output.shape) == 4
    assert model.layers[-1].get_config()["activation"] == "linear"


def test_sednet_names_branch_features_and_can_share_branches():
    separate, shared = _build("sednet"), _build("sednet", shared_branches=True)
    for model in (separate, shared):
        assert {"whole_features", "local_features", "features"} <= {layer.name for layer in model.layers}
    assert shared.count_params() < separate.count_params()
    assert sorted(i.name for i in separate.inputs) == ["local", "whole"]


def test_backbones_are_flat_and_frozen_except_the_head():
    model = _build("mobilenetv3")
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"head_dense", "logits"}
    assert unfreeze_top(model, 3) == 3
    trainable = {w.path.split("/")[0] for w in model.trainable_weights} - {"head_dense", "logits"}
    assert len(trainable) == 3
    assert not any(isinstance(model.get_layer(n), keras.layers.BatchNormalization) for n in trainable)


def test_a_local_backbone_weights_file_loads(tmp_path):
    base = keras.applications.MobileNetV3Large(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_v3_notop.weights.h5"
    base.save_weights(path)
    model = build_model("mobilenetv3", 3, (32, 32, 3), weights=str(path))
    for layer in ("conv", "expanded_conv_project"):
        np.testing.assert_array_equal(model.get_layer(layer).get_weights()[0], base.get_layer(layer).get_weights()[0])


def test_a_local_sednet_weights_file_loads(tmp_path):
    model = _build("sednet")
    path = tmp_path / "sednet.weights.h5"
    model.save_weights(path)
    again = _build("sednet", weights=str(path))
    np.testing.assert_allclose(again.predict(_inputs("sednet"), verbose=0),
                               model.predict(_inputs("sednet"), verbose=0), rtol=1e-5)


def _randomised(model: keras.Model, seed: int = 1) -> keras.Model:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_a_regressor_starts_from_a_classifier_run_with_all_but_its_output_layer(tmp_path):
    """Break tried: the weights of matching layers not copied (only the fresh output checked)."""
    run = tmp_path / "textures"
    run.mkdir()
    classifier = _randomised(_build("sednet"))
    classifier.save(run / "model.keras")
    regressor = build_model("sednet", 1, (32, 32, 3), weights=None, local_size=16)
    fresh_logits = regressor.get_layer("logits").get_weights()
    assert start_from(regressor, trained_model_file(run)) == ["logits"]
    for layer in regressor.layers:
        if layer.weights and layer.name != "logits":
            for mine, theirs in zip(layer.get_weights(), classifier.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(mine, theirs)
    for mine, fresh in zip(regressor.get_layer("logits").get_weights(), fresh_logits):
        np.testing.assert_array_equal(mine, fresh)


def test_starting_from_a_run_of_another_network_or_no_run_is_refused_by_name(tmp_path):
    other = tmp_path / "wider.keras"
    _build("sednet", widths=(16, 32, 48)).save(other)
    with pytest.raises(WeightsError, match=r"wider.keras: its model 'sednet' lacks, or has other shapes for, the "
                                           r"layers \['local_stem_conv', 'whole_stem_conv'"):
        start_from(_build("sednet"), other)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(WeightsError, match="empty_run is a folder without model.keras"):
        trained_model_file(tmp_path / "empty_run")
    (tmp_path / "notes.keras").write_text("not a model")
    with pytest.raises(WeightsError, match="notes.keras is not a Keras model file .* zip archives"):
        start_from(_build("sednet"), tmp_path / "notes.keras")
    assert trained_model_file("none") is None and trained_model_file(tmp_path / "x.weights.h5") is None


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="Weights file not found: .*nope.h5.*--weights none"):
        _build("resnet50", weights=str(tmp_path / "nope.h5"))


def test_failed_imagenet_download_says_what_to_pass(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- no network")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    with pytest.raises(WeightsError, match="pass --weights none .* or --weights PATH"):
        build_model("vgg19", 2, (32, 32, 3), weights="imagenet")


def test_sednet_has_no_imagenet_weights():
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        _build("sednet", weights="imagenet")


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        models.register("sednet", MODELS["sednet"])
    with pytest.raises(KeyError, match="Unknown model 'alexnet'"):
        build_model("alexnet", 2)
