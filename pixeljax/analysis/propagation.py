"""Propagation maps: how far a few changed pixels reach into every layer of a network.

Vargas & Su, "Understanding the One-Pixel Attack: Propagation Maps and Locality Analysis",
arXiv 1902.02947. For layer l with clean feature map F_l(x) and adversarial one F_l(x'), the
propagation map at each position is the element-wise difference |F_l(x) - F_l(x')| reduced over
channels by mean (PM_avg) or max (PM_max), divided by the maximum of the clean layer
(max |F_l(x)| over all its positions and channels; 1 where the clean layer is all zeros).

Any model that exposes its intermediates works: a :class:`~pixeljax.models.SequentialVictim`
(its ``activations``), a loaded :class:`~pixeljax.victims.loaded.LoadedVictim`, or any callable
``activations(images) -> [(name, array)]`` whose arrays are ``(N, H, W, C)`` feature maps or
``(N, C)`` vectors (a vector is one position with C channels, a ``(1, 1)`` map).

Example:
    >>> from pixeljax.models import create_model
    >>> image = np.zeros((32, 32, 3), np.uint8)
    >>> maps = propagation_maps(create_model("tiny"), image, np.array([5., 7., 255., 0., 0.]))
    >>> maps.names[:2], maps.mean[1].shape
    (('input', 'conv1'), (32, 32))
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixeljax.attack.perturb import apply_candidates, decode
from pixeljax.errors import PixeljaxError

Activations = Callable[[jax.Array], Sequence[tuple[str, jax.Array]]]

# A position counts as changed when its largest relative difference exceeds this (float noise
# of a different batch composition or kernel stays far below it).
CHANGED_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class PropagationMaps:
    """Relative propagation maps of one or many attacks, one entry per layer, input first.

    Attributes:
      names: layer names in the model's order (``"input"`` first, logits last).
      mean: per layer, ``(..., h, w)`` PM_avg divided by the clean layer's maximum.
      max: per layer, ``(..., h, w)`` PM_max divided by the clean layer's maximum.

    The leading dimensions are empty for one attack and ``(N,)`` for a batch of N.
    """

    names: tuple[str, ...]
    mean: tuple[np.ndarray, ...]
    max: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return self.mean[0].shape[0] if self.mean[0].ndim == 3 else 1

    def attack(self, i: int) -> "PropagationMaps":
        """The maps of the ``i``-th attack of a batch."""
        return PropagationMaps(self.names, tuple(m[i] for m in self.mean),
                               tuple(m[i] for m in self.max))

    def take(self, selection) -> "PropagationMaps":
        """The maps of the attacks at ``selection`` (indices or a boolean mask)."""
        return PropagationMaps(self.names, tuple(m[selection] for m in self.mean),
                               tuple(m[selection] for m in self.max))

    def statistics(self) -> list[dict]:
        """Per layer (and per attack for a batch): mean and max relative difference and the
        fraction of positions that changed.

        Returns:
          One dict per layer with ``layer``, ``height``, ``width`` and arrays (or floats for a
          single attack) ``mean_rel_diff`` (mean of |dF| / max F over all elements),
          ``max_rel_diff`` (largest element) and ``changed_fraction``.
        """
        out = []
        for name, mean, peak in zip(self.names, self.mean, self.max):
            out.append({"layer": name, "height": mean.shape[-2], "width": mean.shape[-1],
                        "mean_rel_diff": mean.mean(axis=(-2, -1)),
                        "max_rel_diff": peak.max(axis=(-2, -1)),
                        "changed_fraction": (peak > CHANGED_TOLERANCE).mean(axis=(-2, -1))})
        return out


@functools.cache
def _merged_activations(graphdef: nnx.GraphDef) -> Callable:
    """``activations(params, images)`` of one architecture, one function per graph definition,
    so every model of that architecture reuses the compiled programs."""

    def activations(params, images):
        return nnx.merge(graphdef, params).activations(images)

    return activations


def as_activations(model) -> Activations:
    """``activations(images) -> [(name, array)]`` for a victim, an NNX model or a callable.

    NNX modules are split into a graph and weights (as :func:`pixeljax.models.split_activations`
    does), so the weights are passed to the compiled program as arguments rather than baked into
    it as constants, and models of one architecture share compiled programs. A module is
    switched to eval mode (batch-norm running statistics), as every analysis of a trained
    victim needs.
    """
    module = getattr(model, "model", model)  # a LoadedVictim holds its module
    if isinstance(getattr(model, "__self__", None), nnx.Module) and \
            getattr(model, "__name__", "") == "activations":
        module = model.__self__  # a bound model.activations: split the module too
    if isinstance(module, nnx.Module):
        if not callable(getattr(module, "activations", None)):
            raise PixeljaxError(f"{type(module).__name__} exposes no activations(images); pass "
                                f"a callable activations(images) -> [(name, array)] instead")
        module.eval()
        graphdef, params = nnx.split(module)
        return jax.tree_util.Partial(_merged_activations(graphdef), params)
    if hasattr(module, "activations_of") and hasattr(model, "params"):  # an ONNX victim
        return module.activations_of(model.params)
    if isinstance(model, jax.tree_util.Partial):
        return model
    if callable(model):
        return jax.tree_util.Partial(model)
    if module is not model:  # a loaded victim of a plain function or a Linen module
        raise PixeljaxError(f"{getattr(model, 'name', module)} exposes no layers, only its "
                            f"output (a plain predict function or a Linen module): propagation "
                            f"maps need a network with activations(images), such as a "
                            f"SequentialVictim")
    raise PixeljaxError(f"expected a model with activations() or a callable "
                        f"activations(images) -> [(name, array)], got {type(model).__name__}")


def layer_names(activations: Activations, image_shape: tuple[int, int, int]) -> tuple[str, ...]:
    """The names a model (see :func:`as_activations`) gives its layers, found by an abstract
    (free) evaluation on one image of ``image_shape``."""
    activations = as_activations(activations)
    names: list[str] = []

    def arrays_only(activations, images):
        pairs = list(activations(images))
        names.extend(str(name) for name, _ in pairs)  # recorded while tracing
        return [a for _, a in pairs]

    jax.eval_shape(arrays_only, activations,
                   jax.ShapeDtypeStruct((1, *tuple(image_shape)), jnp.float32))
    if not names:
        raise PixeljaxError("activations(images) returned no layers")
    return tuple(names)


def _as_positions(name: str, a: jax.Array) -> jax.Array:
    """A layer output as ``(N, h, w, C)``: vectors are one position, sequences one row."""
    if a.ndim == 2:
        return a[:, None, None, :]
    if a.ndim == 3:
        return a[:, None, :, :]
    if a.ndim == 4:
        return a
    raise PixeljaxError(f"layer {name!r} has output shape {a.shape}; expected (N, C), (N, L, C) "
                        f"or (N, H, W, C)")


def relative_maps(clean: jax.Array, adversarial: jax.Array) -> tuple[jax.Array, jax.Array]:
    """PM_avg and PM_max of one layer, relative to the clean layer's maximum.

    Args:
      clean, adversarial: ``(N, h, w, C)`` feature maps of the clean and adversarial images.

    Returns:
      ``(mean_map, max_map)``, each ``(N, h, w)``.
    """
    diff = jnp.abs(adversarial.astype(jnp.float32) - clean.astype(jnp.float32))
    scale = jnp.max(jnp.abs(clean.astype(jnp.float32)), axis=(1, 2, 3))  # (N,)
    scale = jnp.where(scale > 0, scale, 1.0)[:, None, None]
    return diff.mean(-1) / scale, diff.max(-1) / scale


@jax.jit
def layer_maps(activations: Activations, clean: jax.Array, adversarial: jax.Array):
    """Relative PM_avg and PM_max of every layer, compiled.

    Args:
      activations: a pytree callable (``jax.tree_util.Partial``, see :func:`as_activations`).
      clean, adversarial: (B, H, W, C) images in pixel space.

    Returns:
      Per layer, ``(mean_map, max_map)``, each (B, h, w).
    """
    # Two calls of one shape, not one batch of both: a convolution's rounding can depend on the
    # image's place in its batch, which would show untouched positions as changed.
    out = []
    for (name, a), (_, b) in zip(activations(clean.astype(jnp.float32)),
                                 activations(adversarial.astype(jnp.float32))):
        out.append(relative_maps(_as_positions(name, a), _as_positions(name, b)))
    return out


def adversarial_images(images: np.ndarray, perturbations: np.ndarray) -> np.ndarray:
    """The adversarial images: ``perturbations`` are candidates ``(N, pixels * (2 + C))`` or
    already the adversarial images ``(N, H, W, C)``."""
    images = np.asarray(images)
    perturbations = np.asarray(perturbations)
    if perturbations.shape == images.shape:
        return perturbations.astype(np.float32)
    c = images.shape[-1]
    if perturbations.ndim != 2 or len(perturbations) != len(images) or \
            perturbations.shape[1] == 0 or perturbations.shape[1] % (2 + c):
        raise PixeljaxError(f"perturbations must be candidates (N, pixels * {2 + c}) or images "
                            f"{images.shape}; got shape {perturbations.shape}")
    return np.asarray(apply_candidates(jnp.asarray(images),
                                       jnp.asarray(perturbations, jnp.float32)))


def batch_propagation_maps(model, images: np.ndarray, perturbations: np.ndarray, *,
                           batch_size: int = 32) -> PropagationMaps:
    """Propagation maps of many attacks, computed in fixed-size compiled batches.

    Args:
      model: a victim, an NNX model with ``activations`` or a callable
        ``activations(images) -> [(name, array)]`` (images in pixel space, [0, 255]).
      images: ``(N, H, W, C)`` clean images.
      perturbations: ``(N, pixels * (2 + C))`` candidates ``[x0, y0, r0, g0, b0, x1, ...]``,
        or the ``(N, H, W, C)`` adversarial images.
      batch_size: attacks per compiled call; the last batch is padded, so one shape compiles.

    Returns:
      :class:`PropagationMaps` with ``(N, h, w)`` arrays.

    Raises:
      PixeljaxError: no images, mismatched shapes, or a model without activations.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise PixeljaxError(f"images must be a non-empty (N, H, W, C) batch, got {images.shape}")
    activations = as_activations(model)
    names = layer_names(activations, images.shape[1:])
    adversarial = adversarial_images(images, perturbations)
    n, batch_size = len(images), max(1, min(batch_size, len(images)))
    means, peaks = [], []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n  # pad by wrapping round
        maps = layer_maps(activations, images[idx], adversarial[idx])
        keep = min(batch_size, n - start)
        means.append([np.asarray(m)[:keep] for m, _ in maps])
        peaks.append([np.asarray(p)[:keep] for _, p in maps])
    return PropagationMaps(names, tuple(np.concatenate(layer) for layer in zip(*means)),
                           tuple(np.concatenate(layer) for layer in zip(*peaks)))


def propagation_maps(model, image: np.ndarray, perturbation: np.ndarray) -> PropagationMaps:
    """Propagation maps of one attack, for every layer from input to logits.

    Args:
      model: a victim, an NNX model with ``activations`` or a callable
        ``activations(images) -> [(name, array)]``.
      image: ``(H, W, C)`` clean image in pixel space.
      perturbation: a candidate ``(pixels * (2 + C),)`` or the adversarial ``(H, W, C)`` image.

    Returns:
      :class:`PropagationMaps` with one ``(h, w)`` map per layer and reduction.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise PixeljaxError(f"image must be (H, W, C), got shape {image.shape}")
    maps = batch_propagation_maps(model, image[None], np.asarray(perturbation)[None],
                                  batch_size=1)
    return maps.attack(0)


def attacked_pixels(candidates: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """(N, D) candidates -> (N, 2) integer (row, column) of each attack's first pixel."""
    rows, cols, _ = decode(jnp.asarray(candidates, jnp.float32), tuple(image_shape))
    return np.stack([np.asarray(rows)[:, 0], np.asarray(cols)[:, 0]], axis=1)


def aligned_average(maps: np.ndarray, pixels: np.ndarray,
                    image_hw: tuple[int, int]) -> np.ndarray:
    """Averages maps after shifting each so that its attacked pixel lies at the centre.

    The attacked pixel (row, col) of the input falls at ``(row * h // H, col * w // W)`` of an
    ``(h, w)`` layer. Each map is placed on a ``(2h - 1, 2w - 1)`` canvas with that position at
    the centre ``(h - 1, w - 1)``; every canvas cell is the mean over the maps that cover it,
    NaN where none does. For multi-pixel attacks the first pixel is the anchor.

    Args:
      maps: ``(N, h, w)`` maps of one layer.
      pixels: ``(N, 2)`` attacked (row, column) in input coordinates.
      image_hw: the input's (H, W).

    Returns:
      ``(2h - 1, 2w - 1)`` float64 average.
    """
    n, h, w = maps.shape
    total = np.zeros((2 * h - 1, 2 * w - 1))
    count = np.zeros_like(total)
    rows = pixels[:, 0] * h // image_hw[0]
    cols = pixels[:, 1] * w // image_hw[1]
    for m, r, c in zip(maps, rows, cols):
        top, left = h - 1 - r, w - 1 - c
        total[top:top + h, left:left + w] += m
        count[top:top + h, left:left + w] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def average_maps(maps: PropagationMaps, pixels: np.ndarray,
                 image_hw: tuple[int, int]) -> PropagationMaps:
    """The attack-aligned average (:func:`aligned_average`) of every layer's two maps."""
    if len(maps) == 0:
        raise PixeljaxError("no attacks to average")
    return PropagationMaps(maps.names,
                           tuple(aligned_average(m, pixels, image_hw) for m in maps.mean),
                           tuple(aligned_average(m, pixels, image_hw) for m in maps.max))
