"""Two-source fusion for per-pixel sea ice: SAR at full resolution, radiometer channels coarse.

Reference: Malmgren-Hansen, Nielsen, Toudal Pedersen et al. (DTU), "A convolutional neural
network architecture for Sentinel-1 and AMSR2 data fusion" (IEEE TGRS, 2021), and their
Z-score analysis of its mixing layer. The SAR branch runs two convolutions; the second one's
output, linear and without batch norm, is the *Scale-0* group. Atrous branches at rates 2, 4,
8 and 16, each preceded by a d x d average smoothing, see wider context (ReLU, batch norm and
dropout inside, a linear 1x1 projection out: the paper found that a ReLU on the mixing
layer's inputs leaves dead, zero-variance nodes). The radiometer (AMSR2-like, 14 channels at
1/``mwr_scale`` of the SAR resolution) is upsampled bilinearly and joins them. One linear
per-pixel layer, ``mixing``, turns the concatenation into the ice logit.

The groups the Z-score analysis sums over are the layers concatenated into ``mixing_inputs``:
``scale0``, ``scale2``, ``scale4``, ``scale8``, ``scale16`` and ``mwr`` (the upsampled
radiometer; its standard deviation is taken before upsampling, on the ``mwr`` input).
"""

from __future__ import annotations

import keras
from keras import layers

INPUT_NAMES = ("sar", "mwr")
SAR_CHANNELS = 2  # HH and HV backscatter
MWR_CHANNELS = 14  # AMSR2: seven frequencies, two polarisations
ATROUS_RATES = (2, 4, 8, 16)
MIXING_LAYER = "mixing"
# Components per group: Small has 14 in every group; Large has 28 in the atrous Scales 2-16.
SIZES = {"small": {0: 14, **{rate: 14 for rate in ATROUS_RATES}},
         "large": {0: 14, **{rate: 28 for rate in ATROUS_RATES}}}
MIN_INPUT_SIZE = 32
# Its training settings under --task segment, over the salt U-Net's: whole scenes in small
# batches, and a learning rate at which the mixing layer's radiometer weights grow within the
# few steps a CPU budget allows (at 1e-3 they had not after 64 steps: test IoU 0.52).
TRAINING_DEFAULTS = {"data": "synthetic:sea_ice", "synthetic_n": 100, "synthetic_size": 96, "batch_size": 8,
                     "lr": 1e-2, "epochs": 10}


def atrous_group(x, rate: int, components: int, width: int, dropout: float):
    """One context scale: d x d average smoothing, a dilated 3x3 convolution (ReLU, batch norm,
    dropout), then ``components`` linear features named ``scale{rate}``."""
    x = layers.AveragePooling2D(rate, strides=1, padding="same", name=f"scale{rate}_smooth")(x)
    x = layers.Conv2D(width, 3, dilation_rate=rate, padding="same", activation="relu", name=f"scale{rate}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"scale{rate}_bn")(x)
    x = layers.Dropout(dropout, name=f"scale{rate}_dropout")(x)
    return layers.Conv2D(components, 1, name=f"scale{rate}")(x)


def build_fusion_aspp(num_classes: int = 1, input_shape=(96, 96, SAR_CHANNELS), weights=None, *,
                      mwr_scale: int = 8, mwr_channels: int = MWR_CHANNELS, fusion_size: str = "small",
                      width: int = 32, dropout: float = 0.1) -> keras.Model:
    """The fusion network; outputs ``num_classes`` logits per SAR pixel.

    Args:
        num_classes: logits per pixel (1: ice against water).
        input_shape: (H, W, C) of the SAR input; H and W must be multiples of ``mwr_scale``.
        weights: None, or a path to a weights file (there are no pretrained weights).
        mwr_scale: SAR pixels per radiometer pixel along each side.
        mwr_channels: radiometer channels (AMSR2's 14 by default).
        fusion_size: ``small`` (14 components per group) or ``large`` (28 in Scales 2-16).
        width: filters of the SAR branch's convolutions.
        dropout: dropout rate inside the atrous branches.

    Raises:
        ValueError: an unknown size, or a SAR size the radiometer grid does not divide.
    """
    if fusion_size not in SIZES:
        raise ValueError(f"fusion_size={fusion_size!r} is not one of {list(SIZES)}")
    height, width_px, channels = input_shape
    if height % mwr_scale or width_px % mwr_scale:
        raise ValueError(f"The SAR input {height} x {width_px} is not a multiple of mwr_scale={mwr_scale}.")
    components = SIZES[fusion_size]
    sar = keras.Input((height, width_px, channels), name="sar")
    mwr = keras.Input((height // mwr_scale, width_px // mwr_scale, mwr_channels), name="mwr")
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name="sar_conv1")(sar)
    scale0 = layers.Conv2D(components[0], 3, padding="same", name="scale0")(x)
    trunk = layers.BatchNormalization(momentum=0.9, name="sar_bn")(layers.ReLU(name="sar_relu")(scale0))
    groups = [scale0] + [atrous_group(trunk, rate, components[rate], width, dropout) for rate in ATROUS_RATES]
    groups.append(layers.UpSampling2D(mwr_scale, interpolation="bilinear", name="mwr_up")(mwr))
    mixed = layers.Concatenate(name="mixing_inputs")(groups)
    logits = layers.Conv2D(num_classes, 1, name=MIXING_LAYER)(mixed)
    model = keras.Model({"sar": sar, "mwr": mwr}, logits, name=f"fusion_aspp_{fusion_size}")
    if weights is not None:
        model.load_weights(weights)
    return model
