"""What a candidate of the engine's DE is: the pixel attack's or the threshold attack's.

* :class:`PixelEncoding`: ``pixels`` tuples (x, y, colour...) (Su, Vargas, Sakurai, arXiv
  1710.08864), searched in the image's box, initialised as the paper does.
* :class:`ThresholdEncoding`: a change of every pixel value bounded by ``th`` on the 0-255
  scale, the L-infinity attack of Kotyan & Vargas ("Adversarial robustness assessment: why in
  evaluation both L0 and L-infinity attacks are necessary", arXiv 1906.06026); searched in
  ``[-th, th]`` per value, initialised uniformly there. It is applied rounded to integers and
  clipped to [0, 255], so every adversarial image is a uint8 image. ``th`` is data (the
  engine's :class:`~pixeljax.attack.generation.AttackParams`): levels share one program.

Both are frozen and hashable, a static part of the engine's configuration.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax.attack import perturb


def pixel_bounds(image_shape: tuple[int, int, int], pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Box bounds of a candidate: x in [0, W), y in [0, H), colours in [0, 255]."""
    h, w, c = image_shape
    eps = 1e-3
    lower = np.zeros((pixels, 2 + c), np.float32)
    upper = np.concatenate([np.full((pixels, 1), w - eps), np.full((pixels, 1), h - eps),
                            np.full((pixels, c), 255.0)], axis=1).astype(np.float32)
    return lower.reshape(-1), upper.reshape(-1)


def pixel_initial_population(key: jax.Array, image_shape: tuple[int, int, int], pixels: int,
                       popsize: int) -> jax.Array:
    """The paper's initialisation: x, y uniform over the image, colours N(128, 127) clipped."""
    h, w, c = image_shape
    kx, ky, kc = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (popsize, pixels, 1), maxval=w - 1e-3)
    y = jax.random.uniform(ky, (popsize, pixels, 1), maxval=h - 1e-3)
    colour = jnp.clip(128.0 + 127.0 * jax.random.normal(kc, (popsize, pixels, c)), 0.0, 255.0)
    return jnp.concatenate([x, y, colour], axis=-1).reshape(popsize, -1)


@dataclasses.dataclass(frozen=True)
class PixelEncoding:
    """``pixels`` changed pixels, each (x, y, colour...)."""

    pixels: int = 1
    kind = "pixel"
    apply = staticmethod(perturb.apply_candidates)  # (N, H, W, C), (N, D) -> (N, H, W, C)

    def size(self, image_shape) -> int:
        return self.pixels * (2 + image_shape[-1])

    def bounds(self, image_shape, threshold):
        return pixel_bounds(image_shape, self.pixels)

    def initial_population(self, key, image_shape, popsize: int, threshold) -> jax.Array:
        return pixel_initial_population(key, image_shape, self.pixels, popsize)

    def canonical(self, candidate: jax.Array, image_shape) -> jax.Array:
        return perturb.canonical(candidate, image_shape)

    def result_fields(self, canonical: np.ndarray, image_shape) -> dict:
        """:class:`~pixeljax.runs.attack_result.AttackResult` fields of (n, D) canonical
        candidates."""
        return {"perturbation": np.asarray(canonical).reshape(len(canonical), self.pixels,
                                                              2 + image_shape[-1])}


@dataclasses.dataclass(frozen=True)
class ThresholdEncoding:
    """A change of every pixel value, within ``[-th, th]`` (``th`` given as data)."""

    kind = "threshold"
    apply = staticmethod(perturb.apply_changes)

    def size(self, image_shape) -> int:
        return int(np.prod(image_shape))

    def bounds(self, image_shape, threshold):
        th = jnp.full((self.size(image_shape),), threshold, jnp.float32)
        return -th, th

    def initial_population(self, key, image_shape, popsize: int, threshold) -> jax.Array:
        """Uniform in ``[-th, th]`` per value (SciPy's DE, which the authors and ART run,
        starts uniformly in the box too)."""
        return jax.random.uniform(key, (popsize, self.size(image_shape)), minval=-threshold,
                                  maxval=threshold)

    def canonical(self, candidate: jax.Array, image_shape) -> jax.Array:
        """The change as applied before clipping: integers in [-th, th]."""
        return jnp.round(candidate)

    def result_fields(self, canonical: np.ndarray, image_shape) -> dict:
        n, c = len(canonical), image_shape[-1]
        return {"perturbation": np.zeros((n, 0, 2 + c), np.float32),
                "delta": np.asarray(canonical).reshape(n, *image_shape).astype(np.int16)}


def encoding_of(pixels: int, threshold: bool):
    """The pixel attack's encoding of ``pixels`` pixels, or (``threshold``) the threshold
    attack's."""
    return ThresholdEncoding() if threshold else PixelEncoding(pixels)
