"""How the engine searches a slot's candidates: the project's DE, or a separable CMA-ES.

Both keep the slot's :class:`~pixeljax.de.core.DEState` as the record the engine reads (each
member's best candidate so far, its fitness and classes; the best member is the attack's
answer, the stopping rules test it). The DE's record is its population. The CMA-ES
(``--search cmaes``) is evosax's ``Sep_CMA_ES`` (Ros & Hansen 2008, a diagonal covariance, so
thousands of dimensions cost O(D) per member), as Kotyan & Vargas run a CMA-ES for the
threshold attack (arXiv 1906.06026; their code: DualQualityAssessment): it starts at the
clean image (a zero change) with step ``th / 4``; each generation's samples are clipped into
the box (evosax knows no bounds) and told as clipped, and the record keeps, member by member,
the better of its old and new candidate (so the best so far is never lost).

What was adapted from evosax: its ``ask``/``tell`` take a key and a state per attack and are
``vmap``-ed over the slots; fitness is minimised as evosax minimises it (lower = better, the
engine's sign); NaN or infinite fitness ranks last. Keys are the engine's own per attack and
generation, so results do not depend on the slots or devices.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from pixeljax.de.core import DEState, ask, tell
from pixeljax.errors import PixeljaxError

SEARCHES = ("de", "cmaes")


@dataclasses.dataclass(frozen=True)
class DESearch:
    """The project's DE: the record is the population; nothing else to keep."""

    strategy: str = "rand1"

    def start(self, key, encoding, image_shape, popsize: int, params):
        """``(initial population, search state)`` of one attack."""
        return encoding.initial_population(key, image_shape, popsize, params.threshold), None

    def first(self, key, state, population, fitness, params):
        """The state once the initial population is scored."""
        return state

    def children(self, key, record: DEState, state, lower, upper, params):
        return ask(key, record, lower, upper, params.de, strategy=self.strategy)

    def update(self, key, record: DEState, state, children, fitness, classes, params):
        """``(record, state)`` once the children are scored."""
        return tell(record, children, fitness, classes), state


@functools.lru_cache(maxsize=None)
def _sep_cma_es(popsize: int, dims: int):
    try:
        from evosax.algorithms import Sep_CMA_ES
    except ImportError:
        raise PixeljaxError("--search cmaes needs evosax (pip install evosax)") from None
    with jax.ensure_compile_time_eval():  # built once, maybe while a program is traced
        return Sep_CMA_ES(population_size=popsize, solution=jnp.zeros(dims, jnp.float32))


@dataclasses.dataclass(frozen=True)
class CMAESearch:
    """evosax's separable CMA-ES, started at a zero change with step ``th / 4``."""

    popsize: int
    dims: int

    @property
    def es(self):
        return _sep_cma_es(self.popsize, self.dims)

    def _params(self, params):
        return self.es.default_params.replace(
            std_init=jnp.asarray(params.threshold, jnp.float32) / 4)

    def start(self, key, encoding, image_shape, popsize: int, params):
        """The first generation's samples (in the box) of a fresh state at a zero change."""
        state = self.es.init(key, jnp.zeros(self.dims, jnp.float32), self._params(params))
        lower, upper = encoding.bounds(image_shape, params.threshold)
        return self.children(key, None, state, lower, upper, params), state

    def first(self, key, state, population, fitness, params):
        return self.es.tell(key, population, fitness, state, self._params(params))[0]

    def children(self, key, record, state, lower, upper, params):
        samples, _ = self.es.ask(key, state, self._params(params))
        return jnp.clip(samples, lower, upper)

    def update(self, key, record, state, children, fitness, classes, params):
        state = self.first(key, state, children, fitness, params)
        return tell(record, children, fitness, classes), state


def search_of(name: str, *, strategy: str, popsize: int, dims: int):
    """The search ``name`` ("de" or "cmaes") for ``popsize`` members of ``dims`` values."""
    if name == "de":
        return DESearch(strategy)
    if name == "cmaes":
        return CMAESearch(popsize, dims)
    raise PixeljaxError(f"unknown search {name!r}; expected one of {SEARCHES}")
