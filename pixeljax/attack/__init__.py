"""The one-pixel attack: encoding, the streaming engine and the batch API."""

from pixeljax.attack.api import ALL_TARGETS, AttackResult, pixel_attack
from pixeljax.attack.spec import AttackSpec, Goal

__all__ = ["ALL_TARGETS", "AttackResult", "AttackSpec", "Goal", "pixel_attack"]
