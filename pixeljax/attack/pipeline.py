"""The DE attack's road from images to finished attacks, for both ways of collecting them:
``pixel_attack`` (results in memory) and ``attack_folder`` (rows in a results folder).

:func:`prepare` checks the inputs against an :class:`~pixeljax.attack.spec.AttackSpec`, selects
the images and plans the attacks (:mod:`pixeljax.attack.selection`, shared with the sweep),
resolves the engine sizes and picks the scorer; :func:`clean_probabilities` scores the clean
images once; :func:`split_attacks` leaves out images the victim already misclassifies (both
shared with the sweep, on any :class:`Planned` run); the engine
(:func:`pixeljax.attack.engine.stream`) runs the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from pixeljax.attack import scoring, validation
from pixeljax.attack.encoding import PixelEncoding, ThresholdEncoding
from pixeljax.attack.engine import (
    Attack,
    AttackParams,
    EngineConfig,
    stream,
    verdict_of,
)
from pixeljax.attack.selection import Selected, select
from pixeljax.attack.sizes import EngineSizes, SweepSizes
from pixeljax.attack.spec import AttackSpec
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32
from pixeljax.runs.attack_result import AttackResult, Status
from pixeljax.victims.accuracy import predict_logits


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
class Planned(Selected):
    """A run's selected rows (:class:`~pixeljax.attack.selection.Selected`) and what every run
    kind needs to run and record them.

    Attributes:
      sizes: the engine sizes resolved once for the platform, the devices and the run: what
        runs, and what ``summary.json`` records.
      scorer: how candidates are scored (:func:`pixeljax.attack.scoring.scorer_for`, made
        once from the victim and the spec).
      encoding: what a result records of its change (:mod:`pixeljax.attack.encoding`).
    """

    sizes: EngineSizes | SweepSizes
    scorer: scoring.Scorer
    encoding: PixelEncoding | ThresholdEncoding

    def result_layout(self) -> dict:
        """How the rows' changes are laid out (``AttackResult.concat``'s sizes): the pixels
        of a pixel change, or a threshold change's image shape (``delta_shape``)."""
        threshold = isinstance(self.encoding, ThresholdEncoding)
        return dict(pixels=1 if threshold else self.encoding.pixels,
                    channels=self.images.shape[-1],
                    delta_shape=self.images.shape[1:] if threshold else None)


@dataclasses.dataclass(frozen=True)
class Prepared(Planned):
    """Checked, selected and planned DE attacks: :class:`Planned` with the spec and what the
    engine compiles (``engine``) and takes as data (``params``)."""

    spec: AttackSpec
    engine: EngineConfig
    params: AttackParams


def prepare(predict: Callable, images, labels, spec: AttackSpec, *, image_ids=None,
            targets=None, devices: int | Sequence[jax.Device] | None = None,
            source: str = "the data") -> Prepared:
    """Everything before the first attack: checks, selection, plan, ids, the engine sizes
    and the scorer.

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
    selected = select(predict, images, labels, spec.selection, precision=spec.precision,
                      image_ids=image_ids, targets=targets, devices=devices, source=source,
                      check_shape=spec.check_image_shape)
    sizes = spec.resolved_sizes(len(selected.devices), len(selected.plan))
    engine = spec.engine_config(sizes)
    return Prepared(
        **selected.parts(), sizes=sizes, encoding=engine.encoding,
        scorer=scoring.scorer_for(predict, pixels=spec.pixels,
                                  threshold=spec.threshold is not None,
                                  dense=spec.sizes.dense, precision=spec.precision),
        spec=spec, engine=engine, params=spec.attack_params())


def clean_probabilities(predict: Callable, prepared: Planned,
                        need: Sequence[int] | None = None) -> np.ndarray:
    """(N, K) class probabilities of the selected clean images; only the rows ``need`` (default:
    all) are computed, the others are zero."""
    p = prepared
    need = np.arange(len(p.images)) if need is None else np.asarray(sorted(need), np.int64)
    probs = np.zeros((len(p.images), p.num_classes), np.float32)
    if len(need):
        logits = clean_logits(predict, p.images[need], p.sizes.batch_size)
        probs[need] = np.asarray(jax.nn.softmax(logits, axis=-1))
    return probs


def split_attacks(prepared: Planned, pending: Sequence[int],
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


def skipped_result(prepared: Planned, skipped: Sequence[int],
                   probs: np.ndarray) -> AttackResult:
    """The results of the plan's entries ``skipped`` (misclassified clean images, not
    attacked): the clean image's class and probabilities, no budget spent."""
    p = prepared
    i = np.asarray([p.plan[k][0] for k in skipped], np.int64)
    n, clean = len(i), probs[i]
    labels = p.labels[i]
    shape = p.images.shape[1:]
    unchanged = p.encoding.result_fields(np.zeros((n, p.encoding.size(shape)), np.float32),
                                         shape)
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
    """The engine on ``attacks``, each attack's stream drawn from ``key``; yields each harvest
    of finished attacks (re-checked by ``predict`` in float32 when scored in lower
    precision)."""
    lower = prepared.spec.precision != FLOAT32
    return stream(prepared.scorer, attacks, key, prepared.engine, prepared.params,
                  devices=prepared.devices, verify=verdict_of(predict, lower))
