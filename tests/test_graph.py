"""explain.graph, the one module that uses Keras' private graph API: every attribute it reads is
still there, and each walker gives the answer worked out by hand on a small residual graph."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

from explain.graph import PRIVATE_API, ancestors, call_inputs, producer, run_with_hook


@pytest.fixture(scope="module")
def residual_model() -> keras.Model:
    """image -> conv_a -> conv_b -> add(conv_a, conv_b) -> pool -> dense; a second input, aux,
    joins only at the end (concatenated before the dense)."""
    image = keras.Input((8, 8, 1), name="image")
    aux = keras.Input((2,), name="aux")
    a = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(image)
    b = keras.layers.Conv2D(3, 3, padding="same", name="conv_b")(a)
    added = keras.layers.Add(name="add")([a, b])
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(added)
    joined = keras.layers.Concatenate(name="join")([pooled, aux])
    return keras.Model([image, aux], keras.layers.Dense(2, name="dense")(joined))


def test_every_private_attribute_used_is_still_there(residual_model):
    """A Keras release that renames one fails here, by name, not inside an explainer."""
    holders = {"Layer": residual_model.get_layer("conv_a"), "KerasTensor": residual_model.outputs[0],
               "Functional": residual_model}
    for kind, names in PRIVATE_API.items():
        for name in names:
            assert hasattr(holders[kind], name), f"Keras {keras.__version__}: {kind}.{name} is gone; adapt explain/graph.py"
    assert "operation_fn" in inspect.signature(residual_model._run_through_graph).parameters


def test_ancestors_follow_every_path_once(residual_model):
    """Break tried: only the first parent of each node followed; add's second branch (conv_b)
    and the dense layer's second input (aux) are then missed."""
    assert ancestors(residual_model, "add") == {"image", "conv_a", "conv_b"}
    assert ancestors(residual_model, "dense") == {"image", "aux", "conv_a", "conv_b", "add", "pool", "join"}
    assert ancestors(residual_model, "conv_a") == {"image"}


def test_producer_and_call_inputs_walk_back_from_the_output(residual_model):
    dense = producer(residual_model.outputs[0])
    assert dense.name == "dense"
    (joined,) = call_inputs(dense)
    assert producer(joined).name == "join"
    assert [producer(t).name for t in call_inputs(producer(joined))] == ["pool", "aux"]


def test_run_with_hook_sees_each_operation_once_and_returns_the_models_outputs(residual_model):
    seen = []

    def hook(operation):
        seen.append(operation.name)
        return operation

    rng = np.random.default_rng(0)
    x = {"image": rng.random((2, 8, 8, 1), np.float32), "aux": rng.random((2, 2), np.float32)}
    result = run_with_hook(residual_model, x, hook)
    assert sorted(seen) == ["add", "conv_a", "conv_b", "dense", "join", "pool"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(result), keras.ops.convert_to_numpy(residual_model(x)),
                               rtol=1e-6)
