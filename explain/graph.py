"""Walking and running a Keras functional graph: the one module that touches Keras' private API.

Explainers need what Keras 3 keeps private: which layers a layer is computed from (feature
visualisation's inputs, Fast-CAM's stages), which layer made a tensor and what a layer was
called on (Z-scores' linear head), and a forward pass with a hook on each operation (the
views' recorded activations, the Keras counterpart of PyTorch forward hooks). Each access is
here, so a Keras release that moves one breaks this module alone, and
``tests/test_graph.py`` names every private attribute used, so it fails there first.
"""

from __future__ import annotations

from typing import Callable

import keras

PRIVATE_API = {  # what this module reads, by class, for the test that checks it is still there
    "Layer": ("_inbound_nodes",),
    "KerasTensor": ("_keras_history",),
    "Functional": ("_run_through_graph", "_standardize_inputs"),
}


def ancestors(model: keras.Model, layer_name: str) -> set[str]:
    """Names of the operations (layers and inputs) of ``model`` that ``layer_name`` is computed from.

    Residual graphs reach shared ancestors along many paths: each node is visited once.
    """
    seen, names, pending = set(), set(), list(model.get_layer(layer_name)._inbound_nodes[:1])
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for parent in node.parent_nodes:
            names.add(parent.operation.name)
            pending.append(parent)
        if node.is_input:
            names.add(node.operation.name)
    return names


def producer(tensor) -> keras.layers.Layer:
    """The layer (operation) whose output ``tensor`` is."""
    return tensor._keras_history.operation


def call_inputs(layer: keras.layers.Layer):
    """The tensor(s) ``layer`` was first called on in its model."""
    return layer._inbound_nodes[0].input_tensors


def run_with_hook(model: keras.Model, inputs, hook: Callable[[keras.Operation], Callable]):
    """Runs ``model`` on ``inputs``, each operation through ``hook(operation)`` (a callable
    taking the operation's arguments); returns the model's outputs."""
    return model._run_through_graph(model._standardize_inputs(inputs), operation_fn=hook)
