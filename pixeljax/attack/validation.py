"""Checks on what users pass to the attack, each failing with a message that names the problem."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax.errors import PixeljaxError


def check_images(images, labels) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4:
        raise PixeljaxError(f"images must be a batch (N, H, W, C), got shape {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise PixeljaxError(f"images must be uint8 or float in [0, 255], got {images.dtype}")
    if np.issubdtype(images.dtype, np.floating) and images.size:
        lo, hi = float(np.min(images)), float(np.max(images))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
            raise PixeljaxError(f"pixel values must lie in [0, 255], got [{lo}, {hi}]; pass "
                                f"images in pixel space, not normalised")
        images = images.astype(np.float32, copy=False)  # JAX computes in float32 anyway
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise PixeljaxError(f"labels must be integers of shape ({images.shape[0]},), got "
                            f"{labels.dtype} {labels.shape}")
    return images, labels.astype(np.int32)


def check_model(apply: Callable, images: np.ndarray) -> int:
    """Returns the number of classes; the model must map (B, H, W, C) to (B, classes)."""
    probe = jax.ShapeDtypeStruct((2, *images.shape[1:]), jnp.float32)
    try:
        out = jax.eval_shape(apply, probe)
    except Exception as e:  # the user's function failed to trace on this input
        raise PixeljaxError(f"the model cannot be applied to images of shape "
                            f"{images.shape[1:]}: {type(e).__name__}: {e}") from None
    if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != 2:
        raise PixeljaxError(f"the model must return logits of shape (batch, classes), got "
                            f"{getattr(out, 'shape', type(out).__name__)} for a batch of 2")
    if out.shape[1] < 2:
        raise PixeljaxError(f"the model returns {out.shape[1]} class; need at least 2")
    return int(out.shape[1])


def check_logits(logits: np.ndarray) -> None:
    bad = ~np.isfinite(logits).all(axis=-1)
    if bad.any():
        raise PixeljaxError(f"the model returned NaN or infinite logits for "
                            f"{int(bad.sum())} image(s), e.g. image {int(np.flatnonzero(bad)[0])}")


def check_labels(labels: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise PixeljaxError(f"labels must lie in [0, {num_classes - 1}], got values from "
                            f"{labels.min()} to {labels.max()}")


def check_targets(targets: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.ndim == 0:
        targets = np.full(labels.shape, int(targets))
    if targets.shape != labels.shape or not np.issubdtype(targets.dtype, np.integer):
        raise PixeljaxError(f"targets must be integers of shape {labels.shape}, got "
                            f"{targets.dtype} {targets.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
        raise PixeljaxError(f"targets must lie in [0, {num_classes - 1}], got values from "
                            f"{targets.min()} to {targets.max()}")
    same = np.flatnonzero(targets == labels)
    if same.size:
        raise PixeljaxError(f"a target equals the true label (image {int(same[0])}, class "
                            f"{int(labels[same[0]])}); a targeted attack needs another class")
    return targets.astype(np.int32)


def check_image_ids(image_ids, n: int) -> np.ndarray:
    """The images' ids (default: positions); distinct, since each attack's id and random stream
    derive from them."""
    if image_ids is None:
        return np.arange(n)
    ids = np.asarray(image_ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
        raise PixeljaxError(f"image_ids must be {n} non-negative integers, got {ids.dtype} "
                            f"{ids.shape}")
    if len(np.unique(ids)) != n:
        raise PixeljaxError("image_ids must be distinct: two images with one id would share "
                            "their attacks' ids and results")
    return ids


def check_budget(pixels: int, popsize: int, maxiter: int, image_shape, *, slots: int,
                 batch_size: int, segment: int) -> None:
    h, w = image_shape[:2]
    for name, value, least in (("pixels", pixels, 1), ("popsize", popsize, 4),
                               ("maxiter", maxiter, 0), ("slots", slots, 1),
                               ("batch_size", batch_size, 1), ("segment", segment, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise PixeljaxError(f"{name} must be an integer >= {least}, got {value!r}")
    if pixels > h * w:
        raise PixeljaxError(f"pixels={pixels} is larger than the image ({h}x{w} = {h * w})")
