"""Input defences: pure functions in front of a victim, so that an attack sees the whole defended
pipeline (a black-box attack on it is adaptive by construction).

A defence is named by one string, its parts applied left to right and joined by ``+``:

* ``median<k>``: a k x k median filter per channel (spatial smoothing; k odd, >= 3);
* ``gauss<k>``: k x k Gaussian smoothing per channel, sigma as OpenCV picks it for k
  (``0.3 * ((k - 1) / 2 - 1) + 0.8``; k odd, >= 3);
* ``bits<b>``: bit-depth reduction to b bits per channel (feature squeezing, Xu, Evans and Qi,
  NDSS 2018; b from 1 to 7).

Filters mirror the image at its borders (SciPy's ``reflect``, as ART's spatial smoothing).
A victim of the project's layers takes its defences as its own first steps
(``SequentialVictim.defences``), so it is still scored incrementally (a filter is a local step
with mirrored borders, bit-depth reduction a per-pixel one; :mod:`pixeljax.attack.cone`); any
other model is wrapped (:class:`Defended`) and scored densely. Results folders record the
defence (``config.json``), so a resume or an analysis uses the same pipeline.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixeljax.errors import PixeljaxError

KINDS = ("median", "gauss", "bits")
KNOWN = "median<k> and gauss<k> (k odd, >= 3), bits<b> (b from 1 to 7), joined by +"


@dataclasses.dataclass(frozen=True)
class Defence:
    """One part of a defence: ``kind`` (see :data:`KINDS`) and its number (filter size or
    bits)."""

    kind: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.kind}{self.size}"

    def __call__(self, images: jax.Array) -> jax.Array:
        """(N, H, W, C) pixel values -> the same, defended (float32)."""
        x = jnp.asarray(images, jnp.float32)
        if self.kind == "bits":
            levels = 2 ** self.size - 1
            return jnp.round(x / 255.0 * levels) * (255.0 / levels)
        return self._filter(_neighbourhood(x, self.size))

    def valid(self, patch: jax.Array) -> jax.Array:
        """A filter on a patch (N, h, w, C) without padding: (N, h - k + 1, w - k + 1, C), as
        incremental scoring recomputes a window (a per-pixel defence keeps the shape)."""
        x = jnp.asarray(patch, jnp.float32)
        if self.kind == "bits":
            return self(x)
        return self._filter(_neighbourhood(x, self.size, pad=False))

    @property
    def local(self) -> bool:
        """A filter over a k x k neighbourhood (else a per-pixel defence)."""
        return self.kind != "bits"

    def _filter(self, views: jax.Array) -> jax.Array:
        """The filter over the stacked neighbours (k * k, N, H, W, C)."""
        if self.kind == "median":
            return jnp.median(views, axis=0)
        weights = gaussian_weights(self.size)                     # (k * k,)
        return jnp.tensordot(weights, views, axes=1)


def gaussian_weights(k: int) -> np.ndarray:
    """The k x k Gaussian kernel, flattened row by row, summing to 1."""
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8
    g = np.exp(-((np.arange(k) - (k - 1) / 2) ** 2) / (2 * sigma ** 2))
    return (np.outer(g, g) / np.outer(g, g).sum()).reshape(-1).astype(np.float32)


def _neighbourhood(x: jax.Array, k: int, *, pad: bool = True) -> jax.Array:
    """The k x k neighbours of every pixel, the image mirrored at its borders (``pad``), or of
    every pixel at least k // 2 from them."""
    r = k // 2
    padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric") if pad else x
    h, w = padded.shape[1] - 2 * r, padded.shape[2] - 2 * r
    return jnp.stack([padded[:, i:i + h, j:j + w] for i in range(k) for j in range(k)])


def parse_defences(text: str, image_shape=None) -> tuple[Defence, ...]:
    """The parts of a defence string such as ``"bits5+median3"``; with ``image_shape``
    (H, W, C), filters must fit in the image.

    Raises:
      PixeljaxError: an unknown part (the known ones are listed), an even, zero or too large
        filter size, or bits outside 1 to 7.
    """
    if not isinstance(text, str) or not text.strip():
        raise PixeljaxError(f"--defence: expected {KNOWN}, got {text!r}")
    parts = []
    for part in text.split("+"):
        if not part.strip():
            raise PixeljaxError(f"--defence {text!r}: an empty part; expected {KNOWN}")
        found = re.fullmatch(r"([a-z]+)(0|[1-9][0-9]*)", part.strip())
        if not found or found[1] not in KINDS:
            raise PixeljaxError(f"--defence: unknown defence {part.strip()!r}; known: {KNOWN}")
        kind, size = found[1], int(found[2])
        if kind == "bits" and not 1 <= size <= 7:
            raise PixeljaxError(f"--defence {part}: bits must be from 1 to 7, got {size}")
        if kind != "bits":
            if size < 3 or size % 2 == 0:
                raise PixeljaxError(f"--defence {part}: the filter size must be odd and >= 3, "
                                    f"got {size}")
            if image_shape is not None and size > min(image_shape[:2]):
                raise PixeljaxError(f"--defence {part}: a {size} x {size} filter is larger "
                                    f"than the {image_shape[0]} x {image_shape[1]} images")
        parts.append(Defence(kind, size))
    return tuple(parts)


def defence_name(defences: tuple[Defence, ...]) -> str:
    """The canonical string of ``defences`` (as results record it)."""
    return "+".join(d.name for d in defences)


class Defended:
    """``apply(params, images)`` of a victim behind ``defences``; hashable, so jit reuses its
    programs across loads of one victim."""

    def __init__(self, apply, defences: tuple[Defence, ...]):
        self.apply, self.defences = apply, defences

    def __call__(self, params, images):
        for defence in self.defences:
            images = defence(images)
        return self.apply(params, images)

    def __hash__(self):
        return hash((self.apply, self.defences))

    def __eq__(self, other):
        return isinstance(other, Defended) and (self.apply, self.defences) == (
            other.apply, other.defences)


def defended(victim, text: str | None, image_shape=None):
    """``victim`` (a :class:`~pixeljax.checkpoint.LoadedVictim`) behind the defence ``text``
    (None: ``victim`` itself)."""
    from pixeljax.models import Forward, SequentialVictim, split_for_inference

    if text is None:
        return victim
    defences = parse_defences(text, image_shape)
    if isinstance(victim.apply, Forward) and isinstance(victim.model, SequentialVictim):
        # One network with the defences in front: scored incrementally, lowered to bfloat16.
        model = nnx.merge(*nnx.split(victim.model))
        model.defences = tuple(model.defences) + defences
        apply, params = split_for_inference(model)
        return dataclasses.replace(victim, model=model, apply=apply, params=params)
    return dataclasses.replace(victim, apply=Defended(victim.apply, defences))


__all__ = ["Defence", "Defended", "KINDS", "defence_name", "defended", "gaussian_weights",
           "parse_defences"]
