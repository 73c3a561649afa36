"""The cone of a one-pixel change: which outputs of each layer it can reach, as static windows.

A :class:`SequentialVictim` made of the project's layers is read into a :class:`Cone`, one
:class:`Step` per layer, for one input shape. A step says how the layer is scored incrementally:

* ``local``: a convolution or max pooling whose changed outputs fit in a window smaller than its
  map: recompute that window from a patch of the clean (padded) input;
* ``pointwise``: a 1x1, stride-1 layer: apply it to the window as it is;
* ``mean``: global average pooling (alone, or under a linear classifier): update the clean
  mean from the window's difference;
* ``residual``: a residual block (:class:`~pixeljax.models.resnet.BasicBlock`): its two
  convolutions are local steps one after the other, and its shortcut (a strided subsample) is
  read at the second one's window, which holds every output the block's sum can change (the
  union of both branches' windows);
* ``expand``: a layer that needs the whole map (a dense layer) while the change covers only a
  window, or a residual block whose window would hold more than :data:`RESIDUAL_DENSE_FRACTION`
  of its map: paste the window into the clean map, then continue densely;
* ``full``: the change already covers the whole map (or the map is a vector): apply the layer.

A victim's input defences (``SequentialVictim.defences``) come first, in pixel space: a filter
is a local step whose input is mirrored at the borders (``mirror``: the changed pixels are
mirrored into the padding too), bit-depth reduction a pointwise one.

The index arithmetic is XLA's (``lax.padtype_to_pads``). Everything here is Python on static
shapes, so it runs at trace time.
"""

from __future__ import annotations

import dataclasses
import math

from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import Axis, Conv, ConvBlock, Dense, GlobalAveragePool, MaxPool
from pixeljax.models.resnet import BasicBlock, Classifier

LOCAL, POINTWISE, MEAN, RESIDUAL, EXPAND, FULL = ("local", "pointwise", "mean", "residual",
                                                 "expand", "full")
MEAN_LAYERS = (GlobalAveragePool, Classifier)  # a mean over positions, then (maybe) a head
# A residual block recomputes two convolutions and its shortcut from gathered patches: once its
# window would hold more than this share of its map, the dense block is faster (measured on
# ResNet-20 with `pixeljax bench`; any share between 0.23 and 0.47 gives it the same plan).
RESIDUAL_DENSE_FRACTION = 1 / 3


@dataclasses.dataclass(frozen=True)
class Step:
    """How one layer is scored (see the module docstring for the kinds).

    Attributes:
      kind: one of local, pointwise, mean, residual, expand, full.
      axes: (rows, columns) geometry of a local layer, else None.
      window: (rows, columns) of the window of changed outputs after this layer (the whole
        map once the change covers it).
      shape: (H, W, C) of the layer's input (for the kinds that read the clean input).
      pad_value: what a local layer's input is padded with (0 for convolutions, -inf for max).
      inner: a residual block's two local steps (its convolutions), else empty.
      mirror: a local step whose input is padded by mirroring it (a defence's filter), not
        with ``pad_value``.
    """

    kind: str
    axes: tuple[Axis, Axis] | None
    window: tuple[int, int]
    shape: tuple[int, ...]
    pad_value: float = 0.0
    inner: tuple[Step, ...] = ()
    mirror: bool = False

    @property
    def reads_clean(self) -> bool:
        """Whether the step reads the clean input of its layer (kept per attacked image)."""
        return self.kind in (LOCAL, MEAN, RESIDUAL, EXPAND)


@dataclasses.dataclass(frozen=True)
class Cone:
    """The steps of every layer of one victim for one input shape (``defences``: of its input
    defences, before the layers)."""

    steps: tuple[Step, ...]
    defences: tuple[Step, ...] = ()


def unsupported(model) -> str | None:
    """Why ``model`` cannot be scored incrementally, or None when it can."""
    if not isinstance(model, SequentialVictim):
        return f"{type(model).__name__} is not a SequentialVictim"
    if type(model).__call__ is not SequentialVictim.__call__:
        return f"{type(model).__name__} overrides SequentialVictim.__call__"
    for name, layer in zip(model.layer_names, model.layers):
        why = _layer_problem(layer)
        if why:
            return f"layer {name!r}: {why}"
    return None


def _conv_of(layer) -> nnx.Conv | None:
    return layer.conv if type(layer) in (ConvBlock, Conv) else None


def _layer_problem(layer) -> str | None:
    conv = _conv_of(layer)
    if conv is not None:
        if not isinstance(conv.padding, str) or conv.padding not in ("SAME", "VALID"):
            return f"convolution padding {conv.padding!r} (only SAME and VALID)"
        if len(conv.kernel_size) != 2:
            return f"a {len(conv.kernel_size)}-D convolution (only 2-D)"
        for attr in ("kernel_dilation", "input_dilation"):
            if any(d != 1 for d in _pair(getattr(conv, attr, 1) or 1)):
                return f"a convolution with {attr} (not supported)"
        if getattr(conv, "feature_group_count", 1) != 1 or getattr(conv, "mask", None) is not None:
            return "a grouped or masked convolution (not supported)"
        return None
    if type(layer) is MaxPool:
        return None if layer.padding in ("SAME", "VALID") else \
            f"max-pool padding {layer.padding!r} (only SAME and VALID)"
    if type(layer) is BasicBlock:
        return _layer_problem(layer.first) or _layer_problem(layer.second)
    if type(layer) in (GlobalAveragePool, Classifier, Dense):
        return None
    return f"{type(layer).__name__} layers are not supported"


def _pair(x) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else tuple(int(v) for v in x)


def kernel_of(conv: nnx.Conv) -> tuple[int, int]:
    """A 2-D convolution's kernel size as (rows, columns)."""
    return _pair(conv.kernel_size)


def _geometry(layer) -> tuple[tuple[int, int], tuple[int, int], str, float] | None:
    """(kernel, strides, padding, pad value) of a convolution or pooling layer, else None."""
    conv = _conv_of(layer)
    if conv is not None:
        return kernel_of(conv), _pair(conv.strides or 1), conv.padding, 0.0
    if type(layer) is MaxPool:
        return (_pair(layer.window), _pair(layer.stride), layer.padding, -math.inf)
    return None


def _out_channels(layer, channels: int) -> int:
    conv = _conv_of(layer)
    return conv.out_features if conv is not None else channels


def _local_step(layer, shape: tuple[int, int, int], window: tuple[int, int]) -> Step:
    """The local step of a convolution or pooling layer for an input of ``shape`` whose change
    spans ``window``."""
    (kh, kw), (sh, sw), padding, pad_value = _geometry(layer)
    axes = (Axis.of(shape[0], kh, sh, padding), Axis.of(shape[1], kw, sw, padding))
    return Step(LOCAL, axes, (axes[0].window(window[0]), axes[1].window(window[1])), shape,
                pad_value)


def _output_shape(step: Step, layer, channels: int) -> tuple[int, int, int]:
    return step.axes[0].out, step.axes[1].out, _out_channels(layer, channels)


def cone_of(model: SequentialVictim, image_shape: tuple[int, int, int]) -> Cone:
    """The steps of ``model`` (supported: see :func:`unsupported`) for one image shape."""
    h, w, c = image_shape
    window = (1, 1)       # the changed pixel
    covered = False       # the change covers the whole map (or the map is a vector)
    defences = []
    for defence in getattr(model, "defences", ()):
        if covered or not defence.local:
            defences.append(Step(FULL if covered else POINTWISE, None, window, (h, w, c)))
            continue
        axes = (Axis.of(h, defence.size, 1, "SAME"), Axis.of(w, defence.size, 1, "SAME"))
        window = (axes[0].window(window[0]), axes[1].window(window[1]))
        covered = window == (h, w)
        defences.append(Step(LOCAL, axes, window, (h, w, c), mirror=True))
    steps = []
    for layer in model.layers:
        shape = (h, w, c)
        geometry = _geometry(layer)
        if type(layer) is BasicBlock:
            if covered:
                steps.append(Step(FULL, None, (h, w), shape))
                continue
            first = _local_step(layer.first, shape, window)
            mid = _output_shape(first, layer.first, c)
            second = _local_step(layer.second, mid, first.window)
            h, w, c = _output_shape(second, layer.second, mid[2])
            if second.window[0] * second.window[1] > RESIDUAL_DENSE_FRACTION * h * w:
                covered = True
                steps.append(Step(EXPAND, None, (h, w), shape))
                continue
            window = second.window
            covered = window == (h, w)
            steps.append(Step(RESIDUAL, None, window, shape, inner=(first, second)))
            continue
        if covered:
            kind = FULL
        elif geometry is None:
            kind = MEAN if isinstance(layer, MEAN_LAYERS) else EXPAND
        elif geometry[0] == (1, 1) and geometry[1] == (1, 1):
            kind = POINTWISE
        else:
            kind = LOCAL
        axes = None
        if geometry is not None:
            (kh, kw), (sh, sw), padding, pad_value = geometry
            axes = (Axis.of(h, kh, sh, padding), Axis.of(w, kw, sw, padding))
            h, w = axes[0].out, axes[1].out
            if kind == LOCAL:
                window = (axes[0].window(window[0]), axes[1].window(window[1]))
            c = _out_channels(layer, c)
        else:
            pad_value = 0.0
            covered = True  # a vector from here on
        if kind == LOCAL and window == (h, w):
            covered = True
        steps.append(Step(kind, axes if kind == LOCAL else None,
                          (h, w) if covered else window, shape, pad_value))
    return Cone(tuple(steps), tuple(defences))
