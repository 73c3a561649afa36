"""The victim, as attacked: shipped and exported checkpoints and user models
(:mod:`.checkpoint`, :mod:`.checkpoint_ref`), input defences in front of it (:mod:`.defences`),
its batched predictions (:mod:`.accuracy`), and classifiers from any framework exchanged as ONNX
(:mod:`.onnx`). Importing this package imports no ONNX library; that happens when a model is
loaded (the ``pixeljax[onnx]`` extra)."""

from pixeljax.victims.onnx import LAYOUTS, is_onnx, load_onnx

__all__ = ["LAYOUTS", "is_onnx", "load_onnx"]
