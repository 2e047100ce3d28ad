"""The eleven segmentation losses of the salt thesis, on per-pixel logits.

Each loss takes ``y_true`` (B, H, W, 1) in {0, 1} and the model's logits of the same shape
and returns a scalar (or one value per image, which Keras averages). Keras' own losses are
used where it has one (binary cross-entropy, Dice, binary focal, KL divergence, MSE); the
others follow their papers. Region losses (Dice, Jaccard) are taken over the whole batch, so
a patch without salt does not make them undefined. Only ``keras.ops``: the losses also train
under JAX.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import ops

HAUSDORFF_ALPHA = 2.0
HAUSDORFF_MAX_DISTANCE = 16  # pixels; the iterated-erosion distance transform stops there
WING_WIDTH, WING_EPSILON = 0.5, 0.1  # the paper's w=10, eps=2 (pixels) rescaled to errors in [0, 1]

_serializable = keras.saving.register_keras_serializable(package="geoxai")


def _probabilities(y_true, logits):
    return ops.cast(y_true, logits.dtype), ops.sigmoid(logits)


@_serializable
def bce(y_true, logits):
    """Binary cross-entropy of logits."""
    return keras.losses.binary_crossentropy(ops.cast(y_true, logits.dtype), logits, from_logits=True)


@_serializable
def dice(y_true, logits):
    """Soft Dice loss, 1 - 2|Y P| / (|Y| + |P|), over the whole batch (Keras' ``dice``)."""
    return keras.losses.dice(*_probabilities(y_true, logits))


@_serializable
def bce_dice(y_true, logits):
    """The thesis's baseline: binary cross-entropy plus Dice loss."""
    return ops.mean(bce(y_true, logits)) + dice(y_true, logits)


@_serializable
def focal(y_true, logits):
    """Binary focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection"), gamma 2."""
    return keras.losses.binary_focal_crossentropy(ops.cast(y_true, logits.dtype), logits, gamma=2.0,
                                                  from_logits=True)


@_serializable
def kl(y_true, logits):
    """KL divergence between the true and the predicted Bernoulli distribution of each pixel
    (Keras' ``kl_divergence`` over the two outcomes; with hard labels it equals cross-entropy
    on clipped probabilities)."""
    y, p = _probabilities(y_true, logits)
    return keras.losses.kl_divergence(ops.concatenate([y, 1 - y], axis=-1), ops.concatenate([p, 1 - p], axis=-1))


@_serializable
def mse(y_true, logits):
    """Mean squared error between the mask and the predicted probabilities."""
    return keras.losses.mean_squared_error(*_probabilities(y_true, logits))


@_serializable
def jaccard(y_true, logits):
    """Soft Jaccard (IoU) loss, 1 - |Y P| / (|Y| + |P| - |Y P|), over the whole batch."""
    y, p = _probabilities(y_true, logits)
    intersection = ops.sum(y * p)
    return 1 - intersection / (ops.sum(y) + ops.sum(p) - intersection + keras.config.epsilon())


def lovasz_gradient(sorted_truth):
    """The Lovasz extension's weights for errors sorted in decreasing order: the increments of
    the Jaccard loss as the sorted pixels join the set of mispredicted pixels one by one."""
    total = ops.sum(sorted_truth)
    intersection = total - ops.cumsum(sorted_truth)
    union = total + ops.cumsum(1 - sorted_truth)
    jaccard_loss = 1 - intersection / union
    return ops.concatenate([jaccard_loss[:1], jaccard_loss[1:] - jaccard_loss[:-1]])


@_serializable
def lovasz(y_true, logits):
    """The Lovasz hinge (Berman, Triki & Blaschko, 2018, "The Lovasz-Softmax loss: a tractable
    surrogate for the optimization of the intersection-over-union measure in neural networks"):
    the Lovasz extension of the Jaccard loss applied to the hinge errors ``max(0, 1 - z s)``,
    ``s = 2y - 1``. Taken over the whole batch (segmentation_models_pytorch's default): per
    image, a patch without salt reduces it to its one worst pixel, and training stalls."""
    y = ops.reshape(ops.cast(y_true, logits.dtype), (-1,))
    errors = 1 - ops.reshape(logits, (-1,)) * (2 * y - 1)
    sorted_errors, order = ops.top_k(errors, k=ops.shape(errors)[0])
    weights = ops.stop_gradient(lovasz_gradient(ops.take(y, order)))
    return ops.sum(ops.relu(sorted_errors) * weights)


def _erode(mask):
    return -ops.max_pool(-mask, 3, strides=1, padding="same")


def _dilate(mask):
    return ops.max_pool(mask, 3, strides=1, padding="same")


def boundary_distance(mask, max_distance: int = HAUSDORFF_MAX_DISTANCE):
    """Chessboard distance of each pixel to the boundary of a binary (B, H, W, 1) mask, capped
    at ``max_distance``: how many 3x3 erosions a salt pixel survives plus how many dilations
    a background pixel needs. The distance transform of Karimi & Salcudean, computed with
    pooling so that it runs inside the graph on every backend; it carries no gradient."""
    inside, outside = mask, mask
    distance = ops.zeros_like(mask)
    for _ in range(max_distance):
        inside, outside = _erode(inside), _dilate(outside)
        distance = distance + inside + (1 - outside)
    return ops.stop_gradient(distance)


@_serializable
def hausdorff(y_true, logits):
    """The distance-transform Hausdorff loss (Karimi & Salcudean, 2019, "Reducing the Hausdorff
    Distance in Medical Image Segmentation with Convolutional Neural Networks", eq. 8):
    mean over pixels of ``(p - y)^2 (d_y^a + d_p^a)``, with ``d_y``, ``d_p`` the distances to
    the boundaries of the true and the thresholded predicted masks and ``a = 2``. Errors far
    from either boundary, which make the Hausdorff distance large, weigh the most."""
    y, p = _probabilities(y_true, logits)
    predicted = ops.cast(p > 0.5, p.dtype)
    weight = boundary_distance(y) ** HAUSDORFF_ALPHA + boundary_distance(predicted) ** HAUSDORFF_ALPHA
    return ops.mean((p - y) ** 2 * weight, axis=(1, 2, 3))


def soft_boundary(mask):
    """The 3x3 morphological gradient (dilation minus erosion): 1 on a hard mask's boundary
    pixels, 0 elsewhere, and differentiable for soft masks."""
    return _dilate(mask) - _erode(mask)


@_serializable
def contour(y_true, logits):
    """A contour loss: binary cross-entropy plus the soft Dice loss between the morphological
    gradients (:func:`soft_boundary`) of the predicted probabilities and of the mask, over the
    batch. Cross-entropy gives the interior its signal; the boundary term, bounded in [0, 1]
    whatever the boundary's length, asks for the boundary in the right place and sharp."""
    y, p = _probabilities(y_true, logits)
    return ops.mean(bce(y_true, logits)) + keras.losses.dice(soft_boundary(y), soft_boundary(p))


@_serializable
def wing(y_true, logits):
    """The Wing loss (Feng et al., 2018, "Wing Loss for Robust Facial Landmark Localisation
    with Convolutional Neural Networks") of the probability error ``x = |p - y|``:
    ``w ln(1 + x / eps)`` below ``w``, ``x - C`` above, ``C = w - w ln(1 + w / eps)``; it
    magnifies small and medium errors. ``w = 0.5``, ``eps = 0.1``: the paper's ratio w/eps = 5
    on errors that lie in [0, 1]."""
    y, p = _probabilities(y_true, logits)
    x = ops.abs(p - y)
    c = WING_WIDTH - WING_WIDTH * ops.log(1 + WING_WIDTH / WING_EPSILON)
    return ops.mean(ops.where(x < WING_WIDTH, WING_WIDTH * ops.log(1 + x / WING_EPSILON), x - c), axis=(1, 2, 3))


SEGMENTATION_LOSSES: dict[str, Callable] = {
    "bce": bce, "contour": contour, "dice": dice, "focal": focal, "hausdorff": hausdorff, "jaccard": jaccard,
    "kl": kl, "lovasz": lovasz, "mse": mse, "wing": wing, "bce+dice": bce_dice,
}

# The per-pixel losses that compare a probability with any target in [0, 1], such as a sea-ice
# concentration; the others need a mask (region overlaps, boundaries, sorted errors).
FRACTIONAL_TARGET_LOSSES = ("mse", "bce", "kl", "wing")

INVALID_LOGIT = -30.0  # a sure "no": sigmoid 1e-13


@_serializable
class IgnoringInvalid(keras.losses.Loss):
    """A registered loss, by name, that leaves out the invalid pixels of a target (land and
    no-data of a sea-ice scene).

    A target of two channels carries (truth, valid). Before the loss sees them, each invalid
    pixel becomes a sure, right "no" (target 0, logit ``INVALID_LOGIT``): it adds nothing to a
    region loss's sums (Dice, Jaccard, Lovasz), 1e-13 to a per-pixel one, and passes no
    gradient. Per-pixel losses still average over every pixel, so a patch half land weighs
    half. A one-channel target (salt) passes unchanged.
    """

    def __init__(self, loss: str = "bce+dice", name: str | None = None, **kwargs):
        super().__init__(name=name or f"{loss.replace('+', '_')}_on_valid_pixels", **kwargs)
        self.loss = loss

    @property
    def function(self) -> Callable:
        return SEGMENTATION_LOSSES[self.loss]

    def call(self, y_true, logits):
        if y_true.shape[-1] != 2:
            return self.function(y_true, logits)
        truth, valid = y_true[..., :1], ops.cast(y_true[..., 1:], logits.dtype)
        return self.function(truth * valid, ops.where(valid > 0, logits, ops.full_like(logits, INVALID_LOGIT)))

    def get_config(self) -> dict:
        return {**super().get_config(), "loss": self.loss}
