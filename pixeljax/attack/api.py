"""``pixel_attack``: the one-pixel attack on a batch of images, in one call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from pixeljax.attack import pipeline, validation
from pixeljax.attack.perturb import adversarial_images
from pixeljax.attack.spec import DEFAULTS, AttackSpec
from pixeljax.errors import PixeljaxError
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import Mode

ALL_TARGETS = Mode.ALL_TARGETS


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
      spec: the attack's settings (default: the DE as the paper describes it).
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
      An :class:`~pixeljax.runs.attack_result.AttackResult`, one entry per attack of the selected
      images, in the plan's order, with the adversarial images (``adversarial``). Images
      misclassified before the attack are skipped (status ``skipped``); they never count as
      successes.
    """
    spec = _spec(spec, settings)
    if isinstance(targets, str):
        if targets not in (ALL_TARGETS, "all"):
            raise PixeljaxError(f"targets must be None, an array of classes or "
                                f"{ALL_TARGETS.value!r}, got {targets!r}")
        spec, targets = spec.replace(goal=Mode.ALL_TARGETS, target_class=None), None
    if key is None:
        key = jax.random.key(spec.seed)
    validation.check_key(key)
    prepared = pipeline.prepare(predict, images, labels, spec, image_ids=image_ids,
                                targets=targets, devices=devices)
    probs = pipeline.clean_probabilities(predict, prepared)
    attacks, skipped = pipeline.split_attacks(prepared, range(len(prepared.plan)), probs)
    return collect(prepared, [pipeline.skipped_result(prepared, skipped, probs),
                              *pipeline.run(predict, prepared, attacks, key)])


def threshold_attack(predict: Callable, images, labels, threshold: int,
                     spec: AttackSpec | None = None, **settings) -> AttackResult:
    """The threshold (L-infinity) attack of Kotyan & Vargas ("Adversarial robustness
    assessment: why in evaluation both L0 and L-infinity attacks are necessary", arXiv
    1906.06026) on a batch of images: :func:`pixel_attack` with ``threshold``.

    Each candidate changes every pixel value by an integer in ``[-threshold, threshold]``
    (0-255 scale); the adversarial image is clipped to [0, 255], so a uint8 image stays one.
    The search is the project's DE (the spec's budget and settings); candidates are scored by
    full forward passes. The result's ``delta`` (A, H, W, C) holds each attack's change,
    ``adversarial`` its images.

    Example::

        found = threshold_attack(victim.predict, x, y, 10, popsize=400, maxiter=100)
        assert np.abs(found.adversarial.astype(int) - x).max() <= 10
    """
    return pixel_attack(predict, images, labels, spec, threshold=threshold, **settings)


def _spec(spec: AttackSpec | None, settings: dict) -> AttackSpec:
    return with_settings(spec, settings, DEFAULTS, "attack")


def with_settings(spec, settings: dict, default, what: str):
    """``spec`` (default: ``default``) with the keyword ``settings``, which must be fields of
    the spec's class or of its engine sizes (``what`` names it in messages)."""
    cls, sizes = type(default), type(default.sizes)
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)}
                     - set(sizes.fields()))
    if unknown:
        raise PixeljaxError(f"unknown {what} setting(s) {', '.join(unknown)}; the settings are "
                            f"the fields of {cls.__name__} and of {sizes.__name__}")
    if spec is not None and not isinstance(spec, cls):
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise PixeljaxError(f"spec must be {article} {cls.__name__}, got {type(spec).__name__}")
    return (spec or default).replace(**settings)


def collect(prepared: pipeline.Planned, batches) -> AttackResult:
    """The engine's ``batches`` (skipped images' results among them) as one record in the
    plan's order, with the adversarial images."""
    p = prepared
    found = AttackResult.concat(list(batches), **p.result_layout()).in_order(p.attack_ids)
    adversarial = p.images[[i for i, _ in p.plan]].copy() if p.plan else p.images[:0].copy()
    done = ~found.skipped
    if done.any():
        adversarial[done] = adversarial_images(
            found.take(done), adversarial[done]).astype(p.images.dtype)
    return dataclasses.replace(found, adversarial=adversarial)
