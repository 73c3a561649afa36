"""Comparing incremental with dense logits (see ``test_incremental``): candidates at every border
pixel, victims scaled to realistic logits, one compiled program per model."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from pixeljax.attack import scoring
from pixeljax.attack.incremental import IncrementalScorer
from pixeljax.attack.perturb import apply_candidates
from pixeljax.models import split_for_inference

TOLERANCE = 1e-4
LOGIT_SCALE = 10.0


def scaled(model: nnx.Module, images: np.ndarray) -> nnx.Module:
    """``model`` with its last weighted layer scaled so its largest clean logit is 10 (logits
    are linear in that layer's weights and bias)."""
    model.eval()
    apply, params = split_for_inference(model)
    factor = LOGIT_SCALE / float(np.abs(np.asarray(jax.jit(apply)(params, images))).max())
    last = next(layer for layer in reversed(list(model.layers))
                if jax.tree.leaves(nnx.state(layer, nnx.Param)))
    for _, value in nnx.iter_graph(last):
        if isinstance(value, nnx.Param):
            value[...] = value[...] * factor
    return model


def border_and_random_pixels(h: int, w: int, n_random: int, rng) -> np.ndarray:
    """(N, 2) (row, column): every pixel of the first and last rows and columns (so every
    corner) and ``n_random`` random pixels."""
    border = {(r, c) for r in (0, h - 1) for c in range(w)} | \
        {(r, c) for r in range(h) for c in (0, w - 1)}
    inner = np.stack([rng.integers(0, h, n_random), rng.integers(0, w, n_random)], 1)
    return np.concatenate([np.array(sorted(border)), inner]).astype(np.int64)


def candidates_at(pixels: np.ndarray, rng) -> np.ndarray:
    """One-pixel candidates (x, y, r, g, b) at ``pixels`` (row, column), with fractional
    coordinates (floored when applied) and random colours, half of them saturated."""
    n = len(pixels)
    colours = np.where(rng.random((n, 3)) < 0.5, rng.choice([0.0, 255.0], (n, 3)),
                       rng.uniform(0, 255, (n, 3)))
    jitter = rng.uniform(0, 0.99, (n, 2))
    return np.concatenate([pixels[:, 1:2] + jitter[:, :1], pixels[:, :1] + jitter[:, 1:],
                           colours], 1).astype(np.float32)


@jax.jit
def _incremental(scorer, images, candidates, owner):
    return scorer.logits(scorer.prepare(images), candidates, owner)


@jax.jit
def _dense(apply, images, candidates, owner):
    return apply(apply_candidates(images[owner], candidates))


def compare(model: nnx.Module, images: np.ndarray, pixels: np.ndarray, seed: int = 0,
            chunk: int = 64) -> int:
    """Checks incremental against dense logits for candidates at ``pixels`` on each image;
    returns the number of candidates compared."""
    rng = np.random.default_rng(seed)
    scorer = scoring.scorer_for(model)
    assert isinstance(scorer, IncrementalScorer), scoring.describe(scorer)
    apply = jax.tree_util.Partial(*split_for_inference(model))
    clean = np.asarray(jax.jit(apply)(images))
    cands = candidates_at(np.tile(pixels, (len(images), 1)), rng)
    owner = np.repeat(np.arange(len(images)), len(pixels))
    worst, moved = 0.0, []
    for start in range(0, len(cands), chunk):
        c, o = cands[start:start + chunk], owner[start:start + chunk]
        pad = chunk - len(c)  # one shape per model: compile once
        c, o = np.concatenate([c, c[:pad]]), np.concatenate([o, o[:pad]])
        inc = np.asarray(_incremental(scorer, images, c, o))[:chunk - pad]
        dense = np.asarray(_dense(apply, images, c, o))[:chunk - pad]
        worst = max(worst, float(np.abs(inc - dense).max()))
        moved.append(np.abs(dense - clean[o[:chunk - pad]]).max(-1))
    assert worst <= TOLERANCE, f"incremental logits differ from dense ones by {worst}"
    assert np.median(np.concatenate(moved)) > 10 * TOLERANCE  # the pixels matter
    return len(cands)


def random_images(n: int, shape=(32, 32, 3), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype(np.float32)
