"""What an explanation explains: one differentiable score per sample, read off the model's outputs.

As pytorch-grad-cam's targets and tf-keras-vis' scores do, a target turns the model's raw
outputs into the (batch,) scores whose gradients the explainers follow:

- :class:`ClassTarget`: a class logit per sample (the default; ``targets=None`` means each
  sample's predicted class, an int or one int per sample name classes);
- :class:`RegionTarget`: the logits of one output channel summed over a region (a mask or a
  box, or the pixels predicted as that channel), for segmentation (Vinogradova, Dibrov &
  Myers, 2020, "Towards Interpretable Semantic Segmentation via Gradient-weighted Class
  Activation Mapping", AAAI student abstract: Seg-Grad-CAM);
- :class:`ScalarTarget`: one scalar output times a sign, for regression (+1: what raises the
  prediction, -1: what lowers it);
- :class:`BoxScoreTarget`: a detection's class logits summed over the anchors that predict
  its box (the positives of that box during training).

A target's numbers go into the compiled explainer functions as tensors (:meth:`Target.params`)
and its class is their static argument, so new targets of a kind never retrace them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


class Target:
    """The base of every target. Subclasses compute their tensors in :meth:`params` and define
    the class methods :meth:`score` (and, where a probability means more, :meth:`confidence`),
    which run inside compiled functions."""

    def params(self, model: keras.Model, inputs: dict[str, tf.Tensor], logits=None) -> dict[str, tf.Tensor]:
        """This target's tensors for a batch of ``inputs``.

        Args:
            logits: a callable giving the model's outputs on ``inputs``; given when the target
                must be fixed before the inputs are changed (masked, occluded). Without it,
                anything "predicted" is resolved inside :meth:`score`, saving a forward pass.
        """
        raise NotImplementedError

    @classmethod
    def score(cls, outputs, params: dict[str, tf.Tensor]) -> tf.Tensor:
        """The (batch,) scores explained."""
        raise NotImplementedError

    @classmethod
    def confidence(cls, outputs, params: dict[str, tf.Tensor]) -> tf.Tensor:
        """What occlusion and Score-CAM compare between inputs; the score unless overridden."""
        return cls.score(outputs, params)


def _batch(inputs: dict[str, tf.Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _first_output(outputs):
    """A model's only (or first) output, whether it returns a tensor, a dict or a list."""
    if tf.is_tensor(outputs):
        return outputs
    return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs[0]


@dataclass(frozen=True)
class ClassTarget(Target):
    """A class logit per sample: ``None`` (each sample's predicted class), an int, or one int per sample."""

    classes: int | Sequence[int] | np.ndarray | None = None

    def params(self, model, inputs, logits=None):
        batch, count = _batch(inputs), int(model.outputs[0].shape[-1])
        if self.classes is None:
            if logits is None:
                return {"classes": tf.fill([batch], -1)}  # resolved to the predicted class in score()
            return {"classes": tf.argmax(_first_output(logits(inputs)), axis=-1, output_type=tf.int32)}
        classes = np.asarray(self.classes)
        if (not np.issubdtype(classes.dtype, np.integer) or classes.ndim > 1
                or classes.ndim == 1 and len(classes) != batch or np.any(classes < 0) or np.any(classes >= count)):
            raise ValueError(f"targets must be None, a class index in [0, {count}) or {batch} of them; "
                             f"got {classes.tolist()!r}.")
        return {"classes": tf.constant(np.broadcast_to(classes.astype(np.int32), (batch,)))}

    @classmethod
    def score(cls, outputs, params):
        logits = _first_output(outputs)
        classes = params["classes"]
        classes = tf.where(classes < 0, tf.argmax(logits, axis=-1, output_type=tf.int32), classes)
        return tf.gather(logits, classes, batch_dims=1)

    @classmethod
    def confidence(cls, outputs, params):
        return tf.gather(tf.nn.softmax(_first_output(outputs)), params["classes"], batch_dims=1)


@dataclass(frozen=True)
class RegionTarget(Target):
    """The logits of output channel ``channel`` summed over a region of a per-pixel output.

    Give ``mask`` ((H, W) for all samples or (batch, H, W), any resolution: resized to the
    output's with nearest neighbour), or ``box`` (x0, y0, x1, y1 as fractions of the image's
    width and height), or neither: the pixels predicted as ``channel`` (logit > 0 for a
    one-channel output, the arg-max otherwise).
    """

    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    channel: int = 0

    def params(self, model, inputs, logits=None):
        batch = _batch(inputs)
        shape = model.outputs[0].shape
        if len(shape) != 4:
            raise ValueError(f"RegionTarget needs a per-pixel output (batch, H, W, C); model {model.name!r} "
                             f"outputs {tuple(shape)}.")
        height, width, channels = int(shape[1]), int(shape[2]), int(shape[3])
        if not 0 <= self.channel < channels:
            raise ValueError(f"channel={self.channel} is not one of the output's {channels} channel(s).")
        predicted = self.mask is None and self.box is None
        region = np.zeros((batch, height, width), np.float32)
        if self.mask is not None:
            region[:] = _resized_masks(np.asarray(self.mask), batch, height, width)
        elif self.box is not None:
            x0, x1 = (int(round(x * width)) for x in self.box[0::2])
            y0, y1 = (int(round(y * height)) for y in self.box[1::2])
            region[:, y0:y1, x0:x1] = 1
        if not predicted and not region.any():
            raise ValueError("RegionTarget: the mask or box covers no output pixel.")
        return {"region": tf.constant(region), "predicted": tf.constant(predicted),
                "channel": tf.constant(self.channel, tf.int32)}

    @classmethod
    def score(cls, outputs, params):
        logits = _first_output(outputs)
        channel_logits = tf.gather(logits, params["channel"], axis=-1)
        if logits.shape[-1] == 1:
            predicted = channel_logits > 0
        else:
            predicted = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), params["channel"])
        region = tf.where(params["predicted"], tf.stop_gradient(tf.cast(predicted, logits.dtype)), params["region"])
        return tf.reduce_sum(channel_logits * region, axis=(1, 2))


def _resized_masks(mask: np.ndarray, batch: int, height: int, width: int) -> np.ndarray:
    masks = np.broadcast_to(mask, (batch, *mask.shape[-2:])) if mask.ndim == 2 else mask
    if len(masks) != batch:
        raise ValueError(f"RegionTarget: {len(masks)} masks for {batch} samples.")
    resized = tf.image.resize(masks.astype(np.float32)[..., None], (height, width), method="nearest")[..., 0]
    return (resized.numpy() > 0).astype(np.float32)


@dataclass(frozen=True)
class ScalarTarget(Target):
    """Output ``index`` times ``sign``: +1 explains what raises a regression's prediction, -1
    what lowers it."""

    sign: float = 1.0
    index: int = 0

    def params(self, model, inputs, logits=None):
        if self.sign not in (1, -1):
            raise ValueError(f"ScalarTarget: sign must be +1 or -1; got {self.sign}.")
        width = int(np.prod(model.outputs[0].shape[1:]))
        if not 0 <= self.index < width:
            raise ValueError(f"ScalarTarget: index {self.index} is not one of the output's {width} value(s).")
        return {"sign": tf.constant(float(self.sign)), "index": tf.constant(self.index, tf.int32)}

    @classmethod
    def score(cls, outputs, params):
        values = _first_output(outputs)
        values = tf.reshape(values, [tf.shape(values)[0], -1])
        return params["sign"] * tf.gather(values, params["index"], axis=1)


@dataclass(frozen=True)
class BoxScoreTarget(Target):
    """A detection's score: the class logits of ``class_index`` summed over ``anchors``, a
    boolean mask over the detector's anchors ((A,) or (batch, A)). Build one for a box with
    :meth:`for_box`."""

    anchors: np.ndarray
    class_index: int

    @classmethod
    def for_box(cls, detector: keras.Model, box: Sequence[float], class_index: int, image_size: int,
                min_iou: float = 0.5) -> BoxScoreTarget:
        """The target of a box (xyxy, input pixels): the anchors whose IoU with it is at least
        ``min_iou`` (the positives of that box in training), or the best one if none is."""
        levels = detector.anchor_generator(np.zeros((1, image_size, image_size, 3), np.float32))
        anchors = keras.utils.bounding_boxes.convert_format(
            keras.ops.concatenate(list(levels.values()), axis=0),
            source=detector.anchor_generator.bounding_box_format, target="xyxy")
        iou = keras.ops.convert_to_numpy(keras.utils.bounding_boxes.compute_iou(
            anchors, np.asarray([box], np.float32), bounding_box_format="xyxy"))[:, 0]
        chosen = iou >= min_iou if (iou >= min_iou).any() else iou == iou.max()
        return cls(chosen, class_index)

    def params(self, model, inputs, logits=None):
        anchors = np.broadcast_to(np.asarray(self.anchors, np.float32), (_batch(inputs), np.shape(self.anchors)[-1]))
        return {"anchors": tf.constant(anchors), "class_index": tf.constant(self.class_index, tf.int32)}

    @classmethod
    def score(cls, outputs, params):
        logits = outputs["cls_logits"] if isinstance(outputs, dict) else outputs[1]
        return tf.reduce_sum(tf.gather(logits, params["class_index"], axis=-1) * params["anchors"], axis=1)


def repeat_sample(params: dict[str, tf.Tensor], i: int, count: int) -> dict[str, tf.Tensor]:
    """Sample ``i``'s target tensors for ``count`` changed copies of it (occlusion, Score-CAM):
    per-sample tensors (batch first) are repeated, scalars kept."""
    return {key: tf.repeat(value[i:i + 1], count, axis=0) if value.shape.rank else value
            for key, value in params.items()}


def as_target(targets) -> Target:
    """A :class:`Target` from the explainer contract's ``targets``: a target as it is; None, an
    int or ints as a :class:`ClassTarget`."""
    return targets if isinstance(targets, Target) else ClassTarget(targets)
