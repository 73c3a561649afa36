"""Victim networks: AllConv, NiN, VGG16, ResNet-20 and a tiny test model, chosen by name."""

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import CIFAR10_MEAN, CIFAR10_STD, normalize
from pixeljax.models.registry import (
    Forward,
    create_model,
    model_names,
    parameter_count,
    register_model,
    split_activations,
    split_for_inference,
)

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "Forward", "SequentialVictim", "create_model", "model_names",
    "normalize", "parameter_count", "register_model", "split_activations", "split_for_inference",
]
