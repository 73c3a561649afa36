"""Network in Network (Lin et al. 2014), the one-pixel attack paper's second victim.

conv5x5 192, conv1x1 160, conv1x1 96, max-pool 3/2; conv5x5 192, conv1x1 192, conv1x1 192,
max-pool 3/2; conv3x3 192, conv1x1 192, conv1x1 10, global average pooling. About 1.0M
parameters. Batch normalisation follows every hidden convolution.
"""

from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import Conv, ConvBlock, GlobalAveragePool, MaxPool


def nin(*, rngs: nnx.Rngs, num_classes: int = 10) -> SequentialVictim:
    return SequentialVictim([
        ("conv1", ConvBlock(3, 192, 5, rngs=rngs)),
        ("mlp1a", ConvBlock(192, 160, 1, rngs=rngs)),
        ("mlp1b", ConvBlock(160, 96, 1, rngs=rngs)),
        ("pool1", MaxPool(3, 2)),
        ("conv2", ConvBlock(96, 192, 5, rngs=rngs)),
        ("mlp2a", ConvBlock(192, 192, 1, rngs=rngs)),
        ("mlp2b", ConvBlock(192, 192, 1, rngs=rngs)),
        ("pool2", MaxPool(3, 2)),
        ("conv3", ConvBlock(192, 192, 3, rngs=rngs)),
        ("mlp3a", ConvBlock(192, 192, 1, rngs=rngs)),
        ("mlp3b", Conv(192, num_classes, 1, rngs=rngs)),
        ("logits", GlobalAveragePool()),
    ], num_classes=num_classes)
