"""One-pixel adversarial training: part of each batch replaced by one-pixel adversarial versions
of its images, found on the fly against the weights being trained.

Two ways to find them (``TrainConfig.adversarial``):

* ``"random"``: a cheap baseline; one random pixel of each image set to a random corner of the
  colour cube (the sweep's colours);
* ``"de"``: the project's compiled attack (:func:`pixeljax.attack.pixel_attack`), a few DE
  generations against the current weights in eval mode (non-targeted; an image the network
  already misclassifies is kept as it is).

Both are pure functions of (seed, step), so a resumed run trains on the same images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax.attack.perturb import apply_candidates

RANDOM, DE = "random", "de"
KINDS = (RANDOM, DE)


def random_pixels(key: jax.Array, images: jax.Array) -> jax.Array:
    """``images`` (N, H, W, C) with one random pixel of each set to a random corner colour."""
    n, h, w, c = images.shape
    kx, ky, kc = jax.random.split(key, 3)
    x = jax.random.randint(kx, (n, 1), 0, w).astype(jnp.float32)
    y = jax.random.randint(ky, (n, 1), 0, h).astype(jnp.float32)
    colour = 255.0 * jax.random.bernoulli(kc, 0.5, (n, c)).astype(jnp.float32)
    return apply_candidates(images, jnp.concatenate([x, y, colour], axis=1))


def de_pixels(predict, images: np.ndarray, labels: np.ndarray, key: jax.Array, *,
              popsize: int, generations: int) -> np.ndarray:
    """``images`` with each one's one-pixel adversarial version as a short DE run against
    ``predict`` finds it (its best candidate even when it does not fool the network yet: the
    hardest one-pixel change found)."""
    from pixeljax.attack import pixel_attack

    result = pixel_attack(predict, images, labels, key=key, popsize=popsize,
                          maxiter=generations, first=True, true_threshold=0.0)
    return np.asarray(result.adversarial, np.float32)


def adversarial_batch(kind: str, key: jax.Array, images, labels, count: int, predict=None, *,
                      popsize: int = 20, generations: int = 5):
    """The batch with its first ``count`` images replaced by one-pixel adversarial versions
    (``kind``: see the module docstring; ``predict``: the network for ``"de"``)."""
    if count == 0:
        return images
    if kind == RANDOM:
        changed = random_pixels(key, jnp.asarray(images[:count], jnp.float32))
    else:
        changed = de_pixels(predict, np.asarray(images[:count]), np.asarray(labels[:count]),
                            key, popsize=popsize, generations=generations)
    return jnp.concatenate([jnp.asarray(changed, jnp.float32),
                            jnp.asarray(images[count:], jnp.float32)])
