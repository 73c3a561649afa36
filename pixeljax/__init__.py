"""pixeljax: a JAX-accelerated, massively parallel evaluator of the one-pixel attack.

Su, Vargas, Sakurai, "One pixel attack for fooling deep neural networks", IEEE TEVC 2019.
"""

from pixeljax.attack import (
    AttackResult,
    AttackSpec,
    EngineSizes,
    SweepSizes,
    pixel_attack,
    threshold_attack,
)
from pixeljax.data import load_dataset
from pixeljax.de import differential_evolution
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model
from pixeljax.sweep import SweepResult, SweepSpec, pixel_sweep
from pixeljax.victims import load_onnx
from pixeljax.victims.checkpoint import load_victim
from pixeljax.victims.loaded import LoadedVictim

__version__ = "0.1.0"
__all__ = ["AttackResult", "AttackSpec", "EngineSizes", "LoadedVictim", "PixeljaxError",
           "SweepResult", "SweepSizes", "SweepSpec", "create_model", "differential_evolution", "load_dataset",
           "load_onnx", "load_victim", "pixel_attack", "pixel_sweep", "threshold_attack"]
