"""U-Net with a ResNet34 encoder for salt segmentation of single-channel seismic patches.

Reference: the salt thesis (Politecnico di Milano, 2022), after Ronneberger et al., 2015
("U-Net: Convolutional Networks for Biomedical Image Segmentation") and He et al., 2016
(ResNet34: basic blocks 3-4-6-3). A seismic patch has one channel while the encoder expects
three, so the input first passes the thesis's *merger*: three 1x1 convolutions (1 -> 8 -> 8
-> 3 channels) that learn the mapping instead of copying the channel three times.

The graph is flat and functional; the layers explainers and feature visualisation look at
are named: ``merger``, ``stem_out`` (stride 2), ``stage1_out`` .. ``stage4_out`` (strides 4
to 32, the encoder; ``stage4_out`` is the bottleneck), ``decoder1`` .. ``decoder4`` (strides 16
to 2), ``features`` (full resolution, the last block before the 1x1 ``logits``). The output
is one salt logit per pixel. Optionally (not the thesis's) a ``full_res`` skip feeds
``features`` with the merged input at full resolution.

The thesis's second path reuses the segmentation encoder in a patch classifier ("is there
salt in this patch?"): :func:`build_resnet34_classifier` has the same merger and encoder
layers, by name, with a pooled two-layer head, and :func:`copy_encoder` carries a trained
U-Net's encoder weights into it.
"""

from __future__ import annotations

import keras
from keras import layers

from models.blocks import classifier_head, conv_bn_relu, input_scaling, merger, residual_block

MIN_INPUT_SIZE = 32  # five halvings; sides must be multiples of 32
RESNET34_BLOCKS = (3, 4, 6, 3)
ENCODER_STAGES = tuple(f"stage{i}_out" for i in range(1, 5))
ENCODER_PREFIXES = ("merger", "stem", "stage")  # names of the layers the U-Net and the classifier share


def resnet34_encoder(x, width: int = 64) -> list:
    """The ResNet34 stem and four stages; returns the outputs at strides 2, 4, 8, 16 and 32."""
    stem = conv_bn_relu(x, width, kernel_size=7, strides=2, name="stem")
    stem = layers.Identity(name="stem_out")(stem)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(stem)
    outputs = [stem]
    for stage, blocks in enumerate(RESNET34_BLOCKS, start=1):
        filters = width * 2 ** (stage - 1)
        for block in range(blocks):
            strides = 2 if stage > 1 and block == 0 else 1
            x = residual_block(x, filters, strides=strides, name=f"stage{stage}_block{block + 1}")
        x = layers.Identity(name=f"stage{stage}_out")(x)
        outputs.append(x)
    return outputs


def decoder_block(x, skip, filters: int, name: str):
    """Upsample by two, concatenate the encoder's skip, two conv-BN-ReLU."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    if skip is not None:
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = conv_bn_relu(x, filters, name=f"{name}_a")
    x = conv_bn_relu(x, filters, name=f"{name}_b")
    return layers.Identity(name=name)(x)


def build_unet_resnet34(num_classes: int = 1, input_shape=(128, 128, 1), weights=None,
                        encoder_width: int = 64, full_resolution_skip: bool = False) -> keras.Model:
    """Builds the U-Net-ResNet34 with the merger; outputs ``num_classes`` logits per pixel.

    Args:
        num_classes: logits per pixel (1 for salt / no salt).
        input_shape: (H, W, C); H and W multiples of 32.
        weights: None, or a weights file saved from a model of the same configuration.
        encoder_width: filters of the first stage (64 in ResNet34; smaller for quick tests);
            the decoder scales with it.
        full_resolution_skip: give the last decoder stage a skip at full resolution (one
            conv-BN-ReLU of the merged input, ``full_res``), which ResNet34's stride-2 stem
            otherwise leaves it without, so that salt bodies a few pixels across keep their
            outline (on the real TGS patches: salt-bearing Dice 0.66 -> 0.70).
    """
    if input_shape[0] % 32 or input_shape[1] % 32:
        raise ValueError(f"The U-Net's input sides must be multiples of 32, not {input_shape[:2]}.")
    inputs = keras.Input(input_shape, name="image")
    merged = merger(inputs)
    stem, *stages = resnet34_encoder(merged, encoder_width)
    skips = [stages[2], stages[1], stages[0], stem]
    x = stages[3]
    for level, skip in enumerate(skips, start=1):
        x = decoder_block(x, skip, encoder_width * 8 // 2 ** level, name=f"decoder{level}")
    full = conv_bn_relu(merged, max(encoder_width // 4, 8), name="full_res") if full_resolution_skip else None
    x = decoder_block(x, full, max(encoder_width // 4, 8), name="features")
    logits = layers.Conv2D(num_classes, 1, name="logits")(x)
    model = keras.Model(inputs, logits, name="unet_resnet34")
    if weights is not None:
        model.load_weights(weights)
    return model


def build_resnet34_classifier(num_classes: int = 2, input_shape=(64, 64, 1), weights=None,
                              encoder_width: int = 64, train_backbone: bool = True,
                              dropout: float = 0.3) -> keras.Model:
    """The merger and ResNet34 encoder of :func:`build_unet_resnet34` under the thesis's
    two-layer classifier head.

    The encoder's layers keep the U-Net's names, so :func:`copy_encoder` (or a run's
    ``--weights``) can fill them from a trained segmentation model; ``features`` is the
    encoder's last stage (stride 32). A one-channel input is a z-scored seismic patch, three
    channels an RGB photograph in [0, 255] (scaled to [0, 1] before the merger).

    Args:
        train_backbone: False freezes the merger and encoder (a transferred encoder's first
            phase: the head learns alone, then ``fine_tune_*`` trains every layer at a lower rate).
    """
    inputs = keras.Input(input_shape, name="image")
    x = inputs if input_shape[-1] == 1 else input_scaling(inputs, name="rescale")
    *_, deepest = resnet34_encoder(merger(x), encoder_width)
    features = layers.Identity(name="features")(deepest)
    model = keras.Model(inputs, classifier_head(features, num_classes, hidden=encoder_width * 4, dropout=dropout),
                        name="resnet34_classifier")
    if not train_backbone:
        for name in encoder_layers(model):
            model.get_layer(name).trainable = False
    if weights is not None:
        model.load_weights(weights)
    return model


def encoder_layers(model: keras.Model) -> list[str]:
    """Names of the model's merger and encoder layers that hold weights."""
    return [layer.name for layer in model.layers if layer.weights and layer.name.startswith(ENCODER_PREFIXES)]


def copy_encoder(source: keras.Model, target: keras.Model) -> list[str]:
    """Copies the merger and encoder weights of ``source`` into the same-named layers of
    ``target`` (a trained U-Net into a classifier, or back); returns the names copied.

    Raises:
        ValueError: the two encoders differ (another width or input channels).
    """
    names = encoder_layers(target)
    missing = [name for name in names if name not in {layer.name for layer in source.layers}]
    if missing or not names:
        raise ValueError(f"Model {source.name!r} lacks the encoder layers {missing[:4] or names[:4]} of "
                         f"{target.name!r}; copy between a U-Net-ResNet34 and its classifier.")
    for name in names:
        mine, theirs = target.get_layer(name), source.get_layer(name)
        shapes = [tuple(w.shape) for w in mine.weights], [tuple(w.shape) for w in theirs.weights]
        if shapes[0] != shapes[1]:
            raise ValueError(f"Layer {name!r} has weights {shapes[1]} in {source.name!r} but {shapes[0]} in "
                             f"{target.name!r}: build the classifier with the U-Net's encoder width and channels.")
        mine.set_weights(theirs.get_weights())
    return names
