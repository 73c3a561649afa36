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
from pixeljax.attack.incremental import IncrementalScorer
from pixeljax.attack.perturb import apply_candidates
from pixeljax.errors import PixeljaxError
from pixeljax.models import split_for_inference
from pixeljax.models.precision import FLOAT32, check_precision, lowered


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
    """

    apply: Callable
    reason: str = struct.field(pytree_node=False, default="")
    kind = "dense"

    def prepare(self, images: jax.Array) -> jax.Array:
        return images

    def logits(self, cache: jax.Array, candidates: jax.Array,
               owner: jax.Array | None = None) -> jax.Array:
        images = cache if owner is None else cache[owner]
        return self.apply(apply_candidates(images, candidates)).astype(jnp.float32)


def _as_partial(apply: Callable) -> jax.tree_util.Partial:
    return apply if isinstance(apply, jax.tree_util.Partial) else jax.tree_util.Partial(apply)


def victim_module(apply) -> nnx.Module | None:
    """The NNX module behind ``apply``: a module itself, or ``LoadedVictim.predict`` (a Partial of a
    ``split_for_inference`` function over the weights)."""
    if isinstance(apply, nnx.Module):
        return apply
    func = getattr(apply, "func", None)
    graphdef = getattr(func, "graphdef", None)
    if (graphdef is None or getattr(func, "method", None) != "__call__"
            or len(apply.args) != 1 or apply.keywords):
        return None
    return nnx.merge(graphdef, apply.args[0])


def scorer_for(apply, *, pixels: int = 1, dense: bool = False,
               precision: str = FLOAT32) -> Scorer:
    """The scorer the engine uses for ``apply``.

    Args:
      apply: a scorer (returned as is), a victim's ``predict`` (``LoadedVictim.predict``), an NNX
        module, or any ``apply(images) -> logits``.
      pixels: pixels changed per candidate (incremental scoring handles one).
      dense: score densely even where incremental scoring applies.
      precision: "float32", or "bfloat16" (see :mod:`pixeljax.models.precision`; needs an NNX
        network: a victim's ``predict`` or a module).
    """
    if hasattr(apply, "prepare") and hasattr(apply, "logits"):
        return apply
    module = victim_module(apply)
    if check_precision(precision) != FLOAT32:
        if module is None:
            raise PixeljaxError(f"{precision} scoring needs an NNX network (a pixeljax victim "
                                f"or a MODULE:FACTORY model), not a plain function: a "
                                f"function computes in its own precision; use float32")
        module = apply = lowered(module, precision)
    if dense:
        why = "requested"
    elif module is None:
        why = "the model is not a SequentialVictim of the project's layers taking pixel values"
    elif pixels != 1:
        why = f"incremental scoring handles one changed pixel, not {pixels}"
    else:
        why = cone.unsupported(module)
    if why is None:
        return IncrementalScorer.of(module)
    if isinstance(apply, nnx.Module):
        apply = jax.tree_util.Partial(*split_for_inference(apply))
    return DenseScorer(_as_partial(apply), why)


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


def macs_per_candidate(scorer: Scorer, image_shape: tuple[int, int, int], pixels: int = 1) -> int:
    """Multiply-adds of scoring one candidate: the convolutions and matrix products of the
    program ``logits`` compiles to, counted from their shapes."""
    images = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    cache = jax.eval_shape(scorer.prepare, images)
    candidates = jax.ShapeDtypeStruct((1, pixels * (2 + image_shape[-1])), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda s, c, x: s.logits(c, x))(scorer, cache, candidates)
    return _macs(jaxpr.jaxpr)


def _macs(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...)
            per_output = int(np.prod([rhs[d] for d in spec[1:]]))
            total += int(np.prod(eqn.outvars[0].aval.shape)) * per_output
        elif eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += int(np.prod(eqn.outvars[0].aval.shape)) * int(
                np.prod([lhs[d] for d in contract]))
        total += sum(_macs(sub) for sub in _sub_jaxprs(eqn.params))
    return total


def _sub_jaxprs(params):
    """The jaxprs nested in an equation's parameters (jit, loops, custom derivatives)."""
    for value in params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(v, "jaxpr") and hasattr(v, "consts"):  # ClosedJaxpr
                yield v.jaxpr
            elif hasattr(v, "eqns"):
                yield v


def scoring_summary(apply, image_shape: tuple[int, int, int], *, pixels: int = 1,
                    dense: bool = False, precision: str = FLOAT32) -> dict:
    """How the engine scores ``apply``'s candidates: ``scoring`` (see :func:`describe`) and
    ``cache_bytes_per_slot`` (what it keeps per attack in flight), for run summaries."""
    scorer = scorer_for(apply, pixels=pixels, dense=dense, precision=precision)
    return {"scoring": describe(scorer),
            "cache_bytes_per_slot": cache_bytes_per_slot(scorer, tuple(image_shape))}
