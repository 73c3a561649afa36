"""Victims from outside JAX: a trained classifier from any framework, exchanged as ONNX
(:mod:`pixeljax.victims.onnx`). Importing this package imports no ONNX library; that happens
when a model is loaded (the ``pixeljax[onnx]`` extra)."""

from pixeljax.victims.onnx import LAYOUTS, is_onnx, load_onnx

__all__ = ["LAYOUTS", "is_onnx", "load_onnx"]
