"""The standard CIFAR augmentation: random crop with zero padding, random horizontal flip."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def augment(key: jax.Array, images: jax.Array, *, padding: int, flip: bool) -> jax.Array:
    """Augments a batch of NHWC images (any dtype); returns float32 in pixel space."""
    images = jnp.asarray(images, jnp.float32)
    n, h, w, _ = images.shape
    crop_key, flip_key = jax.random.split(key)
    if padding:
        padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * padding + 1)

        def crop(img, off):
            return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

        images = jax.vmap(crop)(padded, offsets)
    if flip:
        mirror = jax.random.bernoulli(flip_key, 0.5, (n,))
        images = jnp.where(mirror[:, None, None, None], images[:, :, ::-1], images)
    return images
