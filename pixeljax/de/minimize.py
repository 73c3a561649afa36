"""A compiled, SciPy-like black-box minimiser over box bounds."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pixeljax.de.core import MIN_POPSIZE, STRATEGIES, DEParams, ask, init, tell, uniform_population
from pixeljax.errors import PixeljaxError


@struct.dataclass
class OptimizeResult:
    """Reads like ``scipy.optimize.OptimizeResult``.

    Attributes:
      x: (D,) best member.  fun: its fitness.  nit: generations run.  nfev: evaluations.
      population: (P, D) final population.  population_energies: (P,) its fitness.
      converged: whether ``stop_fitness`` was reached.
      nonfinite: objective values that were NaN or infinite; each counts as the worst fitness
        (+inf), so it never wins selection nor becomes ``x``.
    """

    x: jax.Array
    fun: jax.Array
    nit: jax.Array
    nfev: jax.Array
    population: jax.Array
    population_energies: jax.Array
    converged: jax.Array
    nonfinite: jax.Array


def _validate(lower, upper, popsize, maxiter, strategy, population):
    lower, upper = np.asarray(lower, np.float32), np.asarray(upper, np.float32)
    if lower.ndim != 1 or lower.shape != upper.shape:
        raise PixeljaxError(f"bounds must be two vectors of the same length, got shapes "
                            f"{lower.shape} and {upper.shape}")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise PixeljaxError(f"bounds must be finite numbers, got lower {lower.tolist()} and "
                            f"upper {upper.tolist()}")
    if not np.all(lower <= upper):
        raise PixeljaxError("every lower bound must be <= its upper bound")
    if popsize < MIN_POPSIZE:
        raise PixeljaxError(f"popsize must be >= {MIN_POPSIZE} for DE/rand/1, got {popsize}")
    if maxiter < 0:
        raise PixeljaxError(f"maxiter must be >= 0, got {maxiter}")
    if strategy not in STRATEGIES:
        raise PixeljaxError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if population is not None and tuple(np.shape(population)) != (popsize, lower.shape[0]):
        raise PixeljaxError(f"population must have shape ({popsize}, {lower.shape[0]}) "
                            f"(popsize, dimensions), got {tuple(np.shape(population))}")
    if population is not None:
        members = np.asarray(population, np.float32)
        outside = ~np.all((members >= lower) & (members <= upper), axis=1)
        if outside.any():
            raise PixeljaxError(f"the initial population must lie inside the bounds; "
                                f"{int(outside.sum())} of {popsize} members do not (first: "
                                f"member {int(np.argmax(outside))})")
    return jnp.asarray(lower), jnp.asarray(upper)


def _check_objective(fn, popsize: int, dimensions: int) -> None:
    """``fn`` maps (P, D) members to (P,) real numbers."""
    out = jax.eval_shape(fn, jax.ShapeDtypeStruct((popsize, dimensions), jnp.float32))
    shape = getattr(out, "shape", None)
    if shape != (popsize,) or not jnp.issubdtype(getattr(out, "dtype", object), jnp.number):
        raise PixeljaxError(f"the objective must map a population ({popsize}, {dimensions}) to "
                            f"({popsize},) fitness values, got "
                            f"{shape if shape is not None else type(out).__name__}")


def _scored(fn, members: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The fitness of ``members`` with NaN and infinite values as the worst (+inf), and how
    many there were."""
    fitness = jnp.asarray(fn(members), jnp.float32)
    finite = jnp.isfinite(fitness)
    return jnp.where(finite, fitness, jnp.inf), jnp.sum(~finite).astype(jnp.int32)


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
    _check_objective(fn, popsize, lower.shape[0])
    params = DEParams(F=F, crossover_rate=1.0 if crossover_rate is None else crossover_rate)
    return _run(fn, lower, upper, key, params, population, popsize=popsize, maxiter=maxiter,
                strategy=strategy,
                stop_fitness=-jnp.inf if stop_fitness is None else stop_fitness)


@functools.partial(jax.jit, static_argnames=("fn", "popsize", "maxiter", "strategy"))
def _run(fn, lower, upper, key, params, population, *, popsize, maxiter, strategy, stop_fitness):
    init_key, loop_key = jax.random.split(key)
    if population is None:
        population = uniform_population(init_key, lower, upper, popsize)
    fitness, nonfinite = _scored(fn, population)
    state = init(population, fitness)

    def cond(carry):
        state, _ = carry
        return (state.generation < maxiter) & ~(state.best_fitness <= stop_fitness)

    def body(carry):
        state, nonfinite = carry
        k = jax.random.fold_in(loop_key, state.generation)
        children = ask(k, state, lower, upper, params, strategy=strategy)
        fitness, bad = _scored(fn, children)
        return tell(state, children, fitness), nonfinite + bad

    state, nonfinite = jax.lax.while_loop(cond, body, (state, nonfinite))
    return OptimizeResult(x=state.best, fun=state.best_fitness, nit=state.generation,
                          nfev=state.evaluations, population=state.population,
                          population_energies=state.fitness,
                          converged=state.best_fitness <= stop_fitness, nonfinite=nonfinite)
