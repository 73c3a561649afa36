"""The sweep's device code and its stream of waves.

The images stream through slots on the engine's mesh (:mod:`pixeljax.attack.mesh`, with the
attack's scorer, :func:`pixeljax.attack.scoring.scorer_for`) in *waves*: a wave loads up to
``slots`` images, scores all their ``H * W * G`` candidates micro-batch by micro-batch (active
slots first, so a partial last wave costs only its images) and reduces them on the device to a
few numbers per (image, class) and per (image, position). Every image costs the same, so waves
lose nothing to stragglers, and memory stays bounded by the slots and one micro-batch.

Reductions keep the lowest candidate index among equal values, so results depend neither on the
micro-batch, nor on the slots, nor on the devices. Every reported candidate is then re-checked by
a dense forward pass of its adversarial image (``predict``): a row's class and success are that
pass's, and disagreements with the sweep are counted.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pixeljax.attack import engine, generation, mesh, scoring
from pixeljax.attack.sizes import SweepSizes

_NO_INDEX = np.iinfo(np.int32).max


def colour_grid(levels: Sequence[int], channels: int) -> np.ndarray:
    """(G, C) every combination of ``levels`` over the channels, the last channel fastest."""
    return np.asarray(list(itertools.product(levels, repeat=channels)),
                      np.float32).reshape(-1, channels)


def grid_candidates(index, image_shape, grid):
    """The one-pixel candidates (B, 2 + C) of flat candidate indices (B,): index
    ``(row * W + col) * G + colour``, as applied (integer x, y and colour values)."""
    g = grid.shape[0]
    w = image_shape[1]
    position, colour = index // g, index % g
    row, col = position // w, position % w
    xy = jnp.stack([col, row], axis=-1).astype(jnp.float32)
    return jnp.concatenate([xy, jnp.asarray(grid)[colour]], axis=-1)


@struct.dataclass
class Found:
    """What a wave found, per slot (leading axis S; K classes, HW positions).

    ``*_index`` are flat candidate indices (:func:`grid_candidates`), the lowest among equal
    values; ``_NO_INDEX`` where no candidate qualified.
    """

    hit_prob: jax.Array    # (S, K) highest p_k among candidates classified k (-inf: none)
    hit_index: jax.Array   # (S, K)
    best_prob: jax.Array   # (S, K) highest p_k among all candidates
    best_index: jax.Array  # (S, K)
    fool_prob: jax.Array   # (S,) lowest true-class probability among fooling candidates
    fool_index: jax.Array  # (S,)
    low_prob: jax.Array    # (S,) lowest true-class probability among all scored candidates
    low_index: jax.Array   # (S,)
    reached: jax.Array     # (S, K) candidates classified k
    flips: jax.Array       # (S, HW) grid colours at each position that fool the model
    min_true: jax.Array    # (S, HW) lowest true-class probability at each position
    nonfinite: jax.Array   # (S,) candidates whose logits were NaN or infinite


def _best(value, index, slot, v, cand, ok):
    """Per-slot maxima of ``v`` (B, ...) over the candidates ``ok``, folded into ``value``
    (S, ...); ties keep the lowest candidate index (later batches hold higher indices)."""
    v = jnp.where(ok, v, -jnp.inf)
    top = value.at[slot].max(v)
    improved = top > value
    cand = jnp.broadcast_to(cand.reshape(cand.shape + (1,) * (v.ndim - 1)), v.shape)
    winner = ok & (v == top[slot]) & improved[slot]
    first = jnp.full_like(index, _NO_INDEX).at[slot].min(jnp.where(winner, cand, _NO_INDEX))
    return top, jnp.where(improved, first, index)


def sweep_wave(scorer, image, label, active, grid, *, batch_size: int) -> Found:
    """Scores every candidate of the slots' images where ``active`` (S,); see :class:`Found`.

    Args:
      scorer: see :mod:`pixeljax.attack.scoring`.
      image: (S, H, W, C) images; label: (S,) their classes.
      active: (S,) slots holding an image this wave.
      grid: (G, C) the colours (:func:`colour_grid`).
      batch_size: candidates per model call.
    """
    s, h, w, _ = image.shape
    n = h * w * grid.shape[0]
    cache = jax.lax.map(lambda x: jax.tree.map(lambda a: a[0], scorer.prepare(x[None])), image)
    k = jax.eval_shape(lambda c, x: scorer.logits(c, x, jnp.zeros((1,), jnp.int32)), cache,
                       jnp.zeros((1, 2 + grid.shape[1]), jnp.float32)).shape[-1]
    order = jnp.argsort(~active, stable=True)  # active slots first
    total = jnp.sum(active) * n
    rows = jnp.arange(batch_size)
    i32 = functools.partial(jnp.full, dtype=jnp.int32)
    found = Found(hit_prob=jnp.full((s, k), -jnp.inf), hit_index=i32((s, k), _NO_INDEX),
                  best_prob=jnp.full((s, k), -jnp.inf), best_index=i32((s, k), _NO_INDEX),
                  fool_prob=jnp.full((s,), -jnp.inf), fool_index=i32((s,), _NO_INDEX),
                  low_prob=jnp.full((s,), -jnp.inf), low_index=i32((s,), _NO_INDEX),
                  reached=i32((s, k), 0), flips=i32((s, h * w), 0),
                  min_true=jnp.ones((s, h * w), jnp.float32), nonfinite=i32((s,), 0))

    def body(b, f: Found) -> Found:
        flat = b * batch_size + rows
        ok = flat < total
        slot = order[jnp.minimum(flat // n, s - 1)]
        cand = (flat % n).astype(jnp.int32)
        logits = scorer.logits(cache, grid_candidates(cand, (h, w), grid), slot)
        probs, finite = generation.probabilities(logits)
        truth = label[slot]
        true_prob = jnp.where(finite, probs[rows, truth], 1.0)
        top = jnp.where(finite, jnp.argmax(probs, -1), truth)
        fooled = ok & (top != truth)
        scored = ok & finite
        classified = jax.nn.one_hot(top, k, dtype=bool) & scored[:, None]
        hit_prob, hit_index = _best(f.hit_prob, f.hit_index, slot, probs, cand, classified)
        best_prob, best_index = _best(f.best_prob, f.best_index, slot, probs, cand,
                                      scored[:, None])
        fool_prob, fool_index = _best(f.fool_prob, f.fool_index, slot, -true_prob, cand, fooled)
        low_prob, low_index = _best(f.low_prob, f.low_index, slot, -true_prob, cand, scored)
        position = cand // grid.shape[0]
        return Found(
            hit_prob=hit_prob, hit_index=hit_index, best_prob=best_prob, best_index=best_index,
            fool_prob=fool_prob, fool_index=fool_index, low_prob=low_prob, low_index=low_index,
            reached=f.reached.at[slot, top].add(scored.astype(jnp.int32)),
            flips=f.flips.at[slot, position].add(fooled.astype(jnp.int32)),
            min_true=f.min_true.at[slot, position].min(jnp.where(ok, true_prob, 1.0)),
            nonfinite=f.nonfinite.at[slot].add((ok & ~finite).astype(jnp.int32)))

    return jax.lax.fori_loop(0, (total + batch_size - 1) // batch_size, body, found)


def _program(batch_size: int, devices: tuple[jax.Device, ...]) -> mesh.Programs:
    """The compiled wave on these devices (slots split along the engine's mesh axis)."""
    def build(on):
        slot, rep = mesh.SPLIT, mesh.REPLICATED
        return {"wave": jax.jit(jax.shard_map(
            functools.partial(sweep_wave, batch_size=batch_size), mesh=on,
            in_specs=(rep, slot, slot, slot, rep), out_specs=slot, check_vma=False))}

    return mesh.programs("sweep", batch_size, devices, build)


@dataclasses.dataclass(frozen=True)
class SweptImage:
    """One image's sweep: per class the reported candidate and the dense pass's verdict.

    Attributes:
      position: the image's position among the prepared images.
      candidates: (K, 2 + C) per class k the best candidate towards k (classified k with the
        highest p_k where one exists, else the highest p_k); at the true class, the
        non-targeted candidate (the lowest true-class probability among fooling candidates
        where one exists, else overall).
      probs: (K, K) the dense forward pass's probabilities of each candidate's image.
      reached: (K,) candidates the sweep classified as each class.
      swept_reach: (K,) the sweep found a candidate classified k (at the true class: fooled).
      flips, min_true: (H, W) per position: grid colours that fool it, lowest true-class
        probability.
      nonfinite: candidates whose logits were NaN or infinite.
      candidates_scored: H * W * G.
    """

    position: int
    candidates: np.ndarray
    probs: np.ndarray
    reached: np.ndarray
    swept_reach: np.ndarray
    flips: np.ndarray
    min_true: np.ndarray
    nonfinite: int
    candidates_scored: int

    def verdict(self, label: int) -> np.ndarray:
        """(K,) the re-checked success per class (at ``label``: fooled)."""
        top = self.probs.argmax(-1)
        ok = top == np.arange(len(top))
        ok[label] = top[label] != label
        return ok

    def disagreements(self, label: int) -> int:
        """Classes whose dense verdict differs from the sweep's."""
        return int(np.sum(self.verdict(label) != self.swept_reach))


def _chosen(found: dict, i: int, label: int) -> np.ndarray:
    """(K,) the flat candidate index reported per class for slot i (candidate 0 where no
    candidate had finite logits)."""
    reached = found["hit_prob"][i] > -np.inf
    index = np.where(reached, found["hit_index"][i], found["best_index"][i])
    fooled = found["fool_prob"][i] > -np.inf
    index[label] = found["fool_index"][i] if fooled else found["low_index"][i]
    return np.where(index == _NO_INDEX, 0, index).astype(np.int64)


def stream(scorer: scoring.Scorer, predict: Callable, images: np.ndarray, labels: np.ndarray,
           levels: Sequence[int], sizes: SweepSizes,
           devices: Sequence[jax.Device]) -> Iterator[list[SweptImage]]:
    """Sweeps ``images`` (N, H, W, C) over the colour grid of ``levels``, a wave of the
    resolved ``sizes``' slots at a time on ``devices``, scored by ``scorer``; yields each
    wave's :class:`SweptImage` (positions into ``images``) once their candidates are
    re-checked by ``predict`` (a dense float32 pass; behind a noise defence, on fresh draws,
    see :func:`pixeljax.attack.engine.verdict_of`)."""
    if not len(images):
        return
    devices = tuple(devices)
    n_dev = len(devices)
    shape = images.shape[1:]
    s, batch = sizes.slots, sizes.batch_size
    grid = colour_grid(levels, shape[-1])
    n = shape[0] * shape[1] * len(grid)
    programs = _program(batch, devices)
    program, split, replicated = programs["wave"], programs.slots, programs.replicated
    place = functools.partial(jax.device_put, device=split)
    scorer, grid_d = jax.device_put((scorer, grid), replicated)
    order = engine.fill_order(list(range(s)), s // n_dev)
    judge = engine.verdict_of(predict, lower=True)  # float32, on fresh draws of any noise

    for start in range(0, len(images), s):
        wave = list(range(start, min(start + s, len(images))))
        where = order[:len(wave)]
        image = np.zeros((s, *shape), images.dtype)
        label = np.zeros(s, np.int32)
        active = np.zeros(s, bool)
        image[where], label[where], active[where] = images[wave], labels[wave], True
        found = dataclasses.asdict(jax.device_get(
            program(scorer, *map(place, (image, label, active)), grid_d)))
        chosen = np.stack([_chosen(found, i, int(label[i])) for i in where])  # (m, K)
        k = chosen.shape[1]
        candidates = np.asarray(grid_candidates(chosen.reshape(-1), shape, grid))
        probs = engine.recheck_probabilities(
            judge, np.repeat(images[wave], k, axis=0), candidates, np.repeat(labels[wave], k),
            batch).reshape(len(wave), k, k)
        swept = []
        for j, (p, i) in enumerate(zip(wave, where)):
            reach = found["hit_prob"][i] > -np.inf
            reach[label[i]] = found["fool_prob"][i] > -np.inf
            swept.append(SweptImage(
                position=p, candidates=candidates.reshape(len(wave), k, -1)[j], probs=probs[j],
                reached=found["reached"][i], swept_reach=reach,
                flips=found["flips"][i].reshape(shape[:2]),
                min_true=found["min_true"][i].reshape(shape[:2]),
                nonfinite=int(found["nonfinite"][i]), candidates_scored=n))
        yield swept


__all__ = ["Found", "SweptImage", "colour_grid", "grid_candidates", "stream", "sweep_wave"]
