"""``pixel_attack``: the one-pixel attack on a batch of images, in one call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from pixeljax.accuracy import predict_logits
from pixeljax.attack import validation
from pixeljax.attack.engine import (
    NON_TARGETED,
    Attack,
    AttackParams,
    EngineConfig,
    local_devices,
    stream,
)
from pixeljax.attack.perturb import apply_candidates
from pixeljax.de.core import STRATEGIES, DEParams
from pixeljax.errors import PixeljaxError

ALL_TARGETS = "all"


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """Per-attack results (leading axis A: one entry per attack, in request order).

    Attributes:
      image: (A,) position of the attacked image in the input batch.
      label, target: (A,) true class and target (-1 for non-targeted attacks).
      skipped: (A,) the image was misclassified to begin with, so it was not attacked.
      success: (A,) the attack reached its goal (never true for skipped images).
      adversarial_class: (A,) the class the final adversarial image is given.
      confidence: (A,) that class's probability.
      true_prob_before, true_prob_after: (A,) the true class's probability on the clean and
        the adversarial image.
      perturbation: (A, pixels, 2 + C) (x, y, colour...) as applied.
      adversarial: (A, H, W, C) uint8 adversarial images.
      generations, evaluations: (A,) DE generations and model evaluations used.
      attack_id: (A,) the id each attack's random stream is derived from.
    """

    image: np.ndarray
    label: np.ndarray
    target: np.ndarray
    skipped: np.ndarray
    success: np.ndarray
    adversarial_class: np.ndarray
    confidence: np.ndarray
    true_prob_before: np.ndarray
    true_prob_after: np.ndarray
    perturbation: np.ndarray
    adversarial: np.ndarray
    generations: np.ndarray
    evaluations: np.ndarray
    attack_id: np.ndarray

    def classes_reached(self, num_images: int) -> np.ndarray:
        """(num_images,) how many classes each image was pushed to (all-targets runs)."""
        reached = np.zeros(num_images, np.int64)
        np.add.at(reached, self.image, self.success.astype(np.int64))
        return reached

    def image_success(self, num_images: int) -> np.ndarray:
        """(num_images,) whether any attack on the image succeeded (the paper's non-targeted
        success under the all-targets protocol)."""
        return self.classes_reached(num_images) > 0


def _call(apply, images):
    return apply(images)


def clean_logits(apply: Callable, images: np.ndarray, batch_size: int) -> np.ndarray:
    if not isinstance(apply, jax.tree_util.Partial):
        apply = jax.tree_util.Partial(apply)
    logits = predict_logits(_call, apply, images, batch_size=batch_size)
    validation.check_logits(logits)
    return logits


def plan_attacks(labels: np.ndarray, targets, num_classes: int) -> list[tuple[int, int]]:
    """(image position, target) pairs in request order; target -1 = non-targeted."""
    if targets is None:
        return [(i, NON_TARGETED) for i in range(len(labels))]
    if isinstance(targets, str):
        if targets != ALL_TARGETS:
            raise PixeljaxError(f"targets must be None, an array of classes or 'all', "
                                f"got {targets!r}")
        return [(i, t) for i in range(len(labels)) for t in range(num_classes)
                if t != labels[i]]
    targets = validation.check_targets(targets, labels, num_classes)
    return [(i, int(targets[i])) for i in range(len(labels))]


def attack_id(image_id: int, target: int, label: int, num_classes: int) -> int:
    """A stable id per (image, target): the seed of the attack's random stream."""
    return int(image_id) * num_classes + (target if target >= 0 else label)


def pixel_attack(apply: Callable, images, labels, *, pixels: int = 1, targets=None,
                 popsize: int = 400, maxiter: int = 100, key: jax.Array, F: float = 0.5,
                 crossover_rate: float | None = None, strategy: str = "rand1",
                 target_threshold: float = 0.5, true_threshold: float | None = None,
                 slots: int = 32, batch_size: int | None = None, segment: int = 10,
                 image_ids=None, devices=None, dense: bool = False) -> AttackResult:
    """The one-pixel attack (Su, Vargas, Sakurai 2019) on a batch of images.

    Defaults are the paper's: DE/rand/1, F = 0.5, no crossover, population 400, 100 generations,
    x and y uniform over the image, colours N(128, 127) clipped.

    Args:
      apply: ``apply(images) -> logits`` over NHWC images in [0, 255]; any JAX function (a
        ``jax.tree_util.Partial`` binding the weights avoids baking them into the program).
        A victim's ``predict`` (``load_victim(...).predict``) whose network is a
        ``SequentialVictim`` of the project's layers is scored incrementally (one-pixel
        attacks only): each candidate recomputes only the activations its pixel reaches.
      images: (N, H, W, C) uint8 or float in [0, 255].
      labels: (N,) true classes.
      pixels: pixels changed per attack.
      targets: None (non-targeted: minimise the true class's probability), an (N,) array of
        target classes, or "all" (the paper's protocol: each image towards every other class).
      popsize, maxiter: DE population and generations after the initial one.
      key: a JAX PRNG key (``jax.random.key(seed)``, or legacy ``jax.random.PRNGKey(seed)``
        data); each attack's stream is ``fold_in(key, attack_id)``.
      F, crossover_rate, strategy: DE settings (crossover None = none, the paper's).
      target_threshold: targeted attacks stop once the target's probability exceeds it.
      true_threshold: non-targeted attacks stop once the true class's probability falls below
        it; None stops them as soon as the image is misclassified.
      slots, batch_size, segment: attacks in flight, images per model call (None: 64 on a
        CPU, 1024 on an accelerator; at most slots x popsize per device: more would be
        padding), generations per compiled segment.
        Results do not depend on them.
      image_ids: (N,) stable ids of the images (default: positions), for attack ids.
      devices: the devices to spread the slots over: None (all of this process's), a count,
        or a sequence of devices. Results do not depend on it; ``slots`` is rounded up to a
        multiple of the device count and ``batch_size`` is per device.
      dense: score every candidate by a full forward pass even where incremental scoring
        applies (results are the same up to float rounding; see
        :func:`pixeljax.attack.scoring.scorer_for`).

    Returns:
      An :class:`AttackResult`. Images misclassified before the attack are skipped and
      marked ``skipped``; they never count as successes.
    """
    images, labels = validation.check_images(images, labels)
    validation.check_budget(pixels, popsize, maxiter, images.shape[1:], slots=slots,
                            batch_size=batch_size, segment=segment)
    if strategy not in STRATEGIES:
        raise PixeljaxError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    validation.check_attack_numbers(F, crossover_rate, target_threshold, true_threshold)
    validation.check_key(key)
    validation.check_devices(devices)
    num_classes = validation.check_model(apply, images)
    validation.check_labels(labels, num_classes)
    devices = local_devices(devices)
    batch_size = validation.micro_batch(batch_size, slots, popsize, len(devices))
    image_ids = validation.check_image_ids(image_ids, len(images))
    plan = plan_attacks(labels, targets, num_classes)
    logits = (clean_logits(apply, images, batch_size) if len(images)
              else np.zeros((0, num_classes), np.float32))
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    predicted = probs.argmax(-1)
    config = EngineConfig(pixels=pixels, popsize=popsize, maxiter=maxiter, strategy=strategy,
                          slots=slots, batch_size=batch_size, segment=segment, dense=dense)
    params = AttackParams(de=DEParams(F=F, crossover_rate=1.0 if crossover_rate is None
                                      else crossover_rate),
                          target_threshold=target_threshold,
                          true_threshold=-1.0 if true_threshold is None else true_threshold)
    ids = [attack_id(image_ids[i], t, labels[i], num_classes) for i, t in plan]
    todo = [Attack(attack_id=a, image=images[i], label=int(labels[i]), target=t)
            for a, (i, t) in zip(ids, plan) if predicted[i] == labels[i]]
    found = {}
    for batch in stream(apply, todo, key, config, params, devices=devices):
        found.update((row["attack_id"], row) for row in batch)
    return _assemble(images, labels, probs, plan, ids, found, pixels)


def _assemble(images, labels, probs, plan, ids, found, pixels) -> AttackResult:
    a = len(plan)
    c = images.shape[-1]
    image = np.asarray([i for i, _ in plan], np.int64)
    target = np.asarray([t for _, t in plan], np.int32)
    skipped = np.asarray([r not in found for r in ids], bool)
    get = lambda k, default, dtype: np.asarray(  # noqa: E731
        [found[r][k] if r in found else default for r in ids], dtype).reshape(a, *np.shape(default))
    perturbation = get("perturbation", np.zeros(pixels * (2 + c), np.float32), np.float32)
    adversarial = images[image].copy() if a else images[:0].copy()
    if a and not skipped.all():
        done = ~skipped
        adversarial[done] = np.asarray(apply_candidates(images[image[done]],
                                                        perturbation[done])).astype(images.dtype)
    true_before = probs[image, labels[image]] if a else np.zeros(0, np.float32)
    return AttackResult(
        image=image, label=labels[image], target=target, skipped=skipped,
        success=get("success", False, bool),
        adversarial_class=np.where(skipped, probs[image].argmax(-1) if a else 0,
                                   get("adversarial_class", -1, np.int32)),
        confidence=np.where(skipped, probs[image].max(-1) if a else 0.0,
                            get("confidence", 0.0, np.float32)),
        true_prob_before=true_before,
        true_prob_after=np.where(skipped, true_before, get("true_prob_after", 0.0, np.float32)),
        perturbation=perturbation.reshape(a, pixels, 2 + c),
        adversarial=adversarial, generations=get("generations", 0, np.int32),
        evaluations=get("evaluations", 0, np.int32), attack_id=np.asarray(ids, np.int64))
