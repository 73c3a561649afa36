"""A loaded victim (:class:`LoadedVictim`), whatever its form (a shipped or exported checkpoint,
a user's module or function, an ONNX file), and the fingerprint of the weights it attacks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

DIGESTS = "weight_sha256"  # a victim's metadata: {path under weights/: sha256 hex digest}


@dataclasses.dataclass(frozen=True)
class LoadedVictim:
    """A loaded victim network.

    Attributes:
      name: the registry name of its architecture.
      model: the Flax NNX module, in eval mode.
      apply: pure ``apply(params, images) -> logits``.
      params: every variable of the model (weights and batch-norm statistics).
      metadata: the checkpoint's metadata.
      weights_sha256: a fingerprint of the weights attacked (see :func:`weights_sha256`),
        recorded in a results folder's ``config.json`` so that results of two networks never
        mix; None only for a ``predict`` function whose module has no file.
    """

    name: str
    model: nnx.Module
    apply: Any
    params: Any
    metadata: dict
    weights_sha256: str | None = None

    @property
    def predict(self) -> jax.tree_util.Partial:
        """``predict(images) -> logits`` with the weights bound; a pytree, so it can be passed
        to jitted functions without baking the weights into the program."""
        return jax.tree_util.Partial(self.apply, self.params)


def weights_sha256(metadata: dict, params: Any = (), source: Any = None) -> str | None:
    """The fingerprint of a victim's weights, whatever their form: one sha256 over the weight
    digests a victim folder records (cheap, and what its results always recorded); else one
    over every array of ``params`` (names, dtypes, shapes and bytes: an orbax checkpoint of a
    module's state, Linen variables, a factory's own variables); else, for a ``predict``
    function that holds its own weights, over its module's file (``source``)."""
    digests = metadata.get(DIGESTS)
    if digests:
        return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if leaves:
        for path, leaf in leaves:
            array = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{jax.tree_util.keystr(path)} {array.dtype.str}{array.shape}".encode())
            h.update(array.tobytes())
        return h.hexdigest()
    module = sys.modules.get(getattr(source, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if path is None or not os.path.isfile(path):
        return None
    h.update(Path(path).read_bytes())
    return h.hexdigest()
