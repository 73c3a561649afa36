"""Scorers: how the attack engine turns candidates into logits.

A scorer is a pytree (its weights are leaves, so compiled programs take them as arguments) with

* ``prepare(images) -> cache``: once per attacked image, when the attack enters its slot
  (``images`` (S, H, W, C) in pixel space; every array of the cache has leading axis S);
* ``logits(cache, candidates, owner=None) -> (B, classes)``: the logits of candidates (B, D),
  candidate i perturbing cached image ``owner[i]`` (default: image i).

Two implementations:

* :class:`DenseScorer`, for any ``apply(images) -> logits``: the cache is the images; each
  candidate's perturbed image is run through the whole model.
* :class:`~pixeljax.attack.incremental.IncrementalScorer`, for a
  :class:`~pixeljax.models.SequentialVictim` made of the project's layers and one changed pixel:
  the cache is the clean activations; each candidate recomputes only the cone of activations
  its pixel can reach. Exact up to float32 summation order.

:func:`scorer_for` picks one; multi-pixel attacks, models of other layers, plain functions and
``dense=True`` get the dense scorer. Either can score in bfloat16
(:mod:`pixeljax.models.precision`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from pixeljax.attack import cone
from pixeljax.attack.encoding import PixelEncoding, ThresholdEncoding
from pixeljax.attack.incremental import IncrementalScorer
from pixeljax.errors import PixeljaxError
from pixeljax.models import Forward, split_for_inference
from pixeljax.models.precision import FLOAT32, check_precision, lowered
from pixeljax.victims.defences import Defended


class Scorer(Protocol):
    kind: str

    def prepare(self, images: jax.Array) -> Any: ...

    def logits(self, cache: Any, candidates: jax.Array,
               owner: jax.Array | None = None) -> jax.Array: ...


@struct.dataclass
class DenseScorer:
    """Scores candidates by a full forward pass of their perturbed images.

    Attributes:
      apply: ``apply(images) -> logits`` (a ``jax.tree_util.Partial`` keeps the weights out of
        the compiled program).
      reason: why the engine scores densely (empty when asked to).
      encoding: what a candidate is (:mod:`pixeljax.attack.encoding`; default changed
        pixels).
    """

    apply: Callable
    reason: str = struct.field(pytree_node=False, default="")
    encoding: Any = struct.field(pytree_node=False, default=PixelEncoding())
    kind = "dense"

    def prepare(self, images: jax.Array) -> jax.Array:
        return images

    def logits(self, cache: jax.Array, candidates: jax.Array,
               owner: jax.Array | None = None) -> jax.Array:
        images = cache if owner is None else cache[owner]
        return self.apply(self.encoding.apply(images, candidates)).astype(jnp.float32)


def _as_partial(apply: Callable) -> jax.tree_util.Partial:
    return apply if isinstance(apply, jax.tree_util.Partial) else jax.tree_util.Partial(apply)


def victim_module(apply) -> nnx.Module | None:
    """The NNX module behind ``apply``: a module itself, or ``LoadedVictim.predict`` (a Partial of
    a network's :class:`~pixeljax.models.Forward` over its weights)."""
    if isinstance(apply, nnx.Module):
        return apply
    if (isinstance(apply, jax.tree_util.Partial) and isinstance(apply.func, Forward)
            and apply.func.method == "__call__" and len(apply.args) == 1
            and not apply.keywords):
        return apply.func.module(apply.args[0])
    return None


def scorer_for(apply, *, pixels: int = 1, threshold: bool = False, dense: bool = False,
               precision: str = FLOAT32) -> Scorer:
    """The scorer the engine uses for ``apply``.

    Args:
      apply: a scorer (returned as is), a victim's ``predict`` (``LoadedVictim.predict``), an NNX
        module, or any ``apply(images) -> logits``.
      pixels: pixels changed per candidate (incremental scoring handles one).
      threshold: candidates of the threshold attack (every pixel value changes): dense.
      dense: score densely even where incremental scoring applies.
      precision: "float32", or "bfloat16" (see :mod:`pixeljax.models.precision`; needs an NNX
        network: a victim's ``predict`` or a module).
    """
    check_lowerable(apply, precision)
    if hasattr(apply, "prepare") and hasattr(apply, "logits"):
        return apply
    module = victim_module(apply)
    if precision != FLOAT32:
        module = apply = lowered(module, precision)
    if threshold:
        why = "a threshold attack changes every pixel"
    elif dense:
        why = "requested"
    elif isinstance(getattr(apply, "func", None), Defended):
        why = apply.func.describe()
    elif module is None:
        why = _declared_reason(apply) or ("the model is not a SequentialVictim of the project's "
                                          "layers taking pixel values")
    elif pixels != 1:
        why = f"incremental scoring handles one changed pixel, not {pixels}"
    else:
        why = cone.unsupported(module)
    if why is None:
        return IncrementalScorer.of(module)
    if isinstance(apply, nnx.Module):
        apply = jax.tree_util.Partial(*split_for_inference(apply))
    return DenseScorer(_as_partial(apply), why,
                       ThresholdEncoding() if threshold else PixelEncoding(pixels))


def _declared_reason(apply) -> str:
    """Why a model that says so is scored densely (``dense_reason`` of its function, through
    input conversions: an ONNX graph names the node that stopped its translation)."""
    f = getattr(apply, "func", apply)
    while f is not None and not getattr(f, "dense_reason", ""):
        f = getattr(f, "apply", None)
    return "" if f is None else f.dense_reason


def check_lowerable(apply, precision: str) -> None:
    """``apply`` can be scored in ``precision`` (any model in float32; in bfloat16 an NNX network
    taking pixel values and giving logits, whose layers pixeljax can lower)."""
    if check_precision(precision) == FLOAT32:
        return
    if hasattr(apply, "prepare") and hasattr(apply, "logits"):
        raise PixeljaxError(f"a scorer scores in its own precision: {precision} applies to a "
                            f"model")
    if victim_module(apply) is None:
        raise PixeljaxError(f"{precision} scoring needs a registered victim or an NNX "
                            f"MODULE:FACTORY model that takes pixel values and gives logits; "
                            f"this model (a --predict function, a Linen model, or one with "
                            f"--input-scale or probability outputs, defended or not) "
                            f"scores in float32 only: drop --precision")


def describe(scorer: Scorer) -> str:
    """``incremental`` or ``dense (why)``, with `` bfloat16`` when it scores in bfloat16."""
    reason = getattr(scorer, "reason", "")
    low = any(getattr(a, "dtype", None) == jnp.bfloat16 for a in jax.tree.leaves(scorer))
    return scorer.kind + (" bfloat16" if low else "") + (f" ({reason})" if reason else "")


def cache_bytes_per_slot(scorer: Scorer, image_shape: tuple[int, int, int],
                         image_dtype=jnp.float32) -> int:
    """Bytes of clean activations the scorer keeps per attacked image."""
    cache = jax.eval_shape(scorer.prepare, jax.ShapeDtypeStruct((1, *image_shape), image_dtype))
    return int(sum(np.prod(a.shape) * np.dtype(a.dtype).itemsize
                   for a in jax.tree.leaves(cache)))


def scoring_summary(scorer: Scorer, image_shape: tuple[int, int, int]) -> dict:
    """How the engine scores candidates: ``scoring`` (see :func:`describe`) and
    ``cache_bytes_per_slot`` (what it keeps per attack in flight), for run summaries."""
    return {"scoring": describe(scorer),
            "cache_bytes_per_slot": cache_bytes_per_slot(scorer, tuple(image_shape))}
