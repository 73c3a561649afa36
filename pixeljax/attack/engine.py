"""The streaming attack engine: many one-pixel attacks advanced together by compiled DE.

A run of N attacks streams through a fixed number of *slots*. A compiled *segment* advances all
slots by up to ``segment`` generations; inside each generation the children of every active
slot are gathered into one flat buffer and scored micro-batch by micro-batch by a *scorer*
(:mod:`pixeljax.attack.scoring`), so finished slots cost nothing and memory stays bounded by
``slots x popsize`` candidates plus one micro-batch of images. Between segments the host harvests
finished attacks and loads new ones into the freed slots. Shapes never change, so everything
compiles once.

The scorer keeps a cache per slot, made when an attack is loaded into it: the image itself for
the dense scorer (a full forward pass per candidate), or the image's clean activations for the
incremental one (a one-pixel candidate recomputes only the activations its pixel reaches).

Every random draw of an attack comes from ``fold_in(fold_in(key, attack_id), generation)``, so
results do not depend on the slot count, the micro-batch size or the order of attacks.

On several devices the slots are split evenly between them along a one-axis mesh
(``jax.make_mesh`` + ``NamedSharding``); the segment runs under ``jax.shard_map``, so each device
compacts and scores only its own running slots, with the model's weights replicated. The devices
share only the segment's stopping test (two scalar reductions per generation), and the results
are those of one device.

Reference: Su, Vargas, Sakurai, "One pixel attack for fooling deep neural networks",
arXiv 1710.08864 (TEVC 2019).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from pixeljax.attack import scoring
from pixeljax.attack.perturb import canonical
from pixeljax.de.core import DEParams, DEState, ask
from pixeljax.errors import PixeljaxError

NON_TARGETED = -1
SLOT_AXIS = "slots"  # the mesh axis the slots are split along


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Static sizes of the engine (each distinct value compiles once).

    Attributes:
      pixels: pixels changed per attack.
      popsize: DE population (the paper: 400).
      maxiter: DE generations after the initial population (the paper: 100).
      strategy: "rand1" (the paper) or "best1".
      slots: attacks in flight at once.
      batch_size: candidates per model call.
      segment: generations per compiled segment between host refills.
      dense: score every candidate by a full forward pass even where the victim supports
        incremental scoring (see :func:`pixeljax.attack.scoring.scorer_for`).
    """

    pixels: int = 1
    popsize: int = 400
    maxiter: int = 100
    strategy: str = "rand1"
    slots: int = 32
    batch_size: int = 1024
    segment: int = 10
    dense: bool = False


@struct.dataclass
class AttackParams:
    """Tunable numbers of the attack (data: changing them does not recompile).

    Attributes:
      de: the DE's F and crossover rate.
      target_threshold: a targeted attack stops once the target's probability exceeds this
        (the paper's TEVC version: 0.5).
      true_threshold: a non-targeted attack stops once the true class's probability falls below
        this; a negative value means: stop as soon as the image is misclassified.
    """

    de: DEParams = DEParams()
    target_threshold: float = 0.5
    true_threshold: float = -1.0


@struct.dataclass
class Slots:
    """The attacks in flight, one per slot (leading axis S)."""

    image: jax.Array        # (S, H, W, C) original images
    label: jax.Array        # (S,) true classes
    target: jax.Array       # (S,) target classes, NON_TARGETED for non-targeted attacks
    attack_id: jax.Array    # (S,) ids; -1 marks an empty slot
    population: jax.Array   # (S, P, D)
    fitness: jax.Array      # (S, P) lower is better
    true_prob: jax.Array    # (S, P) probability of the true class
    top_class: jax.Array    # (S, P) predicted class
    top_prob: jax.Array     # (S, P) its probability
    generation: jax.Array   # (S,) generations done; -1 until the initial population is scored
    evaluations: jax.Array  # (S,) model evaluations spent
    nonfinite: jax.Array    # (S,) evaluations whose logits were NaN or infinite
    done: jax.Array         # (S,) finished: early stop or budget spent
    cache: Any              # the scorer's per-slot cache (leading axis S)


def bounds(image_shape: tuple[int, int, int], pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Box bounds of a candidate: x in [0, W), y in [0, H), colours in [0, 255]."""
    h, w, c = image_shape
    eps = 1e-3
    lower = np.zeros((pixels, 2 + c), np.float32)
    upper = np.concatenate([np.full((pixels, 1), w - eps), np.full((pixels, 1), h - eps),
                            np.full((pixels, c), 255.0)], axis=1).astype(np.float32)
    return lower.reshape(-1), upper.reshape(-1)


def initial_population(key: jax.Array, image_shape: tuple[int, int, int], pixels: int,
                       popsize: int) -> jax.Array:
    """The paper's initialisation: x, y uniform over the image, colours N(128, 127) clipped."""
    h, w, c = image_shape
    kx, ky, kc = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (popsize, pixels, 1), maxval=w - 1e-3)
    y = jax.random.uniform(ky, (popsize, pixels, 1), maxval=h - 1e-3)
    colour = jnp.clip(128.0 + 127.0 * jax.random.normal(kc, (popsize, pixels, c)), 0.0, 255.0)
    return jnp.concatenate([x, y, colour], axis=-1).reshape(popsize, -1)


def empty_slots(config: EngineConfig, image_shape: tuple[int, int, int], image_dtype,
                scorer: scoring.Scorer) -> Slots:
    s, p = config.slots, config.popsize
    cache = jax.eval_shape(scorer.prepare, jax.ShapeDtypeStruct((s, *image_shape), image_dtype))
    d = config.pixels * (2 + image_shape[-1])
    return Slots(
        image=jnp.zeros((s, *image_shape), image_dtype),
        label=jnp.zeros((s,), jnp.int32), target=jnp.full((s,), NON_TARGETED, jnp.int32),
        attack_id=jnp.full((s,), -1, jnp.int32),
        population=jnp.zeros((s, p, d), jnp.float32),
        fitness=jnp.full((s, p), jnp.inf, jnp.float32),
        true_prob=jnp.ones((s, p), jnp.float32),
        top_class=jnp.zeros((s, p), jnp.int32), top_prob=jnp.zeros((s, p), jnp.float32),
        generation=jnp.zeros((s,), jnp.int32), evaluations=jnp.zeros((s,), jnp.int32),
        nonfinite=jnp.zeros((s,), jnp.int32),
        done=jnp.ones((s,), bool),
        cache=jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), cache))


def _attack_key(root: jax.Array, attack_id: jax.Array, generation: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(root, attack_id), generation)


def _prepare(scorer, take: jax.Array, image: jax.Array, cache):
    """The scorer's cache for the slots where ``take``, one image at a time (the others keep
    theirs), so a refill costs one clean pass per new attack."""
    def one(args):
        t, x, old = args
        fresh = lambda: jax.tree.map(lambda a: a[0], scorer.prepare(x[None]))  # noqa: E731
        return jax.lax.cond(t, fresh, lambda: old)

    return jax.lax.map(one, (take, image, cache))


def _load(scorer, slots: Slots, take: jax.Array, clear: jax.Array, image: jax.Array,
          label: jax.Array, target: jax.Array, attack_id: jax.Array, root: jax.Array, *,
          config: EngineConfig) -> Slots:
    shape = slots.image.shape[1:]
    init = jax.vmap(lambda a: initial_population(_attack_key(root, a, 0), shape,
                                                 config.pixels, config.popsize))(attack_id)

    def pick(new, old):
        mask = take.reshape(take.shape + (1,) * (old.ndim - 1))
        return jnp.where(mask, new, old)

    s, p = take.shape[0], config.popsize  # slots here (a device's share under shard_map)
    fresh = Slots(image=image, label=label, target=target, attack_id=attack_id, population=init,
                  fitness=jnp.full((s, p), jnp.inf), true_prob=jnp.ones((s, p)),
                  top_class=jnp.zeros((s, p), jnp.int32), top_prob=jnp.zeros((s, p)),
                  generation=jnp.full((s,), -1, jnp.int32),
                  evaluations=jnp.zeros((s,), jnp.int32), nonfinite=jnp.zeros((s,), jnp.int32),
                  done=jnp.zeros((s,), bool), cache=slots.cache)
    slots = jax.tree.map(pick, fresh, slots)
    slots = slots.replace(cache=_prepare(scorer, take, image, slots.cache))
    return slots.replace(attack_id=jnp.where(clear, -1, slots.attack_id),
                         done=slots.done | clear)


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(1,))
def load(scorer, slots: Slots, take: jax.Array, clear: jax.Array, image: jax.Array,
         label: jax.Array, target: jax.Array, attack_id: jax.Array, root: jax.Array, *,
         config: EngineConfig) -> Slots:
    """Starts new attacks in the slots where ``take`` (with the scorer's cache of their
    images); empties the slots where ``clear``."""
    return _load(scorer, slots, take, clear, image, label, target, attack_id, root,
                 config=config)


def fitness_from_logits(logits: jax.Array, label: jax.Array, target: jax.Array):
    """Fitness (minimised) and class statistics of a batch of logits (B, K).

    A row with a NaN or infinite logit gets the worst fitness (+inf) and counts as the true
    class with probability 1 (so it is never a success nor an early stop); ``nonfinite`` flags
    such rows (1) so they can be counted.

    Returns:
      ``(fitness, true_prob, top_class, top_prob, nonfinite)``, each (B,).
    """
    logits = jnp.asarray(logits, jnp.float32)
    finite = jnp.all(jnp.isfinite(logits), axis=-1)
    probs = jax.nn.softmax(jnp.where(finite[:, None], logits, 0.0), axis=-1)
    rows = jnp.arange(logits.shape[0])
    true_prob = probs[rows, label]
    target_prob = probs[rows, jnp.maximum(target, 0)]
    fitness = jnp.where(target >= 0, 1.0 - target_prob, true_prob)
    top_class = jnp.argmax(probs, -1).astype(jnp.int32)
    return (jnp.where(finite, fitness, jnp.inf), jnp.where(finite, true_prob, 1.0),
            jnp.where(finite, top_class, jnp.asarray(label, jnp.int32)),
            jnp.where(finite, jnp.max(probs, -1), 0.0), (~finite).astype(jnp.int32))


def _evaluate(scorer: scoring.Scorer, slots: Slots, children: jax.Array, active: jax.Array,
              batch_size: int):
    """Scores the children of active slots only, in micro-batches.

    Active slots are moved to the front; a while loop runs ceil(active * P / B) micro-batches,
    so finished or empty slots cost nothing. Returns five (S, P) arrays (see
    :func:`fitness_from_logits`).
    """
    s, p, d = children.shape
    order = jnp.argsort(~active, stable=True)  # active slots first
    flat = children[order].reshape(s * p, d)
    owner = jnp.repeat(order, p)
    n_batches = (jnp.sum(active) * p + batch_size - 1) // batch_size
    padded = -(-s * p // batch_size) * batch_size
    flat = jnp.pad(flat, ((0, padded - s * p), (0, 0)))
    owner = jnp.pad(owner, (0, padded - s * p))
    outputs = (jnp.zeros((padded,), jnp.float32), jnp.zeros((padded,), jnp.float32),
               jnp.zeros((padded,), jnp.int32), jnp.zeros((padded,), jnp.float32),
               jnp.zeros((padded,), jnp.int32))

    def body(b, outputs):
        start = b * batch_size
        cand = jax.lax.dynamic_slice_in_dim(flat, start, batch_size)      # (B, D)
        who = jax.lax.dynamic_slice_in_dim(owner, start, batch_size)      # (B,)
        logits = scorer.logits(slots.cache, cand, who)                     # (B, K)
        scores = fitness_from_logits(logits, slots.label[who], slots.target[who])
        return tuple(jax.lax.dynamic_update_slice_in_dim(o, v, start, 0)
                     for o, v in zip(outputs, scores))

    outputs = jax.lax.fori_loop(0, n_batches, body, outputs)
    # Back from sorted order to slot order.
    return tuple(jnp.zeros((s, p), o.dtype).at[order].set(o[:s * p].reshape(s, p))
                 for o in outputs)


def _generation(scorer, slots: Slots, root, params: AttackParams, lower, upper,
                config: EngineConfig) -> Slots:
    """One generation of every active slot (the initial scoring for freshly loaded ones)."""
    active = ~slots.done
    fresh = slots.generation < 0

    def children_of(attack_id, generation, population, fitness):
        state = DEState(population=population, fitness=fitness, generation=generation,
                        evaluations=jnp.zeros((), jnp.int32))
        return ask(_attack_key(root, attack_id, generation + 1), state, lower, upper,
                   params.de, strategy=config.strategy)

    children = jax.vmap(children_of)(slots.attack_id, slots.generation, slots.population,
                                     slots.fitness)
    children = jnp.where(fresh[:, None, None], slots.population, children)
    fitness, true_prob, top_class, top_prob, nonfinite = _evaluate(
        scorer, slots, children, active, config.batch_size)
    better = ((fitness < slots.fitness) | fresh[:, None]) & active[:, None]
    keep = lambda new, old: jnp.where(better, new, old)  # noqa: E731
    generation = jnp.where(active, slots.generation + 1, slots.generation)
    slots = slots.replace(
        population=jnp.where(better[..., None], children, slots.population),
        fitness=keep(fitness, slots.fitness), true_prob=keep(true_prob, slots.true_prob),
        top_class=keep(top_class, slots.top_class), top_prob=keep(top_prob, slots.top_prob),
        generation=generation,
        evaluations=jnp.where(active, slots.evaluations + config.popsize, slots.evaluations),
        nonfinite=slots.nonfinite + jnp.sum(nonfinite * active[:, None], axis=1))
    return slots.replace(done=slots.done | (active & (stopped(slots, params) |
                                                      (generation >= config.maxiter))))


def _best(slots: Slots) -> jax.Array:
    return jnp.argmin(slots.fitness, axis=1)


def _at_best(slots: Slots, field: jax.Array) -> jax.Array:
    return jnp.take_along_axis(field, _best(slots)[:, None], axis=1)[:, 0]


def stopped(slots: Slots, params: AttackParams) -> jax.Array:
    """The paper's early-stop test on each slot's best member."""
    best_fitness = _at_best(slots, slots.fitness)
    targeted_hit = (1.0 - best_fitness) > params.target_threshold
    fooled = _at_best(slots, slots.top_class) != slots.label
    below = _at_best(slots, slots.true_prob) < params.true_threshold
    untargeted_hit = jnp.where(params.true_threshold < 0, fooled, below)
    return jnp.where(slots.target >= 0, targeted_hit, untargeted_hit)


def _segment(scorer, slots: Slots, root, params: AttackParams, min_active, *,
             config: EngineConfig, axis_name: str | None = None) -> Slots:
    """The body of :func:`run_segment`. Under ``shard_map`` (``axis_name`` set) each device
    runs the generations of its own slots; only the loop's stopping test is shared: all
    devices stop together once one of them has fewer than ``min_active`` slots running (so
    the host can refill it) or none has any."""
    lower, upper = bounds(slots.image.shape[1:], config.pixels)

    def cond(carry):
        g, slots = carry
        running = jnp.sum(~slots.done)
        if axis_name is None:
            return (g < config.segment) & (running > 0) & (running >= min_active)
        total = jax.lax.psum(running, axis_name)
        fewest = jax.lax.pmin(running, axis_name)
        return (g < config.segment) & (total > 0) & (fewest >= min_active)

    def body(carry):
        g, slots = carry
        return g + 1, _generation(scorer, slots, root, params, lower, upper, config)

    return jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), slots))[1]


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(1,))
def run_segment(scorer, slots: Slots, root, params: AttackParams, min_active, *,
                config: EngineConfig) -> Slots:
    """Up to ``config.segment`` generations; ends early once fewer than ``min_active`` slots
    are still running (so the host can refill them)."""
    return _segment(scorer, slots, root, params, min_active, config=config)


@jax.jit
def _summaries(slots: Slots) -> dict:
    best = _best(slots)
    pick = lambda f: jnp.take_along_axis(f, best[:, None], axis=1)[:, 0]  # noqa: E731
    candidate = jnp.take_along_axis(slots.population, best[:, None, None], axis=1)[:, 0]
    return {"attack_id": slots.attack_id, "done": slots.done,
            "perturbation": canonical(candidate, slots.image.shape[1:]),
            "adversarial_class": pick(slots.top_class), "confidence": pick(slots.top_prob),
            "true_prob_after": pick(slots.true_prob), "generations": slots.generation,
            "evaluations": slots.evaluations, "nonfinite": slots.nonfinite}


@dataclasses.dataclass(frozen=True)
class Attack:
    """One attack to run: an image, its label, a target (or NON_TARGETED) and a unique id."""

    attack_id: int
    image: np.ndarray
    label: int
    target: int


def local_devices(devices: int | Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The devices an attack run uses: by default all of this process's devices.

    Args:
      devices: None (all local devices), a count ``n`` (the first ``n`` local devices) or a
        sequence of local devices.

    Raises:
      PixeljaxError: a count outside [1, local devices], or devices not of this process.
    """
    local = jax.local_devices()
    if devices is None:
        return local
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise PixeljaxError(f"devices must be between 1 and the {len(local)} "
                                f"{local[0].platform.upper()} device(s) this process sees, "
                                f"got {devices}")
        return local[:int(devices)]
    chosen = list(devices)
    if not chosen or len(set(chosen)) != len(chosen) or any(d not in local for d in chosen):
        raise PixeljaxError(f"devices must be distinct devices of this process "
                            f"({len(local)} available), got {chosen}")
    return chosen


def slot_count(slots: int, n_devices: int) -> int:
    """Slots rounded up to a multiple of the device count (each device runs the same number)."""
    return -(-max(slots, 1) // n_devices) * n_devices


@dataclasses.dataclass(frozen=True)
class _Sharded:
    """The engine's compiled steps over a 1-D device mesh: slots split along axis 0, the rest
    (the scorer with the model's weights, the key, the attack numbers) replicated."""

    slots: NamedSharding
    replicated: NamedSharding
    load: Callable
    segment: Callable


@functools.lru_cache(maxsize=None)
def _sharded(config: EngineConfig, devices: tuple[jax.Device, ...]) -> _Sharded:
    mesh = jax.make_mesh((len(devices),), (SLOT_AXIS,), devices=devices)
    slot, rep = P(SLOT_AXIS), P()
    # check_vma=False: the per-device code is the single-device code, whose loop carries
    # start from constants (not typed as varying across devices).
    load_fn = jax.shard_map(functools.partial(_load, config=config), mesh=mesh,
                            in_specs=(rep,) + (slot,) * 7 + (rep,), out_specs=slot,
                            check_vma=False)
    segment_fn = jax.shard_map(functools.partial(_segment, config=config, axis_name=SLOT_AXIS),
                               mesh=mesh, in_specs=(rep, slot, rep, rep, rep), out_specs=slot,
                               check_vma=False)
    return _Sharded(slots=NamedSharding(mesh, slot), replicated=NamedSharding(mesh, rep),
                    load=jax.jit(load_fn, donate_argnums=(1,)),
                    segment=jax.jit(segment_fn, donate_argnums=(1,)))


def _fill_order(free: list[int], per_device: int) -> list[int]:
    """Free slots in the order new attacks take them: each next one on the device with the
    most free slots (ties: the lowest), so the devices stay evenly loaded. On one device this
    is slot order."""
    by_device: dict[int, list[int]] = {}
    for i in free:
        by_device.setdefault(i // per_device, []).append(i)
    return [i for *_, i in sorted((r - len(v), d, i) for d, v in by_device.items()
                                  for r, i in enumerate(v))]


def stream(apply: Callable, attacks: list[Attack], key: jax.Array, config: EngineConfig,
           params: AttackParams = AttackParams(), *,
           devices: int | Sequence[jax.Device] | None = None) -> Iterator[list[dict]]:
    """Runs ``attacks`` through the slots; yields the results of each harvest as dicts.

    ``apply`` is the model (``apply(images) -> logits``, e.g. ``Victim.predict``) or a scorer;
    :func:`pixeljax.attack.scoring.scorer_for` picks incremental scoring where the victim
    supports it and ``config.dense`` is off, else dense scoring.

    Each dict holds attack_id, perturbation ((pixels * (2 + C),) as applied),
    adversarial_class, confidence, true_prob_after, generations, evaluations and success.

    On several devices (``devices``: see :func:`local_devices`; default all of this process's)
    the slots are split evenly between them (``config.slots`` is rounded up to a multiple of
    the device count) and each device compacts and scores its own slots, ``config.batch_size``
    images per model call; the results are those of one device.
    """
    if not attacks:
        return
    scorer = scoring.scorer_for(apply, pixels=config.pixels, dense=config.dense)
    devices = local_devices(devices)
    n = len(devices)
    first = np.asarray(attacks[0].image)
    if n == 1 and devices[0] == jax.local_devices()[0]:
        sharded, place = None, lambda x: x  # noqa: E731
        # Commit every argument to the device up front: mixing committed and uncommitted
        # arrays between calls would compile the segment twice.
        slots, scorer, key, params = jax.device_put(
            (empty_slots(config, first.shape, first.dtype, scorer), scorer, key, params),
            devices[0])
    else:
        config = dataclasses.replace(config, slots=slot_count(config.slots, n))
        sharded = _sharded(config, tuple(devices))
        place = functools.partial(jax.device_put, device=sharded.slots)
        slots = place(empty_slots(config, first.shape, first.dtype, scorer))
        scorer, key, params = jax.device_put((scorer, key, params), sharded.replicated)
    pending = list(reversed(attacks))
    in_slot: list[Attack | None] = [None] * config.slots
    s = config.slots
    clear = np.zeros(s, bool)
    while pending or any(a is not None for a in in_slot):
        take = np.zeros(s, bool)
        image = np.zeros((s, *first.shape), first.dtype)
        label, target, ids = (np.zeros(s, np.int32), np.full(s, NON_TARGETED, np.int32),
                              np.full(s, -1, np.int32))
        free = [i for i in range(s) if in_slot[i] is None]
        for i in _fill_order(free, s // n)[:len(pending)]:
            a = in_slot[i] = pending.pop()
            take[i] = True
            image[i], label[i], target[i], ids[i] = a.image, a.label, a.target, a.attack_id
        if sharded is None:
            if take.any() or clear.any():
                slots = load(scorer, slots, take, clear & ~take, image, label, target, ids,
                             key, config=config)
            min_active = s // 2 + 1 if pending else 1
            slots = run_segment(scorer, slots, key, params, min_active, config=config)
        else:
            if take.any() or clear.any():
                slots = sharded.load(scorer, slots, *map(place, (take, clear & ~take, image,
                                                                 label, target, ids)), key)
            min_active = (s // n) // 2 + 1 if pending else 0  # per device
            slots = sharded.segment(scorer, slots, key, params, min_active)
        summary = jax.device_get(_summaries(slots))
        finished, clear = [], np.zeros(s, bool)
        for i in range(s):
            a = in_slot[i]
            if a is None or not summary["done"][i]:
                continue
            row = {k: v[i] for k, v in summary.items() if k != "done"}
            row["attack_id"] = a.attack_id
            row["success"] = bool(row["adversarial_class"] == a.target if a.target >= 0
                                  else row["adversarial_class"] != a.label)
            finished.append(row)
            in_slot[i], clear[i] = None, True
        if finished:
            yield finished
