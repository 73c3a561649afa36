"""Input defences in front of a victim: each against SciPy's or the formula's reference, their
names and refusals, and a defended attack from the command line to its export."""

from __future__ import annotations

import csv
import dataclasses
import json

import jax
import numpy as np
import pytest
import scipy.ndimage
from _attack_support import TINY_ENGINE, published_in_readme
from _incremental_support import border_and_random_pixels, compare, random_images, scaled

from pixeljax.analysis.attacks import load_attacks
from pixeljax.attack.perturb import apply_candidates
from pixeljax.cli import main
from pixeljax.data import load_sample
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model
from pixeljax.victims.defences import (
    EOT_DRAWS,
    Defence,
    defence_name,
    defended,
    gaussian_weights,
    parse_defences,
)

ENGINE_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_ENGINE.items()]


def images(n=2, shape=(9, 11, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype(np.float32)


@pytest.mark.parametrize("k", [3, 5])
def test_the_median_filter_is_scipys_with_mirrored_borders(k):
    x = images()
    expected = scipy.ndimage.median_filter(x, size=(1, k, k, 1), mode="reflect")
    np.testing.assert_array_equal(np.asarray(Defence("median", k)(x)), expected)


@pytest.mark.parametrize("k", [3, 5])
def test_gaussian_smoothing_is_scipys_correlation_with_opencvs_sigma(k):
    x = images()
    weights = gaussian_weights(k).reshape(1, k, k, 1)
    expected = scipy.ndimage.correlate(x, weights, mode="reflect")
    np.testing.assert_allclose(np.asarray(Defence("gauss", k)(x)), expected, atol=1e-3)
    assert gaussian_weights(k).sum() == pytest.approx(1.0)


def test_bit_depth_reduction_keeps_two_to_the_bits_levels():
    x = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1)
    squeezed = np.asarray(Defence("bits", 2)(x))
    np.testing.assert_allclose(np.unique(squeezed), [0.0, 85.0, 170.0, 255.0], atol=1e-4)
    np.testing.assert_allclose(np.asarray(Defence("bits", 2)(squeezed)), squeezed, atol=1e-4)


def test_a_defence_string_is_read_in_order_and_named_canonically():
    parts = parse_defences(" bits5 + median3")
    assert parts == (Defence("bits", 5), Defence("median", 3))
    assert defence_name(parts) == "bits5+median3"


@pytest.mark.parametrize("text, message", [
    ("blur3", "unknown defence 'blur3'; known: median<k> and gauss<k>"),
    ("median4", "the filter size must be odd and >= 3, got 4"),
    ("gauss0", "the filter size must be odd and >= 3, got 0"),
    ("median35", "a 35 x 35 filter is larger than the 32 x 32 images"),
    ("bits0", "bits must be from 1 to 7, got 0"),
    ("bits8", "bits must be from 1 to 7, got 8"),
    ("", "expected median<k>"),
    ("median3+", "an empty part"),
    ("median03", "unknown defence 'median03'"),
    ("median\u0663", "unknown defence"),
    ("noise0", "the noise level must be from 1 to 255 pixel levels, got 0"),
    ("noise256", "the noise level must be from 1 to 255 pixel levels, got 256"),
    ("noise8x0", "the draws must be from 1 to 256, got 0"),
    ("median3x2", "unknown defence 'median3x2'"),
    ("noise4+median3+noise8", "at most one noise part"),
])
def test_bad_defences_are_refused_naming_the_problem(text, message):
    with pytest.raises(PixeljaxError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")):
        parse_defences(text, (32, 32, 3))


def test_a_defended_victim_runs_the_defence_first(victim):
    x = images(shape=(32, 32, 3))
    behind = defended(victim[1], "median3")
    np.testing.assert_allclose(np.asarray(behind.predict(x)),
                               np.asarray(victim[1].predict(Defence("median", 3)(x))), atol=1e-5)
    assert defended(victim[1], None) is victim[1]


def test_a_defended_attack_records_its_defence_and_its_adversarials_fool_the_defended_victim(
        victim, tmp_path, capsys):
    behind = defended(victim[1], "bits6+median3")
    sample = load_sample()  # the six images the defended victim is least sure of
    logits = np.asarray(behind.predict(sample.x.astype(np.float32)))
    top2 = np.sort(logits, -1)[:, -2:]
    chosen = np.sort(np.argsort(top2[:, 1] - top2[:, 0])[:6])
    x, y, index = sample.x[chosen], logits[chosen].argmax(-1), sample.index[chosen]
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y, index=index)
    out = tmp_path / "run"
    args = ["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(data), "--images",
            "6", "--out", str(out), "--quiet", *ENGINE_ARGS]
    assert main(args + ["--defence", "bits6+median3"]) == 0
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["defence"] == "bits6+median3"
    assert summary["scoring"] == "incremental"  # the defence is the network's first step
    capsys.readouterr()
    assert main(args) == 2  # the undefended victim is another configuration
    assert "different configuration" in capsys.readouterr().err
    attacks = load_attacks(out)  # re-scores the stored candidates through the defence
    assert attacks.found.success.any()  # the seeded run fools some of these boundary images
    fooled = attacks.successful()
    classes = np.asarray(behind.predict(apply_candidates(fooled.images,
                                                         fooled.found.candidates))).argmax(-1)
    np.testing.assert_array_equal(classes, fooled.found.adversarial_class)


@pytest.mark.parametrize("text, message", [("median4", "odd and >= 3"),
                                           ("noise0", "noise level must be from 1 to 255")])
def test_a_bad_defence_on_the_command_line_is_one_error_line_and_creates_nothing(
        victim, tmp_path, capsys, text, message):
    out = tmp_path / "run"
    assert main(["attack", "tiny", "--checkpoint", str(victim[0]), "--out", str(out),
                 "--defence", text, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and not out.exists()


def test_a_suite_attacks_a_victim_behind_its_defence_and_records_it(victim, tmp_path):
    from pixeljax.evaluation import AttackSpec, EngineSizes, Suite, Victim, run_suite

    with pytest.raises(PixeljaxError, match="victim tiny-m: --defence: unknown defence"):
        Victim("tiny-m", architecture="tiny", defence="blur3")
    x, y = load_sample().x[:3], None
    y = np.asarray(victim[1].predict(x.astype(np.float32))).argmax(-1)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    plain = Victim("tiny", checkpoint=str(victim[0]))
    smooth = Victim("tiny-median3", architecture="tiny", checkpoint=str(victim[0]),
                    defence="median3")
    noisy = Victim("tiny-noise", architecture="tiny", checkpoint=str(victim[0]),
                   defence="noise60x2")
    suite = Suite(name="defended", victims=(plain, smooth, noisy), pixels=(1, 3),
                  modes=("non-targeted",), images=3, data=str(tmp_path / "data.npz"),
                  attack=AttackSpec(popsize=8, maxiter=1))
    summaries = run_suite(suite, tmp_path / "out", progress=False,
                          sizes=EngineSizes(slots=2, batch_size=16))
    assert [s["model"] for s in summaries] == ["tiny", "tiny", "tiny-median3", "tiny-median3",
                                               "tiny-noise", "tiny-noise"]
    config = json.loads((tmp_path / "out" / "tiny-median3" / "1px-non-targeted" /
                         "config.json").read_text())
    assert config["defence"] == "median3" and config["architecture"] == "tiny"
    assert "defence" not in json.loads((tmp_path / "out" / "tiny" / "1px-non-targeted" /
                                        "config.json").read_text())
    # The report's robustness table, recomputed from the rows.
    from pixeljax.evaluation import write_report
    from pixeljax.runs import results

    text = write_report(tmp_path / "out").read_text()
    assert "## Robustness" in text and "noise60x2" in text
    assert (tmp_path / "out" / "figures" / "robust_by_pixels.png").stat().st_size > 1000
    with open(tmp_path / "out" / "tables" / "robustness.csv") as f:
        table = {(r["model"], r["pixels"]): r for r in csv.DictReader(f)}
    accuracy = {}
    for model in ("tiny", "tiny-median3", "tiny-noise"):
        for pixels in (1, 3):
            rows = results.read_rows(tmp_path / "out" / model / f"{pixels}px-non-targeted")
            attacked = [r for r in rows if r["status"] != "skipped"]
            fooled = sum(r["success"] for r in attacked)
            row = table[model, str(pixels)]
            assert int(row["robust"]) == len(attacked) - fooled
            assert float(row["robust_accuracy"]) == pytest.approx((len(attacked) - fooled) / 3)
            accuracy[model, pixels] = len(attacked) / 3
            if model != "tiny":
                assert row["undefended"] == "tiny"
                assert float(row["accuracy_cost"]) == pytest.approx(
                    accuracy["tiny", pixels] - accuracy[model, pixels])
    assert table["tiny", "1"]["undefended"] == "" and table["tiny", "1"]["accuracy_cost"] == ""
    # Its publication's table is the robustness table, from the stored summaries alone.
    shown = published_in_readme(tmp_path / "out", tmp_path, "defended")
    assert shown[0].startswith("| victim | defence | checkpoint | pixels | images | clean")
    rows = {(r.split(" | ")[0][2:], int(r.split(" | ")[3])): r for r in shown[2:]}
    assert len(rows) == 6 and " | noise60x2 | " in rows["tiny-noise", 1]
    for (model, pixels), row in rows.items():
        robust = int(table[model, str(pixels)]["robust"])  # of the cell's 3 images
        assert row.split(" | ")[7].startswith(f"{robust / 3:.1%} [")


@pytest.mark.parametrize("name,text", [("tiny", "median3"), ("tiny", "gauss5"),
                                       ("tiny", "bits5+median3+gauss3"),
                                       ("allconv", "bits4+median5")])
def test_defended_incremental_logits_equal_dense_ones_at_every_border_pixel(name, text):
    """The filters mirror the image at its borders: a changed pixel near one is mirrored into
    the padding too, and the incremental scorer must see each copy."""
    images = random_images(2)
    model = scaled(create_model(name, seed=1), images)
    model.defences = parse_defences(text)
    pixels = border_and_random_pixels(32, 32, 20, np.random.default_rng(1))
    assert compare(model, images, pixels, chunk=len(pixels)) == 2 * len(pixels)


def test_a_defended_victim_of_the_projects_layers_is_one_network_scored_incrementally(victim):
    from pixeljax.attack import scoring

    behind = defended(victim[1], "bits5+gauss3")
    assert behind.model.defences == parse_defences("bits5+gauss3")
    assert victim[1].model.defences == ()  # the loaded victim is left as it was
    assert scoring.describe(scoring.scorer_for(behind.predict)) == "incremental"
    assert scoring.describe(scoring.scorer_for(behind.predict, precision="bfloat16")) == \
        "incremental bfloat16"
    # A model the engine cannot read is wrapped instead, and scored densely.
    plain = dataclasses.replace(victim[1], apply=lambda params, x: victim[1].apply(params, x))
    wrapped = defended(plain, "median3")
    assert scoring.describe(scoring.scorer_for(wrapped.predict)).startswith("dense")
    x = images(shape=(32, 32, 3))
    np.testing.assert_allclose(np.asarray(wrapped.predict(x)),
                               np.asarray(defended(victim[1], "median3").predict(x)), atol=1e-5)


def test_a_noise_defence_is_named_with_its_draws():
    assert parse_defences("noise8") == (Defence("noise", 8, EOT_DRAWS),)
    assert defence_name(parse_defences("bits5+noise4x3")) == "bits5+noise4x3"
    assert defence_name(parse_defences("noise8")) == f"noise8x{EOT_DRAWS}"


def test_a_noise_defence_scores_an_image_alike_in_any_batch_by_the_mean_over_its_draws(victim):
    """Expectation over transformation with draws seeded by the image itself: the same image
    gets the same probabilities alone or in a batch, and they are the mean of the draws'."""
    from pixeljax.attack import scoring
    from pixeljax.victims.defences import Defended, image_keys

    x = images(n=3, shape=(32, 32, 3))
    behind = defended(victim[1], "noise40x3")
    out = np.asarray(behind.predict(x))
    np.testing.assert_array_equal(np.asarray(behind.predict(x[1:2]))[0], out[1])
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, rtol=1e-5)  # log-probabilities
    keys = image_keys(x)
    draws = [jax.nn.softmax(victim[1].predict(Defence("noise", 40, 3)(
        x, jax.vmap(lambda k: jax.random.fold_in(k, d))(keys))), axis=-1) for d in range(3)]
    np.testing.assert_allclose(np.exp(out), np.mean(draws, axis=0), atol=1e-5)
    clean = np.asarray(jax.nn.softmax(victim[1].predict(x), axis=-1))
    assert np.abs(np.exp(out) - clean).max() > 1e-3  # the noise does something
    data = jax.random.key_data
    assert not np.array_equal(np.asarray(data(image_keys(x[:1]))),
                              np.asarray(data(image_keys(x[1:2]))))
    assert isinstance(behind.apply, Defended)  # randomised: wrapped, scored densely
    why = scoring.describe(scoring.scorer_for(behind.predict))
    assert why.startswith("dense") and "averaged over 3 draws" in why
    with pytest.raises(PixeljaxError, match="scores in float32 only"):
        scoring.check_lowerable(behind.predict, "bfloat16")


def test_an_attack_behind_noise_is_reproducible_and_its_rows_re_score_alike(victim, tmp_path):
    x, y = load_sample().x[:4], None
    behind = defended(victim[1], "noise8x2")
    y = np.asarray(behind.predict(x.astype(np.float32))).argmax(-1)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    runs = []
    for name in ("a", "b"):
        assert main(["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(data),
                     "--images", "4", "--out", str(tmp_path / name), "--quiet", *ENGINE_ARGS,
                     "--defence", "noise8x2"]) == 0
        runs.append((tmp_path / name / "results.csv").read_text())
    assert runs[0] == runs[1]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "averaged over 2 draws" in summary["scoring"]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["defence"] == "noise8x2"
    attacks = load_attacks(tmp_path / "a")  # re-scores every stored candidate through it
    assert len(attacks.found) == 4


def test_an_attack_behind_noise_is_judged_on_fresh_draws_as_the_deployed_defence_would(
        victim, tmp_path):
    """The search sees a few fixed draws; every reported class, confidence and success is that
    of the probabilities expected over 256 fresh draws of another key, computed here apart."""
    from pixeljax.victims.defences import _VERDICT_SEED, VERDICT_DRAWS, image_keys

    x = load_sample().x[:8]
    behind = defended(victim[1], "noise30x1")
    y = np.asarray(behind.predict(x.astype(np.float32))).argmax(-1)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    assert main(["attack", "tiny", "--checkpoint", str(victim[0]), "--data",
                 str(tmp_path / "data.npz"), "--images", "8", "--out", str(tmp_path / "run"),
                 "--quiet", *ENGINE_ARGS, "--defence", "noise30x1"]) in (0, 1)
    found = load_attacks(tmp_path / "run").found  # analyses re-score through the verdict too
    adversarial = np.asarray(apply_candidates(x[found.image_index], found.candidates))
    keys = image_keys(adversarial, _VERDICT_SEED)
    noise = Defence("noise", 30, 1)
    fresh = np.mean([np.asarray(jax.nn.softmax(victim[1].predict(noise(
        adversarial, jax.vmap(lambda k: jax.random.fold_in(k, d))(keys))), axis=-1))
        for d in range(VERDICT_DRAWS)], axis=0)
    np.testing.assert_array_equal(found.adversarial_class, fresh.argmax(-1))
    np.testing.assert_allclose(found.true_prob_after,
                               fresh[np.arange(len(found)), found.label], atol=1e-5)
    np.testing.assert_array_equal(found.success, fresh.argmax(-1) != found.label)
    # The fixed draw the search used judged some attacks otherwise: those are marked.
    fixed = np.asarray(behind.predict(adversarial)).argmax(-1) != found.label
    np.testing.assert_array_equal(found.precision_flip, fixed != found.success)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert f"judged by those expected over {VERDICT_DRAWS} fresh draws" in summary["scoring"]
