"""A compiled, SciPy-like black-box minimiser over box bounds."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pixeljax.de.core import STRATEGIES, DEParams, DEState, init, step
from pixeljax.errors import PixeljaxError


@struct.dataclass
class OptimizeResult:
    """Reads like ``scipy.optimize.OptimizeResult``.

    Attributes:
      x: (D,) best member.  fun: its fitness.  nit: generations run.  nfev: evaluations.
      population: (P, D) final population.  population_energies: (P,) its fitness.
      converged: whether ``stop_fitness`` was reached.
    """

    x: jax.Array
    fun: jax.Array
    nit: jax.Array
    nfev: jax.Array
    population: jax.Array
    population_energies: jax.Array
    converged: jax.Array


def _validate(lower, upper, popsize, maxiter, strategy, population):
    lower, upper = np.asarray(lower, np.float32), np.asarray(upper, np.float32)
    if lower.ndim != 1 or lower.shape != upper.shape:
        raise PixeljaxError(f"bounds must be two vectors of the same length, got shapes "
                            f"{lower.shape} and {upper.shape}")
    if not np.all(lower <= upper):
        raise PixeljaxError("every lower bound must be <= its upper bound")
    if popsize < 4:
        raise PixeljaxError(f"popsize must be >= 4 for DE/rand/1, got {popsize}")
    if maxiter < 0:
        raise PixeljaxError(f"maxiter must be >= 0, got {maxiter}")
    if strategy not in STRATEGIES:
        raise PixeljaxError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if population is not None and tuple(np.shape(population)) != (popsize, lower.shape[0]):
        raise PixeljaxError(f"population must have shape ({popsize}, {lower.shape[0]}) "
                            f"(popsize, dimensions), got {tuple(np.shape(population))}")
    return jnp.asarray(lower), jnp.asarray(upper)


def differential_evolution(fn: Callable[[jax.Array], jax.Array], lower, upper, *, popsize: int,
                           maxiter: int, key: jax.Array, F: float = 0.5,
                           crossover_rate: float | None = None, strategy: str = "rand1",
                           stop_fitness: float | None = None, population: jax.Array | None = None
                           ) -> OptimizeResult:
    """Minimises ``fn`` over the box ``[lower, upper]`` with differential evolution.

    Like ``scipy.optimize.differential_evolution(..., vectorized=True)`` but compiled: ``fn``
    takes a whole population ``(P, D)`` and returns its fitness ``(P,)``; generations run in
    ``lax.while_loop``. Defaults are the one-pixel attack's: DE/rand/1, F = 0.5, no crossover.

    Args:
      fn: a JAX function from (P, D) members to (P,) fitness values.
      lower, upper: (D,) bounds.
      popsize: members (P >= 4).
      maxiter: generations after the initial population.
      key: a JAX PRNG key.
      F: differential weight.
      crossover_rate: binomial crossover probability; None means no crossover.
      strategy: "rand1" (default) or "best1".
      stop_fitness: stop early once the best fitness is <= this value (None: never).
      population: optional (P, D) initial population instead of a uniform one.

    Returns:
      An :class:`OptimizeResult`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> r = differential_evolution(lambda p: jnp.sum(p ** 2, -1), -5 * jnp.ones(3),
      ...                            5 * jnp.ones(3), popsize=40, maxiter=200,
      ...                            key=jax.random.key(0))
      >>> bool(r.fun < 1e-3)
      True
    """
    lower, upper = _validate(lower, upper, popsize, maxiter, strategy, population)
    params = DEParams(F=F, crossover_rate=1.0 if crossover_rate is None else crossover_rate)
    return _run(fn, lower, upper, key, params, population, popsize=popsize, maxiter=maxiter,
                strategy=strategy,
                stop_fitness=-jnp.inf if stop_fitness is None else stop_fitness)


@functools.partial(jax.jit, static_argnames=("fn", "popsize", "maxiter", "strategy"))
def _run(fn, lower, upper, key, params, population, *, popsize, maxiter, strategy, stop_fitness):
    init_key, loop_key = jax.random.split(key)
    state = init(init_key, fn, lower, upper, popsize, population)

    def cond(state: DEState):
        return (state.generation < maxiter) & ~(state.best_fitness <= stop_fitness)

    def body(state: DEState):
        k = jax.random.fold_in(loop_key, state.generation)
        return step(k, state, fn, lower, upper, params, strategy=strategy)

    state = jax.lax.while_loop(cond, body, state)
    return OptimizeResult(x=state.best, fun=state.best_fitness, nit=state.generation,
                          nfev=state.evaluations, population=state.population,
                          population_energies=state.fitness,
                          converged=state.best_fitness <= stop_fitness)
