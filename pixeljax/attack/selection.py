"""Which images a run takes and which rows it plans, shared by the DE attack
(:mod:`pixeljax.attack.pipeline`) and the sweep (:mod:`pixeljax.sweep.plan`): the inputs are
checked against the victim, the images selected (a seeded sample or the first N), and every
(image, class) row gets a stable id."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from pixeljax._plumbing import settings
from pixeljax._plumbing.notices import note
from pixeljax.attack import scoring, validation
from pixeljax.attack.generation import NON_TARGETED
from pixeljax.attack.mesh import local_devices
from pixeljax.errors import PixeljaxError
from pixeljax.runs.modes import Mode

MAX_SEED = 2**63 - 1


def n_images_field():
    """A spec's ``n_images`` setting (the same for the attack and the sweep)."""
    return settings.count(None, 1, "images to attack (None: all of them)", optional=True)


def first_field():
    """A spec's ``first`` setting."""
    return settings.flag(False, "the first N images, not a seeded sample")


def seed_field(help: str):
    """A spec's ``seed`` setting (``help`` says what it seeds)."""
    return settings.count(0, 0, help, most=MAX_SEED)


@dataclasses.dataclass(frozen=True)
class Selection:
    """The part of a spec that picks the rows: the mode (its rows per image: one, or one per
    other class), a targeted attack's class, and the images (``n_images``, ``first``, and the
    sample's ``seed``)."""

    mode: Mode
    target_class: int | None
    n_images: int | None
    first: bool
    seed: int


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


@dataclasses.dataclass(frozen=True)
class Selected:
    """Checked inputs, the selected images and the planned rows.

    Attributes:
      positions: (N,) the selected images' positions in the input.
      images, labels, image_ids: (N, ...) the selected images, their classes and ids.
      num_classes: the victim's classes.
      plan: (selected image, target) per row, in order; target -1 = non-targeted.
      attack_ids: each row's id (the seed of an attack's random stream).
      devices: this process's devices the run uses.
    """

    positions: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    image_ids: np.ndarray
    num_classes: int
    plan: list[tuple[int, int]]
    attack_ids: list[int]
    devices: list[jax.Device]

    def parts(self) -> dict:
        """The fields, to build a run kind's plan on (``Planned(**selected.parts(), ...)``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Selected)}


def select(predict: Callable, images, labels, selection: Selection, *, precision: str,
           image_ids=None, targets=None, devices: int | Sequence[jax.Device] | None = None,
           source: str = "the data",
           check_shape: Callable[[tuple[int, ...]], None] | None = None) -> Selected:
    """Checks the inputs against the victim and plans the rows of ``selection``.

    Args:
      predict: ``predict(images) -> logits``.
      images, labels: (M, H, W, C) in [0, 255] and (M,) classes.
      selection: what to select and plan.
      precision: the scoring precision (the victim must lower to it).
      image_ids: (M,) stable ids of the images (default: positions), for row ids.
      targets: per-image target classes (M,) instead of the selection's mode (Python API).
      devices: see :func:`pixeljax.attack.mesh.local_devices`.
      source: how messages name the images.
      check_shape: the run kind's own check of the image shape (H, W, C), made right after
        the images' own.

    Raises:
      PixeljaxError: naming the first problem found.
    """
    images, labels = validation.check_images(images, labels)
    if check_shape is not None:
        check_shape(images.shape[1:])
    validation.check_devices(devices)
    validation.check_victim_shape(predict, images.shape[1:], source)
    scoring.check_lowerable(predict, precision)
    num_classes = validation.check_model(predict, images)
    validation.check_labels(labels, num_classes)
    image_ids = validation.check_image_ids(image_ids, len(images), num_classes)
    devices = local_devices(devices)
    eligible = np.arange(len(images))
    mode, target_class = selection.mode, selection.target_class
    if targets is not None:
        targets = validation.check_targets(targets, labels, num_classes)
    elif mode is Mode.TARGETED:
        if target_class >= num_classes:
            raise PixeljaxError(f"target class must lie in [0, {num_classes - 1}], got "
                                f"{target_class}")
        # Images of the target class cannot be attacked towards it: attack the others.
        eligible = np.flatnonzero(labels != target_class)
        if len(images) and not len(eligible):
            raise PixeljaxError(f"every image of {source} is of class {target_class}: "
                                f"none can be attacked towards it")
    n_images = selection.n_images
    if n_images is not None and n_images > len(eligible) and len(eligible):
        other = " other-class" if mode is Mode.TARGETED and targets is None else ""
        note(f"{n_images} images asked for, but {source} has {len(eligible)}{other} "
             f"images: attacking all {len(eligible)}")
    positions = eligible[select_images(n_images, len(eligible), seed=selection.seed,
                                       first=selection.first)]
    labels = labels[positions]
    if targets is not None:
        plan = [(i, int(t)) for i, t in enumerate(targets[positions])]
    elif mode in (Mode.ALL_TARGETS, Mode.SWEEP):  # one row per other class
        plan = [(i, t) for i in range(len(positions)) for t in range(num_classes)
                if t != labels[i]]
    else:
        target = target_class if mode is Mode.TARGETED else NON_TARGETED
        plan = [(i, target) for i in range(len(positions))]
    ids = image_ids[positions]
    return Selected(
        positions=positions, images=images[positions], labels=labels, image_ids=ids,
        num_classes=num_classes, plan=plan,
        attack_ids=[attack_id(ids[i], t, labels[i], num_classes) for i, t in plan],
        devices=devices)
