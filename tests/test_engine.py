"""The attack engine through ``pixel_attack``: invariants, early stopping, determinism,
compilation, and the checks on what users pass in.

Most tests use a hand-written four-class model (``_attack_support.toy_apply``) on 8x8 images,
whose behaviour is set by its parameters, so outcomes are known in advance; one test attacks the
untrained ``tiny`` network. All runs of one model share one engine configuration, so the engine
compiles only a few times in the whole file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _attack_support import (
    NUM_TOY_CLASSES,
    TINY_ENGINE,
    TOY_TRACES,
    boundary_sample,
    toy_model,
)

from pixeljax.attack import ALL_TARGETS, engine, mesh, pixel_attack
from pixeljax.errors import PixeljaxError
from pixeljax.victims.checkpoint import load_victim

PIXELS = 3
# devices=1: one device even where a test session exposes several CPU devices.
CFG = dict(pixels=PIXELS, popsize=12, maxiter=8, slots=3, batch_size=64, segment=3, devices=1)
FIELDS = ("image_index", "label", "target", "skipped", "success", "adversarial_class", "confidence",
          "true_prob_before", "true_prob_after", "perturbation", "adversarial", "generations",
          "evaluations", "attack_id")


@pytest.fixture(scope="module")
def images():
    """Ten dim, noisy 8x8 images: the toy model calls them class 0. Image 3 is labelled 2, so
    it is misclassified and must be skipped."""
    x = np.random.default_rng(0).integers(40, 61, size=(10, 8, 8, 3)).astype(np.uint8)
    y = np.zeros(10, np.int32)
    y[3] = 2
    return x, y


@pytest.fixture(scope="module")
def all_targets(images):
    """Each image towards each other class; a weak colour gain makes some attacks need a few
    generations and some fail."""
    x, y = images
    model = toy_model(colour=5.0)
    return model, pixel_attack(model, x, y, targets=ALL_TARGETS, key=jax.random.key(1),
                               target_threshold=0.8, **CFG)


@pytest.fixture(scope="module")
def flips():
    """Uniform grey images under a model where any changed pixel gives class 1."""
    x = np.full((5, 8, 8, 3), 100, np.uint8)
    y = np.zeros(5, np.int32)
    model = toy_model(base=1.0, colour=0.0, change=1e4)
    return model, x, y, pixel_attack(model, x, y, key=jax.random.key(2), **CFG)


def predict(model, images) -> np.ndarray:
    return np.asarray(jax.nn.softmax(model(jnp.asarray(images, jnp.float32)), -1))


def check_result_arrays(result, x, pixels):
    a = len(result.image_index)
    h, w, c = x.shape[1:]
    for field in FIELDS:
        assert len(getattr(result, field)) == a, field
    assert result.perturbation.shape == (a, pixels, 2 + c)
    assert result.adversarial.shape == (a, h, w, c) and result.adversarial.dtype == x.dtype


# -- what an attack may change -------------------------------------------------------------------

def test_perturbations_are_integer_coordinates_inside_the_image_and_integer_colours(all_targets,
                                                                                    images):
    _, result = all_targets
    x, _ = images
    check_result_arrays(result, x, PIXELS)
    p = result.perturbation[~result.skipped]
    cols, rows, colours = p[..., 0], p[..., 1], p[..., 2:]
    for v in (cols, rows, colours):
        np.testing.assert_array_equal(v, np.round(v))
    assert cols.min() >= 0 and cols.max() <= 7 and rows.min() >= 0 and rows.max() <= 7
    assert colours.min() >= 0 and colours.max() <= 255


@pytest.mark.parametrize("which", ["all_targets", "flips"])
def test_exactly_the_perturbed_pixels_change_and_never_more_than_pixels(which, request,
                                                                        images):
    if which == "all_targets":
        _, result = request.getfixturevalue("all_targets")
        x = images[0]
    else:
        _, x, _, result = request.getfixturevalue("flips")
    exact = 0
    for a in np.flatnonzero(~result.skipped):
        original, adversarial = x[result.image_index[a]], result.adversarial[a]
        changed = np.argwhere((adversarial != original).any(-1))       # (n, 2) rows, cols
        assert len(changed) <= PIXELS
        genes = result.perturbation[a].astype(int)
        cols, rows, colours = genes[:, 0], genes[:, 1], genes[:, 2:]
        # Every changed pixel is a perturbed one, painted with its colour (the last write wins).
        allowed = set(zip(rows.tolist(), cols.tolist()))
        assert {tuple(rc) for rc in changed} <= allowed
        last = {(r, c): col for r, c, col in zip(rows, cols, colours)}
        for (r, c), colour in last.items():
            np.testing.assert_array_equal(adversarial[r, c], colour)
        distinct = len(allowed) == PIXELS
        differs = all((original[r, c] != col).any() for (r, c), col in last.items())
        if distinct and differs:
            assert len(changed) == PIXELS
            exact += 1
    assert exact >= 3  # the case is exercised, not vacuous


def test_skipped_attacks_leave_the_image_unchanged(all_targets, images):
    _, result = all_targets
    x, _ = images
    assert result.skipped.any()
    for a in np.flatnonzero(result.skipped):
        np.testing.assert_array_equal(result.adversarial[a], x[result.image_index[a]])


# -- budget and early stopping -------------------------------------------------------------------

@pytest.mark.parametrize("which", ["all_targets", "flips"])
def test_evaluations_count_the_initial_population_and_each_generation(which, request):
    result = request.getfixturevalue(which)[-1]
    done = ~result.skipped
    assert (result.generations[done] <= CFG["maxiter"]).all()
    assert (result.evaluations <= CFG["popsize"] * (CFG["maxiter"] + 1)).all()
    np.testing.assert_array_equal(result.evaluations[done],
                                  CFG["popsize"] * (result.generations[done] + 1))


def test_an_unreachable_goal_spends_the_whole_budget(images):
    x, y = images
    constant = toy_model(colour=0.0)  # logits ignore the image: nothing can fool it
    result = pixel_attack(constant, x, y, key=jax.random.key(0), **CFG)
    done = ~result.skipped
    assert not result.success.any()
    np.testing.assert_array_equal(result.generations[done], CFG["maxiter"])
    np.testing.assert_array_equal(result.evaluations[done],
                                  CFG["popsize"] * (CFG["maxiter"] + 1))
    np.testing.assert_array_equal(result.adversarial_class[done], 0)


def test_nontargeted_attacks_stop_after_the_initial_population_when_any_change_flips(flips):
    model, x, y, result = flips
    assert result.success.all() and not result.skipped.any()
    np.testing.assert_array_equal(result.generations, 0)
    np.testing.assert_array_equal(result.evaluations, CFG["popsize"])
    np.testing.assert_array_equal(result.adversarial_class, 1)
    np.testing.assert_array_equal(predict(model, result.adversarial).argmax(-1), 1)


def test_targeted_attacks_stop_once_the_target_probability_passes_the_threshold(all_targets):
    _, result = all_targets
    done = ~result.skipped
    early = done & (result.generations < CFG["maxiter"])
    assert early.any() and (result.generations[early] > 0).any()
    # Stopped early: the best member's target probability passed 0.8, so it is the argmax.
    assert (result.confidence[early] > 0.8).all()
    np.testing.assert_array_equal(result.adversarial_class[early], result.target[early])
    assert result.success[early].all()
    # Never passed the threshold: ran to the end.
    probs = predict(all_targets[0], result.adversarial)
    below = done & (probs[np.arange(len(probs)), result.target] <= 0.8)
    assert below.any()
    np.testing.assert_array_equal(result.generations[below], CFG["maxiter"])


def test_an_unreachable_target_threshold_runs_the_whole_budget_yet_scores_by_argmax(images):
    x, y = images
    model = toy_model(colour=12.0)  # the target's probability stays below 0.99988
    targets = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    result = pixel_attack(model, x, y, targets=targets, key=jax.random.key(5),
                          target_threshold=0.9999, **CFG)
    done = ~result.skipped
    np.testing.assert_array_equal(result.generations[done], CFG["maxiter"])
    assert result.success[done].all()  # the target is the argmax, well below the threshold
    adversarial = predict(model, result.adversarial[done]).argmax(-1)
    np.testing.assert_array_equal(adversarial, result.target[done])


def test_a_true_class_threshold_keeps_nontargeted_attacks_going_past_misclassification(images):
    x, y = images
    model = toy_model(colour=5.0)
    result = pixel_attack(model, x, y, key=jax.random.key(6), true_threshold=0.1, **CFG)
    done = ~result.skipped
    full = done & (result.generations == CFG["maxiter"])
    assert (result.true_prob_after[done & ~full] < 0.1).all()
    assert full[done & (result.true_prob_after >= 0.1)].all()
    # Success still means misclassified, whether or not the threshold was reached.
    np.testing.assert_array_equal(result.success, done & (result.adversarial_class != y))
    assert (result.success & full).any() and (done & ~full).any()


# -- targets -------------------------------------------------------------------------------------

def test_all_targets_gives_one_attack_per_other_class_and_counts_classes_reached(all_targets,
                                                                                images):
    _, result = all_targets
    x, y = images
    n, c = len(x), NUM_TOY_CLASSES
    assert len(result.image_index) == n * (c - 1)
    for i in range(n):
        mine = result.image_index == i
        np.testing.assert_array_equal(result.target[mine],
                                      [t for t in range(c) if t != y[i]])
        np.testing.assert_array_equal(result.label[mine], y[i])
        assert len(set(result.attack_id[mine])) == c - 1
    assert len(set(result.attack_id)) == len(result.attack_id)
    reached = result.classes_reached()  # attacked images only: image 3 is misclassified
    assert 3 not in reached and result.skipped[result.image_index == 3].all()
    expected = np.bincount(result.image_index, weights=result.success, minlength=n)
    assert reached == {i: int(expected[i]) for i in range(n) if i != 3}
    assert max(reached.values()) == c - 1 and min(reached.values()) >= 1
    assert result.image_outcomes() == {i: v > 0 for i, v in reached.items()}


def test_successful_attacks_really_fool_the_model(all_targets, flips):
    for model, result in (all_targets, (flips[0], flips[3])):
        done = ~result.skipped
        probs = predict(model, result.adversarial)
        # The recorded outcome is the model's own verdict on the adversarial image.
        np.testing.assert_array_equal(probs.argmax(-1)[done], result.adversarial_class[done])
        np.testing.assert_allclose(probs.max(-1)[done], result.confidence[done], rtol=1e-5)
        true_after = probs[np.arange(len(probs)), result.label]
        np.testing.assert_allclose(true_after[done], result.true_prob_after[done], rtol=1e-5)
        targeted = result.target >= 0
        won = result.success
        np.testing.assert_array_equal(probs.argmax(-1)[won & targeted],
                                      result.target[won & targeted])
        assert (probs.argmax(-1)[won & ~targeted] != result.label[won & ~targeted]).all()
        assert won.any()


def test_misclassified_images_are_skipped_and_never_count_as_successes(all_targets, images):
    model, result = all_targets
    x, y = images
    skipped = result.image_index == 3
    np.testing.assert_array_equal(result.skipped, skipped)
    assert not result.success[skipped].any()
    np.testing.assert_array_equal(result.evaluations[skipped], 0)
    np.testing.assert_array_equal(result.generations[skipped], 0)
    clean = predict(model, x[3:4])[0]
    np.testing.assert_array_equal(result.adversarial_class[skipped], clean.argmax())
    np.testing.assert_allclose(result.true_prob_before[skipped], clean[2], rtol=1e-6)


def test_an_empty_batch_gives_an_empty_result():
    x, y = np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int32)
    for targets in (None, ALL_TARGETS):
        result = pixel_attack(toy_model(), x, y, targets=targets, key=jax.random.key(0), **CFG)
        check_result_arrays(result, x, PIXELS)
        assert len(result.image_index) == 0


# -- determinism and compilation -----------------------------------------------------------------

def test_same_seed_gives_identical_results_whatever_the_slots_and_batch_size(images):
    x, y = images
    model = toy_model(colour=5.0)
    targets = np.array([1, 2, 3, 1, 3, 2, 1, 2, 3, 1])
    runs = [pixel_attack(model, x, y, targets=targets, key=jax.random.key(7), target_threshold=0.8,
                         **{**CFG, "slots": slots, "batch_size": batch_size, "segment": segment})
            for slots, batch_size, segment in ((3, 64, 3), (1, 7, 1), (8, 1000, 10))]
    for other in runs[1:]:
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(other, field), getattr(runs[0], field), field)
    another_key = pixel_attack(model, x, y, targets=targets, key=jax.random.key(8),
                               target_threshold=0.8, **CFG)
    assert not np.array_equal(another_key.perturbation, runs[0].perturbation)


def test_an_attack_does_not_depend_on_the_other_images_in_the_batch(all_targets, images):
    model, result = all_targets
    x, y = images
    pick = np.array([7, 2])  # a subset, in another order, keeping the images' ids
    alone = pixel_attack(model, x[pick], y[pick], targets=ALL_TARGETS, key=jax.random.key(1),
                         target_threshold=0.8, image_ids=pick, **CFG)
    rows = np.concatenate([np.flatnonzero(result.image_index == i) for i in pick])
    for field in FIELDS:  # the ids were kept: every field agrees
        np.testing.assert_array_equal(getattr(alone, field), getattr(result, field)[rows], field)


def test_the_engine_compiles_once_per_shape(all_targets, images):
    model, _ = all_targets  # its engine is compiled by the fixture
    x, y = images
    before, traces = mesh.compiled("engine"), len(TOY_TRACES)
    assert before > 0
    # Same shapes, other values (images, labels, targets, key, thresholds, F): no tracing.
    pixel_attack(model, x[::-1].copy(), y[::-1].copy(), targets=np.full(10, 3),
                 key=jax.random.key(4), target_threshold=0.3, F=0.7, **CFG)
    assert len(TOY_TRACES) == traces and mesh.compiled("engine") == before
    # Another number of images or attacks, or other model weights, reuse the compiled engine.
    pixel_attack(toy_model(colour=3.0, ref=(9.0, 9.0, 9.0)), x[:4], y[:4], targets=ALL_TARGETS,
                 key=jax.random.key(5), **CFG)
    assert mesh.compiled("engine") == before
    assert all(shape[0] != CFG["batch_size"] for shape in TOY_TRACES[traces:])  # not the engine


def test_a_one_pixel_attack_on_a_real_network_fools_it_and_compiles_once(tiny):
    path, victim = tiny
    x, y, index = boundary_sample(victim)
    kwargs = dict(key=jax.random.key(0), image_ids=index, devices=1, **TINY_ENGINE)
    result = pixel_attack(victim.predict, x, y, **kwargs)
    compiled = mesh.compiled("engine")
    np.testing.assert_array_equal(result.skipped, np.arange(12) >= 10)
    assert result.success.any() and not result.success.all()
    logits = np.asarray(victim.apply(victim.params, jnp.asarray(result.adversarial, jnp.float32)))
    done = ~result.skipped
    np.testing.assert_array_equal(logits.argmax(-1)[done], result.adversarial_class[done])
    assert (logits.argmax(-1)[result.success] != y[result.success]).all()
    changed = (result.adversarial != x).any(-1).sum((1, 2))
    assert (changed <= 1).all() and (changed[result.success] == 1).all()
    again = pixel_attack(victim.predict, x, y, **kwargs)
    assert mesh.compiled("engine") == compiled
    # A victim loaded anew from its checkpoint is the same graph: nothing compiles again.
    reloaded = pixel_attack(load_victim("tiny", path).predict, x, y, **kwargs)
    assert mesh.compiled("engine") == compiled
    np.testing.assert_array_equal(reloaded.success, result.success)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(again, field), getattr(result, field), field)


# -- what users pass in --------------------------------------------------------------------------

def call(model=None, x=None, y=None, **overrides):
    base = np.random.default_rng(0).integers(40, 61, size=(3, 8, 8, 3)).astype(np.uint8)
    x = base if x is None else x
    y = np.zeros(len(x), np.int32) if y is None else y
    return pixel_attack(model or toy_model(), x, y, key=jax.random.key(0),
                        **{**CFG, **overrides})


GOOD = np.random.default_rng(0).integers(40, 61, size=(3, 8, 8, 3)).astype(np.uint8)


@pytest.mark.parametrize("x,message", [
    (GOOD[0], r"images must be a batch \(N, H, W, C\)"),
    (GOOD.astype(np.int64), "images must be uint8 or float"),
    (GOOD > 50, "images must be uint8 or float.*bool"),
    ((GOOD / 255.0 - 0.5) / 0.25, r"pixel values must lie in \[0, 255\].*normalised"),
    (GOOD * 5.0, r"pixel values must lie in \[0, 255\]"),
    (np.where(GOOD > 50, np.nan, GOOD.astype(np.float32)), r"pixel values must lie"),
])
def test_bad_images_are_refused_with_a_message_naming_the_problem(x, message):
    with pytest.raises(PixeljaxError, match=message):
        call(x=x)


@pytest.mark.parametrize("apply,message", [
    (lambda im: jnp.sum(im, axis=(1, 2, 3)), r"logits of shape \(batch, classes\)"),
    (lambda im: im[..., :2], r"logits of shape \(batch, classes\)"),
    (lambda im: jnp.sum(im, axis=(1, 2))[:, :1], "need at least 2"),
    (lambda im: im.reshape(im.shape[0], 32 * 32 * 3), "cannot be applied to images"),
    (lambda im: jnp.full((im.shape[0], 4), jnp.nan), "NaN or infinite logits"),
    (lambda im: jnp.zeros((im.shape[0], 4)).at[:, 1].set(jnp.inf), "NaN or infinite logits"),
])
def test_a_model_without_finite_batch_by_classes_logits_is_refused(apply, message):
    with pytest.raises(PixeljaxError, match=message):
        call(model=apply)


@pytest.mark.parametrize("overrides,message", [
    (dict(pixels=65), r"pixels=65 is larger than the image \(8x8 = 64\)"),
    (dict(pixels=0), "pixels must be an integer >= 1"),
    (dict(popsize=3), "popsize must be an integer >= 4"),
    (dict(maxiter=-1), "maxiter must be an integer >= 0"),
    (dict(slots=0), "slots must be an integer >= 1"),
    (dict(strategy="best2"), "unknown strategy"),
    (dict(targets=np.array([1, 0, 2])), "a target equals the true label"),
    (dict(targets=np.array([1, 4, 2])), r"targets must lie in \[0, 3\]"),
    (dict(targets=-1), r"targets must lie in \[0, 3\]"),
    (dict(targets=np.array([1, 2])), "targets must be integers of shape"),
    (dict(targets="every"), "targets must be None, an array of classes or 'all"),
    (dict(image_ids=np.array([0, 1, 1])), "image_ids must be"),
    (dict(image_ids=np.array([0, 1])), "image_ids must be"),
])
def test_bad_settings_are_refused_with_a_message_naming_the_problem(overrides, message):
    with pytest.raises(PixeljaxError, match=message):
        call(**overrides)


@pytest.mark.parametrize("y,message", [
    (np.array([0, 4, 0]), r"labels must lie in \[0, 3\]"),
    (np.array([0.0, 1.0, 0.0]), "labels must be integers"),
    (np.zeros(2, np.int32), r"labels must be integers of shape \(3,\)"),
])
def test_bad_labels_are_refused(y, message):
    with pytest.raises(PixeljaxError, match=message):
        call(y=y)


def test_a_summary_records_the_sizes_that_ran_and_fewer_attacks_reuse_the_program(
        tiny, tmp_path, monkeypatch):
    """A run of fewer attacks than slots leaves slots idle instead of compiling a smaller
    program, and summary.json records the slots and micro-batch the engine ran with (a sweep:
    its own images per wave and candidates per model call)."""
    from _attack_support import boundary_sample

    from pixeljax.attack.run import attack_folder
    from pixeljax.attack.spec import AttackSpec
    from pixeljax.data.arrays import make_image_set
    from pixeljax.sweep import waves as sweep_module
    from pixeljax.sweep.folder import sweep_folder
    from pixeljax.sweep.spec import SweepSpec

    x, y, index = boundary_sample(tiny[1], n=3, wrong=0)
    data = make_image_set(x, y, index=index, source="boundary")
    ran, waves = [], []
    real, real_wave = engine._programs, sweep_module._program
    monkeypatch.setattr(engine, "_programs", lambda c, d: ran.append(c) or real(c, d))
    monkeypatch.setattr(sweep_module, "_program", lambda b, d: waves.append(b) or real_wave(b, d))
    record = {"model": "tiny", "architecture": "tiny", "checkpoint": "x"}
    spec = AttackSpec(popsize=8, maxiter=2, first=True).replace(slots=8, batch_size=32)
    summaries = [attack_folder(tiny[1].predict, data, tmp_path / f"de{n}",
                               spec.replace(n_images=n), victim=record, progress=False)
                 for n in (3, 1)]
    assert {c.slots for c in ran} == {8} and {c.batch_size for c in ran} == {32}
    assert [(s["slots"], s["batch_size"]) for s in summaries] == [(8, 32), (8, 32)]
    sweep = sweep_folder(tiny[1].predict, data, tmp_path / "sweep",
                         SweepSpec(n_images=3, first=True).replace(batch_size=5000),
                         victim=record,
                         progress=False)
    assert (sweep["slots"], sweep["batch_size"]) == (4, waves[-1]) == (4, 5000)
