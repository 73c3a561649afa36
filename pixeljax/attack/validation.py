"""Checks on what users pass to the attack, each failing with a message that names the problem."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax._plumbing.settings import is_int
from pixeljax.attack.scoring import victim_module
from pixeljax.data.arrays import default_class_names
from pixeljax.errors import PixeljaxError
from pixeljax.models import user


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
        if 0 < hi <= 1:
            warnings.warn(f"the float images lie in [{lo}, {hi}]: pixeljax expects pixel values "
                          f"in [0, 255], so these are near-black images; multiply by 255 or "
                          f"pass uint8", UserWarning, stacklevel=3)
        images = images.astype(np.float32, copy=False)  # JAX computes in float32 anyway
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise PixeljaxError(f"labels must be integers of shape ({images.shape[0]},), got "
                            f"{labels.dtype} {labels.shape}")
    big = np.iinfo(np.int32)
    if labels.size and (labels.min() < 0 or labels.max() > big.max):
        # checked before the cast, which would wrap them into valid classes
        raise PixeljaxError(f"labels must be classes >= 0, got values from {labels.min()} to "
                            f"{labels.max()}")
    return images, labels.astype(np.int32)


def check_model(apply: Callable, images: np.ndarray) -> int:
    """Returns the number of classes; the model must map (B, H, W, C) to (B, classes)."""
    probe = jax.ShapeDtypeStruct((2, *images.shape[1:]), jnp.float32)
    try:
        out = jax.eval_shape(apply, probe)
    except Exception as e:  # the user's function failed to trace on this input
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PixeljaxError(f"the model cannot be applied to images of shape "
                            f"{images.shape[1:]}: {type(e).__name__}: {text[:300]}") from None
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
    if targets.dtype == bool:
        raise PixeljaxError(f"targets must be None, 'all' or integer classes, got booleans "
                            f"{targets!r}")
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


def check_image_ids(image_ids, n: int, num_classes: int = 1) -> np.ndarray:
    """The images' ids (default: positions); distinct, since each attack's id and random stream
    derive from them, and small enough that every attack id (``id * num_classes + class``)
    fits the engine's int32."""
    if image_ids is None:
        return np.arange(n)
    ids = np.asarray(image_ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
        raise PixeljaxError(f"image_ids must be {n} non-negative integers, got {ids.dtype} "
                            f"{ids.shape}")
    if len(np.unique(ids)) != n:
        raise PixeljaxError("image_ids must be distinct: two images with one id would share "
                            "their attacks' ids and results")
    largest = (np.iinfo(np.int32).max - num_classes) // max(num_classes, 1)
    if n and int(ids.max()) > largest:
        raise PixeljaxError(f"image_ids must be at most {largest:,} for a {num_classes}-class "
                            f"victim (attack ids are image_id x classes + class, int32), got "
                            f"{int(ids.max()):,}")
    return ids


def check_key(key) -> None:
    """A JAX PRNG key: a typed key (``jax.random.key(seed)``) or legacy uint32 key data
    (``jax.random.PRNGKey(seed)``)."""
    how = "make one with jax.random.key(seed), e.g. key=jax.random.key(0)"
    dtype = getattr(key, "dtype", None)
    if dtype is None or not hasattr(key, "shape"):
        raise PixeljaxError(f"key must be a JAX PRNG key array, got {type(key).__name__} "
                            f"{key!r}; {how}")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise PixeljaxError(f"key must be one PRNG key, got an array of keys of shape "
                                f"{key.shape}; {how}")
        return
    legacy = jax.random.key_data(jax.random.key(0)).shape
    if dtype != np.uint32 or key.shape != legacy:
        raise PixeljaxError(f"key must be a JAX PRNG key array (a typed key, or uint32 key data "
                            f"of shape {legacy}), got {dtype} of shape {key.shape}; {how}")


def check_devices(devices) -> None:
    """None, a count or a sequence of devices (which ``mesh.local_devices`` checks further)."""
    if devices is None or is_int(devices):
        return
    if isinstance(devices, (bool, np.bool_, str, bytes)) or not hasattr(devices, "__iter__"):
        raise PixeljaxError(f"devices must be None, a number of devices or a sequence of "
                            f"devices, got {devices!r}")


def victim_image_shape(model, metadata: dict | None = None) -> tuple[int, int, int] | None:
    """The (height, width, channels) of the images a victim takes: ``image_shape`` in its
    checkpoint's metadata or on the model (every registered victim declares one, see
    :func:`pixeljax.models.create_model`); None when neither declares a size, and the model
    then takes what it can."""
    shape = (metadata or {}).get("image_shape") or getattr(model, "image_shape", None)
    return tuple(int(d) for d in shape) if shape else None


def check_victim_fits(victim, images_shape, what: str) -> int:
    """The images ``what`` names fit a loaded victim: the size it declares, one input-scale
    mean and std per channel, and a model that runs on them (traced, not computed). Returns the
    number of classes."""
    images_shape = tuple(int(d) for d in images_shape)
    check_image_shape(images_shape, victim_image_shape(victim.model, victim.metadata), what)
    user.check_scale_channels(victim.metadata.get("input_scale"), images_shape[-1],
                              f"{victim.name}: {what}")
    try:
        return check_model(victim.predict, np.zeros((0, *images_shape), np.float32))
    except PixeljaxError as e:
        raise PixeljaxError(f"{victim.name}: {what}: {e}") from None


def check_class_names(num_classes: int, data, what: str) -> None:
    """The class names ``data`` gives (not the defaults of bare labels) are one per class of
    the model: tables and figures name the model's classes by them."""
    names = data.class_names
    if len(names) != num_classes and names != default_class_names(data.y):
        raise PixeljaxError(f"{what} names {len(names)} classes ({', '.join(names[:3])}, ...), "
                            f"but the model has {num_classes}; give data of the model's "
                            f"classes")


def check_victim_shape(predict, images_shape, what: str) -> None:
    """Images of the size a victim's ``predict`` (``LoadedVictim.predict``) takes; a plain
    function is the caller's to check."""
    module = victim_module(predict)
    if module is not None:
        check_image_shape(images_shape, victim_image_shape(module), what)


def check_image_shape(images_shape, expected, what: str) -> None:
    """Images of the height, width and channels the network takes (a fully convolutional
    network runs on any size, but what it computes on other images means nothing); ``expected``
    None: the model declares no size."""
    if expected is None:
        return
    expected, got = tuple(int(d) for d in expected), tuple(int(d) for d in images_shape)
    if got != expected:
        h, w, c = expected
        raise PixeljaxError(f"{what} has images of shape {got} (height, width, channels), but "
                            f"the network takes {h}x{w} images with {c} channel"
                            f"{'s' if c != 1 else ''} {expected}")