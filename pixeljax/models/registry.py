"""Victims by name, and the pure ``apply(params, images) -> logits`` view of a model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from pixeljax.errors import PixeljaxError
from pixeljax.models.allconv import allconv
from pixeljax.models.base import SequentialVictim
from pixeljax.models.imagenet import allconv_imagenet
from pixeljax.models.layers import CIFAR10_IMAGE_SHAPE
from pixeljax.models.nin import nin
from pixeljax.models.resnet import resnet20
from pixeljax.models.tiny import tiny
from pixeljax.models.vgg import vgg16

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {
    "allconv": allconv,
    "allconv_imagenet": allconv_imagenet,
    "nin": nin,
    "vgg16": vgg16,
    "resnet20": resnet20,
    "tiny": tiny,
}


def register_model(name: str, builder: Callable[..., nnx.Module]) -> None:
    """Adds a model family. ``builder(rngs=..., num_classes=...)`` returns an NNX module whose
    ``__call__(images)`` maps pixel-space NHWC images to logits."""
    _REGISTRY[name] = builder


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, *, seed: int = 0, num_classes: int | None = None) -> nnx.Module:
    """Builds a freshly initialised victim by name (``num_classes`` None: the family's own
    default, 10 for the CIFAR-10 victims), declaring the ``image_shape`` it takes (CIFAR-10's
    unless its family declares another)."""
    if name not in _REGISTRY:
        module, dot, factory = str(name).rpartition(".")
        hint = (f"; a model of your own is named module.path:factory, with a colon: "
                f"{module}:{factory}?" if dot and module and factory else "")
        raise PixeljaxError(f"unknown model {name!r}; expected one of "
                            f"{', '.join(model_names())}{hint}")
    classes = {} if num_classes is None else {"num_classes": num_classes}
    model = _REGISTRY[name](rngs=nnx.Rngs(seed), **classes)
    if getattr(model, "image_shape", None) is None:  # normalised with CIFAR-10's statistics
        model.image_shape = CIFAR10_IMAGE_SHAPE
    return model


def parameter_count(model: nnx.Module) -> int:
    """Number of trainable parameters (batch-norm statistics excluded)."""
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@dataclasses.dataclass(frozen=True)
class Forward:
    """``forward(params, images)``: one method of a network graph as a pure function.

    Forwards of equal graphs are equal (jit keys its compiled programs on them), so a victim
    reloaded from a checkpoint of the same architecture reuses every compiled program, and the
    module can be rebuilt from the weights (:meth:`module`).
    """

    graphdef: nnx.GraphDef
    method: str = "__call__"

    def __call__(self, params, images):
        return getattr(self.module(params), self.method)(images)

    def module(self, params) -> nnx.Module:
        return nnx.merge(self.graphdef, params)


def split_for_inference(model: nnx.Module) -> tuple[Callable[[Any, jax.Array], jax.Array], Any]:
    """Returns ``(apply, params)`` with ``apply(params, images) -> logits`` pure and in eval mode.

    ``params`` holds every variable of the model (weights and batch-norm statistics).
    """
    model.eval()
    graphdef, params = nnx.split(model)
    return Forward(graphdef), params


def split_activations(model: SequentialVictim):
    """Returns ``(activations, params)`` with ``activations(params, images) -> [(name, array)]``."""
    model.eval()
    graphdef, params = nnx.split(model)
    return Forward(graphdef, "activations"), params
