"""The one road from images to finished attacks, for both ways of collecting them:
``pixel_attack`` (results in memory) and ``attack_folder`` (rows in a results folder).

:func:`prepare` checks the inputs against an :class:`~pixeljax.attack.spec.AttackSpec`, selects
the images (leaving out, for a targeted attack, those of the target class), plans the attacks
and gives each a stable id; :func:`clean_probabilities` scores the clean images once;
:func:`split_attacks` leaves out images the victim already misclassifies; the engine
(:func:`pixeljax.attack.engine.stream`) runs the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from pixeljax._plumbing.notices import note
from pixeljax.attack import scoring, validation
from pixeljax.attack.engine import (
    NON_TARGETED,
    Attack,
    AttackParams,
    EngineConfig,
    stream,
    verdict_of,
)
from pixeljax.attack.mesh import local_devices
from pixeljax.attack.spec import AttackSpec
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32
from pixeljax.runs.attack_result import AttackResult, Status
from pixeljax.runs.modes import Goal
from pixeljax.victims.accuracy import predict_logits


def select_images(n_images: int | None, total: int, *, seed: int, first: bool) -> np.ndarray:
    """Positions of the images to attack: the first N, or a seeded random sample of N (None:
    all of them). Samples of one seed are nested: the N-image sample holds every smaller one,
    so runs on 30, 100 and 500 images share their images."""
    n = total if n_images is None else min(n_images, total)
    if first or n == total:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def attack_id(image_id: int, target: int, label: int, num_classes: int) -> int:
    """A stable id per (image, target): the seed of the attack's random stream."""
    return int(image_id) * num_classes + (target if target >= 0 else label)


def _call(predict, images):
    return predict(images)


def clean_logits(predict: Callable, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's logits on clean images, in micro-batches (non-finite ones are an error)."""
    if not isinstance(predict, jax.tree_util.Partial):
        predict = jax.tree_util.Partial(predict)
    logits = predict_logits(_call, predict, images, batch_size=batch_size)
    validation.check_logits(logits)
    return logits


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Checked, selected and planned attacks.

    Attributes:
      spec: the settings.
      positions: (N,) the selected images' positions in the input.
      images, labels, image_ids: (N, ...) the selected images, their classes and ids.
      num_classes: the victim's classes.
      plan: (selected image, target) per attack, in order; target -1 = non-targeted.
      attack_ids: each attack's id (the seed of its random stream).
      devices: this process's devices the engine runs on.
      scorer: how the engine scores candidates (:func:`pixeljax.attack.scoring.scorer_for`,
        made once here from the victim and the spec's ``pixels``, ``dense`` and ``precision``).
      engine, params: what the engine compiles and takes as data (micro-batch resolved).
    """

    spec: AttackSpec
    positions: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    image_ids: np.ndarray
    num_classes: int
    plan: list[tuple[int, int]]
    attack_ids: list[int]
    devices: list[jax.Device]
    scorer: scoring.Scorer
    engine: EngineConfig
    params: AttackParams


def prepare(predict: Callable, images, labels, spec: AttackSpec, *, image_ids=None,
            targets=None, devices: int | Sequence[jax.Device] | None = None,
            source: str = "the data") -> Prepared:
    """Everything before the first attack: checks, selection, plan and ids.

    Args:
      predict: ``predict(images) -> logits``.
      images, labels: (M, H, W, C) in [0, 255] and (M,) classes.
      spec: the attack's settings; its goal, target class and selection apply here.
      image_ids: (M,) stable ids of the images (default: positions), for attack ids.
      targets: per-image target classes (M,) instead of the spec's goal (Python API only).
      devices: see :func:`pixeljax.attack.mesh.local_devices`.
      source: how messages name the images.

    Raises:
      PixeljaxError: naming the first problem found.
    """
    if not isinstance(spec, AttackSpec):
        raise PixeljaxError(f"spec must be an AttackSpec, got {type(spec).__name__}")
    images, labels = validation.check_images(images, labels)
    spec.check_image_shape(images.shape[1:])
    validation.check_devices(devices)
    validation.check_victim_shape(predict, images.shape[1:], source)
    scoring.check_lowerable(predict, spec.precision)
    num_classes = validation.check_model(predict, images)
    validation.check_labels(labels, num_classes)
    image_ids = validation.check_image_ids(image_ids, len(images), num_classes)
    devices = local_devices(devices)
    eligible = np.arange(len(images))
    if targets is not None:
        targets = validation.check_targets(targets, labels, num_classes)
    elif spec.goal is Goal.TARGETED:
        if spec.target_class >= num_classes:
            raise PixeljaxError(f"target class must lie in [0, {num_classes - 1}], got "
                                f"{spec.target_class}")
        # Images of the target class cannot be attacked towards it: attack the others.
        eligible = np.flatnonzero(labels != spec.target_class)
        if len(images) and not len(eligible):
            raise PixeljaxError(f"every image of {source} is of class {spec.target_class}: "
                                f"none can be attacked towards it")
    if spec.n_images is not None and spec.n_images > len(eligible) and len(eligible):
        other = " other-class" if spec.goal is Goal.TARGETED and targets is None else ""
        note(f"{spec.n_images} images asked for, but {source} has {len(eligible)}{other} "
             f"images: attacking all {len(eligible)}")
    positions = eligible[select_images(spec.n_images, len(eligible), seed=spec.seed,
                                       first=spec.first)]
    labels = labels[positions]
    if targets is not None:
        plan = [(i, int(t)) for i, t in enumerate(targets[positions])]
    elif spec.goal is Goal.ALL_TARGETS:
        plan = [(i, t) for i in range(len(positions)) for t in range(num_classes)
                if t != labels[i]]
    else:
        target = spec.target_class if spec.goal is Goal.TARGETED else NON_TARGETED
        plan = [(i, target) for i in range(len(positions))]
    ids = image_ids[positions]
    return Prepared(
        spec=spec, positions=positions, images=images[positions], labels=labels,
        image_ids=ids, num_classes=num_classes, plan=plan,
        attack_ids=[attack_id(ids[i], t, labels[i], num_classes) for i, t in plan],
        devices=devices, engine=spec.engine_config(spec.resolved_sizes(len(devices),
                                                                       len(plan))),
        params=spec.attack_params(),
        scorer=scoring.scorer_for(predict, pixels=spec.pixels,
                                  threshold=spec.threshold is not None,
                                  dense=spec.sizes.dense, precision=spec.precision))


def clean_probabilities(predict: Callable, prepared: Prepared,
                        need: Sequence[int] | None = None) -> np.ndarray:
    """(N, K) class probabilities of the selected clean images; only the rows ``need`` (default:
    all) are computed, the others are zero."""
    p = prepared
    need = np.arange(len(p.images)) if need is None else np.asarray(sorted(need), np.int64)
    probs = np.zeros((len(p.images), p.num_classes), np.float32)
    if len(need):
        logits = clean_logits(predict, p.images[need], p.engine.batch_size)
        probs[need] = np.asarray(jax.nn.softmax(logits, axis=-1))
    return probs


def split_attacks(prepared: Prepared, pending: Sequence[int],
                  probs: np.ndarray) -> tuple[list[Attack], list[int]]:
    """The engine's attacks among the plan's entries ``pending``, and those left out because
    the victim misclassifies their clean image (they count as skipped, never as successes)."""
    p = prepared
    correct = probs.argmax(-1) == p.labels
    run, skipped = [], []
    for k in pending:
        i, target = p.plan[k]
        if correct[i]:
            label = int(p.labels[i])
            run.append(Attack(p.attack_ids[k], p.images[i], label, target,
                              image_index=int(p.image_ids[i]),
                              true_prob_before=float(probs[i, label])))
        else:
            skipped.append(k)
    return run, skipped


def skipped_result(prepared: Prepared, skipped: Sequence[int],
                   probs: np.ndarray) -> AttackResult:
    """The results of the plan's entries ``skipped`` (misclassified clean images, not
    attacked): the clean image's class and probabilities, no budget spent."""
    p = prepared
    i = np.asarray([p.plan[k][0] for k in skipped], np.int64)
    n, clean = len(i), probs[i]
    labels = p.labels[i]
    shape = p.images.shape[1:]
    unchanged = p.engine.encoding.result_fields(
        np.zeros((n, p.engine.encoding.size(shape)), np.float32), shape)
    true = clean[np.arange(n), labels]
    return AttackResult(
        attack_id=[p.attack_ids[k] for k in skipped], image_index=p.image_ids[i],
        label=labels, target=[p.plan[k][1] for k in skipped], status=[Status.SKIPPED] * n,
        adversarial_class=clean.argmax(-1), confidence=clean.max(-1),
        true_prob_before=true, true_prob_after=true,
        generations=np.zeros(n), evaluations=np.zeros(n), nonfinite=np.zeros(n),
        precision_flip=np.zeros(n), **unchanged)


def run(predict: Callable, prepared: Prepared, attacks: list[Attack],
        key: jax.Array) -> Iterator[AttackResult]:
    """The engine on ``attacks``; yields each harvest of finished attacks (re-checked by
    ``predict`` in float32 when scored in lower precision)."""
    lower = prepared.spec.precision != FLOAT32
    return stream(prepared.scorer, attacks, key, prepared.engine, prepared.params,
                  devices=prepared.devices, verify=verdict_of(predict, lower))
