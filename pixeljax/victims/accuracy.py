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


def padded_batches(fn: Callable, arrays: tuple[np.ndarray, ...], batch_size: int, *,
                   progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """``fn(*chunks)`` over the rows of ``arrays`` (all of one length) in batches of exactly
    ``batch_size`` rows (the last one padded with zeros and its padding dropped), so a jitted
    ``fn`` compiles once and every row is computed by the same program whatever their
    number."""
    n, batch_size, out = len(arrays[0]), max(1, batch_size), []
    for start in range(0, n, batch_size):
        chunks = [np.asarray(a[start:start + batch_size]) for a in arrays]
        pad = batch_size - len(chunks[0])
        if pad:
            chunks = [np.concatenate([c, np.zeros((pad, *c.shape[1:]), c.dtype)])
                      for c in chunks]
        out.append(np.asarray(fn(*chunks))[:batch_size - pad])
        if progress is not None:
            progress(batch_size - pad)
    return out


def predict_logits(apply: Callable, params, images: np.ndarray, *, batch_size: int = 500,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Logits of ``apply(params, images)`` over ``images`` in fixed-size batches
    (:func:`padded_batches`)."""
    out = padded_batches(functools.partial(_logits, apply, params), (images,), batch_size,
                         progress=progress)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def accuracy(apply: Callable, params, images: np.ndarray, labels: np.ndarray, *,
             batch_size: int = 500) -> float:
    """Fraction of ``images`` whose top-1 class equals ``labels``."""
    if len(images) == 0:
        return float("nan")
    predictions = predict_logits(apply, params, images, batch_size=batch_size).argmax(-1)
    return float(np.mean(predictions == np.asarray(labels)))
