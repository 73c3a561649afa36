"""Batched, compiled classification of many images: logits, predictions and accuracy."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnums=0)
def _logits(apply, params, images):
    return apply(params, images).astype(jnp.float32)


def predict_logits(apply: Callable, params, images: np.ndarray, *, batch_size: int = 500,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Logits of ``apply(params, images)`` over ``images`` in fixed-size batches.

    Every batch has ``batch_size`` images (the last one padded), so the program compiles once
    and every image is scored by the same program whatever the number of images.
    """
    n = len(images)
    batch_size = max(1, batch_size)
    out = []
    for start in range(0, n, batch_size):
        chunk = np.asarray(images[start:start + batch_size])
        pad = batch_size - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(_logits(apply, params, chunk))[:batch_size - pad])
        if progress is not None:
            progress(batch_size - pad)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def accuracy(apply: Callable, params, images: np.ndarray, labels: np.ndarray, *,
             batch_size: int = 500) -> float:
    """Fraction of ``images`` whose top-1 class equals ``labels``."""
    if len(images) == 0:
        return float("nan")
    predictions = predict_logits(apply, params, images, batch_size=batch_size).argmax(-1)
    return float(np.mean(predictions == np.asarray(labels)))
