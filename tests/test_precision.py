"""bfloat16 scoring: a lowered network, float32 accumulation, incremental against dense, and the
float32 re-check that decides every reported class and success (for the API, folders, the sweep
and the command line)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _attack_support import TINY_ENGINE, boundary_sample, toy_model
from flax import nnx

from pixeljax.attack import engine, scoring
from pixeljax.attack.api import pixel_attack
from pixeljax.attack.engine import Attack
from pixeljax.attack.incremental import IncrementalScorer
from pixeljax.attack.perturb import apply_candidates
from pixeljax.attack.spec import AttackSpec
from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.models.layers import matmul_conv
from pixeljax.models.precision import lowered
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.results import read_rows as results_rows
from pixeljax.sweep.api import pixel_sweep
from pixeljax.sweep.spec import SweepSpec

BF16 = jnp.bfloat16


@pytest.fixture(scope="module")
def boundary(victim):
    return boundary_sample(victim[1], n=8, wrong=1)


def float32_probs(victim, images):
    return np.asarray(jax.nn.softmax(victim.predict(jnp.asarray(images, jnp.float32)), -1))


def test_a_lowered_network_holds_bfloat16_weights_and_the_original_is_untouched(victim, boundary):
    model = victim[1].model
    assert lowered(model, "float32") is model
    low = lowered(model)
    assert all(a.dtype == BF16 for a in jax.tree.leaves(nnx.state(low, nnx.Param)))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(nnx.state(model, nnx.Param)))
    x = jnp.asarray(boundary[0], jnp.float32)
    exact, rough = np.asarray(model(x)), np.asarray(low(x), np.float32)
    assert np.abs(rough - exact).max() < 0.05 * np.abs(exact).max()
    with pytest.raises(PixeljaxError, match="precision must be one of float32, bfloat16"):
        lowered(model, "float16")


def test_bfloat16_convolutions_accumulate_in_float32():
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.standard_normal((2, 6, 6, 64)), BF16)
    rhs = jnp.asarray(rng.standard_normal((3, 3, 64, 8)), BF16)
    out = matmul_conv(lhs, rhs, (1, 1), "VALID")
    exact = jax.lax.conv_general_dilated(lhs.astype(jnp.float32), rhs.astype(jnp.float32),
                                         (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert out.dtype == BF16
    # Only the final rounding to bfloat16 remains (half a unit in the last of 8 bits).
    np.testing.assert_allclose(np.asarray(out, np.float32), exact, rtol=2 ** -8, atol=1e-6)


def test_bfloat16_incremental_scoring_agrees_with_bfloat16_dense_scoring(victim, boundary):
    images = jnp.asarray(boundary[0], jnp.float32)
    rng = np.random.default_rng(1)
    n = 256
    candidates = jnp.asarray(np.concatenate([rng.integers(0, 32, (n, 2)),
                                             rng.integers(0, 256, (n, 3))], 1), jnp.float32)
    owner = jnp.asarray(np.arange(n) % len(images))
    incremental = scoring.scorer_for(victim[1].predict, precision="bfloat16")
    dense = scoring.scorer_for(victim[1].predict, dense=True, precision="bfloat16")
    assert isinstance(incremental, IncrementalScorer)
    assert scoring.describe(incremental) == "incremental bfloat16"
    assert scoring.describe(dense) == "dense bfloat16 (requested)"
    fast = np.asarray(incremental.logits(incremental.prepare(images), candidates, owner))
    full = np.asarray(dense.logits(dense.prepare(images), candidates, owner))
    exact = np.asarray(victim[1].predict(apply_candidates(images[owner], candidates)))
    assert fast.dtype == full.dtype == np.float32
    # bfloat16 rounds differently on the two roads, by about its own precision (the
    # untrained victim's classes sit closer than that on these images: the re-check decides).
    scale = np.abs(exact).max()
    assert np.abs(fast - full).max() < 0.05 * scale
    assert np.abs(fast - exact).max() < 0.05 * scale


def test_bfloat16_needs_an_nnx_network():
    with pytest.raises(PixeljaxError, match="bfloat16 scoring needs a registered victim"):
        scoring.scorer_for(toy_model(), precision="bfloat16")


def test_the_spec_checks_and_records_the_precision():
    with pytest.raises(PixeljaxError, match="precision must be one of"):
        AttackSpec(precision="float16")
    assert "precision" not in AttackSpec().to_config()  # folders before the option: float32
    config = AttackSpec(precision="bfloat16").to_config()
    assert config["precision"] == "bfloat16"
    assert AttackSpec.from_config(config).precision == "bfloat16"
    assert SweepSpec(precision="bfloat16").to_config()["precision"] == "bfloat16"
    assert SweepSpec.from_config(SweepSpec().to_config()).precision == "float32"


def test_every_reported_class_and_success_of_a_bfloat16_attack_is_float32s(victim, boundary):
    x, y, _ = boundary
    run = lambda: pixel_attack(victim[1].predict, x, y, precision="bfloat16",  # noqa: E731
                               **TINY_ENGINE)
    result = run()
    attacked = ~result.skipped
    assert attacked.sum() == len(x) - 1
    probs = float32_probs(victim[1], result.adversarial[attacked])
    top = probs.argmax(-1)
    np.testing.assert_array_equal(result.adversarial_class[attacked], top)
    np.testing.assert_allclose(result.confidence[attacked], probs.max(-1), rtol=1e-6)
    np.testing.assert_array_equal(result.success[attacked], top != result.label[attacked])
    again = run()  # same seed, same precision: the same results
    for field in ("success", "adversarial_class", "perturbation", "evaluations",
                  "precision_flip"):
        np.testing.assert_array_equal(getattr(again, field), getattr(result, field))


def test_the_recheck_reverses_a_success_only_bfloat16_saw(victim, boundary):
    x, y, _ = boundary
    image, label = x[0], int(y[0])  # classified as label (the victim's own prediction)
    own = np.concatenate([[3.0, 2.0], image[2, 3].astype(np.float32)])  # its own colour
    claimed = AttackResult(
        attack_id=[7], image_index=[0], label=[label], target=[-1], status=["success"],
        adversarial_class=[(label + 1) % 10], confidence=[0.9], true_prob_before=[0.9],
        true_prob_after=[0.05], perturbation=own[None, None], generations=[1],
        evaluations=[10], nonfinite=[0], precision_flip=[False])
    checked = engine.recheck(victim[1].predict, claimed, {7: Attack(7, image, label, -1)}, 4)
    assert not checked.success[0] and checked.precision_flip[0]
    assert checked.adversarial_class[0] == label
    assert checked.confidence[0] == pytest.approx(
        float32_probs(victim[1], image[None])[0, label], rel=1e-6)


def test_a_bfloat16_sweep_reports_float32_verdicts(victim, boundary):
    x, y, _ = boundary
    result = pixel_sweep(victim[1].predict, x[:3], y[:3], slots=2, batch_size=64,
                         precision="bfloat16")
    exact = pixel_sweep(victim[1].predict, x[:3], y[:3], slots=2, batch_size=64)
    assert result.candidates_per_image == exact.candidates_per_image
    # Every row, per class and per image, is the verdict of a float32 dense pass of its pixel.
    for found in (result.targets, result.untargeted):
        images = x[found.image_index]  # no image ids given: ids are positions
        probs = float32_probs(victim[1], apply_candidates(images, found.candidates))
        np.testing.assert_array_equal(found.adversarial_class, probs.argmax(-1))
        np.testing.assert_allclose(found.confidence, probs.max(-1), rtol=1e-5)
        np.testing.assert_allclose(found.true_prob_after,
                                   probs[np.arange(len(found)), found.label], rtol=1e-5)
        fooled = np.where(found.target >= 0, probs.argmax(-1) == found.target,
                          probs.argmax(-1) != found.label)
        np.testing.assert_array_equal(found.success, fooled)


def test_the_command_line_records_bfloat16_and_refuses_to_mix_it_with_float32(victim, boundary,
                                                                              tmp_path, capsys):
    x, y, index = boundary
    data = tmp_path / "boundary.npz"
    np.savez(data, x=x, y=y, index=index)
    out = tmp_path / "run"
    args = ["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(data), "--images",
            "8", "--out", str(out), "--quiet",
            *[f"--{k.replace('_', '-')}={v}" for k, v in TINY_ENGINE.items()]]
    assert main(args + ["--precision", "bfloat16"]) == 0
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["precision"] == "bfloat16"
    rows = results_rows(out)
    assert summary["precision"] == "bfloat16"
    assert summary["precision_flips"] == sum(int(r["precision_flip"]) for r in rows)
    assert summary["n_success"] == sum(r["status"] == "success" for r in rows)
    assert summary["scoring"].startswith("incremental bfloat16")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "precision" in err


def test_bfloat16_and_float32_give_the_same_class_on_ten_thousand_shipped_allconv_candidates():
    from pixeljax.bench.measure import precision_agreement
    from pixeljax.data import load_sample
    from pixeljax.victims.checkpoint import load_victim

    agreement = precision_agreement(load_victim("allconv").predict, load_sample(), 10_000)
    assert agreement["candidates"] == 10_000 and agreement["images"] >= 5
    assert agreement["scoring"] == "incremental bfloat16"
    assert agreement["argmax_agreement"] > 0.995, agreement
    assert agreement["max_probability_difference"] < 0.2, agreement


def test_the_agreement_spreads_its_candidates_over_a_bounded_number_of_images(monkeypatch):
    """Each image's clean activations are cached, so a whole test set must not be held."""
    from pixeljax.bench import measure
    from pixeljax.data import load_sample
    from pixeljax.victims.checkpoint import load_victim

    monkeypatch.setattr(measure, "AGREEMENT_IMAGES", 3)
    agreement = measure.precision_agreement(load_victim("allconv").predict, load_sample(), 200)
    assert agreement["images"] == 3 and agreement["candidates"] == 200


def test_a_suite_gives_its_precision_to_every_cell_and_refuses_an_unknown_one():
    from pixeljax.evaluation import Suite, Victim

    suite = Suite(name="low", victims=(Victim("tiny"),), pixels=(1,),
                  modes=("non-targeted", "sweep"), images=2,
                  attack=AttackSpec(precision="bfloat16"))
    specs = [suite.spec(cell, n_images=2, first=True) for cell in suite.cell_list()]
    assert [type(s).__name__ for s in specs] == ["AttackSpec", "SweepSpec"]
    assert all(s.to_config()["precision"] == "bfloat16" for s in specs)
    with pytest.raises(PixeljaxError, match="precision must be one of"):
        Suite(name="low", victims=(Victim("tiny"),), attack=AttackSpec(precision="half"))
