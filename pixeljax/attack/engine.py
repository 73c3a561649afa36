"""The streaming attack engine: many attacks (pixel or threshold) advanced together by compiled DE.

A run of N attacks streams through a fixed number of *slots*. A compiled *segment*
(:mod:`pixeljax.attack.generation`, the device code) advances all slots by up to ``segment``
generations; between segments the host harvests finished attacks and loads new ones into the
freed slots. Shapes never change, so a configuration compiles once per set of devices.

The slots are split evenly between the devices along a one-axis mesh (:mod:`pixeljax.attack.mesh`,
shared with the sweep; one device is a one-device mesh); loading and the segment run under
``jax.shard_map``, so each device compacts and scores only its own running slots, with the
model's weights replicated. The devices share only the segment's stopping test (two scalar
reductions per generation), and the results are those of one device.

Reference: Su, Vargas, Sakurai, "One pixel attack for fooling deep neural networks",
arXiv 1710.08864 (TEVC 2019).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from pixeljax.attack import generation, mesh, scoring
from pixeljax.attack.generation import (
    NON_TARGETED,
    AttackParams,
    EngineConfig,
    fitness_from_logits,
)
from pixeljax.attack.perturb import applied, apply_candidates
from pixeljax.attack.sizes import slot_count
from pixeljax.runs.attack_result import AttackResult, Status
from pixeljax.victims.accuracy import padded_batches

__all__ = ["NON_TARGETED", "Attack", "AttackParams", "EngineConfig", "fill_order",
           "fitness_from_logits", "stream"]

@dataclasses.dataclass(frozen=True)
class Attack:
    """One attack to run: an image, its label, a target (or NON_TARGETED) and a unique id;
    ``image_index`` (the image's id) and ``true_prob_before`` (its clean true-class
    probability) are carried into the result."""

    attack_id: int
    image: np.ndarray
    label: int
    target: int
    image_index: int = -1
    true_prob_before: float = float("nan")

    def fooled_by(self, adversarial_class: int) -> bool:
        """Whether an image given ``adversarial_class`` reaches this attack's goal."""
        return bool(adversarial_class == self.target if self.target >= 0
                    else adversarial_class != self.label)


def _programs(config: EngineConfig, devices: tuple[jax.Device, ...]) -> mesh.Programs:
    """Loading and segments of one configuration on these devices: slots split along the mesh,
    the rest (the scorer with the model's weights, the key, the attack numbers) replicated."""
    def build(on):
        # check_vma=False: the per-device code's loop carries start from constants, which are
        # not typed as varying across devices.
        slot, rep = mesh.SPLIT, mesh.REPLICATED
        load = jax.shard_map(functools.partial(generation.load, config=config), mesh=on,
                             in_specs=(rep,) + (slot,) * 7 + (rep, rep), out_specs=slot,
                             check_vma=False)
        segment = jax.shard_map(
            functools.partial(generation.segment, config=config, axis_name=mesh.SLOT_AXIS),
            mesh=on, in_specs=(rep, slot, rep, rep, rep), out_specs=slot, check_vma=False)
        return {"load": jax.jit(load, donate_argnums=(1,)),
                "segment": jax.jit(segment, donate_argnums=(1,))}

    return mesh.programs("engine", config, devices, build)


_summaries = jax.jit(generation.summaries, static_argnames="encoding")


def fill_order(free: list[int], per_device: int) -> list[int]:
    """Free slots in the order new attacks take them: each next one on the device with the
    most free slots (ties: the lowest), so the devices stay evenly loaded. On one device this
    is slot order."""
    by_device: dict[int, list[int]] = {}
    for i in free:
        by_device.setdefault(i // per_device, []).append(i)
    return [i for *_, i in sorted((r - len(v), d, i) for d, v in by_device.items()
                                  for r, i in enumerate(v))]


def _refill(pending: list[Attack], in_slot: list[Attack | None], per_device: int,
            image_like: np.ndarray) -> tuple[np.ndarray, ...]:
    """Moves pending attacks into free slots (see :func:`fill_order`). Returns the arrays
    :func:`pixeljax.attack.generation.load` takes: ``take``, images, labels, targets, ids."""
    s = len(in_slot)
    take = np.zeros(s, bool)
    image = np.zeros((s, *image_like.shape), image_like.dtype)
    label, target, ids = (np.zeros(s, np.int32), np.full(s, NON_TARGETED, np.int32),
                          np.full(s, -1, np.int32))
    free = [i for i in range(s) if in_slot[i] is None]
    for i in fill_order(free, per_device)[:len(pending)]:
        a = in_slot[i] = pending.pop()
        take[i] = True
        image[i], label[i], target[i], ids[i] = a.image, a.label, a.target, a.attack_id
    return take, image, label, target, ids


def _harvest(summary: dict, in_slot: list[Attack | None], encoding,
             image_shape) -> tuple[AttackResult, np.ndarray]:
    """The results of the finished attacks, whose slots it frees. Returns them and the mask
    of the freed slots."""
    freed = np.asarray([a is not None and bool(summary["done"][i])
                        for i, a in enumerate(in_slot)], bool)
    chosen = [in_slot[i] for i in np.flatnonzero(freed)]
    for i in np.flatnonzero(freed):
        in_slot[i] = None
    at = lambda name: np.asarray(summary[name])[freed]  # noqa: E731
    top = at("adversarial_class")
    success = [a.fooled_by(int(c)) for a, c in zip(chosen, top)]
    finished = AttackResult(
        attack_id=[a.attack_id for a in chosen], image_index=[a.image_index for a in chosen],
        label=[a.label for a in chosen], target=[a.target for a in chosen],
        status=[Status.SUCCESS if s else Status.FAILURE for s in success],
        adversarial_class=top, confidence=at("confidence"),
        true_prob_before=[a.true_prob_before for a in chosen],
        true_prob_after=at("true_prob_after"),
        generations=at("generations"), evaluations=at("evaluations"),
        nonfinite=at("nonfinite"), precision_flip=np.zeros(len(chosen), bool),
        **encoding.result_fields(at("perturbation"), image_shape))
    return finished, freed


_forward = jax.jit(lambda predict, images: predict(images))


def recheck_probabilities(predict, images: np.ndarray, candidates: np.ndarray,
                          labels: np.ndarray, batch: int,
                          apply: Callable = apply_candidates) -> np.ndarray:
    """(N, K) the dense float32 forward pass's probabilities of each candidate's uint8
    adversarial image (``apply(images, candidates)``, default a pixel attack's), ``batch``
    images at a time; a row with NaN or infinite logits counts as the true class with
    probability 1 (never a success)."""
    if not isinstance(predict, jax.tree_util.Partial):
        predict = jax.tree_util.Partial(predict)
    out = []
    for start, logits in zip(range(0, len(candidates), batch), padded_batches(
            lambda im, c: _forward(predict, apply(im, c)), (images, candidates), batch)):
        part = slice(start, start + batch)
        probs, finite = generation.probabilities(logits)
        probs, broken = np.array(probs), ~np.asarray(finite)
        probs[broken] = np.eye(probs.shape[1])[labels[part][broken]]
        out.append(probs)
    return np.concatenate(out)


def verdict_of(predict: Callable, lower: bool) -> Callable | None:
    """What re-checks finished results (None: nothing): a randomised victim's verdict on
    fresh randomness (its ``apply`` offers ``verdict()``, as a noise defence does), else, for a
    lower-precision scorer, ``predict`` itself in float32."""
    func = getattr(predict, "func", None)
    judge = func.verdict() if hasattr(func, "verdict") else None
    if judge is not None:
        return jax.tree_util.Partial(judge, *predict.args)
    return predict if lower else None


def recheck(predict: Callable, finished: AttackResult, attacks: dict[int, Attack],
            batch: int) -> AttackResult:
    """The float32 verdict on results scored in lower precision: each final adversarial image
    (uint8, as applied) through ``predict`` gives the attack's adversarial class, its
    confidence, the true class's probability and success; ``precision_flip`` marks attacks
    whose success the lower precision judged otherwise. (The search, early stop included, is
    the lower precision's: a success only it saw ends the attack, which is then reported as
    failed.)"""
    chosen = [attacks[int(i)] for i in finished.attack_id]
    candidates, apply = applied(finished)
    probs = recheck_probabilities(predict, np.stack([a.image for a in chosen]), candidates,
                                  finished.label, batch, apply)
    top = probs.argmax(-1)
    success = np.asarray([a.fooled_by(int(c)) for a, c in zip(chosen, top)], bool)
    return dataclasses.replace(
        finished, adversarial_class=top, confidence=probs.max(-1),
        true_prob_after=probs[np.arange(len(chosen)), finished.label],
        status=np.where(success, Status.SUCCESS, Status.FAILURE),
        precision_flip=success != finished.success)


def stream(scorer: scoring.Scorer, attacks: list[Attack], key: jax.Array,
           config: EngineConfig, params: AttackParams, *,
           devices: int | Sequence[jax.Device] | None = None,
           verify: Callable | None = None) -> Iterator[AttackResult]:
    """Runs ``attacks`` through the slots; yields the results of each harvest.

    ``scorer`` scores the candidates (:func:`pixeljax.attack.scoring.scorer_for` makes it from
    the model, once per run); ``AttackSpec.engine_config``/``attack_params`` make ``config``
    and ``params``.

    Each harvest is an :class:`~pixeljax.runs.attack_result.AttackResult` of the attacks that
    finished. With ``verify`` (the float32 model, for a scorer of lower precision) each is
    re-checked by it (:func:`recheck`, which sets ``precision_flip``): every reported class
    and success is float32's.

    The slots are split evenly between the ``devices`` (see :func:`pixeljax.attack.mesh.local_devices`; default all
    of this process's; ``config.slots`` is rounded up to a multiple of their count) and each
    device compacts and scores its own slots, ``config.batch_size`` images per model call; the
    results are those of one device.
    """
    if not attacks:
        return
    by_id = {a.attack_id: a for a in attacks}
    devices = tuple(mesh.local_devices(devices))
    n = len(devices)
    # The slots as resolved for the run, however few attacks it holds: idle slots cost memory
    # only (active ones are compacted before scoring), and one program serves every run.
    config = dataclasses.replace(config, slots=slot_count(config.slots, n))
    programs = _programs(config, devices)
    place = functools.partial(jax.device_put, device=programs.slots)
    first = np.asarray(attacks[0].image)
    slots = place(generation.empty_slots(config, first.shape, first.dtype, scorer))
    scorer, key, params = jax.device_put((scorer, key, params), programs.replicated)
    pending = list(reversed(attacks))
    in_slot: list[Attack | None] = [None] * config.slots
    per_device = config.slots // n
    clear = np.zeros(config.slots, bool)
    while pending or any(a is not None for a in in_slot):
        take, *loaded = _refill(pending, in_slot, per_device, first)
        if take.any() or clear.any():
            slots = programs["load"](scorer, slots, *map(place, (take, clear & ~take, *loaded)),
                                  key, params)
        min_active = per_device // 2 + 1 if pending else 0  # per device
        slots = programs["segment"](scorer, slots, key, params, min_active)
        finished, clear = _harvest(jax.device_get(_summaries(slots, config.encoding)), in_slot,
                                   config.encoding, first.shape)
        if len(finished) and verify is not None:
            finished = recheck(verify, finished, by_id, config.slots)
        if len(finished):
            yield finished
