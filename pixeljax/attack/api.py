"""``pixel_attack``: the one-pixel attack on a batch of images, in one call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from pixeljax.attack import pipeline, validation
from pixeljax.attack.perturb import apply_candidates
from pixeljax.attack.spec import DEFAULTS, AttackSpec, Goal
from pixeljax.errors import PixeljaxError

ALL_TARGETS = Goal.ALL_TARGETS


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
      nonfinite: (A,) evaluations whose logits were NaN or infinite (scored as the worst
        fitness, never a success).
      precision_flip: (A,) the float32 re-check reversed the success a bfloat16 score gave
        (``precision="bfloat16"`` only; the other fields are float32's).
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
    nonfinite: np.ndarray
    precision_flip: np.ndarray

    def classes_reached(self, num_images: int) -> np.ndarray:
        """(num_images,) how many classes each image was pushed to (all-targets runs)."""
        reached = np.zeros(num_images, np.int64)
        np.add.at(reached, self.image, self.success.astype(np.int64))
        return reached

    def image_success(self, num_images: int) -> np.ndarray:
        """(num_images,) whether any attack on the image succeeded (the paper's non-targeted
        success under the all-targets protocol)."""
        return self.classes_reached(num_images) > 0


def pixel_attack(predict: Callable, images, labels, spec: AttackSpec | None = None, *,
                 key: jax.Array | None = None, targets=None, image_ids=None, devices=None,
                 **settings) -> AttackResult:
    """The one-pixel attack (Su, Vargas, Sakurai 2019) on a batch of images.

    The settings are an :class:`~pixeljax.attack.spec.AttackSpec` (``spec``), or its fields as
    keyword arguments (``pixels=3, popsize=100, ...``), which replace the spec's. The defaults
    are the paper's: DE/rand/1, F = 0.5, no crossover, population 400, 100 generations, x and y
    uniform over the image, colours N(128, 127) clipped.

    Args:
      predict: ``predict(images) -> logits`` over NHWC images in [0, 255]; any JAX function (a
        ``jax.tree_util.Partial`` binding the weights avoids baking them into the program).
        A victim's ``predict`` (``load_victim(...).predict``) whose network is a
        ``SequentialVictim`` of the project's layers is scored incrementally (one-pixel
        attacks only): each candidate recomputes only the activations its pixel reaches.
      images: (N, H, W, C) uint8 or float in [0, 255].
      labels: (N,) true classes.
      spec: the attack's settings (default: the paper's).
      key: a JAX PRNG key (``jax.random.key(seed)``, or legacy ``jax.random.PRNGKey(seed)``
        data); each attack's stream is ``fold_in(key, attack_id)``. Default:
        ``jax.random.key(spec.seed)``.
      targets: None (the spec's goal), an (N,) array of target classes (one targeted attack per
        image), or ``"all-targets"`` (``ALL_TARGETS``; also ``"all"``): the paper's protocol,
        each image towards every other class.
      image_ids: (N,) stable ids of the images (default: positions), for attack ids.
      devices: the devices to spread the slots over: None (all of this process's), a count,
        or a sequence of devices. Results do not depend on it (nor on the spec's engine
        sizes); ``slots`` is rounded up to a multiple of the device count and ``batch_size``
        is per device.
      **settings: :class:`~pixeljax.attack.spec.AttackSpec` fields.

    Returns:
      An :class:`AttackResult`, one entry per attack of the selected images. Images
      misclassified before the attack are skipped and marked ``skipped``; they never count as
      successes.
    """
    spec = _spec(spec, settings)
    if isinstance(targets, str):
        if targets not in (ALL_TARGETS, "all"):
            raise PixeljaxError(f"targets must be None, an array of classes or "
                                f"{ALL_TARGETS.value!r}, got {targets!r}")
        spec, targets = spec.replace(goal=Goal.ALL_TARGETS, target_class=None), None
    if key is None:
        key = jax.random.key(spec.seed)
    validation.check_key(key)
    prepared = pipeline.prepare(predict, images, labels, spec, image_ids=image_ids,
                                targets=targets, devices=devices)
    probs = pipeline.clean_probabilities(predict, prepared)
    attacks, _ = pipeline.split_attacks(prepared, range(len(prepared.plan)), probs)
    found = {}
    for batch in pipeline.run(predict, prepared, attacks, key):
        found.update((row["attack_id"], row) for row in batch)
    return _assemble(prepared, probs, found)


def _spec(spec: AttackSpec | None, settings: dict) -> AttackSpec:
    return with_settings(spec, settings, DEFAULTS, "attack")


def with_settings(spec, settings: dict, default, what: str):
    """``spec`` (default: ``default``) with the keyword ``settings``, which must be fields of
    the spec's class (``what`` names it in messages)."""
    cls = type(default)
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise PixeljaxError(f"unknown {what} setting(s) {', '.join(unknown)}; the settings are "
                            f"the fields of {cls.__name__}")
    if spec is not None and not isinstance(spec, cls):
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise PixeljaxError(f"spec must be {article} {cls.__name__}, got {type(spec).__name__}")
    return (spec or default).replace(**settings)


def _assemble(prepared: pipeline.Prepared, probs: np.ndarray, found: dict) -> AttackResult:
    p = prepared
    a, c, pixels = len(p.plan), p.images.shape[-1], p.spec.pixels
    ids = p.attack_ids
    selected = np.asarray([i for i, _ in p.plan], np.int64)
    image = p.positions[selected] if a else np.zeros(0, np.int64)
    labels = p.labels[selected] if a else np.zeros(0, np.int32)
    target = np.asarray([t for _, t in p.plan], np.int32)
    skipped = np.asarray([r not in found for r in ids], bool)
    get = lambda k, default, dtype: np.asarray(  # noqa: E731
        [found[r][k] if r in found else default for r in ids], dtype).reshape(a, *np.shape(default))
    perturbation = get("perturbation", np.zeros(pixels * (2 + c), np.float32), np.float32)
    adversarial = p.images[selected].copy() if a else p.images[:0].copy()
    if a and not skipped.all():
        done = ~skipped
        adversarial[done] = np.asarray(apply_candidates(
            p.images[selected[done]], perturbation[done])).astype(p.images.dtype)
    clean = probs[selected] if a else np.zeros((0, p.num_classes), np.float32)
    true_before = clean[np.arange(a), labels] if a else np.zeros(0, np.float32)
    return AttackResult(
        image=image, label=labels, target=target, skipped=skipped,
        success=get("success", False, bool),
        adversarial_class=np.where(skipped, clean.argmax(-1) if a else 0,
                                   get("adversarial_class", -1, np.int32)),
        confidence=np.where(skipped, clean.max(-1) if a else 0.0,
                            get("confidence", 0.0, np.float32)),
        true_prob_before=true_before,
        true_prob_after=np.where(skipped, true_before, get("true_prob_after", 0.0, np.float32)),
        perturbation=perturbation.reshape(a, pixels, 2 + c),
        adversarial=adversarial, generations=get("generations", 0, np.int32),
        evaluations=get("evaluations", 0, np.int32), attack_id=np.asarray(ids, np.int64),
        nonfinite=get("nonfinite", 0, np.int32),
        precision_flip=np.asarray([found.get(r, {}).get("precision_flip", 0) for r in ids],
                                  bool))
