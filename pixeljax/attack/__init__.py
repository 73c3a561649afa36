"""The one-pixel and threshold attacks: encoding, the streaming engine, the batch API, and the
pieces the sweep (:mod:`pixeljax.sweep`) shares: selection, mesh, scoring, the results-folder
loop."""

from pixeljax.attack.api import ALL_TARGETS, pixel_attack, threshold_attack
from pixeljax.attack.sizes import EngineSizes, SweepSizes
from pixeljax.attack.spec import AttackSpec
from pixeljax.runs.attack_result import AttackResult, Status
from pixeljax.runs.modes import Mode

__all__ = ["ALL_TARGETS", "AttackResult", "AttackSpec", "EngineSizes", "Mode", "Status",
           "SweepSizes", "pixel_attack", "threshold_attack"]
