"""Local fixes to jaxonnxruntime 0.3.0's ops, in effect only while pixeljax translates a graph
(:func:`handlers`, :func:`translating`); the library itself is left as it is.

* ``Clip`` called ``jnp.clip(a_min=, a_max=)``, keywords that JAX 0.10 no longer takes (every
  ReLU6 and ``torch.clamp`` failed).
* ``MaxPool`` and ``AveragePool`` refused ``ceil_mode=1`` (PyTorch's ``ceil_mode=True``): it
  becomes extra end padding, the last window starting inside the input or its left padding,
  and an average over the window's elements inside the (explicitly padded) input, as
  onnxruntime and PyTorch compute it.
* Ops whose revisions in opsets 20 and 21 only add element types run as their previous
  revision (the library stops at the one before).
* ``Conv`` is computed channels-last (transposes around it): XLA's CPU convolutions of NCHW
  maps run about ten times slower inside the loops the engine scores in.
"""

from __future__ import annotations

import contextlib
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jaxonnxruntime.onnx_ops import averagepool, clip, conv, maxpool

TYPES_ONLY = {"Cast", "CastLike", "Constant", "ConstantOfShape", "Flatten", "Identity", "If",
              "Pad", "ReduceMax", "ReduceMin", "Reshape", "Shape", "Squeeze", "Transpose",
              "Unsqueeze"}


@jax.jit
def _clip(data, amin=None, amax=None):
    if amin is not None:
        data = jnp.maximum(data, amin)
    return data if amax is None else jnp.minimum(data, amax)


class Clip(clip.Clip):
    @classmethod
    def version_6(cls, node, inputs):
        cls._prepare_6(node, inputs, _clip)
        return _clip

    @classmethod
    def version_13(cls, node, inputs):
        return _clip


def _ceil_pads(node, inputs) -> None:
    """``ceil_mode=1`` as extra end padding (``node.attrs_dict`` after the library's
    ``_prepare``); the padding given is kept in ``attrs_dict["given_pads"]``."""
    attrs = node.attrs_dict
    if not attrs.get("ceil_mode"):
        return
    x = inputs[0]
    given = attrs["pads"]
    if isinstance(given, str):
        if given != "VALID":
            raise ValueError(f"{node.op_type} with ceil_mode=1 and auto_pad={given}")
        given = tuple((0, 0) for _ in range(x.ndim))
    pads = []
    for size, k, s, d, (lo, hi) in zip(x.shape, attrs["kernel_shape"], attrs["strides"],
                                       attrs["dilations"], given):
        span = (k - 1) * d + 1
        out = math.ceil((size + lo + hi - span) / s) + 1
        if (out - 1) * s >= size + lo:  # the last window must start inside
            out -= 1
        pads.append((lo, max(hi, (out - 1) * s + span - size - lo)))
    attrs.update(ceil_mode=0, pads=tuple(pads), given_pads=tuple(given))


class MaxPool(maxpool.MaxPool):
    @classmethod
    def _prepare(cls, node, inputs, onnx_jax_impl):
        super()._prepare(node, inputs, onnx_jax_impl)
        _ceil_pads(node, inputs)
        node.attrs_dict.pop("given_pads", None)  # -inf pads: the same in a window


@functools.partial(jax.jit, static_argnames=(
    "strides", "pads", "dilations", "kernel_shape", "count_include_pad", "given_pads"))
def _averagepool(x, *, strides, pads, dilations, kernel_shape, count_include_pad,
                 given_pads, ceil_mode=0):
    """Average over each window's elements inside the input (``count_include_pad``: inside
    the input with its ``given_pads``), never the ceil-mode extension."""
    del ceil_mode
    if count_include_pad:
        x = jnp.pad(x, given_pads)
        pads = tuple((0, hi - g) for (_, hi), (_, g) in zip(pads, given_pads))
    return averagepool.onnx_averagepool(x, ceil_mode=0, strides=strides, pads=pads,
                                        dilations=dilations, kernel_shape=kernel_shape,
                                        count_include_pad=0)


class AveragePool(averagepool.AveragePool):
    @classmethod
    def _prepare(cls, node, inputs, onnx_jax_impl):
        super()._prepare(node, inputs, onnx_jax_impl)
        _ceil_pads(node, inputs)

    @classmethod
    def version_19(cls, node, inputs):
        cls._prepare(node, inputs, None)
        return _averagepool if "given_pads" in node.attrs_dict else averagepool.onnx_averagepool

    version_1 = version_7 = version_11 = version_19


@functools.partial(jax.jit, static_argnames=("group", "kernel_shape", "pads", "strides",
                                             "dilations"))
def _conv(*inputs, group=1, kernel_shape=None, pads="VALID", strides=None, dilations=None):
    """A 2-D ONNX convolution computed channels-last (XLA's CPU convolutions of NCHW maps are
    many times slower inside loops, where the engine scores)."""
    del kernel_shape
    x, w, b = (*inputs, None)[:3]
    if x.ndim != 4:
        return conv.onnx_conv(*inputs, group=group, pads=pads, strides=strides,
                              dilations=dilations)
    out = lax.conv_general_dilated(
        jnp.transpose(x, (0, 2, 3, 1)), jnp.transpose(w, (2, 3, 1, 0)),
        window_strides=strides or (1, 1), padding=pads, rhs_dilation=dilations,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=group)
    if b is not None:
        out = out + b
    return jnp.transpose(out, (0, 3, 1, 2))


class Conv(conv.Conv):
    @classmethod
    def version_1(cls, node, inputs):
        cls._prepare(node, inputs, _conv)
        return _conv

    version_11 = version_1


FIXED = {"Clip": Clip, "MaxPool": MaxPool, "AveragePool": AveragePool, "Conv": Conv}


def handlers(opset, library) -> dict:
    """jaxonnxruntime's handlers for ``opset`` by domain and op, with the fixes above
    (``library``: ``jaxonnxruntime.call_onnx._get_all_handlers``)."""
    found = library(opset)
    ops = found.get("", {})
    for name, fixed in FIXED.items():
        if name in ops:
            ops[name] = type(name, (fixed,), {"SINCE_VERSION": ops[name].SINCE_VERSION})
    for name in TYPES_ONLY & set(ops):
        h = ops[name]
        if not hasattr(h, f"version_{h.SINCE_VERSION}"):
            older = [int(m[len("version_"):]) for m in dir(h) if m.startswith("version_")]
            older = [v for v in older if v < h.SINCE_VERSION]
            if older:
                ops[name] = type(name, (h,), {"SINCE_VERSION": max(older)})
    return found


@contextlib.contextmanager
def translating(call_onnx):
    """``call_onnx`` translating graphs with the fixed handlers."""
    library = call_onnx._get_all_handlers
    call_onnx._get_all_handlers = lambda opset: handlers(opset, library)
    try:
        yield
    finally:
        call_onnx._get_all_handlers = library

