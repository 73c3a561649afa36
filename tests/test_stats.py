"""The statistics of attack results (``pixeljax.runs.stats``), checked on hand-made result rows."""

import math

import numpy as np
import pytest

from pixeljax.errors import PixeljaxError
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.stats import (
    CONFIDENCE_BINS,
    Rate,
    bin_labels,
    binned_means,
    binned_rates,
    cell_statistics,
    pool,
    quantiles,
    wilson_interval,
)


def row(aid, image, label, *, target=-1, status="failure", adversarial=None, confidence=0.5,
        generations=0, evaluations=0):
    success = int(status == "success")
    return {"attack_id": aid, "image_index": image, "label": label, "target": target,
            "status": status, "success": success,
            "adversarial_class": label if adversarial is None else adversarial,
            "confidence": confidence, "generations": generations, "evaluations": evaluations}


def record(rows) -> AttackResult:
    """The hand-made rows as the record a results folder gives (one-pixel attacks)."""
    filler = {"true_prob_before": 0.9, "true_prob_after": 0.1, "nonfinite_evaluations": 0,
              "precision_flip": 0, "x0": 0.0, "y0": 0.0, "r0": 0.0, "g0": 0.0, "b0": 0.0}
    return AttackResult.from_rows([{**filler, **r} for r in rows], pixels=1, channels=3)


def all_targets_rows(reached: dict[int, list[int]], labels: dict[int, int], k: int = 10,
                     skipped: tuple[int, ...] = ()):
    """One row per (image, other class); the classes in ``reached[image]`` succeed."""
    rows = []
    for image, label in labels.items():
        for t in range(k):
            if t == label:
                continue
            if image in skipped:
                rows.append(row(image * k + t, image, label, target=t, status="skipped",
                                adversarial=(label + 1) % k))
            elif t in reached.get(image, ()):
                rows.append(row(image * k + t, image, label, target=t, status="success",
                                adversarial=t, confidence=0.6, generations=t, evaluations=10 * t))
            else:
                rows.append(row(image * k + t, image, label, target=t))
    return rows


@pytest.mark.parametrize("successes, trials, low, high", [
    (0, 10, 0.0, 0.27753279),
    (5, 10, 0.23659309, 0.76340691),
    (10, 10, 0.72246721, 1.0),
    (1, 2, 0.09453120, 0.90546880),
])
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    lo, hi = wilson_interval(successes, trials)
    assert lo == pytest.approx(low, abs=1e-6)
    assert hi == pytest.approx(high, abs=1e-6)


def test_wilson_interval_is_exact_at_the_ends_and_everything_without_trials():
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_rejects_more_successes_than_trials():
    with pytest.raises(PixeljaxError, match="successes <= trials"):
        wilson_interval(3, 2)


def test_rate_reports_its_interval_and_nan_without_trials():
    r = Rate(5, 10).to_dict()
    assert r["rate"] == 0.5 and r["ci_low"] < 0.5 < r["ci_high"]
    assert math.isnan(Rate(0, 0).rate)


def test_quantiles_of_known_values_and_of_nothing():
    q = quantiles([1, 2, 3, 4, 5])
    assert (q.count, q.minimum, q.median, q.maximum, q.mean) == (5, 1, 3, 5, 3)
    assert (q.q25, q.q75) == (2, 4)
    assert quantiles([]).count == 0 and math.isnan(quantiles([]).median)


def test_non_targeted_statistics_count_images_accuracy_and_class_pairs():
    rows = [row(0, 0, 3, status="success", adversarial=5, confidence=0.7, generations=2,
                evaluations=60),
            row(1, 1, 3, status="success", adversarial=5, confidence=0.9, generations=4,
                evaluations=100),
            row(2, 2, 1),
            row(3, 3, 2, status="skipped", adversarial=7)]
    s = cell_statistics(record(rows), mode="non-targeted", num_classes=10)
    assert (s.images, s.attacked, s.accuracy) == (4, 3, 0.75)
    assert (s.success.successes, s.success.trials) == (2, 3)
    assert s.mean_confidence == pytest.approx(0.8)
    assert s.class_pairs[3, 5] == 2 and s.class_pairs.sum() == 2
    assert s.targeted is None and s.classes_reached is None
    assert (s.generations.median, s.evaluations.median) == (3, 80)


def test_all_targets_counts_an_image_fooled_when_any_target_is_reached():
    labels = {0: 0, 1: 1, 2: 2, 3: 3}
    rows = all_targets_rows({0: [4, 5, 6], 1: [0], 2: []}, labels, skipped=(3,))
    s = cell_statistics(record(rows), mode="all-targets", num_classes=10)
    assert (s.images, s.attacked, s.accuracy) == (4, 3, 0.75)
    assert (s.success.successes, s.success.trials) == (2, 3)      # images 0 and 1
    assert (s.targeted.successes, s.targeted.trials) == (4, 27)   # pairs of attacked images
    assert s.classes_reached.tolist() == [1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    assert s.mean_classes_reached == pytest.approx(4 / 3)
    assert s.class_pairs[0, 4] == s.class_pairs[0, 5] == s.class_pairs[1, 0] == 1


def test_class_pair_totals_equal_the_number_of_successful_attacks():
    rng = np.random.default_rng(0)
    labels = {i: int(rng.integers(10)) for i in range(30)}
    reached = {i: [t for t in range(10) if t != labels[i] and rng.random() < 0.3]
               for i in labels}
    rows = all_targets_rows(reached, labels, skipped=(0, 1))
    s = cell_statistics(record(rows), mode="all-targets", num_classes=10)
    wins = sum(r["success"] for r in rows)
    assert s.class_pairs.sum() == s.successful_attacks == s.targeted.successes == wins
    assert np.trace(s.class_pairs) == 0
    assert s.classes_reached.sum() == s.attacked == 28
    assert s.success.successes == sum(1 for i in range(2, 30) if reached[i])


def test_an_attack_recorded_twice_is_an_error_not_a_double_count():
    rows = [row(0, 0, 1), row(0, 0, 1)]
    with pytest.raises(PixeljaxError, match="appears twice"):
        cell_statistics(record(rows), mode="non-targeted", num_classes=10)


def test_statistics_of_no_rows_are_empty_not_an_error():
    s = cell_statistics(record([]), mode="all-targets", num_classes=10)
    assert s.images == s.attacked == s.success.trials == 0
    assert math.isnan(s.accuracy) and math.isnan(s.mean_confidence)


def test_pooling_sums_counts_and_averages_rates_as_the_paper_does():
    p = pool([Rate(1, 2), Rate(3, 6), Rate(10, 10)])
    assert (p.success.successes, p.success.trials, p.runs) == (14, 18, 3)
    assert p.mean_of_rates == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_binning_by_clean_confidence_counts_each_image_in_its_bin():
    # Images with clean true-class probabilities on and between the edges (an edge belongs to
    # the bin above it): fooled ones below 0.7, one at 0.9, none at 0.99 and above.
    probs = [0.2, 0.49, 0.5, 0.6, 0.7, 0.89, 0.9, 0.95, 0.99, 1.0]
    fooled = [1, 1, 1, 0, 0, 0, 1, 0, 0, 0]
    vulnerable = [300, 100, 40, 20, 8, 4, 2, 0, 0, 0]
    assert bin_labels() == ["<0.5", "0.5-0.7", "0.7-0.9", "0.9-0.99", ">=0.99"]
    assert binned_rates(probs, fooled) == [Rate(2, 2), Rate(1, 2), Rate(0, 2), Rate(1, 2),
                                           Rate(0, 2)]
    assert binned_means(probs, vulnerable) == [200.0, 30.0, 6.0, 1.0, 0.0]
    rates = binned_rates([0.1], [True], CONFIDENCE_BINS)
    assert [r.trials for r in rates] == [1, 0, 0, 0, 0] and np.isnan(rates[1].rate)
    assert np.isnan(binned_means([0.1], [3])[4])
