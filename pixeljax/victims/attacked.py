"""The victim as an attack sees it, built one way for every command, suite cell and analysis:
an ONNX graph fitted to the images' size (a chain CNN becomes the project's layers, scored
incrementally), probability outputs detected, and the defence put in front."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pixeljax.victims.checkpoint import with_detected_outputs
from pixeljax.victims.defences import defended
from pixeljax.victims.loaded import LoadedVictim
from pixeljax.victims.onnx import OnnxModel, fitted


def as_attacked(victim: LoadedVictim, images: np.ndarray, *, defence: str | None = None,
                check: Callable[[LoadedVictim], object] | None = None,
                translate: bool = True) -> LoadedVictim:
    """``victim`` ready to attack ``images`` (some of the data attacked: their size fits an ONNX
    graph, and their scores tell logits from probabilities) behind ``defence`` (a defence's
    name, or None). ``check(victim)`` runs once the victim has its final size, before its
    outputs are probed (the command line's check that the model fits the data).
    ``translate=False`` keeps an ONNX graph as it is, its nodes named as in the file (the
    analyses show them)."""
    if translate and isinstance(victim.model, OnnxModel):
        victim = fitted(victim, images.shape[1:])
    if check is not None:
        check(victim)
    return defended(with_detected_outputs(victim, images), defence)
