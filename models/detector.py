"""A single-stage object detector for sigma clasts: keras-hub's RetinaNet (Lin et al. 2017).

The poster's pipeline used YOLOv3; keras-hub ships no YOLO, and RetinaNet is the maintained
single-stage detector of the Keras ecosystem. Its anchors, box encoding, focal loss and
non-maximum suppression are keras-hub's; this module only chooses a configuration.

From scratch (``weights=None``, what the tests and this offline machine use) the image
encoder is a small ResNet: one basic block per stage, 64 filters, so that a CPU can train it
in minutes on 128-pixel photomicrographs. ``weights="imagenet"`` builds on keras-hub's
ImageNet ResNet-50 preset instead (needs a network, once), and a path loads a ``.weights.h5``
file saved from a detector of the same configuration.

References:
    Lin, Goyal, Girshick, He, Dollar (2017). Focal Loss for Dense Object Detection. ICCV.
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np

from datasets.detection import ImageBoxes
from models.transfer import WeightsError

BOX_FORMAT = "xyxy"  # absolute pixels, as pycocotools and the label files are converted to
IMAGENET_PRESET = "resnet_50_imagenet"
MIN_LEVEL, MAX_LEVEL = 3, 5  # strides 8 to 32: anchors of 32 to 203 px
SCORE_THRESHOLD = 0.05  # keep low-scoring boxes so mAP sees the whole precision-recall curve
MAX_DETECTIONS = 50


def build_detector(num_classes: int, input_shape=(128, 128, 3), weights: str | None = None,
                   head_layers: int = 2) -> keras_hub.models.RetinaNetObjectDetector:
    """Builds a RetinaNet whose ``predict`` returns boxes in input pixels (``xyxy``).

    Args:
        num_classes: box classes (1: sigma_clast; 2: ccw/cw, shear sense predicted per box).
        input_shape: only the channels count; the detector takes any image size >= 64 px.
        weights: None (random), ``"imagenet"`` (ResNet-50 encoder from keras-hub, needs a
            network) or a ``.weights.h5`` file of a detector of the same configuration.
        head_layers: 3x3 convolutions before each of the class and box outputs (4 in the
            paper; 2 is enough for one or two classes and twice as fast).

    Raises:
        WeightsError: the preset cannot be downloaded, or the weights file does not fit.
    """
    shape = (None, None, input_shape[-1])
    encoder = _imagenet_encoder(shape) if weights == "imagenet" else _small_encoder(shape)
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=MIN_LEVEL, max_level=MAX_LEVEL,
                                                  use_p5=False, image_shape=shape)
    converter = keras_hub.layers.RetinaNetImageConverter(scale=1 / 255.0)
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=num_classes, bounding_box_format=BOX_FORMAT,
        pre_logits_num_conv_layers=head_layers, use_prediction_head_norm=True,
        preprocessor=keras_hub.models.RetinaNetObjectDetectorPreprocessor(image_converter=converter),
        prediction_decoder=keras_hub.layers.NonMaxSuppression(
            bounding_box_format=BOX_FORMAT, from_logits=True, confidence_threshold=SCORE_THRESHOLD,
            max_detections=MAX_DETECTIONS))
    _set_focal_loss_prior(detector)
    if weights not in (None, "imagenet"):
        try:
            detector.load_weights(weights)
        except ValueError as err:
            raise WeightsError(f"{weights} does not fit this detector ({err}); pass --weights none, or the "
                               "weights of a detector with the same classes.") from err
    return detector


def focal_prior_bias(prior: float = 0.01) -> float:
    """The logit whose sigmoid is ``prior``: the class bias that starts every anchor there."""
    return -float(np.log((1 - prior) / prior))


def _set_focal_loss_prior(detector, prior: float = 0.01) -> None:
    """Starts every anchor at class probability ``prior``, as Lin et al. (section 4.1) prescribe.

    keras-hub 0.32 gives this bias to the box head and leaves the class head at zero (every
    anchor starts at 0.5, the focal loss is swamped by easy negatives and the initial boxes
    shrink to exp(-4.6) of their anchors). From scratch this slows training:
    ``benchmarks/detector_prior.py`` compares the two side by side.
    """
    classes = detector.classification_head.prediction_layer.bias
    boxes = detector.box_head.prediction_layer.bias
    classes.assign(np.full(classes.shape, focal_prior_bias(prior), "float32"))
    boxes.assign(np.zeros(boxes.shape, "float32"))


def _small_encoder(shape) -> keras_hub.models.ResNetBackbone:
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64, 64, 64],
        stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=shape)


def _imagenet_encoder(shape) -> keras_hub.models.ResNetBackbone:
    try:
        return keras_hub.models.ResNetBackbone.from_preset(IMAGENET_PRESET, image_shape=shape)
    except Exception as err:  # keras-hub raises several types for an unreachable hub
        raise WeightsError(f"Could not download the keras-hub preset {IMAGENET_PRESET!r} ({err}). Without a "
                           "network, pass --weights none, or a detector .weights.h5 file.") from err


def detect(model: keras.Model, images: np.ndarray, batch_size: int = 16) -> list[ImageBoxes]:
    """Runs the detector on uint8 (N, S, S, 3) images; returns each image's detections.

    The images are padded to whole batches: keras-hub's non-maximum suppression fails when
    Keras retraces the predict function with an unknown batch size, which a second call with
    another remainder would cause.
    """
    padded = np.zeros((-(-len(images) // batch_size) * batch_size, *images.shape[1:]), np.float32)
    padded[:len(images)] = images
    predictions = model.predict(padded, batch_size=batch_size, verbose=0)
    return [ImageBoxes(predictions["boxes"][i, :k], predictions["labels"][i, :k].astype(int),
                       predictions["confidence"][i, :k])
            for i, k in enumerate(np.asarray(predictions["num_detections"][:len(images)]).astype(int))]
