"""Building blocks shared by the victim networks.

Every victim takes images in pixel space (NHWC, float or uint8, values in [0, 255]) and normalises
them itself, so attacks and users never normalise by hand.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

# Per-channel CIFAR-10 training-set statistics, in pixel units (0-255).
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)
CIFAR10_IMAGE_SHAPE = (32, 32, 3)  # what a registered victim takes unless it declares otherwise


def normalize(images: jax.Array) -> jax.Array:
    """Maps pixel-space images in [0, 255] to zero-mean, unit-variance float32."""
    x = jnp.asarray(images, jnp.float32)
    return (x - jnp.asarray(CIFAR10_MEAN)) / jnp.asarray(CIFAR10_STD)


# Output maps of at most this many positions are convolved as matrix products: XLA's CPU
# convolution is up to 50x slower than a matrix product on VGG16's 2x2 maps.
SMALL_MAP = 16


def accumulation(dtype):
    """What products of ``dtype`` operands accumulate in: float32 for bfloat16 (its sums would
    otherwise round at every step), else the operands' own type (None)."""
    return jnp.float32 if dtype == jnp.bfloat16 else None


def matmul_conv(lhs, rhs, window_strides, padding, *, precision=None, **unused):
    """A VALID 2-D convolution of NHWC inputs with an HWIO kernel (no dilation, one group), as
    one matrix product per kernel row over the input's columns gathered side by side (bfloat16
    operands accumulate in float32; the result has the input's type)."""
    assert padding == "VALID", padding
    accumulate = accumulation(lhs.dtype)
    kh, kw, cin, cout = rhs.shape
    sh, sw = window_strides
    oh, ow = (lhs.shape[1] - kh) // sh + 1, (lhs.shape[2] - kw) // sw + 1
    cols = jnp.concatenate([lhs[:, :, j:j + (ow - 1) * sw + 1:sw] for j in range(kw)], axis=-1)
    out = 0
    for i in range(kh):  # (B, oh, ow, kw * cin) @ (kw * cin, cout)
        rows = cols[:, i:i + (oh - 1) * sh + 1:sh]
        out = out + jnp.einsum("bhwc,cd->bhwd", rows, rhs[i].reshape(kw * cin, cout),
                               precision=precision, preferred_element_type=accumulate)
    return out.astype(lhs.dtype)


def small_map_conv(lhs, rhs, window_strides, padding, *, lhs_dilation=None, rhs_dilation=None,
                   dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` for a 2-D NHWC convolution, done by :func:`matmul_conv`
    when its output map has at most :data:`SMALL_MAP` positions (the same numbers up to float
    summation order, on every platform). bfloat16 inputs accumulate in float32."""
    restore = accumulation(lhs.dtype) is not None  # float32 sums, the input's type out
    if restore:
        kwargs["preferred_element_type"] = accumulation(lhs.dtype)
    plain = (lhs.ndim == 4 and feature_group_count == 1
             and all(d == 1 for d in (lhs_dilation or (1, 1)) + (rhs_dilation or (1, 1))))
    if plain:
        pads = (lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
                if isinstance(padding, str) else padding)
        out_hw = [(n + lo + hi - k) // s + 1 for n, (lo, hi), k, s
                  in zip(lhs.shape[1:3], pads, rhs.shape[:2], window_strides)]
        if out_hw[0] * out_hw[1] <= SMALL_MAP:
            padded = jnp.pad(lhs, ((0, 0), *pads, (0, 0)))
            return matmul_conv(padded, rhs, window_strides, "VALID", precision=precision)
    out = lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                   rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                   feature_group_count=feature_group_count, precision=precision,
                                   **kwargs)
    return out.astype(lhs.dtype) if restore else out


class ConvBlock(nnx.Module):
    """Convolution, batch normalisation, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1,
                 padding: str = "SAME", relu: bool = True, rngs: nnx.Rngs):
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding=padding,
                             use_bias=False, conv_general_dilated=small_map_conv, rngs=rngs)
        self.norm = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)
        self.relu = relu

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.norm(self.conv(x))
        return nnx.relu(x) if self.relu else x


class Conv(nnx.Module):
    """A plain convolution with bias (used for the class-score layers)."""

    def __init__(self, cin: int, cout: int, kernel: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), padding="SAME",
                             conv_general_dilated=small_map_conv, rngs=rngs)

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


# The geometry of one spatial axis of a layer (read by the incremental scorer's cone).
@dataclasses.dataclass(frozen=True)
class Axis:
    """One spatial axis of a convolution or pooling layer.

    Attributes:
      size: input length; kernel, stride: the layer's; lo, hi: padding before and after
      (XLA's SAME split, zero for VALID); out: output length.
    """

    size: int
    kernel: int
    stride: int
    lo: int
    hi: int
    out: int

    @classmethod
    def of(cls, size: int, kernel: int, stride: int, padding: str) -> "Axis":
        if padding == "SAME":
            out = -(-size // stride)
            total = max((out - 1) * stride + kernel - size, 0)
            return cls(size, kernel, stride, total // 2, total - total // 2, out)
        out = (size - kernel) // stride + 1
        return cls(size, kernel, stride, 0, 0, out)

    def window(self, n: int) -> int:
        """Outputs that a changed span of ``n`` inputs can reach (capped at the map)."""
        return min((n + self.kernel - 2) // self.stride + 1, self.out)

    def patch(self, w: int) -> int:
        """Inputs (in the padded map) that ``w`` consecutive outputs read."""
        return (w - 1) * self.stride + self.kernel

    def reach(self, a, b):
        """Outputs ``[a', b']`` reached by changed inputs ``[a, b]`` (JAX or Python ints),
        clipped to the map. Where a stride skips the span the range holds at most one output,
        which is then merely recomputed."""
        first = -((self.kernel - 1 - self.lo - a) // self.stride)  # ceil((a + lo - k + 1) / s)
        last = (b + self.lo) // self.stride
        return _clip(first, 0, self.out - 1), _clip(last, 0, self.out - 1)


def _clip(x, low, high):
    if isinstance(x, int):
        return min(max(x, low), high)
    return jnp.clip(x, low, high)
