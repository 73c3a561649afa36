"""The one-pixel attack: encoding, the streaming engine and the batch API."""

from pixeljax.attack.api import ALL_TARGETS, AttackResult, pixel_attack
from pixeljax.attack.engine import AttackParams, EngineConfig

__all__ = ["ALL_TARGETS", "AttackParams", "AttackResult", "EngineConfig", "pixel_attack"]
