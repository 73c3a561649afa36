"""What an attack run is after, as results record it (``mode``): shared by the attack code and
the statistics, which sit below it."""

from __future__ import annotations

import enum


class Goal(str, enum.Enum):
    """What an attack is after (its value is the ``mode`` recorded in results)."""

    NON_TARGETED = "non-targeted"  # any other class: minimise the true class's probability
    TARGETED = "targeted"          # one given class
    ALL_TARGETS = "all-targets"    # the paper's protocol: each image towards each other class

    def __str__(self) -> str:
        return self.value


SWEEP = "sweep"  # the mode recorded by an exhaustive sweep (pixeljax.attack.sweep)
TARGET_MODES = (Goal.ALL_TARGETS.value, SWEEP)  # modes with one row per (image, other class)
