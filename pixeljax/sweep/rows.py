"""A sweep's waves as result rows: one per (image, other class), as an all-targets DE run's,
and one non-targeted row per image; :class:`SweepRoad` runs the pending rows of a
:class:`~pixeljax.sweep.plan.SweepPlan` (in memory or into a results folder,
:func:`pixeljax.attack.folder.fill_folder`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from pixeljax.attack.engine import NON_TARGETED, Attack
from pixeljax.attack.selection import attack_id
from pixeljax.runs.attack_result import AttackResult, Status
from pixeljax.sweep import waves
from pixeljax.sweep.plan import SweepPlan
from pixeljax.sweep.waves import SweptImage


def _found(plan: SweepPlan, entries: list[tuple[int, int, int]], wave: list[SweptImage],
           true_before: np.ndarray) -> AttackResult:
    """The results of a wave's re-checked candidates: ``entries`` are (row id, swept image of
    ``wave``, class whose candidate it is); ``true_before`` (N,) each selected image's clean
    true-class probability. A row's evaluations are its image's candidates."""
    p = plan
    verdicts = [s.verdict(int(p.labels[s.position])) for s in wave]
    swept = [wave[w] for _, w, _ in entries]
    label = np.asarray([int(p.labels[s.position]) for s in swept], np.int64)
    after = np.stack([s.probs[t] for s, (*_, t) in zip(swept, entries)]) if entries \
        else np.zeros((0, p.num_classes), np.float32)
    n = len(entries)
    success = [bool(verdicts[w][t]) for _, w, t in entries]
    return AttackResult(
        attack_id=[a for a, *_ in entries],
        image_index=[p.image_ids[s.position] for s in swept], label=label,
        target=[t if t != y else NON_TARGETED for y, (*_, t) in zip(label, entries)],
        status=[Status.SUCCESS if ok else Status.FAILURE for ok in success],
        adversarial_class=after.argmax(-1), confidence=after.max(-1),
        true_prob_before=[true_before[s.position] for s in swept],
        true_prob_after=after[np.arange(n), label],
        perturbation=np.stack([s.candidates[t] for s, (*_, t) in zip(swept, entries)]).reshape(
            n, 1, -1) if n else np.zeros((0, 1, 2 + p.images.shape[-1])),
        generations=np.zeros(n), evaluations=[s.candidates_scored for s in swept],
        nonfinite=[s.nonfinite for s in swept], precision_flip=np.zeros(n))


def untargeted_plan(plan: SweepPlan) -> SweepPlan:
    """The plan as one non-targeted row per image (ids: image_id * K + label)."""
    p = plan
    rows = [(i, NON_TARGETED) for i in range(len(p.images))]
    return dataclasses.replace(p, plan=rows, attack_ids=[
        attack_id(p.image_ids[i], t, p.labels[i], p.num_classes) for i, t in rows])


def untargeted_results(plan: SweepPlan, wave: list[SweptImage],
                       true_before: np.ndarray) -> AttackResult:
    """The non-targeted results of a wave: one per image, its best candidate against the true
    class (``true_before``: (N,) the clean true-class probabilities)."""
    p = untargeted_plan(plan)
    entries = [(p.attack_ids[s.position], w, int(p.labels[s.position]))
               for w, s in enumerate(wave)]
    return _found(p, entries, wave, true_before)


@dataclasses.dataclass(frozen=True)
class SweepRoad:
    """The sweep's :class:`~pixeljax.attack.folder.Road`: it sweeps each image that has
    pending rows once (``on_wave`` gets every wave first, with the (N,) clean true-class
    probabilities the rows carry) and yields the pending rows among its (image, class)
    results; a batch costs its images' candidates, once each."""

    on_wave: Callable[[SweepPlan, list[SweptImage], np.ndarray], None]
    what: str = "sweep"

    def stream(self, predict: Callable, plan: SweepPlan,
               attacks: list[Attack]) -> Iterator[AttackResult]:
        pending = {a.attack_id for a in attacks}
        k_of = {aid: k for k, aid in enumerate(plan.attack_ids)}
        positions = sorted({plan.plan[k_of[a]][0] for a in pending})
        true_before = np.zeros(len(plan.images), np.float32)
        for a in attacks:  # the clean true-class probabilities the rows carry
            true_before[plan.plan[k_of[a.attack_id]][0]] = a.true_prob_before
        for wave in waves.stream(plan.scorer, predict, plan.images[positions],
                                 plan.labels[positions], plan.spec.levels, plan.sizes,
                                 plan.devices):
            wave = [dataclasses.replace(s, position=positions[s.position]) for s in wave]
            self.on_wave(plan, wave, true_before)
            entries = []
            for w, s in enumerate(wave):
                label = int(plan.labels[s.position])
                for t in range(plan.num_classes):
                    aid = attack_id(plan.image_ids[s.position], t, label, plan.num_classes)
                    if t != label and aid in pending:
                        entries.append((aid, w, t))
            yield _found(plan, entries, wave, true_before)

    def cost(self, batch: AttackResult) -> int:
        _, first = np.unique(batch.image_index, return_index=True)
        return int(batch.evaluations[first].sum())

    def finish(self, summary: dict, found: AttackResult) -> dict:
        return summary
