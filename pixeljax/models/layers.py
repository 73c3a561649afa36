"""Building blocks shared by the victim networks.

Every victim takes images in pixel space (NHWC, float or uint8, values in [0, 255]) and normalises
them itself, so attacks and users never normalise by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

# Per-channel CIFAR-10 training-set statistics, in pixel units (0-255).
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)


def normalize(images: jax.Array) -> jax.Array:
    """Maps pixel-space images in [0, 255] to zero-mean, unit-variance float32."""
    x = jnp.asarray(images, jnp.float32)
    return (x - jnp.asarray(CIFAR10_MEAN)) / jnp.asarray(CIFAR10_STD)


class ConvBlock(nnx.Module):
    """Convolution, batch normalisation, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1,
                 padding: str = "SAME", relu: bool = True, rngs: nnx.Rngs):
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding=padding,
                             use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)
        self.relu = relu

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.norm(self.conv(x))
        return nnx.relu(x) if self.relu else x


class Conv(nnx.Module):
    """A plain convolution with bias (used for the class-score layers)."""

    def __init__(self, cin: int, cout: int, kernel: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), padding="SAME", rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x)


class MaxPool(nnx.Module):
    """Max pooling with a square window."""

    def __init__(self, window: int, stride: int, padding: str = "SAME"):
        self.window, self.stride, self.padding = window, stride, padding

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.max_pool(x, (self.window, self.window), (self.stride, self.stride),
                            padding=self.padding)


class GlobalAveragePool(nnx.Module):
    """Averages each channel over all positions: (N, H, W, C) -> (N, C)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.mean(x, axis=(1, 2))


class Dense(nnx.Module):
    """Flattens its input if needed, then a linear layer with optional BN + ReLU."""

    def __init__(self, din: int, dout: int, *, hidden: bool, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, dout, use_bias=not hidden, rngs=rngs)
        self.norm = nnx.BatchNorm(dout, momentum=0.9, rngs=rngs) if hidden else None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.linear(x.reshape(x.shape[0], -1))
        if self.norm is not None:
            x = nnx.relu(self.norm(x))
        return x
