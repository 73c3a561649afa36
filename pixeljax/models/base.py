"""The shared shape of every victim: named layers applied in order.

A victim is a sequence of named layers. ``model(images)`` returns logits; ``model.activations``
returns the output of every layer in order (input first, logits last), which the propagation-map
analysis needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from pixeljax.models.layers import normalize


class SequentialVictim(nnx.Module):
    """Named layers applied in order to normalised pixel-space images.

    ``defences`` (static, default none): input defences (:class:`pixeljax.victims.defences.Defence`)
    applied to the pixel-space images first, so a defended victim is still one network (and
    is scored incrementally like the others).
    """

    def __init__(self, layers: Sequence[tuple[str, nnx.Module]], *, num_classes: int = 10):
        self.layer_names = tuple(name for name, _ in layers)
        self.layers = nnx.List([layer for _, layer in layers])
        self.num_classes = num_classes
        self.defences = ()

    def _defended(self, images: jax.Array) -> jax.Array:
        for defence in getattr(self, "defences", ()):
            images = defence(images)
        return images

    def __call__(self, images: jax.Array) -> jax.Array:
        x = normalize(self._defended(images))
        for layer in self.layers:
            x = layer(x)
        return x

    def activations(self, images: jax.Array) -> list[tuple[str, jax.Array]]:
        """Returns ``[(name, output)]`` for the input and every layer, logits last."""
        x = normalize(self._defended(images))
        out = [("input", jax.numpy.asarray(images, jax.numpy.float32))]
        for name, layer in zip(self.layer_names, self.layers):
            x = layer(x)
            out.append((name, x))
        return out
