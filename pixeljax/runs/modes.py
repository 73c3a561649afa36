"""What a run is after, as results record it (``mode``): shared by the attack and sweep code
and the statistics, which sit below them."""

from __future__ import annotations

import enum


class Mode(str, enum.Enum):
    """What a run is after (its value is the ``mode`` recorded in results). The first three are
    the goals of a DE attack (:class:`~pixeljax.attack.spec.AttackSpec`'s ``goal``)."""

    NON_TARGETED = "non-targeted"  # any other class: minimise the true class's probability
    TARGETED = "targeted"          # one given class
    ALL_TARGETS = "all-targets"    # the paper's protocol: each image towards each other class
    SWEEP = "sweep"                # every pixel x a colour grid, all classes at once

    def __str__(self) -> str:
        return self.value


GOALS = (Mode.NON_TARGETED, Mode.TARGETED, Mode.ALL_TARGETS)  # what a DE attack can be after
TARGET_MODES = (Mode.ALL_TARGETS, Mode.SWEEP)  # modes with one row per (image, other class)
