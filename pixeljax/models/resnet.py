"""ResNet-20 for CIFAR-10 (He et al. 2016, "Deep Residual Learning for Image Recognition", §4.2).

A 3x3 convolution of 16 channels (the stem), then three stages of three basic blocks with
16, 32 and 64 channels (the first block of stages 2 and 3 halves the resolution), global average
pooling and a linear classifier: 6n + 2 = 20 weighted layers for n = 3, about 0.27M parameters.

Shortcuts are the paper's option A for CIFAR-10: identity, and where the shape changes a strided
identity whose extra channels are zeros, so shortcuts add no parameters. The victim is a
:class:`SequentialVictim` whose layers are the stem, each residual block and the classifier, so
``activations()`` yields every block's output (the layers whose propagation maps Vargas & Su,
arXiv 1902.02947, draw for ResNets).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import ConvBlock

WIDTHS = (16, 32, 64)
BLOCKS_PER_STAGE = 3


class BasicBlock(nnx.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, *, stride: int, rngs: nnx.Rngs):
        self.first = ConvBlock(cin, cout, 3, stride=stride, rngs=rngs)
        self.second = ConvBlock(cout, cout, 3, relu=False, rngs=rngs)
        self.stride = stride
        self.extra_channels = cout - cin

    def shortcut(self, x: jax.Array) -> jax.Array:
        """Option A: subsample by the stride and zero-pad the new channels evenly on both sides."""
        if self.stride > 1:
            x = x[:, ::self.stride, ::self.stride, :]
        if self.extra_channels:
            low = self.extra_channels // 2
            x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (low, self.extra_channels - low)))
        return x

    @staticmethod
    def merge(residual: jax.Array, shortcut: jax.Array) -> jax.Array:
        """The block's output from its two branches."""
        return nnx.relu(residual + shortcut)

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, H, W, cin) -> (N, H/s, W/s, cout)
        return self.merge(self.second(self.first(x)), self.shortcut(x))


class Classifier(nnx.Module):
    """Global average pooling and a linear layer: (N, H, W, C) -> (N, classes)."""

    def __init__(self, cin: int, num_classes: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(cin, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(jnp.mean(x, axis=(1, 2)))

    def head(self, pooled: jax.Array) -> jax.Array:
        """What follows the pooling: the linear layer."""
        return self.linear(pooled)


def resnet20(*, rngs: nnx.Rngs, num_classes: int = 10) -> SequentialVictim:
    layers, cin = [("stem", ConvBlock(3, WIDTHS[0], 3, rngs=rngs))], WIDTHS[0]
    for s, width in enumerate(WIDTHS, start=1):
        for b in range(1, BLOCKS_PER_STAGE + 1):
            stride = 2 if s > 1 and b == 1 else 1
            layers.append((f"block{s}_{b}", BasicBlock(cin, width, stride=stride, rngs=rngs)))
            cin = width
    layers.append(("logits", Classifier(cin, num_classes, rngs=rngs)))
    return SequentialVictim(layers, num_classes=num_classes)
