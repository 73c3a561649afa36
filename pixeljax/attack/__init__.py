"""The one-pixel and threshold attacks: encoding, the streaming engine, the batch API and the exhaustive sweep."""

from pixeljax.attack.api import ALL_TARGETS, pixel_attack, threshold_attack
from pixeljax.attack.sizes import EngineSizes
from pixeljax.attack.spec import AttackSpec
from pixeljax.attack.sweep import SweepSpec
from pixeljax.attack.sweep_run import SweepResult, pixel_sweep
from pixeljax.runs.attack_result import AttackResult, Status
from pixeljax.runs.modes import Goal

__all__ = ["ALL_TARGETS", "AttackResult", "AttackSpec", "EngineSizes", "Goal", "Status",
           "SweepResult", "SweepSpec", "pixel_attack", "pixel_sweep", "threshold_attack"]
