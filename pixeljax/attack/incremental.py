"""Exact incremental scoring of one-pixel candidates on a sequential victim.

``prepare`` runs each attacked image once through the victim and keeps, per layer that needs it,
the clean input of that layer (padded as the layer pads it). ``logits`` then scores a batch of
candidates by recomputing, layer by layer, only the fixed-size window of outputs its changed
pixel can reach (:mod:`pixeljax.attack.cone`): a patch of the clean input is gathered at the
window's place, the previous layer's recomputed window is pasted over it, and the layer is
applied to the patch with VALID padding. Once the window covers the whole map (or at a dense
layer) the rest of the network runs densely on the candidate's own map; global average pooling
is updated from the window's difference. A residual block recomputes its two convolutions so,
and reads its shortcut at the second one's window. Only float summation order differs from the
dense forward pass, so logits agree to float32 rounding.

Krypton (Nakandala et al., SIGMOD 2019) applies the same idea to occlusion maps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from pixeljax.attack import cone
from pixeljax.attack.perturb import decode
from pixeljax.errors import PixeljaxError
from pixeljax.models.layers import matmul_conv, normalize


@struct.dataclass
class Cache:
    """Clean activations of S attacked images (every array has leading axis S).

    Attributes:
      maps: per step that reads its clean input (``Step.reads_clean``), in layer order: that
        input, padded by the layer's own padding for local steps; for a mean step a pair
        (input map, clean mean); for a residual block a pair (its input, its middle map), each
        padded as the convolution that reads it pads it.
      image_shape: (H, W, C) of the images (static).
    """

    maps: tuple
    image_shape: tuple[int, int, int] = struct.field(pytree_node=False)


@struct.dataclass
class IncrementalScorer:
    """Scores one-pixel candidates on a supported :class:`SequentialVictim` (see
    :func:`pixeljax.attack.cone.unsupported`); a pytree whose leaves are the weights."""

    graphdef: nnx.GraphDef = struct.field(pytree_node=False)
    params: object
    kind = "incremental"

    @classmethod
    def of(cls, model: nnx.Module) -> "IncrementalScorer":
        model.eval()
        graphdef, params = nnx.split(model)
        return cls(graphdef, params)

    def _model(self):
        return nnx.merge(self.graphdef, self.params)

    def prepare(self, images: jax.Array) -> Cache:
        """Clean activations of ``images`` (S, H, W, C) in pixel space."""
        model = self._model()
        shape = tuple(images.shape[1:])
        plan = cone.cone_of(model, shape)
        maps = []
        for step, defence in zip(plan.defences, getattr(model, "defences", ())):
            if step.kind == cone.LOCAL:
                maps.append(_padded(images, step))
            images = defence(images)
        x = normalize(images)
        for step, layer in zip(plan.steps, model.layers):
            if step.kind == cone.LOCAL:
                maps.append(_padded(x, step))
            elif step.kind == cone.RESIDUAL:
                mid = layer.first(x)
                maps.append((_padded(x, step.inner[0]), _padded(mid, step.inner[1])))
                x = layer.merge(layer.second(mid), layer.shortcut(x))
                continue
            elif step.kind == cone.EXPAND:
                maps.append(x)
            elif step.kind == cone.MEAN:
                maps.append((x, jnp.mean(x, axis=(1, 2))))
            x = layer(x)
        return Cache(tuple(maps), shape)

    def logits(self, cache: Cache, candidates: jax.Array, owner: jax.Array | None = None):
        """Logits of the one-pixel candidates (B, 2 + C) on the images they belong to.

        Args:
          cache: from :meth:`prepare` on S images.
          candidates: (B, 2 + C) candidates (x, y, colour...).
          owner: (B,) the cached image each candidate perturbs (default: candidate i perturbs
            image i, B == S).
        """
        model = self._model()
        image_shape = cache.image_shape
        plan = cone.cone_of(model, image_shape)
        if candidates.shape[-1] != 2 + image_shape[-1]:
            raise PixeljaxError(f"incremental scoring takes one-pixel candidates of "
                                f"{2 + image_shape[-1]} numbers, got {candidates.shape[-1]}")
        if owner is None:
            owner = jnp.arange(candidates.shape[0])
        rows, cols, colours = decode(candidates, image_shape)
        x = colours[:, None, :, :]                                  # (B, 1, 1, C)
        # Per axis: the changed span [first, last] and where the window starts.
        first = last = start = (rows[:, 0], cols[:, 0])
        maps = iter(cache.maps)
        for step, defence in zip(plan.defences, getattr(model, "defences", ())):
            if step.kind == cone.LOCAL:
                x, first, last, start = _local(step, defence.valid, next(maps), owner, x,
                                               first, last, start)
            else:  # per pixel, or the whole map already
                x = defence(x)
        x = normalize(x)
        for step, layer in zip(plan.steps, model.layers):
            if step.kind == cone.FULL:
                x = layer(x)
            elif step.kind == cone.POINTWISE:
                x = _valid(layer)(x)
            elif step.kind == cone.LOCAL:
                x, first, last, start = _local(step, _valid(layer), next(maps), owner, x,
                                               first, last, start)
            elif step.kind == cone.RESIDUAL:
                padded_in, padded_mid = next(maps)
                inner, mid = step.inner, _local(step.inner[0], _valid(layer.first), padded_in,
                                                owner, x, first, last, start)
                residual, *span = _local(inner[1], _valid(layer.second), padded_mid, owner, *mid)
                shortcut = _shortcut(layer, inner[0], padded_in, owner, x, start, span[2],
                                     residual.shape[1:3])
                x, (first, last, start) = layer.merge(residual, shortcut), span
            elif step.kind == cone.MEAN:
                clean_map, clean_mean = next(maps)
                clean = _slices(clean_map, owner, start, x.shape[1:3])
                change = jnp.sum(x.astype(jnp.float32) - clean.astype(jnp.float32), axis=(1, 2))
                x = (clean_mean[owner] + change / (clean_map.shape[1] * clean_map.shape[2])
                     ).astype(clean_mean.dtype)
                if hasattr(layer, "head"):
                    x = layer.head(x)
            else:  # EXPAND: paste the window into the whole clean map
                clean_map = next(maps)
                full = clean_map[owner]
                placed, inside = _place(x, start, full.shape[1:3])
                x = layer(jnp.where(inside, placed, full))
        return x.astype(jnp.float32)


# Below this many output channels a matrix product per kernel row is too narrow for the CPU's
# matrix unit, and XLA's own convolution is faster (2.5x on ResNet-20's 16 and 32 channels).
MATMUL_MIN_FEATURES = 64


def _valid(layer):
    """The layer without padding (on this trace's own copy of the model). Its convolution is
    done by :func:`matmul_conv` when it has at least :data:`MATMUL_MIN_FEATURES` outputs or a
    1 x 1 kernel: on a CPU that is faster than XLA's convolution for the small patches of
    incremental scoring (it feeds the matrix unit B x window positions at once)."""
    conv = getattr(layer, "conv", None)
    if conv is not None and (conv.out_features >= MATMUL_MIN_FEATURES
                             or cone.kernel_of(conv) == (1, 1)):
        conv.conv_general_dilated = matmul_conv
    getattr(layer, "conv", layer).padding = "VALID"
    return layer


def _local(step: cone.Step, layer, padded: jax.Array, owner, x, first, last, start):
    """Recomputes a local layer's window of outputs from the previous window ``x`` (its first
    element at input position ``start``) and the clean padded input ``padded``."""
    axes = step.axes
    reach = [a.reach(f, l) for a, f, l in zip(axes, first, last)]
    window = step.window
    # The window starts at the first reached output, moved back inside the map.
    origin = tuple(jnp.clip(r[0], 0, a.out - w) for r, a, w in zip(reach, axes, window))
    size = tuple(a.patch(w) for a, w in zip(axes, window))
    corner = tuple(o * a.stride for o, a in zip(origin, axes))   # patch start, padded coords
    patch = _slices(padded, owner, corner, size)                 # (B, ph, pw, C)
    for offset, flip in _copies(step, start, corner, x.shape[1:3]):
        placed, inside = _place(jnp.flip(x, flip) if flip else x, offset, size)
        patch = jnp.where(inside, placed, patch)
    out = layer(patch)
    return out, tuple(r[0] for r in reach), tuple(r[1] for r in reach), origin


def _copies(step: cone.Step, start, corner, window):
    """Where the changed window (first element at input position ``start``) lies in the
    patch at ``corner`` of the padded input: ``(offset, axes to flip)`` per copy. One copy,
    unless the input is mirrored at its borders: then also its mirror images in the padding
    above, below, left and right (and in the corners), flipped; a copy outside the patch is
    masked out by :func:`_place`."""
    per_axis = []
    for a, s, c, w in zip(step.axes, start, corner, window):
        copies = [(s + a.lo - c, False)]
        if step.mirror:  # padded index lo - 1 - i and 2 n + lo - 1 - i hold input i
            copies += [(a.lo - s - w - c, True), (2 * a.size + a.lo - s - w - c, True)]
        per_axis.append(copies)
    return [((r, c), tuple(axis for axis, f in ((1, fr), (2, fc)) if f))
            for r, fr in per_axis[0] for c, fc in per_axis[1]]


def _padded(x: jax.Array, step: cone.Step) -> jax.Array:
    """A local step's input padded as its layer pads it."""
    rows, cols = step.axes
    pads = ((0, 0), (rows.lo, rows.hi), (cols.lo, cols.hi), (0, 0))
    if step.mirror:
        return jnp.pad(jnp.asarray(x, jnp.float32), pads, mode="symmetric")
    return jnp.pad(x, pads, constant_values=step.pad_value)


def _shortcut(block, first: cone.Step, padded: jax.Array, owner, x, start, origin, window):
    """A residual block's shortcut at its output window ``window`` (first output at
    ``origin``): the block input there (clean, from ``padded``, the input as the block's first
    convolution pads it; the changed window ``x`` at ``start`` pasted over it), subsampled by
    the block's stride."""
    stride = block.stride
    lo = tuple(a.lo for a in first.axes)
    size = tuple((w - 1) * stride + 1 for w in window)
    corner = tuple(o * stride + p for o, p in zip(origin, lo))   # in padded coordinates
    patch = _slices(padded, owner, corner, size)
    placed, inside = _place(x, tuple(s + p - c for s, p, c in zip(start, lo, corner)), size)
    return block.shortcut(jnp.where(inside, placed, patch))


def _slices(maps: jax.Array, owner, corner, size) -> jax.Array:
    """``maps[owner[i], r:r + size[0], c:c + size[1]]`` for each i with (r, c) = corner."""
    def one(o, r, c):
        return jax.lax.dynamic_slice(maps, (o, r, c, 0), (1, *size, maps.shape[-1]))[0]

    return jax.vmap(one)(owner, *corner)


def _place(window: jax.Array, offset, size):
    """Moves each window (B, wh, ww, C) to ``offset`` in a frame of ``size``; returns the frame
    and a (B, fh, fw, 1) mask of where the window lies (elsewhere the frame is filler)."""
    b, wh, ww, _ = window.shape
    ih = jnp.arange(size[0])[None, :] - offset[0][:, None]       # (B, fh) window row
    iw = jnp.arange(size[1])[None, :] - offset[1][:, None]       # (B, fw)
    in_h = (ih >= 0) & (ih < wh)
    in_w = (iw >= 0) & (iw < ww)
    batch = jnp.arange(b)[:, None, None]
    frame = window[batch, jnp.clip(ih, 0, wh - 1)[:, :, None], jnp.clip(iw, 0, ww - 1)[:, None, :]]
    return frame, (in_h[:, :, None] & in_w[:, None, :])[..., None]
