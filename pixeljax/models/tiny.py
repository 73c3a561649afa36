"""A tiny convolutional network for tests and quick examples (a few thousand parameters)."""

from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import Conv, ConvBlock, GlobalAveragePool


def tiny(*, rngs: nnx.Rngs, num_classes: int = 10) -> SequentialVictim:
    return SequentialVictim([
        ("conv1", ConvBlock(3, 16, 3, rngs=rngs)),
        ("conv2", ConvBlock(16, 32, 3, stride=2, rngs=rngs)),
        ("conv3", ConvBlock(32, 32, 3, stride=2, rngs=rngs)),
        ("conv4", Conv(32, num_classes, 1, rngs=rngs)),
        ("logits", GlobalAveragePool()),
    ], num_classes=num_classes)
