"""AllConv (All-CNN-C, Springenberg et al. 2015), the one-pixel attack paper's first victim.

conv3x3 96, conv3x3 96, conv3x3/2 96, conv3x3 192, conv3x3 192, conv3x3/2 192,
conv3x3 192 (valid), conv1x1 192, conv1x1 10, global average pooling. About 1.4M parameters.
Batch normalisation follows every hidden convolution.
"""

from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import Conv, ConvBlock, GlobalAveragePool


def allconv(*, rngs: nnx.Rngs, num_classes: int = 10) -> SequentialVictim:
    return SequentialVictim([
        ("conv1", ConvBlock(3, 96, 3, rngs=rngs)),
        ("conv2", ConvBlock(96, 96, 3, rngs=rngs)),
        ("conv3", ConvBlock(96, 96, 3, stride=2, rngs=rngs)),
        ("conv4", ConvBlock(96, 192, 3, rngs=rngs)),
        ("conv5", ConvBlock(192, 192, 3, rngs=rngs)),
        ("conv6", ConvBlock(192, 192, 3, stride=2, rngs=rngs)),
        ("conv7", ConvBlock(192, 192, 3, padding="VALID", rngs=rngs)),
        ("conv8", ConvBlock(192, 192, 1, rngs=rngs)),
        ("conv9", Conv(192, num_classes, 1, rngs=rngs)),
        ("logits", GlobalAveragePool()),
    ], num_classes=num_classes)
