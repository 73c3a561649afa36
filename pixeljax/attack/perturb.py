"""Candidates as applied to images. The pixel attack's: ``pixels`` tuples (x, y, c_1, ..., c_C);
the threshold attack's: a change of every pixel value (:func:`apply_change`); and the adversarial
images of stored results (:func:`adversarial_images`).

x is the column and y the row; both are continuous during the search and floored when applied.
Colours are clipped to [0, 255] and rounded, so every adversarial image is a genuine uint8 image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def decode(candidate: jax.Array, image_shape: tuple[int, int, int]):
    """Splits ``(..., pixels * (2 + C))`` candidates into integer rows, columns and colours.

    Returns:
      ``(rows, cols, colours)`` of shapes ``(..., pixels)``, ``(..., pixels)`` and
      ``(..., pixels, C)``; rows and columns are int32 inside the image, colours float32
      integers in [0, 255].
    """
    h, w, c = image_shape
    genes = candidate.reshape(*candidate.shape[:-1], -1, 2 + c)
    cols = jnp.clip(jnp.floor(genes[..., 0]), 0, w - 1).astype(jnp.int32)
    rows = jnp.clip(jnp.floor(genes[..., 1]), 0, h - 1).astype(jnp.int32)
    colours = jnp.round(jnp.clip(genes[..., 2:], 0.0, 255.0))
    return rows, cols, colours


def apply_candidate(image: jax.Array, candidate: jax.Array) -> jax.Array:
    """Writes one candidate's pixels into one (H, W, C) image; returns float32 pixel values."""
    rows, cols, colours = decode(candidate, image.shape)
    return jnp.asarray(image, jnp.float32).at[rows, cols].set(colours)


def canonical(candidate: jax.Array, image_shape: tuple[int, int, int]) -> jax.Array:
    """The candidate as applied: integer coordinates and clipped, rounded colours."""
    rows, cols, colours = decode(candidate, image_shape)
    genes = jnp.concatenate([cols[..., None].astype(jnp.float32),
                             rows[..., None].astype(jnp.float32), colours], axis=-1)
    return genes.reshape(candidate.shape)


apply_candidates = jax.jit(jax.vmap(apply_candidate))  # (N, H, W, C), (N, D) -> (N, H, W, C)


def apply_change(image: jax.Array, candidate: jax.Array) -> jax.Array:
    """Adds a threshold candidate, rounded to integers, to every pixel value of one (H, W, C)
    image, clipped to [0, 255]; returns float32 pixel values."""
    change = jnp.round(candidate).reshape(image.shape)
    return jnp.clip(jnp.asarray(image, jnp.float32) + change, 0.0, 255.0)


apply_changes = jax.jit(jax.vmap(apply_change))  # (N, H, W, C), (N, H*W*C) -> (N, H, W, C)


def applied(result):
    """``(candidates, apply)`` of an :class:`~pixeljax.runs.attack_result.AttackResult`: its
    perturbations and the jitted ``apply(images, candidates)`` that makes their adversarial
    images."""
    if result.threshold:
        return result.delta.reshape(len(result), -1).astype(np.float32), apply_changes
    return result.candidates, apply_candidates


def adversarial_images(result, images: np.ndarray) -> np.ndarray:
    """(A, H, W, C) float32 adversarial images of a result's attacks on their clean ``images``,
    as applied (whole numbers in [0, 255] for uint8 images)."""
    if not len(result):
        return np.asarray(images, np.float32)
    candidates, apply = applied(result)
    return np.asarray(apply(images, candidates))
