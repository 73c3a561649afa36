"""Incremental scoring (pixeljax.attack.incremental): its logits equal the dense forward pass's
on every victim, at every border and corner, for hand-made models with strides, VALID padding,
5x5 and rectangular kernels, max pooling, global average pooling and dense layers; the engine
gives the same attacks either way; and the bench reports both engines.

Logits are compared within 1e-4 absolute with the victims' last layer scaled so the clean logits
reach magnitude 10 (as a trained network's do); each test also checks that the one-pixel
changes move the logits far more than that tolerance, so the comparison can see a mistake.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import jax
import numpy as np
import pytest
from _attack_support import TINY_ENGINE, boundary_sample
from _incremental_support import (
    border_and_random_pixels,
    compare,
    random_images,
    scaled,
)
from flax import nnx

from pixeljax.attack import cone, pixel_attack, scoring
from pixeljax.attack.incremental import IncrementalScorer
from pixeljax.bench.measure import BenchConfig, macs_per_candidate, run_bench
from pixeljax.cli import main
from pixeljax.data import load_sample
from pixeljax.errors import PixeljaxError
from pixeljax.models import SequentialVictim, create_model, model_names
from pixeljax.models.layers import Axis, Conv, ConvBlock, Dense, GlobalAveragePool, MaxPool
from pixeljax.victims.checkpoint import load_victim

# -- helpers -------------------------------------------------------------------------------------

def rectangular(cin, cout, kernel, strides, padding, *, rngs) -> ConvBlock:
    """A ConvBlock with a rectangular kernel and per-axis strides."""
    block = ConvBlock(cin, cout, 1, rngs=rngs)
    block.conv = nnx.Conv(cin, cout, kernel, strides=strides, padding=padding, use_bias=False,
                          rngs=rngs)
    return block


def handmade(head: str, rngs=None) -> SequentialVictim:
    """Strided, VALID, 5x5, rectangular and 1x1 convolutions, max pooling with SAME and VALID
    padding, ending in global average pooling (``head="mean"``) or a dense layer while the
    change still covers only part of the map (``head="dense"``)."""
    rngs = rngs or nnx.Rngs(3)
    layers = [
        ("c1", ConvBlock(3, 6, 5, stride=2, rngs=rngs)),                 # SAME, stride 2
        ("c2", ConvBlock(6, 8, 3, padding="VALID", rngs=rngs)),
        ("p1", MaxPool(3, 2, padding="VALID")),
        ("c3", rectangular(8, 8, (5, 3), (2, 1), "SAME", rngs=rngs)),    # rectangular
        ("c4", ConvBlock(8, 8, 1, rngs=rngs)),
        ("p2", MaxPool(2, 1, padding="SAME")),
    ]
    if head == "mean":
        layers += [("c5", Conv(8, 5, 1, rngs=rngs)), ("logits", GlobalAveragePool())]
    else:
        layers += [("fc", Dense(8 * 5 * 9, 16, hidden=True, rngs=rngs)),
                   ("logits", Dense(16, 5, hidden=False, rngs=rngs))]
    return SequentialVictim(layers, num_classes=5)


HANDMADE_SHAPE = (45, 43, 3)  # odd sizes: SAME padding splits unevenly under stride 2


# -- the cone arithmetic -------------------------------------------------------------------------

@pytest.mark.parametrize("size,kernel,stride,padding", [
    (size, k, s, p) for size in (1, 7, 8, 32) for k in (1, 2, 3, 5) for s in (1, 2, 3)
    for p in ("SAME", "VALID") if p == "SAME" or size >= k])
def test_reach_and_window_match_brute_force_over_xla_padding(size, kernel, stride, padding):
    axis = Axis.of(size, kernel, stride, padding)
    (lo, hi), = jax.lax.padtype_to_pads((size,), (kernel,), (stride,), padding)
    assert (axis.lo, axis.hi) == (lo, hi)
    assert axis.out == (size + lo + hi - kernel) // stride + 1
    reads = [set(range(o * stride - lo, o * stride - lo + kernel)) for o in range(axis.out)]
    for a, b in itertools.combinations_with_replacement(range(size), 2):
        reached = [o for o in range(axis.out) if reads[o] & set(range(a, b + 1))]
        first, last = axis.reach(a, b)
        if reached:
            assert (first, last) == (reached[0], reached[-1])
            assert len(reached) <= axis.window(b - a + 1)
        else:  # a stride skips the span: at most one (harmless) output in range
            assert last - first + 1 <= 1


def abstract(name: str) -> nnx.Module:
    """A victim's structure without initialising its weights (plans need only shapes)."""
    return nnx.eval_shape(lambda: create_model(name))


def test_plans_of_the_paper_victims_switch_to_dense_once_the_window_covers_the_map():
    allconv = cone.cone_of(abstract("allconv"), (32, 32, 3))
    assert [s.kind for s in allconv.steps] == [cone.LOCAL] * 7 + [cone.FULL] * 3
    assert [s.window for s in allconv.steps[:7]] == [(3, 3), (5, 5), (4, 4), (6, 6), (8, 8),
                                                     (5, 5), (6, 6)]
    nin = cone.cone_of(abstract("nin"), (32, 32, 3))
    assert nin.steps[-1].kind == cone.MEAN and nin.steps[1].kind == cone.POINTWISE
    dense_head = cone.cone_of(nnx.eval_shape(lambda: handmade("dense")), HANDMADE_SHAPE)
    assert [s.kind for s in dense_head.steps] == [cone.LOCAL] * 3 + [
        cone.LOCAL, cone.POINTWISE, cone.LOCAL, cone.EXPAND, cone.FULL]
    assert dense_head.steps[-3].window < dense_head.steps[-2].shape[:2]  # still partial


# -- exactness -----------------------------------------------------------------------------------

# Random pixels beside every border pixel, and images, per victim: many for the small networks
# (the large counts), few for the big ones, whose dense reference is slow on a CPU.
RANDOM_PIXELS = {"tiny": (900, 2), "allconv": (20, 1), "nin": (20, 1)}


@pytest.mark.parametrize("name", [n for n in model_names() if n not in ("resnet20", "vgg16")])
def test_incremental_logits_equal_dense_logits_on_every_sequential_victim(name):
    n_random, n_images = RANDOM_PIXELS.get(name, (20, 1))
    images = random_images(n_images)
    model = scaled(create_model(name, seed=1), images)
    pixels = border_and_random_pixels(32, 32, n_random, np.random.default_rng(1))
    assert compare(model, images, pixels, chunk=len(pixels)) == n_images * len(pixels)


def test_incremental_logits_equal_dense_logits_on_vgg16_at_its_corners_and_borders():
    images = random_images(1)
    model = scaled(create_model("vgg16", seed=1), images)
    corners = np.array([[0, 0], [0, 31], [31, 0], [31, 31]])
    edges = np.array([[0, 13], [31, 6], [22, 0], [9, 31], [1, 30], [30, 1], [16, 17], [5, 8]])
    assert compare(model, images, np.concatenate([corners, edges])) == 12


def test_incremental_logits_equal_dense_logits_on_resnet20_at_every_border_pixel():
    """Residual blocks: both branches' windows, the strided shortcuts of stages 2 and 3, the
    pooled classifier."""
    images = random_images(1)
    model = scaled(create_model("resnet20", seed=1), images)
    pixels = border_and_random_pixels(32, 32, 4, np.random.default_rng(2))
    assert compare(model, images, pixels) == len(pixels)


def test_incremental_logits_equal_dense_logits_through_resnet20s_strided_residual_blocks(
        monkeypatch):
    """The engine's plan goes dense at stage 2; with every residual block kept incremental,
    the strided shortcuts of stages 2 and 3 are exact too."""
    monkeypatch.setattr(cone, "RESIDUAL_DENSE_FRACTION", 1.0)
    jax.clear_caches()  # the plan is read at trace time
    model = scaled(create_model("resnet20", seed=1), random_images(1))
    plan = cone.cone_of(model, (32, 32, 3))
    assert [s.kind for s in plan.steps][:7] == [cone.LOCAL] + [cone.RESIDUAL] * 6
    assert plan.steps[4].inner[0].axes[0].stride == 2
    images = random_images(1)
    pixels = border_and_random_pixels(32, 32, 4, np.random.default_rng(3))
    try:
        assert compare(model, images, pixels) == len(pixels)
    finally:
        jax.clear_caches()


def test_resnet20_is_scored_incrementally():
    assert isinstance(scoring.scorer_for(abstract("resnet20")), IncrementalScorer)


def test_resnet20s_plan_recomputes_both_branches_of_its_residual_blocks():
    plan = cone.cone_of(abstract("resnet20"), (32, 32, 3))
    kinds = [s.kind for s in plan.steps]
    assert kinds == [cone.LOCAL] + [cone.RESIDUAL] * 3 + [cone.EXPAND] + [cone.FULL] * 6
    first = plan.steps[1]
    assert [s.window for s in first.inner] == [(5, 5), (7, 7)] and first.window == (7, 7)
    assert plan.steps[3].window == (15, 15)  # 22% of stage 1's 32 x 32 map
    # Stage 2's first block halves the map and would change 11 x 11 of its 16 x 16 outputs,
    # more than RESIDUAL_DENSE_FRACTION: the window is pasted into the clean map there.
    strided = plan.steps[4]
    assert strided.shape == (32, 32, 16) and 11 * 11 > cone.RESIDUAL_DENSE_FRACTION * 16 * 16


@pytest.mark.parametrize("head", ["mean", "dense"])
def test_incremental_logits_equal_dense_logits_at_every_pixel_of_a_handmade_model(head):
    images = random_images(2, HANDMADE_SHAPE, seed=2)
    model = scaled(handmade(head), images)
    h, w, _ = HANDMADE_SHAPE
    every = np.array([(r, c) for r in range(h) for c in range(w)])
    assert compare(model, images, every, seed=3, chunk=h * w) == 2 * h * w


def test_incremental_logits_equal_dense_logits_on_the_shipped_allconv():
    sample = load_sample()
    victim = load_victim("allconv")
    pixels = border_and_random_pixels(32, 32, 40, np.random.default_rng(4))
    assert compare(victim.model, sample.x[:1].astype(np.float32), pixels,
                   chunk=len(pixels)) == len(pixels)


# -- selection and the engine --------------------------------------------------------------------

def test_victims_with_unsupported_layers_plain_functions_and_multi_pixel_attacks_score_densely():
    victim = create_model("tiny")
    assert scoring.scorer_for(victim).kind == "incremental"
    assert scoring.scorer_for(victim, dense=True).kind == "dense"
    assert "one changed pixel" in scoring.describe(scoring.scorer_for(victim, pixels=3))
    plain = scoring.scorer_for(lambda images: images.sum((1, 2)))
    assert plain.kind == "dense" and "not a SequentialVictim" in scoring.describe(plain)


def test_macs_and_cache_bytes_are_counted_from_the_layer_shapes():
    allconv = create_model("allconv")
    dense = macs_per_candidate(scoring.scorer_for(allconv, dense=True), (32, 32, 3))
    incremental = macs_per_candidate(scoring.scorer_for(allconv), (32, 32, 3))
    # conv1 at every position of the 32x32 map: 32 * 32 * (3 * 3 * 3) * 96
    assert dense > 32 * 32 * 27 * 96 and incremental < 0.25 * dense
    cache = scoring.cache_bytes_per_slot(scoring.scorer_for(allconv), (32, 32, 3))
    assert 4 * 34 * 34 * 96 < cache < 4 * 2**20  # conv2's padded input alone; a bound


@pytest.fixture(scope="module")
def both_ways(tiny):
    """The tiny victim attacking shipped images near its decision boundary, scored densely
    and incrementally with the same seed (the engine sizes of test_engine.py)."""
    _, victim = tiny
    x, y, index = boundary_sample(victim)
    kwargs = dict(key=jax.random.key(0), image_ids=index, devices=1, **TINY_ENGINE)
    return [pixel_attack(victim.predict, x, y, dense=dense, **kwargs) for dense in (True, False)]


def test_incremental_and_dense_scoring_give_the_same_attacks(both_ways):
    dense, incremental = both_ways
    assert dense.success.any() and (~dense.skipped).sum() >= 8
    for field in ("skipped", "success", "adversarial_class", "perturbation", "adversarial",
                  "generations", "evaluations"):
        np.testing.assert_array_equal(getattr(incremental, field), getattr(dense, field), field)
    for field in ("confidence", "true_prob_after"):
        np.testing.assert_allclose(getattr(incremental, field), getattr(dense, field),
                                   atol=1e-5)


# -- bench and command line ----------------------------------------------------------------------

def test_bench_reports_both_engines_their_ratio_and_costs(tiny):
    _, victim = tiny
    x, y, index = boundary_sample(victim)  # labels: the victim's own predictions
    data = dataclasses.replace(load_sample().take(np.arange(len(x))), x=x,
                               y=y.astype(np.int32), index=index)
    config = BenchConfig(images=2, baseline_images=1, popsize=TINY_ENGINE["popsize"],
                         maxiter=TINY_ENGINE["maxiter"], slots=TINY_ENGINE["slots"],
                         batch_size=TINY_ENGINE["batch_size"],
                         incremental_batch_size=TINY_ENGINE["batch_size"], repeats=1,
                         agreement_candidates=600)
    report = run_bench(victim.predict, data, config)
    engines = report["engines"]
    assert engines["dense"]["scoring"] == "dense (requested)"
    assert engines["incremental"]["scoring"] == "incremental"
    # Both precisions, side by side, with the bfloat16 runs' successes re-checked in float32.
    assert engines["incremental bfloat16"]["scoring"] == "incremental bfloat16"
    assert engines["dense bfloat16"]["scoring"] == "dense bfloat16 (requested)"
    for kind in ("dense", "incremental"):
        low = engines[f"{kind} bfloat16"]
        assert low["run"]["attacked"] == engines[kind]["run"]["attacked"] == 2
        assert 0 <= low["run"]["precision_flips"] <= 2
        assert low["fraction_of_matmul"] == pytest.approx(
            low["flops_per_second"] / report["matmul_flops_per_second"]["bfloat16"])
        assert report["bfloat16_over_float32"][kind] == pytest.approx(
            low["evaluations_per_second"] / engines[kind]["evaluations_per_second"])
    agreement = report["precision_agreement"]
    assert agreement["candidates"] == 600
    assert 0 <= agreement["argmax_agreement"] <= 1
    assert agreement["argmax_disagreements"] == round(600 * (1 - agreement["argmax_agreement"]))
    assert 0 <= agreement["max_probability_difference"] < 1
    assert report["incremental_over_dense"] == pytest.approx(
        engines["incremental"]["evaluations_per_second"]
        / engines["dense"]["evaluations_per_second"])
    assert engines["incremental"]["macs_per_candidate"] < engines["dense"]["macs_per_candidate"]
    assert engines["incremental"]["cache_bytes_per_slot"] > engines["dense"][
        "cache_bytes_per_slot"] > 0
    assert report["cpu_bfloat16_instructions"] in (True, False, None)  # None: cannot tell
    json.dumps(report)  # what --json prints
    # The roofline: each engine's FLOP/s beside the machine's own matmul rate, same run.
    ceiling = report["matmul_flops_per_second"]
    assert ceiling["float32"] > 0 and ceiling["bfloat16"] > 0
    for e in engines.values():
        assert e["flops_per_second"] == pytest.approx(
            2 * e["macs_per_candidate"] * e["evaluations_per_second"])
        assert e["fraction_of_matmul_float32"] == pytest.approx(
            e["flops_per_second"] / ceiling["float32"])
        # ... and beside its own convolutions and products, each run alone at its shape.
        assert e["products_flops_per_second"] > 0
        assert e["fraction_of_products"] == pytest.approx(
            e["flops_per_second"] / e["products_flops_per_second"])


def test_bench_untrained_measures_a_network_on_random_images_of_its_own_size(capsys):
    from pixeljax.cli import main

    assert main(["bench", "--model", "tiny", "--untrained", "--images", "1", "--popsize", "8",
                 "--maxiter", "1", "--slots", "1", "--batch-size", "8",
                 "--incremental-batch-size", "8", "--sweep-images", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engines"]["incremental"]["scoring"] == "incremental"
    assert report["engine_run"]["attacked"] == 1  # labelled with its own predictions
    assert report["sweep_candidates_per_second"] is None  # --sweep-images 0: not measured


@pytest.mark.parametrize("option", ["--images", "--slots", "--batch-size",
                                    "--incremental-batch-size"])
def test_bench_refuses_non_positive_counts_with_one_error_line(option, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--model", "tiny", option, "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and option in err


def test_bench_config_refuses_non_positive_counts():
    with pytest.raises(PixeljaxError, match="bench images must be an integer >= 1, got 0"):
        BenchConfig(images=0)
    with pytest.raises(PixeljaxError, match="bench incremental_batch_size must be an integer "
                                            ">= 1, got -3"):
        BenchConfig(incremental_batch_size=-3)


def test_an_attack_run_summary_says_how_it_scored(tmp_path, tiny):
    checkpoint, _ = tiny
    for dense in (False, True):
        out = tmp_path / str(dense)
        args = ["attack", "tiny", "--checkpoint", str(checkpoint), "--out", str(out),
                "--images", "3", "--first", "--quiet", "--devices", "1"] + [
            f"--{k.replace('_', '-')}={v}" for k, v in TINY_ENGINE.items()] + (
            ["--dense"] if dense else [])
        assert main(args) in (0, 1)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["scoring"] == ("dense (requested)" if dense else "incremental")
        assert summary["cache_bytes_per_slot"] > 0


def test_incremental_logits_equal_dense_logits_on_the_imagenet_size_network_at_its_borders():
    model = create_model("allconv_imagenet", seed=1)
    assert model.image_shape == (224, 224, 3) and model.num_classes == 1000
    images = random_images(1, (224, 224, 3))
    model = scaled(model, images)
    corners = np.array([[0, 0], [0, 223], [223, 0], [223, 223]])
    edges = np.array([[0, 101], [223, 57], [130, 0], [77, 223], [1, 222], [222, 1],
                      [111, 112], [31, 32]])
    assert compare(model, images, np.concatenate([corners, edges]), chunk=12) == 12
    # A one-pixel change reaches a far smaller share of each map at 224 than at 32.
    small = macs_per_candidate(scoring.scorer_for(model), (224, 224, 3))
    whole = macs_per_candidate(scoring.scorer_for(model, dense=True), (224, 224, 3))
    cifar = create_model("allconv")
    cifar_fraction = (macs_per_candidate(scoring.scorer_for(cifar), (32, 32, 3))
                      / macs_per_candidate(scoring.scorer_for(cifar, dense=True),
                                                   (32, 32, 3)))
    assert small / whole < 0.1 < cifar_fraction
