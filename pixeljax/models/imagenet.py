"""An ImageNet-size all-convolutional network (224 x 224 x 3, 1,000 classes), for measuring
incremental scoring at the size where a one-pixel change touches the smallest share of each
feature map (random weights are enough for speed and exactness).

conv3x3/2 32, conv3x3 32, conv3x3/2 64, conv3x3 64, conv3x3/2 128, conv3x3 128, conv3x3/2 256,
conv3x3 256, conv3x3/2 256, conv1x1 1000, global average pooling (224 -> 7 positions a side).
"""

from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import Conv, ConvBlock, GlobalAveragePool

IMAGE_SHAPE = (224, 224, 3)


def allconv_imagenet(*, rngs: nnx.Rngs, num_classes: int = 1000) -> SequentialVictim:
    model = SequentialVictim([
        ("conv1", ConvBlock(3, 32, 3, stride=2, rngs=rngs)),
        ("conv2", ConvBlock(32, 32, 3, rngs=rngs)),
        ("conv3", ConvBlock(32, 64, 3, stride=2, rngs=rngs)),
        ("conv4", ConvBlock(64, 64, 3, rngs=rngs)),
        ("conv5", ConvBlock(64, 128, 3, stride=2, rngs=rngs)),
        ("conv6", ConvBlock(128, 128, 3, rngs=rngs)),
        ("conv7", ConvBlock(128, 256, 3, stride=2, rngs=rngs)),
        ("conv8", ConvBlock(256, 256, 3, rngs=rngs)),
        ("conv9", ConvBlock(256, 256, 3, stride=2, rngs=rngs)),
        ("conv10", Conv(256, num_classes, 1, rngs=rngs)),
        ("logits", GlobalAveragePool()),
    ], num_classes=num_classes)
    model.image_shape = IMAGE_SHAPE
    return model
