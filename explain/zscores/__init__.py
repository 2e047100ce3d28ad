"""Z-scores of a model's linear head: how much each input of the last linear layer matters.

Reference: Malmgren-Hansen, Nielsen, Toudal Pedersen et al. (DTU), the Z-score analysis of
their SAR/AMSR2 fusion network's mixing layer. A linear layer computes
``logit_k = b_k + sum_i c_ik x_i``; the paper scores input ``i`` by

    Z_ik = c_ik / sigma_i                                            (its eq. 2)

with ``sigma_i`` the standard deviation of ``x_i`` over the data (over pixels, for a per-pixel
layer), sorts the scores (its fig. 2) and sums ``|Z|`` per input group (fig. 3). We report beside
it the *standardised coefficient* ``c_ik * sigma_i``: the change of the logit when ``x_i`` moves
by one standard deviation, the usual standardised effect of a logistic regression. The two
agree when every sigma is alike and rank differently when scales differ: rescaling an input by
100 divides its coefficient by 100, leaves ``c * sigma`` unchanged and divides ``c / sigma`` by
10^4 (``tests/test_zscores.py`` shows which recovers a known ranking).

The head is found by name or as the last Dense or 1x1 convolution before the output (through
activations). Its inputs are grouped by the layers concatenated into it (``scale0`` ..
``mwr``); an input that reaches the head through upsampling has its sigma taken before the
upsampling, at its own resolution, as the paper prescribes for AMSR2. Per group we also report
the spread of the group's whole contribution to the logit, std(sum_i c_i x_i): correlated inputs
with large coefficients of opposite sign inflate both per-input scores but cancel there. Standard
deviations are streamed over the data (Chan et al.'s parallel update of Welford's algorithm), so
a data set of any size fits. An input with zero variance (a dead ReLU, a constant band) is reported as
such, never divided by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import keras
import numpy as np
import pandas as pd

from explain.graph import call_inputs, producer

LINEAR_ACTIVATIONS = ("linear", "sigmoid", "softmax")  # monotone maps of the linear logits
PASS_THROUGH = ("Activation", "Softmax", "Identity")
UPSAMPLING = ("UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing")
DEAD_SIGMA = 1e-12


class ZScoreError(ValueError):
    """The model has no usable linear head, or the groups or data do not fit it."""


@dataclass(frozen=True)
class Group:
    """Inputs ``start:stop`` of the head, named, and where their standard deviation is taken."""

    name: str
    start: int
    stop: int
    source: object  # the KerasTensor whose channels are these inputs (before any upsampling)


def is_linear_head(layer: keras.layers.Layer) -> bool:
    """A Dense layer or a 1x1 convolution whose activation keeps the logits linear."""
    if isinstance(layer, keras.layers.Dense):
        kind_ok = True
    elif isinstance(layer, keras.layers.Conv2D | keras.layers.Conv1D | keras.layers.Conv3D):
        kind_ok = all(k == 1 for k in layer.kernel_size) and getattr(layer, "groups", 1) == 1
    else:
        return False
    return kind_ok and keras.activations.serialize(layer.activation) in LINEAR_ACTIVATIONS


def find_linear_head(model: keras.Model, layer: str | None = None) -> keras.layers.Layer:
    """The named layer, or the last Dense / 1x1 convolution before the (first) output.

    Raises:
        ZScoreError: no such layer, or it (or the output's last layer) is not linear; the
            message names the last layers and the candidates.
    """
    candidates = [item.name for item in model.layers if is_linear_head(item)]
    if layer is not None:
        try:
            found = model.get_layer(layer)
        except ValueError as err:
            raise ZScoreError(f"The model has no layer {layer!r}; its linear layers are {candidates}.") from err
        if not is_linear_head(found):
            raise ZScoreError(f"{layer!r} is a {type(found).__name__}, not a Dense layer or 1x1 convolution with a "
                              f"linear activation; the model's linear layers are {candidates}.")
        return found
    current, passed = producer(model.outputs[0]), []
    while type(current).__name__ in PASS_THROUGH:
        passed.append(current.name)
        current = producer(call_inputs(current)[0])
    if not is_linear_head(current):
        chain = " <- ".join([*passed, current.name])
        raise ZScoreError(f"The output is not made by a linear layer: the last layers are {chain} "
                          f"({type(current).__name__}). Z-scores need a Dense layer or 1x1 convolution with a "
                          f"linear activation at the head; pass --layer NAME (linear layers: {candidates or 'none'}).")
    return current


def input_groups(head: keras.layers.Layer) -> list[Group]:
    """The head's inputs grouped by the layers concatenated into it (one group otherwise)."""
    (tensor,) = call_inputs(head)
    made_by = producer(tensor)
    parts = call_inputs(made_by) if type(made_by).__name__ == "Concatenate" else [tensor]
    groups, start = [], 0
    for part in parts:
        source = part
        while type(producer(source)).__name__ in UPSAMPLING:
            source = call_inputs(producer(source))[0]
        width = int(part.shape[-1])
        groups.append(Group(producer(source).name, start, start + width, source))
        start += width
    return groups


def parse_groups(text: str) -> list[tuple[str, int, int]]:
    """``NAME:FROM-TO,...`` (inclusive input indices) as (name, start, stop).

    Raises:
        ZScoreError: malformed.
    """
    spans = []
    for part in text.split(","):
        name, _, span = part.strip().partition(":")
        low, _, high = span.partition("-")
        if not name or not low.strip().isdigit() or not (high or low).strip().isdigit():
            raise ZScoreError(f"--groups {part!r}: write NAME:FROM-TO (inclusive input indices), e.g. sar:0-13.")
        spans.append((name, int(low), int(high or low) + 1))
    return spans


def check_groups(spans: list[tuple[str, int, int]], inputs: int) -> None:
    """Raises ZScoreError unless the groups cover inputs ``0 .. inputs - 1`` exactly once."""
    covered = sorted(i for _, start, stop in spans for i in range(start, stop))
    if covered != list(range(inputs)):
        overlap = " (some more than once)" if len(covered) != len(set(covered)) else ""
        raise ZScoreError(f"The groups must cover the head's inputs 0..{inputs - 1} exactly once; they cover "
                          f"{len(set(covered) & set(range(inputs)))} of them{overlap}, and "
                          f"{len(set(covered) - set(range(inputs)))} index(es) beyond.")


class RunningMoments:
    """Per-channel mean and variance over any number of batches (Chan et al., 1979)."""

    def __init__(self, channels: int):
        self.count, self.mean, self.m2 = 0, np.zeros(channels), np.zeros(channels)

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).reshape(-1, self.mean.shape[0])
        count = len(values)
        if not count:
            return
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        delta, total = mean - self.mean, self.count + count
        self.mean += delta * count / total
        self.m2 += m2 + delta ** 2 * self.count * count / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1))


def stream_moments(model: keras.Model, groups: list[Group], batches: Iterable, kernel: np.ndarray,
                   spans: list[tuple[str, int, int]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Streams ``batches`` once: model inputs, or ``(inputs, valid)`` whose (B, H, W) ``valid``
    marks the pixels to count (land and no-data of sea-ice scenes are left out).

    Returns:
        Each head input's standard deviation over all pixels, and per span the standard
        deviation of its summed contribution ``sum_i c_ik x_i`` to each output (NaN for a span
        that crosses inputs of different resolutions).
    """
    internal = [g for g in groups if producer(g.source).__class__.__name__ != "InputLayer"]
    view = keras.Model(model.input, [g.source for g in internal]) if internal else None
    inside = {name: next((g for g in groups if g.start <= start and stop <= g.stop), None)
              for name, start, stop in spans}
    moments = {g.name: RunningMoments(g.stop - g.start) for g in groups}
    contributions = {name: RunningMoments(kernel.shape[1]) for name, _, _ in spans if inside[name]}
    for batch in batches:
        batch, valid = batch if isinstance(batch, tuple) else (batch, None)
        outputs = dict(zip([g.name for g in internal], _as_list(view(batch, training=False)))) if view else {}
        for group in groups:
            values = keras.ops.convert_to_numpy(outputs[group.name] if group.name in outputs
                                                else _model_input(model, batch, group))
            values = values.reshape(-1, group.stop - group.start).astype(np.float64)
            if valid is not None and len(values) == valid.size:  # a group at the mask's resolution
                values = values[valid.reshape(-1)]
            moments[group.name].update(values)
            for name, start, stop in spans:
                if inside[name] is group:
                    contributions[name].update(values[:, start - group.start:stop - group.start] @ kernel[start:stop])
    if not any(m.count for m in moments.values()):
        raise ZScoreError("The data gave no batch; pass data with at least one sample.")
    spread = {name: contributions[name].std if name in contributions else np.full(kernel.shape[1], np.nan)
              for name, _, _ in spans}
    return np.concatenate([moments[g.name].std for g in groups]), spread


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def _model_input(model: keras.Model, batch, group: Group):
    if isinstance(batch, Mapping):
        return batch[group.name]
    return batch[[t.name for t in model.inputs].index(group.name)] if isinstance(batch, list | tuple) else batch


def score_table(coefficients: np.ndarray, sigma: np.ndarray, groups: list[tuple[str, int, int]],
                outputs: list[str] | None = None) -> pd.DataFrame:
    """Per output and input: coefficient, sigma, the paper's Z = c / sigma and c * sigma.

    Args:
        coefficients: (inputs, outputs) weights of the linear head.
        sigma: (inputs,) standard deviations.
        groups: (name, start, stop) covering the inputs.
        outputs: one name per output (default ``output_0``...).

    Returns:
        One row per (output, input), with ``dead`` set and both scores NaN where sigma is zero.
    """
    coefficients = np.asarray(coefficients, np.float64).reshape(len(sigma), -1)
    names = outputs or [f"output_{k}" for k in range(coefficients.shape[1])]
    group_of = np.empty(len(sigma), object)
    channel = np.zeros(len(sigma), int)
    for name, start, stop in groups:
        group_of[start:stop], channel[start:stop] = name, np.arange(stop - start)
    dead = sigma <= DEAD_SIGMA
    rows = []
    for k, output in enumerate(names):
        c = coefficients[:, k]
        z = np.where(dead, np.nan, c / np.where(dead, 1, sigma))
        rows.append(pd.DataFrame({"output": output, "input": np.arange(len(sigma)), "group": group_of,
                                  "channel": channel, "coefficient": c, "sigma": sigma, "z": z,
                                  "standardized": np.where(dead, np.nan, c * sigma), "dead": dead}))
    return pd.concat(rows, ignore_index=True)


def group_sums(table: pd.DataFrame) -> pd.DataFrame:
    """Per output and group: sums of |Z| and |c * sigma| (dead inputs left out), each also as a
    share of the output's total, and the group's input and dead counts (the paper's fig. 3)."""
    table = table.assign(abs_z=table["z"].abs(), abs_standardized=table["standardized"].abs())
    sums = table.groupby(["output", "group"], sort=False).agg(
        inputs=("input", "size"), dead=("dead", "sum"), sum_abs_z=("abs_z", "sum"),
        sum_abs_standardized=("abs_standardized", "sum")).reset_index()
    for column in ("sum_abs_z", "sum_abs_standardized"):
        total = sums.groupby("output")[column].transform("sum")
        sums[column.replace("sum_abs", "share")] = sums[column] / total.where(total > 0)
    return sums


@dataclass
class ZScores:
    """The scores of one model's head on one data set.

    ``contributions`` holds per output and group the standard deviation of the group's summed
    contribution to the logit: unlike the sums of per-input scores, it lets correlated inputs
    of one group cancel, as they do in the logit.
    """

    layer: str
    table: pd.DataFrame  # see score_table
    contributions: pd.DataFrame  # output, group, contribution_std

    @property
    def groups(self) -> pd.DataFrame:
        sums = group_sums(self.table).merge(self.contributions, on=["output", "group"], how="left")
        total = sums.groupby("output")["contribution_std"].transform("sum")
        sums["share_contribution"] = sums["contribution_std"] / total.where(total > 0)
        return sums


def zscores(model: keras.Model, batches: Iterable, layer: str | None = None,
            groups: list[tuple[str, int, int]] | None = None, outputs: list[str] | None = None) -> ZScores:
    """Z-scores and standardised coefficients of the model's linear head over ``batches``.

    Args:
        model: any Keras model with a linear head (found as :func:`find_linear_head` does).
        batches: model inputs (arrays, or dicts keyed by input name), streamed once.
        layer: the head's name, when it is not the last linear layer.
        groups: (name, start, stop) over the head's inputs, instead of the concatenated layers.
        outputs: a name per output unit (e.g. the class names).

    Raises:
        ZScoreError: no linear head, or groups that do not cover its inputs.
    """
    head = find_linear_head(model, layer)
    found = input_groups(head)
    spans = groups or [(g.name, g.start, g.stop) for g in found]
    check_groups(spans, found[-1].stop)
    kernel = keras.ops.convert_to_numpy(head.kernel)
    kernel = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    sigma, spread = stream_moments(model, found, batches, kernel, spans)
    table = score_table(kernel, sigma, spans, outputs)
    names = list(dict.fromkeys(table["output"]))
    contributions = pd.DataFrame([{"output": output, "group": name, "contribution_std": spread[name][k]}
                                  for name, _, _ in spans for k, output in enumerate(names)])
    return ZScores(head.name, table, contributions)


def ablated_logits(model: keras.Model, inputs, layer: str | None = None,
                   groups: list[tuple[str, int, int]] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The head's logits, and per group the logits with that group's inputs held at their mean
    over ``inputs`` (mean ablation): what the output loses without the group, as the model
    computes it. A check on any score read off the coefficients alone.

    Returns:
        ``(logits, {group: ablated logits})``, each shaped as the head's output.
    """
    head = find_linear_head(model, layer)
    spans = groups or [(g.name, g.start, g.stop) for g in input_groups(head)]
    (tensor,) = call_inputs(head)
    features = keras.ops.convert_to_numpy(keras.Model(model.input, tensor).predict(inputs, verbose=0))
    kernel = keras.ops.convert_to_numpy(head.kernel)
    kernel = kernel.reshape(-1, kernel.shape[-1])
    logits = features @ kernel + (keras.ops.convert_to_numpy(head.bias) if head.use_bias else 0)
    mean = features.reshape(-1, kernel.shape[0]).mean(axis=0)
    return logits, {name: logits - (features[..., start:stop] - mean[start:stop]) @ kernel[start:stop]
                    for name, start, stop in spans}
