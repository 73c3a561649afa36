"""Statistics of attack results: the paper's metrics with confidence intervals.

Computed from the :class:`~pixeljax.runs.attack_result.AttackResult` of one run (a *cell*) and pooled
across runs. The metrics are those of Su, Vargas, Sakurai, "One pixel attack for fooling deep
neural networks" (arXiv 1710.08864, TEVC 2019):

* success rate of images, with a 95% Wilson score interval; under the all-targets protocol an
  image counts as fooled when at least one of its targeted attacks succeeds (the paper's
  "perturbed to at least one target class");
* the targeted success rate over (image, target) pairs;
* the mean confidence (probability of the adversarial class) of successful attacks;
* the number of classes each image can be pushed to: histogram and mean;
* the (original class, adversarial class) counts of successful attacks;
* generations and model evaluations spent by successful attacks, as quantiles;
* the victim's accuracy on the selected images (images attacked / images selected: only
  correctly classified images are attacked);
* success by bins of the clean confidence in the true class (:func:`binned_rates`).

Example:
  >>> [round(v, 4) for v in wilson_interval(5, 10)]
  [0.2366, 0.7634]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

from pixeljax.errors import PixeljaxError
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import TARGET_MODES

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal distribution
QUANTILES = (0.25, 0.5, 0.75, 0.9)
# Inner edges of the bins of a clean probability (or margin) in [0, 1]: <0.5, 0.5-0.7, 0.7-0.9,
# 0.9-0.99, >=0.99. A value on an edge falls in the bin above it.
CONFIDENCE_BINS = (0.5, 0.7, 0.9, 0.99)


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 and n
    successes. With no trials nothing is known and the interval is [0, 1].

    Args:
      successes: number of successes, 0 <= successes <= trials.
      trials: number of trials.
      z: the normal quantile of the confidence level (default: 95%).

    Returns:
      ``(low, high)``.
    """
    if not 0 <= successes <= trials:
        raise PixeljaxError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if successes == 0:
        low = 0.0
    if successes == trials:
        high = 1.0
    return low, high


@dataclasses.dataclass(frozen=True)
class Rate:
    """A success rate with its 95% Wilson interval."""

    successes: int
    trials: int

    @property
    def rate(self) -> float:
        """The proportion; NaN when there were no trials."""
        return self.successes / self.trials if self.trials else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.trials)

    def to_dict(self) -> dict:
        low, high = self.interval
        return {"successes": self.successes, "trials": self.trials, "rate": self.rate,
                "ci_low": low, "ci_high": high}


@dataclasses.dataclass(frozen=True)
class Quantiles:
    """The distribution of a count (generations or evaluations) over successful attacks."""

    count: int
    mean: float
    minimum: float
    q25: float
    median: float
    q75: float
    q90: float
    maximum: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def quantiles(values: Iterable[float]) -> Quantiles:
    """Count, mean, min, quartiles, 90th percentile and max of ``values`` (NaN when empty)."""
    v = np.asarray(list(values), np.float64)
    if v.size == 0:
        nan = float("nan")
        return Quantiles(0, nan, nan, nan, nan, nan, nan, nan)
    q25, q50, q75, q90 = (float(q) for q in np.quantile(v, QUANTILES))
    return Quantiles(count=int(v.size), mean=float(v.mean()), minimum=float(v.min()), q25=q25,
                     median=q50, q75=q75, q90=q90, maximum=float(v.max()))


@dataclasses.dataclass(frozen=True)
class CellStats:
    """The statistics of one attack run.

    Attributes:
      mode: "non-targeted" or "all-targets" (or "targeted").
      num_classes: K.
      images: images selected for the run.
      attacked: those correctly classified, hence attacked.
      accuracy: attacked / images, the victim's accuracy on the selected images.
      success: images fooled out of images attacked (all-targets: at least one target reached).
      targeted: all-targets only: successful (image, target) pairs out of pairs attacked.
      mean_confidence: mean probability of the adversarial class over successful attacks.
      classes_reached: all-targets only: (K,) number of images that reach exactly k classes.
      mean_classes_reached: all-targets only: mean number of classes an image reaches.
      class_pairs: (K, K) successful attacks by (original class, adversarial class).
      generations, evaluations: DE generations and model evaluations of successful attacks.
      attacks: attacks run (rows not skipped); successful_attacks: those that succeeded.
    """

    mode: str
    num_classes: int
    images: int
    attacked: int
    accuracy: float
    success: Rate
    targeted: Rate | None
    mean_confidence: float
    classes_reached: np.ndarray | None
    mean_classes_reached: float | None
    class_pairs: np.ndarray
    generations: Quantiles
    evaluations: Quantiles
    attacks: int
    successful_attacks: int

    def to_dict(self) -> dict:
        """A flat, JSON-friendly view: one CSV row of the cells table."""
        out = {"mode": self.mode, "images": self.images, "attacked": self.attacked,
               "accuracy": self.accuracy, "attacks": self.attacks,
               "successful_attacks": self.successful_attacks,
               "mean_confidence": self.mean_confidence}
        out.update({f"success_{k}": v for k, v in self.success.to_dict().items()})
        targeted = self.targeted.to_dict() if self.targeted else dict.fromkeys(
            ("successes", "trials", "rate", "ci_low", "ci_high"))
        out.update({f"targeted_{k}": v for k, v in targeted.items()})
        out["mean_classes_reached"] = self.mean_classes_reached
        out.update({f"generations_{k}": v for k, v in self.generations.to_dict().items()})
        out.update({f"evaluations_{k}": v for k, v in self.evaluations.to_dict().items()})
        return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Two attacks on the same images, image by image (as AutoAttack reports the worst case
    over its attacks).

    Attributes:
      images: images both attacked.
      first, second: images each fooled; either: images one of them fooled (the worst case);
      only_first, only_second: images one fooled and the other did not.
    """

    images: int
    first: Rate
    second: Rate
    either: Rate
    only_first: int
    only_second: int


def compare(first: AttackResult, second: AttackResult) -> Comparison:
    """:class:`Comparison` of two runs' results over the images both attacked."""
    a, b = first.image_outcomes(), second.image_outcomes()
    common = sorted(a.keys() & b.keys())
    fa = {i for i in common if a[i]}
    fb = {i for i in common if b[i]}
    n = len(common)
    return Comparison(images=n, first=Rate(len(fa), n), second=Rate(len(fb), n),
                      either=Rate(len(fa | fb), n), only_first=len(fa - fb),
                      only_second=len(fb - fa))


def cell_statistics(found: AttackResult, *, mode: str, num_classes: int) -> CellStats:
    """Statistics of one run's results.

    Args:
      found: the run's results (each attack once; e.g. ``AttackResult.from_folder``).
      mode: the run's mode; "all-targets" adds the targeted and classes-reached statistics.
      num_classes: K, the number of classes of the victim.

    Raises:
      PixeljaxError: an attack appears twice, or a class lies outside [0, K).
    """
    groups = found.per_image()
    per_image = found.classes_reached()  # attacked images: their successful attacks
    run = found.attacked()
    won = run.take(run.success)
    outside = (won.label < 0) | (won.label >= num_classes) | (won.adversarial_class < 0) | (
        won.adversarial_class >= num_classes)
    if outside.any():
        k = int(np.argmax(outside))
        raise PixeljaxError(f"attack {won.attack_id[k]}: class {won.label[k]} -> "
                            f"{won.adversarial_class[k]} outside [0, {num_classes - 1}]")
    pairs = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(pairs, (won.label, won.adversarial_class), 1)
    targeted = reached = mean_reached = None
    if mode in TARGET_MODES:
        targeted = Rate(len(won), len(run))
        counts = np.asarray(list(per_image.values()), np.int64)
        reached = np.bincount(counts, minlength=num_classes)
        mean_reached = float(counts.mean()) if len(counts) else float("nan")
    return CellStats(
        mode=mode, num_classes=num_classes, images=len(groups), attacked=len(per_image),
        accuracy=len(per_image) / len(groups) if groups else float("nan"),
        success=Rate(sum(n > 0 for n in per_image.values()), len(per_image)),
        targeted=targeted,
        mean_confidence=float(np.mean(won.confidence.astype(np.float64))) if len(won)
        else float("nan"),
        classes_reached=reached, mean_classes_reached=mean_reached, class_pairs=pairs,
        generations=quantiles(won.generations.tolist()),
        evaluations=quantiles(won.evaluations.tolist()),
        attacks=len(run), successful_attacks=len(won))


def bin_labels(edges: Sequence[float] = CONFIDENCE_BINS) -> list[str]:
    """``["<0.5", "0.5-0.7", ..., ">=0.99"]``: the bins of :func:`binned_rates`."""
    inner = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]


def _bins(values, edges: Sequence[float]) -> np.ndarray:
    return np.digitize(np.asarray(values, np.float64), np.asarray(edges, np.float64))


def binned_rates(values, outcomes, edges: Sequence[float] = CONFIDENCE_BINS) -> list[Rate]:
    """Per bin of ``values`` (one per image, e.g. its clean true-class probability): images
    whose ``outcome`` is true out of the images in the bin, ``len(edges) + 1`` rates."""
    bins, outcomes = _bins(values, edges), np.asarray(outcomes, bool)
    return [Rate(int(outcomes[bins == k].sum()), int((bins == k).sum()))
            for k in range(len(edges) + 1)]


def binned_means(values, counts, edges: Sequence[float] = CONFIDENCE_BINS) -> list[float]:
    """Per bin of ``values``: the mean of ``counts`` (e.g. vulnerable pixels) over the images in
    the bin, NaN for an empty bin."""
    bins, counts = _bins(values, edges), np.asarray(counts, np.float64)
    return [float(counts[bins == k].mean()) if (bins == k).any() else float("nan")
            for k in range(len(edges) + 1)]


@dataclasses.dataclass(frozen=True)
class Pooled:
    """Several runs together (e.g. the three networks at one pixel count).

    Attributes:
      success: the summed counts, with their Wilson interval.
      mean_of_rates: the plain mean of the runs' rates (how the paper averages its networks).
      runs: how many runs were pooled.
    """

    success: Rate
    mean_of_rates: float
    runs: int


def pool(rates: Sequence[Rate]) -> Pooled:
    """Pools the success counts of several runs."""
    total = Rate(sum(r.successes for r in rates), sum(r.trials for r in rates))
    finite = [r.rate for r in rates if r.trials]
    return Pooled(success=total, mean_of_rates=float(np.mean(finite)) if finite else float("nan"),
                  runs=len(rates))
