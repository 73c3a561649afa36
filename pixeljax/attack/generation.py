"""The attack engine's device code: generations of many attacks, as pure functions.

A candidate is what :mod:`pixeljax.attack.encoding` says: a pixel attack's changed pixels or a
threshold attack's change of every pixel value (the configuration's ``encoding``).

The attacks in flight sit in *slots* (leading axis S). A slot holds its attack (image, label,
target, id), its search's record as a :class:`~pixeljax.de.core.DEState` (batched over the
slots, with the members' class statistics as payload: the DE's population, or the CMA-ES's best
candidate per member, beside the CMA-ES's own state; see :mod:`pixeljax.attack.search`) and the
scorer's cache of its image:
the image itself for the dense scorer (a full forward pass per candidate), or its clean
activations for the incremental one (a one-pixel candidate recomputes only the activations its
pixel reaches); see :mod:`pixeljax.attack.scoring`.

A *segment* advances all slots by up to ``segment`` generations. Inside each generation the
children of every running slot are gathered into one flat buffer and scored micro-batch by
micro-batch, so finished slots cost nothing and memory stays bounded by ``slots x popsize``
candidates plus one micro-batch of images; selection is :func:`pixeljax.de.core.tell`.

Every random draw of an attack comes from ``fold_in(fold_in(key, attack_id), generation)``, so
results do not depend on the slot count, the micro-batch size or the order of attacks.

Everything here is jittable and knows nothing of devices, except that a segment run under
``shard_map`` shares its stopping test across the mesh axis it is given. The host loop that
fills and harvests the slots is :mod:`pixeljax.attack.engine`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pixeljax.attack import scoring
from pixeljax.attack.encoding import encoding_of
from pixeljax.attack.perturb import canonical
from pixeljax.attack.search import search_of
from pixeljax.de.core import DEParams, DEState, init

NON_TARGETED = -1


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Static sizes of the engine (each distinct value compiles once), made by
    :meth:`pixeljax.attack.spec.AttackSpec.engine_config` (where the defaults live).

    Attributes:
      pixels: pixels changed per attack.
      popsize: DE population.
      maxiter: DE generations after the initial population.
      strategy: "rand1" or "best1".
      slots: attacks in flight at once.
      batch_size: candidates per model call.
      segment: generations per compiled segment between host refills.
      threshold: a threshold attack (every pixel value changes by at most
        ``AttackParams.threshold``; ``pixels`` unused), not a pixel attack.
      search: "de" (the project's DE) or "cmaes" (a separable CMA-ES, threshold attacks);
        see :mod:`pixeljax.attack.search`.

    How candidates are scored (dense or incremental, in which precision) is the scorer's
    business: the programs take it as an argument.
    """

    pixels: int
    popsize: int
    maxiter: int
    strategy: str
    slots: int
    batch_size: int
    segment: int
    threshold: bool = False
    search: str = "de"

    def searcher(self, image_shape):
        """How each slot searches (:mod:`pixeljax.attack.search`), for images of this
        shape."""
        return search_of(self.search, strategy=self.strategy, popsize=self.popsize,
                         dims=self.encoding.size(image_shape))

    @property
    def encoding(self):
        """What a candidate is (see :mod:`pixeljax.attack.encoding`)."""
        return encoding_of(self.pixels, self.threshold)


@struct.dataclass
class AttackParams:
    """Tunable numbers of the attack (data: changing them does not recompile), made by
    :meth:`pixeljax.attack.spec.AttackSpec.attack_params`.

    Attributes:
      de: the DE's F and crossover rate.
      target_threshold: a targeted attack stops once the target's probability exceeds this.
      true_threshold: a non-targeted attack stops once the true class's probability falls below
        this; a negative value means: stop as soon as the image is misclassified.
      threshold: a threshold attack's bound on the change of each pixel value (0-255 scale).
    """

    de: DEParams
    target_threshold: float
    true_threshold: float
    threshold: float = 0.0


@struct.dataclass
class Classes:
    """What the model makes of each member (the DE's payload, selected with the members)."""

    true_prob: jax.Array  # probability of the true class
    top_class: jax.Array  # predicted class
    top_prob: jax.Array   # its probability


@struct.dataclass
class Slots:
    """The attacks in flight, one per slot (leading axis S).

    ``de`` is each slot's DE: population (S, P, D), fitness (S, P; lower is better), payload
    :class:`Classes` (S, P), generation (S,; 0 once the initial population is scored) and
    evaluations (S,; model evaluations spent). An empty slot holds zeros and is done.
    """

    image: jax.Array      # (S, H, W, C) original images
    label: jax.Array      # (S,) true classes
    target: jax.Array     # (S,) target classes, NON_TARGETED for non-targeted attacks
    attack_id: jax.Array  # (S,) ids; -1 marks an empty slot
    de: DEState           # the slots' DE states, batched
    nonfinite: jax.Array  # (S,) evaluations whose logits were NaN or infinite
    done: jax.Array       # (S,) finished: early stop or budget spent
    cache: Any            # the scorer's per-slot cache (leading axis S)
    search: Any = None    # the search's own state per slot (None for the DE)


def empty_slots(config: EngineConfig, image_shape: tuple[int, int, int], image_dtype,
                scorer: scoring.Scorer) -> Slots:
    """``config.slots`` empty slots for images of this shape and dtype."""
    s = config.slots
    cache = jax.eval_shape(scorer.prepare, jax.ShapeDtypeStruct((s, *image_shape), image_dtype))
    d = config.encoding.size(image_shape)
    p = config.popsize
    zeros = lambda dtype=jnp.float32: jnp.zeros((s, p), dtype)  # noqa: E731 (distinct buffers)
    de = jax.vmap(init)(jnp.zeros((s, p, d), jnp.float32), zeros(),
                        Classes(zeros(), zeros(jnp.int32), zeros()))
    searcher, some = config.searcher(image_shape), AttackParams(DEParams(), 0.5, -1.0, 1.0)
    search = jax.eval_shape(jax.vmap(lambda k: searcher.start(
        k, config.encoding, image_shape, p, some)[1]), jax.random.split(jax.random.key(0), s))
    return Slots(
        image=jnp.zeros((s, *image_shape), image_dtype),
        label=jnp.zeros((s,), jnp.int32), target=jnp.full((s,), NON_TARGETED, jnp.int32),
        attack_id=jnp.full((s,), -1, jnp.int32),
        de=de,
        nonfinite=jnp.zeros((s,), jnp.int32), done=jnp.ones((s,), bool),
        cache=jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), cache),
        search=jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), search))


def _attack_key(root: jax.Array, attack_id: jax.Array, generation: jax.Array) -> jax.Array:
    """The key of one attack's draws in one generation (0: its initial population)."""
    return jax.random.fold_in(jax.random.fold_in(root, attack_id), generation)


def _where(mask: jax.Array, new, old):
    """``new`` in the slots where ``mask`` (S,), else ``old``, leaf by leaf."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (b.ndim - 1)), a, b), new, old)


def _prepare(scorer, take: jax.Array, image: jax.Array, cache):
    """The scorer's cache for the slots where ``take``, one image at a time (the others keep
    theirs), so a refill costs one clean pass per new attack."""
    def one(args):
        t, x, old = args
        fresh = lambda: jax.tree.map(lambda a: a[0], scorer.prepare(x[None]))  # noqa: E731
        return jax.lax.cond(t, fresh, lambda: old)

    return jax.lax.map(one, (take, image, cache))


def load(scorer, slots: Slots, take: jax.Array, clear: jax.Array, image: jax.Array,
         label: jax.Array, target: jax.Array, attack_id: jax.Array, root: jax.Array,
         params: AttackParams, *, config: EngineConfig) -> Slots:
    """Starts new attacks in the slots where ``take``: the scorer's cache of their images and
    their scored initial populations (an attack the initial population already wins, or with
    no generation to run, is done at once); empties the slots where ``clear``."""
    shape = slots.image.shape[1:]
    searcher = config.searcher(shape)
    population, search = jax.vmap(lambda a: searcher.start(
        _attack_key(root, a, 0), config.encoding, shape, config.popsize, params))(attack_id)
    s = take.shape  # the slots here (a device's share under shard_map)
    fresh = slots.replace(image=image, label=label, target=target, attack_id=attack_id,
                          cache=_prepare(scorer, take, image, slots.cache))
    fitness, classes, nonfinite = _evaluate(scorer, fresh, population, take, config.batch_size)
    search = jax.vmap(lambda a, state, pop, f: searcher.first(
        _attack_key(root, a, 0), state, pop, f, params))(attack_id, search, population, fitness)
    fresh = fresh.replace(de=jax.vmap(init)(population, fitness, classes), search=search,
                          nonfinite=jnp.sum(nonfinite, axis=1), done=jnp.zeros(s, bool))
    fresh = fresh.replace(done=stopped(fresh, params) | (config.maxiter == 0))
    slots = _where(take, fresh, slots)
    return slots.replace(attack_id=jnp.where(clear, -1, slots.attack_id),
                         done=slots.done | clear)


def probabilities(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Class probabilities (B, K) of logits (B, K), and which rows are finite (B,): a row with
    a NaN or infinite logit gets uniform placeholder probabilities (callers treat it as the
    true class with probability 1)."""
    logits = jnp.asarray(logits, jnp.float32)
    finite = jnp.all(jnp.isfinite(logits), axis=-1)
    return jax.nn.softmax(jnp.where(finite[:, None], logits, 0.0), axis=-1), finite


def fitness_from_logits(logits: jax.Array, label: jax.Array, target: jax.Array):
    """Fitness (minimised) and class statistics of a batch of logits (B, K).

    A row with a NaN or infinite logit gets the worst fitness (+inf) and counts as the true
    class with probability 1 (so it is never a success nor an early stop); ``nonfinite`` flags
    such rows (1) so they can be counted.

    Returns:
      ``(fitness, true_prob, top_class, top_prob, nonfinite)``, each (B,).
    """
    probs, finite = probabilities(logits)
    rows = jnp.arange(logits.shape[0])
    true_prob = probs[rows, label]
    target_prob = probs[rows, jnp.maximum(target, 0)]
    fitness = jnp.where(target >= 0, 1.0 - target_prob, true_prob)
    top_class = jnp.argmax(probs, -1).astype(jnp.int32)
    return (jnp.where(finite, fitness, jnp.inf), jnp.where(finite, true_prob, 1.0),
            jnp.where(finite, top_class, jnp.asarray(label, jnp.int32)),
            jnp.where(finite, jnp.max(probs, -1), 0.0), (~finite).astype(jnp.int32))


def _evaluate(scorer: scoring.Scorer, slots: Slots, children: jax.Array, active: jax.Array,
              batch_size: int) -> tuple[jax.Array, Classes, jax.Array]:
    """Scores the children of active slots only, in micro-batches.

    Active slots are moved to the front; a while loop runs ceil(active * P / B) micro-batches,
    so finished or empty slots cost nothing (their scores are zeros).

    Returns:
      ``(fitness, classes, nonfinite)``, each leaf (S, P) (see :func:`fitness_from_logits`).
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
    fitness, true_prob, top_class, top_prob, nonfinite = (
        jnp.zeros((s, p), o.dtype).at[order].set(o[:s * p].reshape(s, p)) for o in outputs)
    return fitness, Classes(true_prob, top_class, top_prob), nonfinite


def _generation(scorer, slots: Slots, root, params: AttackParams, lower, upper,
                config: EngineConfig) -> Slots:
    """One generation of every active slot."""
    active = ~slots.done
    searcher = config.searcher(slots.image.shape[1:])
    key_of = lambda attack_id, record: _attack_key(root, attack_id,  # noqa: E731
                                                   record.generation + 1)

    def children_of(attack_id, record, state):
        return searcher.children(key_of(attack_id, record), record, state, lower, upper,
                                 params)

    def update(attack_id, record, state, children, fitness, classes):
        return searcher.update(key_of(attack_id, record), record, state, children, fitness,
                               classes, params)

    children = jax.vmap(children_of)(slots.attack_id, slots.de, slots.search)
    fitness, classes, nonfinite = _evaluate(scorer, slots, children, active, config.batch_size)
    de, search = _where(active, jax.vmap(update)(slots.attack_id, slots.de, slots.search,
                                                 children, fitness, classes),
                        (slots.de, slots.search))
    slots = slots.replace(de=de, search=search, nonfinite=slots.nonfinite + jnp.sum(nonfinite * active[:, None],
                                                                      axis=1))
    return slots.replace(done=slots.done | (active & (stopped(slots, params) |
                                                      (de.generation >= config.maxiter))))


def _at_best(slots: Slots, field: jax.Array) -> jax.Array:
    """``field`` (S, P, ...) at each slot's best member."""
    best = jnp.argmin(slots.de.fitness, axis=1)
    return jnp.take_along_axis(field, best.reshape(-1, *[1] * (field.ndim - 1)), axis=1)[:, 0]


def stopped(slots: Slots, params: AttackParams) -> jax.Array:
    """The paper's early-stop test on each slot's best member."""
    classes = slots.de.payload
    targeted_hit = (1.0 - _at_best(slots, slots.de.fitness)) > params.target_threshold
    fooled = _at_best(slots, classes.top_class) != slots.label
    below = _at_best(slots, classes.true_prob) < params.true_threshold
    untargeted_hit = jnp.where(params.true_threshold < 0, fooled, below)
    return jnp.where(slots.target >= 0, targeted_hit, untargeted_hit)


def segment(scorer, slots: Slots, root, params: AttackParams, min_active, *,
            config: EngineConfig, axis_name: str | None = None) -> Slots:
    """Up to ``config.segment`` generations; ends early once fewer than ``min_active`` slots
    are still running (so the host can refill them) or none is.

    Under ``shard_map`` (``axis_name`` set) each device runs the generations of its own slots;
    only the stopping test is shared: all devices stop together once one of them has fewer
    than ``min_active`` running or none has any.
    """
    lower, upper = config.encoding.bounds(slots.image.shape[1:], params.threshold)

    def cond(carry):
        g, slots = carry
        total = fewest = jnp.sum(~slots.done)
        if axis_name is not None:
            total, fewest = jax.lax.psum(total, axis_name), jax.lax.pmin(fewest, axis_name)
        return (g < config.segment) & (total > 0) & (fewest >= min_active)

    def body(carry):
        g, slots = carry
        return g + 1, _generation(scorer, slots, root, params, lower, upper, config)

    return jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), slots))[1]


def summaries(slots: Slots, encoding=None) -> dict:
    """Each slot's attack as it stands: its best member (as applied by ``encoding``, default a
    pixel attack's) and what the model makes of it, and the budget spent."""
    classes = slots.de.payload
    candidate = _at_best(slots, slots.de.population)
    as_applied = canonical if encoding is None else encoding.canonical
    return {"attack_id": slots.attack_id, "done": slots.done,
            "perturbation": as_applied(candidate, slots.image.shape[1:]),
            "adversarial_class": _at_best(slots, classes.top_class),
            "confidence": _at_best(slots, classes.top_prob),
            "true_prob_after": _at_best(slots, classes.true_prob),
            "generations": slots.de.generation, "evaluations": slots.de.evaluations,
            "nonfinite": slots.nonfinite}
