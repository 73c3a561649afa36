"""A user's own model, named on the command line as ``module.path:factory``.

The factory (called without arguments) returns a Flax NNX module whose ``__call__`` maps NHWC
images to (batch, classes) outputs; its weights come from ``--checkpoint``: a victim folder
written by ``pixeljax export`` / :func:`pixeljax.victims.checkpoint.save_victim`, or a plain orbax
checkpoint of ``nnx.state(model)``. A factory may instead return a Linen module with its
variables, ``(module, variables)``, or a Linen module alone whose variables ``--checkpoint``
holds (an orbax checkpoint of them). A module may declare how it wants its input and what it
returns, as attributes (or the command line declares it):

* ``input_scale``: ``"0-255"`` (pixel values, the default), ``"0-1"``, or ``(mean, std)``
  per channel, applied to the pixel values divided by 255;
* ``outputs``: ``"logits"`` or ``"probabilities"`` (their logarithm is scored, so they are
  never soft-maxed twice); when neither the module nor the command line says, rows that sum to
  1 are taken for probabilities, and declared probabilities must be;
* ``image_shape``: (height, width, channels) it takes.

``--input-scale`` and ``--outputs`` on the command line (recorded in ``config.json``, so the
analyses reload the model the same way) replace what the module declares.

pixeljax always attacks uint8 pixel values and converts them in front of the model. A module
built from the project's layers (a ``SequentialVictim`` normalising pixel values itself) is
scored incrementally; any other model densely.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixeljax.errors import PixeljaxError

PIXELS, UNIT = "0-255", "0-1"
LOGITS, PROBABILITIES = "logits", "probabilities"
PREDICT = "predict:"  # architecture of a plain predict function: "predict:module.path:function"
NO_CHECKPOINT = "none (a predict function with its own weights)"


def is_reference(name: str) -> bool:
    """``module.path:attribute`` (a registered name has no colon)."""
    module, _, attribute = str(name).partition(":")
    return bool(module) and bool(attribute) and all(
        part.isidentifier() for part in module.split(".") + attribute.split("."))


def is_predict(name: str) -> bool:
    """``predict:module.path:function``, a plain function with its own weights."""
    return str(name).startswith(PREDICT) and is_reference(str(name)[len(PREDICT):])


class Declared:
    """What a plain predict function declares of its input (its ``image_shape`` attribute)."""

    def __init__(self, image_shape):
        self.image_shape = image_shape


class Called:
    """``apply(params, images) = function(images)``: a hashable pure view of a predict
    function (params are empty), so compiled programs are reused across loads."""

    def __init__(self, function):
        self.function = function

    def __call__(self, params, images):
        del params
        return self.function(images)

    def __hash__(self):
        return hash(self.function)

    def __eq__(self, other):
        return isinstance(other, Called) and other.function is self.function


def predict_function(reference: str):
    """The function ``module.path:function`` names (``reference`` without ``predict:``)."""
    function = resolve(reference)
    if not callable(function):
        raise PixeljaxError(f"predict {reference}: a {type(function).__name__} is not a "
                            f"function of images")
    return function


def resolve(reference: str):
    """The object ``module.path:attribute`` names (the current directory is importable)."""
    module_name, _, attribute = reference.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        target = importlib.import_module(module_name)
    except Exception as e:  # the user's module may fail in any way while importing
        raise PixeljaxError(f"model {reference}: cannot import {module_name!r} "
                            f"({type(e).__name__}: {e})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PixeljaxError(f"model {reference}: {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    return target


def build(reference: str):
    """Calls the factory ``reference`` names; it must return a Flax NNX module, a Linen
    module, or a Linen module with its variables ``(module, variables)``."""
    factory = resolve(reference)
    if not callable(factory):
        raise PixeljaxError(f"model {reference}: {type(factory).__name__} is not a factory")
    try:
        model = factory()
    except Exception as e:
        raise PixeljaxError(f"model {reference}: the factory raised {type(e).__name__}: "
                            f"{e}") from None
    if isinstance(model, tuple) and len(model) == 2 and is_linen(model[0]):
        return model
    if not isinstance(model, nnx.Module) and not is_linen(model):
        raise PixeljaxError(f"model {reference}: the factory returned a "
                            f"{type(model).__name__}, not a Flax NNX module (or a Linen module "
                            f"with its variables)")
    return model


def is_linen(model) -> bool:
    from flax import linen

    return isinstance(model, linen.Module)


class LinenApply:
    """``apply(variables, images) = module.apply(variables, images)``, hashable by the module
    (so compiled programs are reused)."""

    def __init__(self, module):
        self.module = module

    def __call__(self, variables, images):
        return self.module.apply(variables, images)

    def __hash__(self):
        return hash(id(self.module))

    def __eq__(self, other):
        return isinstance(other, LinenApply) and other.module is self.module


def restore_variables(directory: Path, reference: str, like=None):
    """The variables of a Linen module from an orbax checkpoint of them: as saved, or in the
    structure, shapes and dtypes of ``like`` (the variables a factory returned)."""
    import orbax.checkpoint as ocp

    abstract = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
        variables = ocp.StandardCheckpointer().restore(Path(directory).absolute(), abstract)
    except Exception as e:
        text = str(e).splitlines()[0] if str(e) else ""
        raise PixeljaxError(f"model {reference}: cannot read the variables in checkpoint "
                            f"{directory} ({type(e).__name__}: {text[:300]})") from None
    if not isinstance(variables, dict) or "params" not in variables:
        found = sorted(variables)[:4] if isinstance(variables, dict) else type(variables).__name__
        raise PixeljaxError(f"model {reference}: checkpoint {directory} holds no Linen variables "
                            f"(no 'params' collection, found {found}; an NNX checkpoint of "
                            f"nnx.state(model)?); save the variables of module.init")
    return variables


def input_scale(value) -> str | tuple[tuple[float, ...], tuple[float, ...]]:
    """A checked input convention (see the module docstring); ``"mean-std:M,M,M/S,S,S"`` is the
    command line's spelling of ``(mean, std)``."""
    if value in (None, PIXELS):
        return PIXELS
    if value == UNIT:
        return UNIT
    if isinstance(value, str) and value.startswith("mean-std:"):
        try:
            mean, std = (tuple(float(v) for v in part.split(","))
                         for part in value[len("mean-std:"):].split("/"))
        except ValueError:
            raise PixeljaxError(f"input scale {value!r}: expected mean-std:M,M,M/S,S,S") from None
        value = (mean, std)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (tuple, list)) and v for v in value)):
        mean, std = (tuple(float(x) for x in v) for v in value)
        if (len(mean) != len(std) or not all(s > 0 for s in std)
                or not np.isfinite(mean + std).all()):
            raise PixeljaxError(f"input scale: mean and std need one finite value per channel "
                                f"and std > 0, got {mean} and {std}")
        return mean, std
    raise PixeljaxError(f"input scale must be {PIXELS!r}, {UNIT!r} or mean-std:M,.../S,..., "
                        f"got {value!r}")


def check_scale_channels(scale, channels: int, what: str) -> None:
    """A ``(mean, std)`` input scale has one value per channel of the images (or one for all)."""
    if isinstance(scale, (tuple, list)) and len(scale[0]) not in (1, channels):
        raise PixeljaxError(f"{what} has {channels}-channel images, but the input scale "
                            f"mean-std:{','.join(map(str, scale[0]))}/"
                            f"{','.join(map(str, scale[1]))} gives {len(scale[0])} means and "
                            f"stds; give one per channel (or one for all)")


def conventions(model, input_scale_=None, outputs_=None):
    """``(input scale, outputs)`` of a user's model: as given, else as it declares (outputs
    None: declared by neither, so :func:`pixeljax.victims.checkpoint.with_detected_outputs` looks)."""
    scale = input_scale(input_scale_ if input_scale_ is not None
                        else getattr(model, "input_scale", None))
    return scale, outputs(outputs_ if outputs_ is not None else getattr(model, "outputs", None))


def outputs(value) -> str | None:
    if value in (None, LOGITS, PROBABILITIES):
        return value
    raise PixeljaxError(f"outputs must be {LOGITS!r} or {PROBABILITIES!r}, got {value!r}")


def converted(images, scale) -> jax.Array:
    """Pixel values (uint8 or float in [0, 255]) in the model's input convention."""
    x = jnp.asarray(images, jnp.float32)
    if scale == PIXELS:
        return x
    x = x / 255.0
    if scale == UNIT:
        return x
    mean, std = (jnp.asarray(v, jnp.float32) for v in scale)
    return (x - mean) / std


def wrap_apply(apply, scale, kind: str):
    """``apply(params, images)`` with the input converted and probabilities turned into
    log-probabilities; ``apply`` itself when there is nothing to do."""
    if scale == PIXELS and kind != PROBABILITIES:
        return apply
    return _Wrapped(apply, scale if isinstance(scale, str) else tuple(map(tuple, scale)), kind)


class _Wrapped:
    """A hashable pure function (so jit reuses its programs across loads of one model)."""

    def __init__(self, apply, scale, kind):
        self.apply, self.scale, self.kind = apply, scale, kind

    def __call__(self, params, images):
        out = self.apply(params, converted(images, self.scale))
        if self.kind == PROBABILITIES:
            out = jnp.log(jnp.clip(jnp.asarray(out, jnp.float32), 1e-30, None))
        return out

    def __hash__(self):
        return hash((self.apply, self.scale, self.kind))

    def __eq__(self, other):
        return isinstance(other, _Wrapped) and (self.apply, self.scale, self.kind) == (
            other.apply, other.scale, other.kind)


def looks_like_probabilities(outputs_: np.ndarray) -> bool:
    """Rows that are non-negative and sum to 1: probabilities, not logits."""
    out = np.asarray(outputs_, np.float64)
    return bool(len(out) and out.min() >= 0 and np.allclose(out.sum(-1), 1.0, atol=1e-4))


def restore_plain(model: nnx.Module, directory: Path, reference: str) -> nnx.Module:
    """The weights of a plain orbax checkpoint of ``nnx.state(model)`` put into ``model``."""
    import orbax.checkpoint as ocp

    graphdef, state = nnx.split(model)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    try:
        restored = ocp.StandardCheckpointer().restore(Path(directory).absolute(), abstract)
    except Exception as e:  # orbax reports a tree mismatch, a missing file, damage in many kinds
        text = str(e).splitlines()[0] if str(e) else ""
        raise PixeljaxError(f"model {reference}: checkpoint {directory} does not hold the "
                            f"state of this module ({type(e).__name__}: {text[:300]})") from None
    return nnx.merge(graphdef, restored)


def image_shape_of(model):
    """The (height, width, channels) ``model`` declares, or None."""
    shape = getattr(model, "image_shape", None)
    return None if shape is None else tuple(int(d) for d in shape)
