"""Scoring precision: float32 (the exact reference) or bfloat16 (weights and activations in
bfloat16, products accumulated in float32: the precision matrix units run at full rate).

:func:`lowered` makes a bfloat16 copy of an NNX network the way Flax spells it: every layer's
computation ``dtype`` set to bfloat16, its weights stored in bfloat16, and its matrix products
and convolutions asked for float32 results (``preferred_element_type``). Results of bfloat16
scoring are always re-checked in float32 (see :mod:`pixeljax.attack.engine`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pixeljax.errors import PixeljaxError

FLOAT32, BFLOAT16 = "float32", "bfloat16"
PRECISIONS = (FLOAT32, BFLOAT16)


def check_precision(precision) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise PixeljaxError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                            f"{precision!r}")
    return precision


def lowered(model: nnx.Module, precision: str = BFLOAT16) -> nnx.Module:
    """A copy of ``model`` that computes in ``precision`` (float32: ``model`` itself)."""
    if check_precision(precision) == FLOAT32:
        return model
    dtype = jnp.dtype(precision)
    graphdef, state = nnx.split(model)
    state = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating)
                         else a, state)
    copy = nnx.merge(graphdef, state)
    for _, module in nnx.iter_graph(copy):
        if isinstance(module, nnx.Module) and hasattr(module, "dtype"):
            module.dtype = dtype
            if hasattr(module, "param_dtype"):
                module.param_dtype = dtype
            if hasattr(module, "preferred_element_type"):
                module.preferred_element_type = jnp.float32
    return copy
