"""Differential evolution: the pure init/ask/tell/step functions and the compiled minimiser."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pixeljax.de import (
    DEParams,
    ask,
    differential_evolution,
    distinct_others,
    init,
    step,
    tell,
    uniform_population,
)
from pixeljax.errors import PixeljaxError


def sphere(p):
    return jnp.sum(p ** 2, axis=-1)


def rastrigin(p):
    return 10.0 * p.shape[-1] + jnp.sum(p ** 2 - 10.0 * jnp.cos(2 * jnp.pi * p), axis=-1)


# -- distinct_others -----------------------------------------------------------------------------

def many_draws(seed: int, popsize: int, n: int) -> np.ndarray:
    """(n, P, 3) draws of distinct_others under n keys."""
    keys = jax.random.split(jax.random.key(seed), n)
    return np.asarray(jax.jit(jax.vmap(lambda k: distinct_others(k, popsize)))(keys))


@pytest.mark.parametrize("popsize", [4, 9])
def test_distinct_others_gives_three_distinct_indices_other_than_the_member(popsize):
    r = many_draws(popsize, popsize, 64)
    assert r.shape == (64, popsize, 3)
    assert r.min() >= 0 and r.max() < popsize
    me = np.arange(popsize)[None, :, None]
    assert not (r == me).any()
    assert (r[..., 0] != r[..., 1]).all()
    assert (r[..., 0] != r[..., 2]).all()
    assert (r[..., 1] != r[..., 2]).all()


def started(key, fn, lower, upper, popsize):
    """A uniform initial population of ``popsize``, scored by ``fn``."""
    population = uniform_population(key, lower, upper, popsize)
    return init(population, fn(population))


def test_distinct_others_draws_every_other_member_about_equally_often():
    popsize = 6
    r = many_draws(0, popsize, 3000)
    for slot in range(3):
        counts = np.bincount(r[:, 0, slot], minlength=popsize)  # member 0's picks
        assert counts[0] == 0
        # 3000 draws over 5 members: 600 each, standard deviation about 22.
        np.testing.assert_allclose(counts[1:], 600, atol=110)


def test_distinct_others_with_popsize_4_picks_exactly_the_three_others():
    r = np.asarray(distinct_others(jax.random.key(3), 4))
    for i in range(4):
        assert sorted(r[i]) == sorted(set(range(4)) - {i})


# -- ask / tell ----------------------------------------------------------------------------------

@jax.jit
def _generation(key, state, lower, upper):
    children = ask(key, state, lower, upper)
    return children, tell(state, children, sphere(children))


def test_tell_never_makes_a_member_worse():
    key = jax.random.key(0)
    lower, upper = -jnp.ones(3), jnp.ones(3)
    state = started(key, sphere, lower, upper, 8)
    for g in range(20):
        before_pop, before_fit = np.asarray(state.population), np.asarray(state.fitness)
        children, state = _generation(jax.random.fold_in(key, g), state, lower, upper)
        after_fit = np.asarray(state.fitness)
        assert (after_fit <= before_fit).all()
        # Each member is either its parent or its own child, with the matching fitness.
        replaced = after_fit < before_fit
        np.testing.assert_array_equal(np.asarray(state.population)[~replaced],
                                      before_pop[~replaced])
        np.testing.assert_array_equal(np.asarray(state.population)[replaced],
                                      np.asarray(children)[replaced])
        np.testing.assert_allclose(after_fit, sphere(state.population), rtol=1e-6)
    assert int(state.generation) == 20 and int(state.evaluations) == 8 * 21


def test_tell_keeps_the_parent_on_a_tie_or_a_nan_child():
    state = started(jax.random.key(0), sphere, -jnp.ones(2),
                                                  jnp.ones(2), 4)
    children = state.population + 0.5
    fitness = state.fitness.at[0].set(jnp.nan)  # tie everywhere, NaN at member 0
    new = jax.jit(tell)(state, children, fitness)
    np.testing.assert_array_equal(new.population, state.population)
    np.testing.assert_array_equal(new.fitness, state.fitness)


def test_tell_selects_the_payload_with_the_members():
    state = started(jax.random.key(0), sphere, -jnp.ones(2),
                                                  jnp.ones(2), 4)
    assert state.payload is None and tell(state, state.population, state.fitness).payload is None
    state = state.replace(payload={"tag": jnp.arange(4), "rows": jnp.zeros((4, 3))})
    children = state.population + 0.5
    fitness = state.fitness + jnp.array([-1.0, 1.0, -2.0, jnp.nan])  # members 0 and 2 improve
    payload = {"tag": jnp.arange(10, 14), "rows": jnp.ones((4, 3))}
    new = jax.jit(tell)(state, children, fitness, payload)
    better = np.array([True, False, True, False])
    np.testing.assert_array_equal(new.payload["tag"], np.where(better, [10, 11, 12, 13],
                                                               [0, 1, 2, 3]))
    np.testing.assert_array_equal(new.payload["rows"], np.repeat(better[:, None], 3, 1))
    np.testing.assert_array_equal(new.population[better], children[better])
    # Many problems at once: the payload goes through vmap like the rest of the state.
    states = jax.tree.map(lambda a: jnp.stack([a, a]), state)
    only_one = state.fitness + jnp.array([1.0, -1.0, 1.0, 1.0])  # member 1 improves
    many = jax.vmap(tell)(states, jnp.stack([children, children]), jnp.stack([fitness, only_one]),
                          jax.tree.map(lambda a: jnp.stack([a, a]), payload))
    np.testing.assert_array_equal(many.payload["tag"][0], new.payload["tag"])
    np.testing.assert_array_equal(many.payload["tag"][1], [0, 11, 2, 3])
    np.testing.assert_array_equal(many.generation, [1, 1])


@pytest.mark.parametrize("strategy,crossover_rate", [("rand1", 1.0), ("best1", 1.0),
                                                     ("rand1", 0.3)])
def test_ask_keeps_children_inside_the_bounds(strategy, crossover_rate):
    lower, upper = jnp.array([0.0, -1.0, 10.0]), jnp.array([1.0, 1.0, 10.5])
    state = started(jax.random.key(1), sphere, lower, upper, 6)
    params = DEParams(F=2.0, crossover_rate=crossover_rate)  # a large F pushes children out
    children = np.asarray(jax.jit(ask, static_argnames="strategy")(
        jax.random.key(2), state, lower, upper, params, strategy=strategy))
    assert children.shape == (6, 3)
    assert (children >= np.asarray(lower)).all() and (children <= np.asarray(upper)).all()


def test_ask_without_crossover_is_the_paper_mutation_rand1():
    lower, upper = -100 * jnp.ones(2), 100 * jnp.ones(2)
    state = started(jax.random.key(0), sphere, -jnp.ones(2),
                                                  jnp.ones(2), 5)
    key = jax.random.key(7)

    @jax.jit
    def both(key, state):
        mut_key = jax.random.split(key, 3)[0]  # ask's first child key feeds distinct_others
        return ask(key, state, lower, upper), distinct_others(mut_key, 5)

    children, r = both(key, state)
    r, pop = np.asarray(r), np.asarray(state.population)
    expected = pop[r[:, 0]] + 0.5 * (pop[r[:, 1]] - pop[r[:, 2]])
    np.testing.assert_allclose(children, expected, rtol=1e-6)


def test_a_dithered_weight_is_one_draw_per_generation_in_its_range_and_zero_keeps_f():
    lower, upper = -100 * jnp.ones(3), 100 * jnp.ones(3)
    state = started(jax.random.key(0), sphere, -jnp.ones(3), jnp.ones(3), 6)
    pop = np.asarray(state.population)

    @jax.jit
    def children(key, dither):
        return ask(key, state, lower, upper, DEParams(F=0.5, dither=dither))

    weights = []
    for seed in range(8):
        key = jax.random.key(seed)
        r = np.asarray(distinct_others(jax.random.split(key, 3)[0], 6))
        diff = pop[r[:, 1]] - pop[r[:, 2]]
        fixed = np.asarray(children(key, 0.0))
        np.testing.assert_array_equal(fixed, np.asarray(ask(key, state, lower, upper)))
        w = (np.asarray(children(key, 0.5)) - pop[r[:, 0]]) / diff
        np.testing.assert_allclose(w, w.flat[0], rtol=1e-4)  # one weight for the generation
        weights.append(float(w.flat[0]))
    assert all(0.5 <= w < 1.0 for w in weights) and len(set(weights)) == 8


def test_uniform_population_fills_the_box():
    pop = np.asarray(uniform_population(jax.random.key(0), [0.0, 5.0], [1.0, 6.0], 200))
    assert pop.shape == (200, 2)
    assert (pop[:, 0] >= 0).all() and (pop[:, 0] <= 1).all()
    assert (pop[:, 1] >= 5).all() and (pop[:, 1] <= 6).all()


# -- differential_evolution ----------------------------------------------------------------------

def test_differential_evolution_finds_the_minimum_of_the_sphere():
    r = differential_evolution(sphere, -5 * jnp.ones(5), 5 * jnp.ones(5), popsize=40,
                               maxiter=200, key=jax.random.key(0))
    assert float(r.fun) < 1e-3
    np.testing.assert_allclose(r.x, 0.0, atol=0.05)
    assert int(r.nit) == 200 and int(r.nfev) == 40 * 201
    np.testing.assert_allclose(r.population_energies, sphere(r.population), rtol=1e-5)


@pytest.mark.parametrize("seed,crossover_rate", [(0, None), (1, None), (2, 0.9)])
def test_differential_evolution_finds_the_global_minimum_of_rastrigin(seed, crossover_rate):
    # Many local minima (about 100 in the box); the global one is 0 at the origin.
    r = differential_evolution(rastrigin, -5.12 * jnp.ones(2), 5.12 * jnp.ones(2), popsize=30,
                               maxiter=200, key=jax.random.key(seed),
                               crossover_rate=crossover_rate)
    assert float(r.fun) < 1e-2
    np.testing.assert_allclose(r.x, 0.0, atol=0.01)


def test_differential_evolution_with_the_best1_strategy_also_converges():
    r = differential_evolution(sphere, -5 * jnp.ones(5), 5 * jnp.ones(5), popsize=40,
                               maxiter=200, key=jax.random.key(0), strategy="best1")
    assert float(r.fun) < 1e-3


def test_differential_evolution_with_the_same_key_gives_the_same_result():
    run = lambda seed: differential_evolution(  # noqa: E731
        sphere, -5 * jnp.ones(5), 5 * jnp.ones(5), popsize=40, maxiter=200,
        key=jax.random.key(seed))
    a, b, c = run(3), run(3), run(4)
    for field in ("x", "fun", "nit", "nfev", "population", "population_energies"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.population, c.population)


def test_differential_evolution_stops_once_stop_fitness_is_reached():
    r = differential_evolution(sphere, -5 * jnp.ones(5), 5 * jnp.ones(5), popsize=40,
                               maxiter=200, key=jax.random.key(0), stop_fitness=1.0)
    assert bool(r.converged) and float(r.fun) <= 1.0
    assert 0 < int(r.nit) < 200 and int(r.nfev) == 40 * (int(r.nit) + 1)


def test_differential_evolution_starts_from_a_given_population():
    population = jnp.full((40, 5), 4.0)
    r = differential_evolution(sphere, -5 * jnp.ones(5), 5 * jnp.ones(5), popsize=40,
                               maxiter=0, key=jax.random.key(0), population=population)
    np.testing.assert_array_equal(r.population, population)
    assert int(r.nit) == 0 and int(r.nfev) == 40 and float(r.fun) == pytest.approx(80.0)


@pytest.mark.parametrize("lower,upper,popsize,maxiter,strategy,message", [
    (np.ones(3), np.zeros(3), 10, 5, "rand1", "lower bound"),
    (np.zeros(3), np.ones(2), 10, 5, "rand1", "same length"),
    (np.zeros((2, 2)), np.ones((2, 2)), 10, 5, "rand1", "two vectors"),
    (np.zeros(3), np.ones(3), 3, 5, "rand1", "popsize"),
    (np.zeros(3), np.ones(3), 10, -1, "rand1", "maxiter"),
    (np.zeros(3), np.ones(3), 10, 5, "rand2", "unknown strategy"),
])
def test_differential_evolution_rejects_bad_settings(lower, upper, popsize, maxiter, strategy,
                                                     message):
    with pytest.raises(PixeljaxError, match=message):
        differential_evolution(sphere, lower, upper, popsize=popsize, maxiter=maxiter,
                               strategy=strategy, key=jax.random.key(0))


def test_differential_evolution_rejects_a_population_of_another_shape():
    with pytest.raises(PixeljaxError, match="population"):
        differential_evolution(sphere, np.zeros(3), np.ones(3), popsize=10, maxiter=5,
                               key=jax.random.key(0), population=jnp.zeros((8, 3)))


# -- many problems at once -----------------------------------------------------------------------

def test_init_and_step_vmap_over_independent_problems_inside_a_while_loop():
    """Four shifted spheres solved together: the per-problem code is written once and vmap-ed,
    the generations run in lax.while_loop, and each problem finds its own minimum."""
    centres = jnp.array([[1.0, -2.0], [0.5, 0.5], [-3.0, 2.5], [2.0, 0.0]])
    lower, upper = -4 * jnp.ones(2), 4 * jnp.ones(2)
    popsize, maxiter = 16, 60

    def objective(centre):
        return lambda p: jnp.sum((p - centre) ** 2, axis=-1)

    @jax.jit
    def solve(key, centres):
        keys = jax.random.split(key, len(centres))
        def start(k, c):
            population = uniform_population(k, lower, upper, popsize)
            return init(population, objective(c)(population))

        states = jax.vmap(start)(keys, centres)

        def body(states):
            gen_keys = jax.vmap(lambda k, g: jax.random.fold_in(k, g))(keys,
                                                                      states.generation)
            return jax.vmap(lambda k, s, c: step(k, s, objective(c), lower, upper))(
                gen_keys, states, centres)

        return jax.lax.while_loop(lambda s: jnp.any(s.generation < maxiter), body, states)

    states = solve(jax.random.key(0), centres)
    assert states.population.shape == (4, popsize, 2)
    np.testing.assert_array_equal(states.generation, maxiter)
    np.testing.assert_array_equal(states.evaluations, popsize * (maxiter + 1))
    best = np.asarray(jax.vmap(lambda s: s.best)(states))
    np.testing.assert_allclose(best, centres, atol=0.05)
    # The problems are independent: moving one problem's minimum changes only that problem.
    moved = solve(jax.random.key(0), centres.at[2].set(jnp.array([3.0, 3.0])))
    others = np.array([0, 1, 3])
    np.testing.assert_array_equal(moved.population[others], states.population[others])
    assert not np.array_equal(moved.population[2], states.population[2])


def test_a_nan_scored_member_never_wins_and_is_counted():
    # log(x) is NaN for x < 0: the best member must be a finite one, and x where it is defined.
    r = differential_evolution(lambda p: jnp.log(p).sum(-1), -jnp.ones(1), jnp.ones(1),
                               popsize=20, maxiter=30, key=jax.random.key(0))
    assert np.isfinite(float(r.fun)) and float(r.x[0]) > 0
    assert float(r.fun) == float(jnp.log(r.x).sum())
    assert int(r.nonfinite) > 0
    assert not np.isnan(np.asarray(r.population_energies)).any()


@pytest.mark.parametrize("kwargs, message", [
    (dict(lower=[-np.inf, 0.0], upper=[1.0, 1.0]), "bounds must be finite numbers"),
    (dict(lower=[-1.0, -1.0], upper=[1.0, 1.0], population=np.full((8, 2), 3.0)),
     "the initial population must lie inside the bounds; 8 of 8 members do not"),
    (dict(lower=[-1.0, -1.0], upper=[1.0, 1.0], fn=lambda p: p),
     r"the objective must map a population \(8, 2\) to \(8,\) fitness values, got \(8, 2\)"),
])
def test_bad_bounds_populations_and_objectives_are_refused(kwargs, message):
    fn = kwargs.pop("fn", lambda p: jnp.sum(p ** 2, -1))
    with pytest.raises(PixeljaxError, match=message):
        differential_evolution(fn, jnp.asarray(kwargs.pop("lower")),
                               jnp.asarray(kwargs.pop("upper")), popsize=8, maxiter=2,
                               key=jax.random.key(0), **kwargs)
