"""Differential evolution as pure functions over a state pytree (Storn & Price 1997).

The one-pixel attack's optimiser (Su, Vargas, Sakurai, arXiv 1710.08864): DE/rand/1 with
F = 0.5 and no crossover; each child replaces its own parent only if it is fitter. Binomial
crossover, the DE/best/1 strategy and a weight dithered per generation are options, never the
default.

``init`` (of a population the caller scored) and ``step`` work on one problem; ``vmap`` them
for many. ``ask`` and ``tell`` split a step around the evaluation, for callers that evaluate
many problems' children together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pixeljax.errors import PixeljaxError

STRATEGIES = ("rand1", "best1")
MIN_POPSIZE = 4  # DE/rand/1 draws three members other than the one it replaces


@struct.dataclass
class DEState:
    """One DE problem.

    Attributes:
      population: (P, D) members.
      fitness: (P,) their fitness (lower is better).
      generation: () generations done since the initial population.
      evaluations: () objective evaluations spent.
      payload: None, or a pytree of per-member data (each leaf with leading axis P) that
        :func:`tell` selects together with the members, e.g. what the objective saw of them.
    """

    population: jax.Array
    fitness: jax.Array
    generation: jax.Array
    evaluations: jax.Array
    payload: Any = None

    @property
    def best_index(self) -> jax.Array:
        return jnp.argmin(self.fitness)

    @property
    def best(self) -> jax.Array:
        return self.population[self.best_index]

    @property
    def best_fitness(self) -> jax.Array:
        return self.fitness[self.best_index]


@struct.dataclass
class DEParams:
    """Tunable numbers (data, so changing them does not recompile).

    Attributes:
      F: differential weight.
      crossover_rate: binomial crossover probability; 1.0 means no crossover (the child is the
        mutant), the paper's setting.
      dither: each generation draws its weight from ``[F, F + dither)`` (SciPy's and ART's
        ``mutation=(0.5, 1)`` is ``F=0.5, dither=0.5``); 0.0 keeps ``F`` fixed, the paper's.
    """

    F: float = 0.5
    crossover_rate: float = 1.0
    dither: float = 0.0


def distinct_others(key: jax.Array, popsize: int) -> jax.Array:
    """For each member i, three distinct indices r1, r2, r3, all different from i.

    Exact and uniform, O(P): each draw is mapped into the complement of the indices already
    excluded by stepping over them in sorted order.

    Returns:
      (P, 3) int32 indices.
    """
    i = jnp.arange(popsize)
    k1, k2, k3 = jax.random.split(key, 3)
    r1 = jax.random.randint(k1, (popsize,), 0, popsize - 1)
    r1 = r1 + (r1 >= i)
    lo, hi = jnp.minimum(i, r1), jnp.maximum(i, r1)
    r2 = jax.random.randint(k2, (popsize,), 0, popsize - 2)
    r2 = r2 + (r2 >= lo)
    r2 = r2 + (r2 >= hi)
    excluded = jnp.sort(jnp.stack([i, r1, r2]), axis=0)
    r3 = jax.random.randint(k3, (popsize,), 0, popsize - 3)
    for s in excluded:
        r3 = r3 + (r3 >= s)
    return jnp.stack([r1, r2, r3], axis=1)


def ask(key: jax.Array, state: DEState, lower: jax.Array, upper: jax.Array,
        params: DEParams = DEParams(), *, strategy: str = "rand1") -> jax.Array:
    """Children of one generation, clipped to the box ``[lower, upper]``.

    Returns:
      (P, D) children; child i competes with parent i.
    """
    if strategy not in STRATEGIES:
        raise PixeljaxError(f"unknown DE strategy {strategy!r}; expected one of {STRATEGIES}")
    pop = state.population
    p, d = pop.shape
    mut_key, cross_key, jrand_key = jax.random.split(key, 3)
    r = distinct_others(mut_key, p)
    base = pop[r[:, 0]] if strategy == "rand1" else pop[state.best_index][None]
    # The generation's weight, from its own stream (the other draws are those of a fixed F).
    weight = params.F + params.dither * jax.random.uniform(jax.random.fold_in(key, 1))
    mutant = base + weight * (pop[r[:, 1]] - pop[r[:, 2]])
    # Binomial crossover; with rate 1.0 every gene comes from the mutant.
    take = jax.random.uniform(cross_key, (p, d)) < params.crossover_rate
    take = take | (jnp.arange(d) == jax.random.randint(jrand_key, (p, 1), 0, d))
    children = jnp.where(take, mutant, pop)
    return jnp.clip(children, lower, upper)


def tell(state: DEState, children: jax.Array, fitness: jax.Array,
         payload: Any = None) -> DEState:
    """Greedy one-to-one selection: a child replaces its parent only if strictly fitter.

    ``payload`` holds the children's payload (the structure of ``state.payload``); it is
    selected with the same test.
    """
    better = fitness < state.fitness

    def keep(new, old):
        return jnp.where(better.reshape(better.shape + (1,) * (old.ndim - 1)), new, old)

    return state.replace(
        population=keep(children, state.population),
        fitness=keep(fitness, state.fitness),
        payload=jax.tree.map(keep, payload, state.payload),
        generation=state.generation + 1,
        evaluations=state.evaluations + children.shape[0],
    )


def uniform_population(key: jax.Array, lower: jax.Array, upper: jax.Array,
                       popsize: int) -> jax.Array:
    """(P, D) members drawn uniformly in the box."""
    lower, upper = jnp.asarray(lower, jnp.float32), jnp.asarray(upper, jnp.float32)
    return jax.random.uniform(key, (popsize, lower.shape[0]), minval=lower, maxval=upper)


def init(population: jax.Array, fitness: jax.Array, payload: Any = None) -> DEState:
    """The state of a scored initial population: members (P, D), their fitness (P,) and
    payload (leading axis P); generation 0, P evaluations spent."""
    return DEState(population=population, fitness=jnp.asarray(fitness, jnp.float32),
                   generation=jnp.zeros((), jnp.int32),
                   evaluations=jnp.asarray(population.shape[0], jnp.int32), payload=payload)


def step(key: jax.Array, state: DEState, fn: Callable[[jax.Array], jax.Array],
         lower: jax.Array, upper: jax.Array, params: DEParams = DEParams(), *,
         strategy: str = "rand1") -> DEState:
    """One generation: mutate, evaluate the children with ``fn``, select."""
    children = ask(key, state, lower, upper, params, strategy=strategy)
    return tell(state, children, jnp.asarray(fn(children), jnp.float32))
