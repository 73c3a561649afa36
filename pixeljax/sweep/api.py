"""``pixel_sweep``: the exhaustive one-pixel sweep of a batch of images, in one call (results
in memory; :func:`pixeljax.sweep.folder.sweep_folder` writes a results folder)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from pixeljax.attack.api import collect, with_settings
from pixeljax.attack.pipeline import skipped_result, split_attacks
from pixeljax.runs.attack_result import AttackResult
from pixeljax.sweep import plan
from pixeljax.sweep.rows import SweepRoad, untargeted_plan, untargeted_results
from pixeljax.sweep.spec import SweepSpec
from pixeljax.sweep.waves import SweptImage


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What ``pixel_sweep`` found.

    Attributes:
      targets: one entry per (image, other class), as an all-targets
        :class:`~pixeljax.runs.attack_result.AttackResult` (``success``: a grid-colour pixel makes the
        network predict that class, re-checked densely; ``perturbation``: the best such pixel,
        else the one with the highest probability of that class).
      untargeted: one entry per image: the pixel with the lowest true-class probability (among
        fooling pixels where one exists).
      image: (M,) positions of the swept (correctly classified) images in the input.
      flips: (M, H, W) grid colours at each position that fool the network.
      min_true: (M, H, W) the lowest true-class probability at each position.
      reached: (M, K) candidates the network gives each class.
      disagreements: classes (over all images) where the dense re-check differs from the sweep.
      candidates_per_image: H * W * grid colours.
    """

    targets: AttackResult
    untargeted: AttackResult
    image: np.ndarray
    flips: np.ndarray
    min_true: np.ndarray
    reached: np.ndarray
    disagreements: int
    candidates_per_image: int


def pixel_sweep(predict: Callable, images, labels, spec: SweepSpec | None = None, *,
                image_ids=None, devices=None, **settings) -> SweepResult:
    """The exhaustive one-pixel sweep of correctly classified images: every position with
    every colour of the grid (default: the colour cube's corners), every class at once.

    Args:
      predict: ``predict(images) -> logits`` over NHWC images in [0, 255] (as for
        :func:`pixeljax.pixel_attack`; a victim's ``predict`` is scored incrementally).
      images, labels: (N, H, W, C) in [0, 255] and (N,) classes.
      spec: a :class:`~pixeljax.sweep.spec.SweepSpec` (default: corners, all images).
      image_ids: (N,) stable ids of the images (default: positions).
      devices: None (all of this process's), a count or devices; results do not depend on it.
      **settings: :class:`~pixeljax.sweep.spec.SweepSpec` fields.
    """
    spec = with_settings(spec, settings, SweepSpec(), "sweep")
    prepared = plan.prepare(predict, images, labels, spec, image_ids=image_ids,
                            devices=devices)
    probs = plan.check_some_correct(predict, prepared, "the images")
    attacks, skipped = split_attacks(prepared, range(len(prepared.plan)), probs)
    waves: list[SweptImage] = []
    road = SweepRoad(lambda p, wave, true_before: waves.extend(wave))
    targets = collect(prepared, [skipped_result(prepared, skipped, probs),
                                 *road.stream(predict, prepared, attacks)])
    nt = untargeted_plan(prepared)
    _, nt_skipped = split_attacks(nt, range(len(nt.plan)), probs)
    untargeted = collect(nt, [skipped_result(nt, nt_skipped, probs),
                              untargeted_results(prepared, waves, probs[
                                  np.arange(len(probs)), prepared.labels])])
    h, w = prepared.images.shape[1:3]
    stack = lambda name, shape, dtype: (  # noqa: E731
        np.stack([getattr(s, name) for s in waves]).astype(dtype) if waves
        else np.zeros((0, *shape), dtype))
    return SweepResult(
        targets=targets, untargeted=untargeted,
        image=prepared.positions[[s.position for s in waves]].astype(np.int64),
        flips=stack("flips", (h, w), np.int32), min_true=stack("min_true", (h, w), np.float32),
        reached=stack("reached", (prepared.num_classes,), np.int64),
        disagreements=sum(s.disagreements(int(prepared.labels[s.position])) for s in waves),
        candidates_per_image=spec.candidates(prepared.images.shape[1:]))


__all__ = ["SweepResult", "pixel_sweep"]
