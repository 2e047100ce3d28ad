"""Feature visualisation: what a unit or a layer has learned, not where the model looks.

Two methods, both gradient descent on the *input* of a frozen model:

* :func:`activation_maximization` (Erhan et al., 2009, "Visualizing Higher-Layer Features of
  a Deep Network"): from noise, the image that maximises a class logit, a channel's mean
  activation or one neuron. Plain gradient ascent fills the image with high-frequency
  patterns that excite the unit but mean nothing; Olah, Mordvintsev & Schubert, 2017
  ("Feature Visualization", Distill) make the result robust to small random jitter, scaling
  and rotation applied at every step, and parametrise the image in a decorrelated Fourier
  basis (spectrum scaled by 1/frequency, colours decorrelated) so that the optimiser does not
  favour high frequencies.
* :func:`network_inversion` (Mahendran & Vedaldi, 2015, "Understanding Deep Image
  Representations by Inverting Them", CVPR): from noise, the image whose activations at a
  layer match a given image's, ``||A(x) - A(x0)||^2 / ||A(x0)||^2 + tv * TV(x)``. What
  survives is what the layer keeps; the SSIM of the reconstruction to the original and the
  relative feature error reached say how faithful it is.

Images live in the model's input range (``value_range``: the project's classifiers take
[0, 255], seismic models z-scored amplitudes): the optimised parameters pass through a
sigmoid scaled to that range, so results are always valid inputs. All objectives of a call
are optimised together as one batch in one compiled step; the model is never changed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from skimage.metrics import structural_similarity

from explain.graph import ancestors
from explain.views import LayerError, as_input_dict, record_outputs, structured_inputs

Range = tuple[float, float]

# Square root of the colour correlation of ImageNet images (Olah et al. 2017, Lucid's
# ``color_correlation_svd_sqrt``), columns scaled to unit maximum norm below.
_COLOUR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOUR_DECORRELATION = _COLOUR_CORRELATION_SQRT / np.max(np.linalg.norm(_COLOUR_CORRELATION_SQRT, axis=0))


class VisualizeError(ValueError):
    """An objective, layer, input or model that feature visualisation cannot use; the message
    says what to pass instead."""


@dataclass(frozen=True)
class Objective:
    """What to maximise: a channel of a layer, averaged over positions, or one neuron.

    Attributes:
        layer: a layer name; None means the model's output (a class logit; for a per-pixel
            output, that class's logit averaged over pixels).
        channel: the channel (class) index.
        position: (row, column) of one neuron in the layer's grid; None averages over positions.
    """

    layer: str | None
    channel: int
    position: tuple[int, int] | None = None

    def __str__(self) -> str:
        where = "" if self.position is None else f"@{self.position[0]},{self.position[1]}"
        return f"class {self.channel}" if self.layer is None else f"{self.layer}:{self.channel}{where}"

    def score(self, activations: tf.Tensor) -> tf.Tensor:
        """The objective's value per sample of a batch of the layer's activations."""
        values = activations[..., self.channel]
        if self.position is not None:
            return values[:, self.position[0], self.position[1]]
        return tf.reduce_mean(tf.reshape(values, (tf.shape(values)[0], -1)), axis=1)


_OBJECTIVE = re.compile(r"^(?:(?P<layer>[^:@]+):)?(?P<channel>\d+)(?:@(?P<row>\d+),(?P<col>\d+))?$")


def parse_objective(spec: int | str | Objective) -> Objective:
    """An :class:`Objective` from an int (class logit), ``"LAYER:C"`` (channel C of a layer,
    mean activation) or ``"LAYER:C@ROW,COL"`` (one neuron).

    Raises:
        VisualizeError: the text fits none of these forms.
    """
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return Objective(None, int(spec))
    match = _OBJECTIVE.match(str(spec).strip())
    if not match:
        raise VisualizeError(f"Objective {spec!r} is not understood: write a class index (1), a layer's channel "
                             "(features:12) or one neuron (features:12@3,4).")
    position = (int(match["row"]), int(match["col"])) if match["row"] is not None else None
    return Objective(match["layer"], int(match["channel"]), position)


def named_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer with an output, nested models searched, by name, in graph order."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        found[layer.name] = layer
        if isinstance(layer, keras.Model):
            found.update(named_layers(layer))
    return found


def check_objectives(model: keras.Model, objectives: Sequence[Objective]) -> None:
    """Raises a clear error for an unknown layer, a channel out of range or a neuron off the grid."""
    layers = named_layers(model)
    for objective in objectives:
        if objective.layer is None:
            shape, what = model.outputs[0].shape, f"model {model.name!r}'s output"
        elif objective.layer in layers:
            shape, what = layers[objective.layer].output.shape, f"layer {objective.layer!r}"
        else:
            names = list(layers)
            raise LayerError(f"Objective {objective}: model {model.name!r} has no layer {objective.layer!r}. "
                             f"Candidates (last ones first): {', '.join(reversed(names[-12:]))}"
                             + (f" and {len(names) - 12} more" if len(names) > 12 else "") + ".")
        if not 0 <= objective.channel < shape[-1]:
            raise VisualizeError(f"Objective {objective}: {what} has {shape[-1]} channels (0 to {shape[-1] - 1}).")
        if objective.position is not None:
            if len(shape) != 4:
                raise VisualizeError(f"Objective {objective}: {what} has no spatial grid; drop the @row,col.")
            if not (0 <= objective.position[0] < shape[1] and 0 <= objective.position[1] < shape[2]):
                raise VisualizeError(f"Objective {objective}: {what}'s grid is {shape[1]} x {shape[2]}.")


def inputs_feeding(model: keras.Model, layer: str) -> list[str]:
    """The model's inputs that ``layer`` depends on, in the order the model was built with (all
    of them for a layer inside a nested model, whose graph is not followed)."""
    names = [t.name for t in (model.input.values() if isinstance(model.input, dict) else model.inputs)]
    if layer not in {l.name for l in model.layers}:
        return names
    found = ancestors(model, layer)
    return [name for name in names if name in found] or names


PARAMETRIZATIONS = ("fourier", "pixel")
POLISH_LR_FACTOR = 4  # a pixel that ends a robust phase on the wrong side of mid-range must cross it in the polish


class _Parametrization:
    """Images as a function of free parameters: pixels, or a spectrum scaled by 1/frequency
    (Olah et al. 2017), colours decorrelated for RGB, squashed into ``value_range``."""

    def __init__(self, shape: tuple[int, ...], kind: str, value_range: Range, seed: int, scale: float = 0.01,
                 start: np.ndarray | None = None):
        if kind not in PARAMETRIZATIONS:
            raise VisualizeError(f"Unknown parametrization {kind!r}; choose from {', '.join(PARAMETRIZATIONS)}.")
        self.kind, self.shape, self.value_range = kind, shape, value_range
        n, h, w, c = shape
        rng = np.random.default_rng(seed)
        if kind == "fourier":
            fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
            frequencies = np.sqrt(fx ** 2 + fy ** 2)
            self.spectrum_scale = tf.constant(np.sqrt(h * w) / np.maximum(frequencies, 1.0 / max(h, w)), tf.complex64)
            initial = rng.normal(0, scale, (2, n, c, h, w // 2 + 1))
        elif start is not None:  # pixels that reproduce ``start`` through the sigmoid
            unit = np.clip((start - value_range[0]) / (value_range[1] - value_range[0]), 1e-4, 1 - 1e-4)
            initial = np.log(unit / (1 - unit))
        else:
            initial = rng.normal(0, scale, shape)
        self.variable = keras.Variable(initial.astype(np.float32), name="visualized")

    def image(self) -> tf.Tensor:
        """The current images, (N, H, W, C) in ``value_range``."""
        low, high = self.value_range
        if self.kind == "fourier":
            spectrum = tf.complex(self.variable[0], self.variable[1]) * self.spectrum_scale
            raw = tf.transpose(tf.signal.irfft2d(spectrum, fft_length=self.shape[1:3]), (0, 2, 3, 1)) / 4.0
            if self.shape[-1] == 3:
                raw = tf.einsum("nhwc,dc->nhwd", raw, _COLOUR_DECORRELATION)
        else:
            raw = tf.convert_to_tensor(self.variable)
        return low + (high - low) * tf.sigmoid(raw)


@dataclass(frozen=True)
class Transforms:
    """Random transformations applied at every step (transformation robustness).

    Attributes:
        jitter: largest shift, as a fraction of the image side.
        scale: largest relative zoom in or out.
        rotate: largest rotation in degrees.
    """

    jitter: float = 0.06
    scale: float = 0.1
    rotate: float = 10.0

    def __call__(self, images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        """Each image shifted, scaled and rotated about its centre by its own random amounts;
        edges filled by reflection."""
        n = tf.shape(images)[0]
        height, width = float(images.shape[1]), float(images.shape[2])
        angle = generator.uniform((n,), -1, 1) * self.rotate * math.pi / 180
        zoom = 1 + generator.uniform((n,), -1, 1) * self.scale
        shift = generator.uniform((n, 2), -1, 1) * self.jitter * tf.constant([width, height])
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        cx, cy = (width - 1) / 2, (height - 1) / 2
        # Output pixel (x, y) is read from input (a0 x + a1 y + a2, b0 x + b1 y + b2).
        a2 = cx - cos * cx + sin * cy + shift[:, 0]
        b2 = cy - sin * cx - cos * cy + shift[:, 1]
        zeros = tf.zeros_like(angle)
        matrix = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
        return keras.ops.image.affine_transform(images, matrix, interpolation="bilinear", fill_mode="reflect")


def smoothed(images: tf.Tensor) -> tf.Tensor:
    """(N, H, W, C) images filtered by the 3x3 binomial kernel, each channel apart, edges
    reflected: a period of 2 px (the Nyquist frequency) is removed, one of 4 px halved."""
    kernel = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16
    channels = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    weights = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)), images.dtype)
    return tf.nn.depthwise_conv2d(padded, weights, [1, 1, 1, 1], "VALID")


def total_variation(images: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of neighbouring pixels per image (TV with beta = 2; Mahendran &
    Vedaldi 2015), shape (N,)."""
    dy = tf.reduce_mean(tf.square(images[:, 1:] - images[:, :-1]), axis=(1, 2, 3))
    dx = tf.reduce_mean(tf.square(images[:, :, 1:] - images[:, :, :-1]), axis=(1, 2, 3))
    return dy + dx


def image_shapes(model: keras.Model, batch: int) -> dict[str, tuple[int, int, int, int]]:
    """(batch, H, W, C) of each image input.

    Raises:
        VisualizeError: an input has no fixed size.
    """
    shapes = {}
    for tensor in model.inputs:
        if None in tuple(tensor.shape[1:]):
            raise VisualizeError(f"Input {tensor.name!r} of model {model.name!r} has no fixed size "
                                 f"{tuple(tensor.shape)}; rebuild it with one to visualise.")
        shapes[tensor.name] = (batch, *tensor.shape[1:])
    return shapes


class _Optimization:
    """One compiled step of gradient descent on images: ``loss(model activations, images)``,
    with some inputs held fixed. Builds the parametrisations, the optimiser and the step."""

    def __init__(self, model: keras.Model, batch: int, layers: Sequence[str], *, parametrization: str,
                 value_range: Range, transforms: Transforms | None, learning_rate: float, seed: int,
                 held: Mapping[str, np.ndarray] | None = None):
        shapes = image_shapes(model, batch)
        held = dict(held or {})
        unknown = set(held) - set(shapes)
        if unknown:
            raise VisualizeError(f"Cannot hold {sorted(unknown)}: model {model.name!r} takes {sorted(shapes)}.")
        if set(held) == set(shapes):
            raise VisualizeError("Every input is held fixed; leave at least one to optimise.")
        self.model, self.value_range, self.transforms = model, value_range, transforms
        self.held = {name: tf.broadcast_to(tf.convert_to_tensor(x, tf.float32), shapes[name])
                     for name, x in held.items()}
        self.params = {name: _Parametrization(shape, parametrization, value_range, seed + i)
                       for i, (name, shape) in enumerate(shapes.items()) if name not in held}
        self.variables = [p.variable for p in self.params.values()]
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.variables)
        self.generator = tf.random.Generator.from_seed(seed)
        self.wanted = frozenset(layers)
        self.gradient_filter = None

    def images(self) -> dict[str, np.ndarray]:
        return {name: p.image().numpy() for name, p in self.params.items()}

    def continue_smoothly_in_pixels(self, learning_rate: float) -> None:
        """Goes on from the current images in pixels, untransformed, each gradient smoothed by
        a 3x3 binomial filter (:func:`smoothed`), so the steps draw patterns down to a few
        pixels' period but no pixel noise."""
        self.params = {name: _Parametrization(x.shape, "pixel", self.value_range, 0, start=x)
                       for name, x in self.images().items()}
        self.variables = [p.variable for p in self.params.values()]
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.variables)
        self.transforms, self.gradient_filter = None, smoothed

    def run(self, loss_fn, steps: int, progress: keras.utils.Progbar | None = None, done: int = 0) -> np.ndarray:
        """``steps`` steps minimising ``loss_fn(outputs, recorded, images)``, which returns the
        per-sample objective loss and penalty, each (N,); returns the last per-sample losses.
        ``done``: steps already shown on ``progress``."""
        step = tf.function(lambda: self._step(loss_fn), autograph=False)
        losses = None
        for i in range(steps):
            losses = step()
            if progress is not None and (i % 8 == 7 or i == steps - 1):
                progress.update(done + i + 1, [("loss", float(tf.reduce_mean(losses)))])
        return losses.numpy()

    def _step(self, loss_fn):
        with tf.GradientTape(persistent=True) as tape:
            images = {name: p.image() for name, p in self.params.items()}
            seen = {name: self.transforms(x, self.generator) if self.transforms else x for name, x in images.items()}
            recorded = {}
            outputs = record_outputs(self.model, structured_inputs(self.model, {**self.held, **seen}), self.wanted,
                                     recorded)
            objective, penalty = loss_fn(outputs, recorded, images)
            total = tf.reduce_sum(objective + penalty)
        # Checked when the step is traced; the unused gradients are pruned from the graph.
        if any(g is None for g in tape.gradient(objective, self.variables)):
            raise VisualizeError(f"Model {self.model.name!r} is not differentiable from its input to the objective "
                                 "(an argmax, rounding or integer cast lies between them); feature visualisation "
                                 "needs gradients. Visualise a layer before that operation.")
        gradients = tape.gradient(total, self.variables)
        if self.gradient_filter is not None:
            gradients = [self.gradient_filter(g) for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, self.variables))
        return objective + penalty


def _regularization(images: dict, value_range: Range, l2: float, tv: float) -> tf.Tensor:
    """Per-sample L2 (distance from mid-range) and total variation, in units of the value range."""
    low, high = value_range
    total = 0.0
    for x in images.values():
        unit = (x - (low + high) / 2) / (high - low)
        if l2:
            total += l2 * tf.reduce_mean(tf.square(unit), axis=(1, 2, 3))
        if tv:
            total += tv * total_variation(unit)
    return total


def activation_maximization(model: keras.Model, objectives: Sequence[int | str | Objective], *, steps: int = 256,
                            learning_rate: float = 0.05, parametrization: str = "fourier",
                            transforms: Transforms | None = Transforms(), l2: float = 0.0, tv: float = 0.0,
                            value_range: Range = (0.0, 255.0), hold: Mapping[str, np.ndarray] | None = None,
                            polish: float = 0.25, seed: int = 0,
                            progress: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """Images that maximise each objective, all optimised together in one batch.

    Transformation robustness and the Fourier basis shape the image but hold it below what the
    unit attains: random shifts, zooms and turns average out any pattern of a few pixels'
    period, and the basis slows mid and high frequencies, so a detector of seismic-like stripes
    4 px apart reached a tenth of its attainable objective. The last ``polish`` share of the
    steps therefore goes on in pixels without transformations, from the image reached, at four
    times the learning rate, each gradient smoothed by a 3x3 binomial filter: the structure
    stays, the detail the unit wants is drawn down to periods of a few pixels, and no pixel
    noise is (``polish=0`` turns this off; then the images are Olah et al.'s).

    Args:
        model: a Keras model; never changed.
        objectives: per image to make, an int (that class's logit), ``"LAYER:C"`` (mean
            activation of channel C), ``"LAYER:C@ROW,COL"`` (one neuron) or an :class:`Objective`.
        steps, learning_rate: Adam steps on the image parameters.
        parametrization: ``"fourier"`` (decorrelated, Olah et al. 2017) or ``"pixel"``.
        transforms: random jitter, scale and rotation at every step; None for plain ascent.
        l2, tv: weights of the L2 and total-variation penalties (in units of the value range).
        value_range: (low, high) of the model's inputs; images stay inside it.
        hold: inputs held at given images (e.g. SedNet's ``local`` crop), keyed by input name,
            one image or one per objective; the other inputs are optimised.
        polish: share of ``steps`` run last in pixels without transformations, gradients
            smoothed (when the Fourier basis or transformations were asked for).
        seed: seeds the initial noise and the transformations.
        progress: print a progress bar.

    Returns:
        (N, H, W, C) float32 images, N = len(objectives); a dict of them keyed by input name
        when more than one input is optimised.

    Raises:
        LayerError: an objective names an unknown layer (the message lists candidates).
        VisualizeError: a channel or position out of range, or a model without gradients.
    """
    objectives = [parse_objective(o) for o in objectives]
    if not objectives:
        raise VisualizeError("Give at least one objective (a class index, LAYER:CHANNEL or LAYER:CHANNEL@ROW,COL).")
    check_objectives(model, objectives)
    layers = [o.layer for o in objectives if o.layer is not None]
    optimization = _Optimization(model, len(objectives), layers, parametrization=parametrization,
                                 value_range=value_range, transforms=transforms, learning_rate=learning_rate,
                                 seed=seed, held=hold)
    pick = tf.one_hot(range(len(objectives)), len(objectives))

    def loss(outputs, recorded, images):
        output = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        scores = tf.stack([o.score(output if o.layer is None else recorded[o.layer]) for o in objectives], axis=1)
        return -tf.reduce_sum(scores * pick, axis=1), _regularization(images, value_range, l2, tv)

    bar = keras.utils.Progbar(steps, unit_name="step") if progress else None
    polished = round(polish * steps) if parametrization != "pixel" or transforms is not None else 0
    optimization.run(loss, steps - polished, bar)
    if polished:
        optimization.continue_smoothly_in_pixels(POLISH_LR_FACTOR * learning_rate)
        optimization.run(loss, polished, bar, done=steps - polished)
    images = optimization.images()
    return next(iter(images.values())) if len(images) == 1 else images


def objective_scores(model: keras.Model, inputs, objectives: Sequence[int | str | Objective]) -> np.ndarray:
    """Each objective's value on the matching image of ``inputs`` (one image per objective)."""
    objectives = [parse_objective(o) for o in objectives]
    check_objectives(model, objectives)
    recorded = {}
    outputs = record_outputs(model, structured_inputs(model, as_input_dict(model, inputs)),
                             frozenset(o.layer for o in objectives if o.layer), recorded)
    output = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return np.array([float(o.score(output if o.layer is None else recorded[o.layer])[i])
                     for i, o in enumerate(objectives)], np.float32)


@dataclass
class Inversion:
    """Network inversion of a batch at one layer.

    Attributes:
        images: (N, H, W, C) reconstructions in the input range.
        feature_error: per image, ||A(x) - A(x0)|| / ||A(x0)|| reached.
        ssim: per image, the structural similarity of reconstruction and original.
    """

    layer: str
    images: np.ndarray
    feature_error: np.ndarray
    ssim: np.ndarray


def network_inversion(model: keras.Model, images, layer: str, *, steps: int = 300, learning_rate: float = 0.05,
                      tv: float = 0.05, parametrization: str = "pixel", transforms: Transforms | None = None,
                      value_range: Range = (0.0, 255.0), input_name: str | None = None, seed: int = 0,
                      progress: bool = False) -> Inversion:
    """Reconstructs images from their activations at ``layer`` (Mahendran & Vedaldi 2015).

    Minimises ``||A(x) - A(x0)||^2 / ||A(x0)||^2 + tv * TV(x)`` per image from noise.

    Args:
        images: the originals, an array for a single-input model or a dict by input name.
        layer: the layer whose activations are matched.
        tv: weight of the total-variation prior (in units of the value range).
        input_name: for a multi-input model, the input reconstructed (default the first one
            the layer depends on); the others are held at the originals.
        Other arguments as :func:`activation_maximization`.

    Raises:
        LayerError: unknown layer (the message lists candidates).
        VisualizeError: the layer does not depend differentiably on the input.
    """
    originals = {name: x.numpy() for name, x in as_input_dict(model, images).items()}
    check_objectives(model, [Objective(layer, 0)])
    feeding = inputs_feeding(model, layer)
    input_name = input_name or feeding[0]
    if input_name not in originals:
        raise VisualizeError(f"Model {model.name!r} has no input {input_name!r}; it takes {sorted(originals)}.")
    if input_name not in feeding:
        raise VisualizeError(f"Layer {layer!r} does not depend on input {input_name!r}, only on {feeding}: invert "
                             "one of those, or choose a layer of that input's branch.")
    recorded = {}
    record_outputs(model, structured_inputs(model, {k: tf.constant(v) for k, v in originals.items()}),
                   frozenset([layer]), recorded)
    target = tf.constant(recorded[layer])
    held = {name: x for name, x in originals.items() if name != input_name}
    optimization = _Optimization(model, target.shape[0], [layer], parametrization=parametrization,
                                 value_range=value_range, transforms=transforms, learning_rate=learning_rate,
                                 seed=seed, held=held)

    def loss(outputs, recorded, images):
        return relative_feature_error(recorded[layer], target), _regularization(images, value_range, 0.0, tv)

    bar = keras.utils.Progbar(steps, unit_name="step") if progress else None
    optimization.run(loss, steps, bar)
    reconstructed = optimization.images()[input_name]
    final = {}
    record_outputs(model, structured_inputs(model, {**originals, input_name: tf.constant(reconstructed)}),
                   frozenset([layer]), final)
    error = np.sqrt(relative_feature_error(final[layer], target).numpy())
    similarity = [ssim(a, b, value_range) for a, b in zip(originals[input_name], reconstructed)]
    return Inversion(layer, reconstructed, error.astype(np.float32), np.array(similarity, np.float32))


def relative_feature_error(activations: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Per image, ``||A - A0||^2 / ||A0||^2``: network inversion's data term (Mahendran &
    Vedaldi 2015, eq. 2 with their normalisation), so an image whose activations are weak
    counts as much as a strong one, whatever else shares its batch."""
    axes = tuple(range(1, len(target.shape)))
    energy = tf.reduce_sum(tf.square(target), axis=axes)
    return tf.reduce_sum(tf.square(activations - target), axis=axes) / tf.maximum(energy, 1e-12)


def ssim(original: np.ndarray, reconstruction: np.ndarray, value_range: Range) -> float:
    """Structural similarity of two (H, W, C) images over the value range (scikit-image)."""
    return float(structural_similarity(original, reconstruction, data_range=value_range[1] - value_range[0],
                                       channel_axis=-1))


def high_frequency_share(images: np.ndarray, cutoff: float = 0.25) -> np.ndarray:
    """Per image, the share of spectral energy (mean removed) at spatial frequencies above
    ``cutoff`` cycles per pixel (0.5 is Nyquist): the "noise" plain gradient ascent makes."""
    images = np.asarray(images, np.float64)
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred, axes=(1, 2))) ** 2
    fy, fx = np.fft.fftfreq(images.shape[1])[:, None], np.fft.fftfreq(images.shape[2])[None, :]
    high = (np.sqrt(fx ** 2 + fy ** 2) > cutoff)[None, :, :, None]
    return (power * high).sum(axis=(1, 2, 3)) / np.maximum(power.sum(axis=(1, 2, 3)), 1e-20)
