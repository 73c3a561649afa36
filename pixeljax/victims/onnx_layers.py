"""An ONNX chain CNN as the project's own layers, so the engine scores it incrementally.

:func:`translate` reads a graph that is a chain of ``Conv`` (with ``BatchNormalization`` and
``Relu`` after it, or a bias), ``MaxPool``, identity residual blocks (conv-relu-conv, ``Add``
of the block's input, ``Relu``), ``GlobalAveragePool`` (or ``ReduceMean`` over the map),
``Flatten`` and ``Gemm``/``MatMul`` (with ``Relu``), with per-channel ``Sub``/``Div``/``Mul``/
``Add`` by constants in front, into a :class:`~pixeljax.models.base.SequentialVictim` of
:mod:`pixeljax.models.layers` (the cone code's layers, see :mod:`pixeljax.attack.cone`):

* the input conversion (``--input-scale`` and the graph's normalisation, composed with the
  project's own normalisation) is a 1x1 convolution, a pointwise step;
* a convolution's bias or batch norm is the :class:`~pixeljax.models.layers.ConvBlock`'s batch
  norm (an identity one with the bias, epsilon 0), its padding SAME or VALID as XLA splits it;
* ONNX's NCHW flatten order becomes the dense layer's NHWC order (its rows permuted).

Anything else (another op, a padding XLA would split otherwise, a strided or projecting
shortcut, a softmax at the end) stops the translation; the reason names the node, and the
graph is scored densely.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixeljax.models import user
from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Axis,
    Conv,
    ConvBlock,
    Dense,
    GlobalAveragePool,
    MaxPool,
)
from pixeljax.models.resnet import BasicBlock

SKIPPED = {"Dropout", "Identity"}
AFFINE = {"Sub", "Div", "Mul", "Add"}


class Stop(Exception):
    """The graph leaves what the project's layers express, at a node."""


def translate(graph, layout: str, image_shape, scale) -> tuple[SequentialVictim | None, str]:
    """``(network, "")``, or ``(None, why)`` naming the node that stopped the translation.

    Args:
      graph: a checked :class:`pixeljax.victims.onnx.Graph`.
      layout: its input layout; image_shape: (height, width, channels) of the images;
      scale: the input scale (:func:`pixeljax.models.user.input_scale`).
    """
    try:
        return _Chain(graph, layout, image_shape, scale).network(), ""
    except Stop as e:
        return None, str(e)


def _set(variable, value) -> None:
    variable.set_value(jnp.asarray(value, jnp.float32))


def _node_name(node, i: int) -> str:
    return node.name or f"#{i} ({node.output[0]})"


class _Chain:
    def __init__(self, graph, layout, image_shape, scale):
        from onnx import numpy_helper

        self.graph = graph.model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(a.t)
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.graph.node):
            for name in node.input:
                self.consumers.setdefault(name, []).append(i)
        self.layout, self.scale = layout, scale
        self.h, self.w, self.c = (int(d) for d in image_shape)
        self.rngs = nnx.Rngs(0)

    # -- walking the chain -----------------------------------------------------------------

    def readers(self, tensor: str) -> list[int]:
        return [i for i in self.consumers.get(tensor, ())
                if self.graph.node[i].op_type != "Constant"]

    def next(self, tensor: str, count: int = 1):
        """The node that alone reads ``tensor`` (constants aside), or None at the output."""
        found = self.readers(tensor)
        if not found:
            return None
        if len(found) != count:
            node = self.graph.node[found[0]]
            raise Stop(f"node {_node_name(node, found[0])} ({node.op_type}): its input "
                       f"{tensor!r} is read {len(found)} times (not a chain)")
        return found[0] if count == 1 else found

    def stop(self, i: int, why: str):
        node = self.graph.node[i]
        raise Stop(f"node {_node_name(node, i)} ({node.op_type}): {why}")

    def attribute(self, node, name, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def constant(self, i: int, name: str) -> np.ndarray:
        if name not in self.constants:
            self.stop(i, f"its input {name!r} is not a constant")
        return np.asarray(self.constants[name])

    # -- the network -----------------------------------------------------------------------

    def network(self) -> SequentialVictim:
        tensor, i = self.graph.input[0].name, None
        i = self.next(tensor)
        if self.layout == "nhwc":  # the graph's own transpose to NCHW comes first
            node = self.graph.node[i] if i is not None else None
            if node is None or node.op_type != "Transpose" or \
                    list(self.attribute(node, "perm", [])) != [0, 3, 1, 2]:
                raise Stop("an NHWC graph that does not begin with a transpose to NCHW")
            tensor = node.output[0]
            i = self.next(tensor)
        tensor, i, (a, b) = self.front(tensor, i)
        layers = [("input", self.affine(a, b))]
        vector = False
        flattened = None  # (C, H, W) of a map flattened in ONNX's order
        while self.readers(tensor):
            if not vector and self.flattening(tensor):
                flattened, vector = (self.c, self.h, self.w), True
                tensor = self.graph.node[self.flattening(tensor)].output[0]
                continue
            if len(self.readers(tensor)) == 2 and not vector:
                layer, tensor = self.residual(tensor)
                layers.append((f"{len(layers)}_residual", layer))
                continue
            i = self.next(tensor)
            node = self.graph.node[i]
            op = node.op_type
            if op in SKIPPED or (op in ("Flatten", "Reshape", "Squeeze") and vector):
                tensor = node.output[0]
                continue
            if op == "Flatten" and not vector:
                if self.attribute(node, "axis", 1) != 1:
                    self.stop(i, "a flatten that keeps more than the batch")
                flattened, vector, tensor = (self.c, self.h, self.w), True, node.output[0]
                continue
            if op == "Conv" and not vector:
                layer, tensor = self.conv(i, relu_allowed=True)
            elif op == "MaxPool" and not vector:
                layer, tensor = self.maxpool(i)
            elif (op == "GlobalAveragePool" or (op == "ReduceMean" and self.spatial_mean(i))) \
                    and not vector:
                layer, tensor, vector = GlobalAveragePool(), node.output[0], True
            elif op in ("Gemm", "MatMul") and vector:
                layer, tensor = self.dense(i, flattened)
                flattened = None
            else:
                self.stop(i, "not a layer of a chain CNN pixeljax scores incrementally")
            layers.append((f"{len(layers)}_{op.lower()}", layer))
        if tensor != self.graph.output[0].name or not vector:
            raise Stop("the graph does not end in a dense layer's logits")
        return SequentialVictim(layers, num_classes=self.c)

    def flattening(self, tensor) -> int | None:
        """The Reshape that flattens the map ``tensor`` to (batch, C * H * W), written with a
        constant shape or (PyTorch's ``x.view(x.size(0), -1)``) one computed by ``Shape``."""
        readers = self.readers(tensor)
        ops = sorted(self.graph.node[k].op_type for k in readers)
        if ops not in (["Reshape"], ["Reshape", "Shape"]):
            return None
        i = next(k for k in readers if self.graph.node[k].op_type == "Reshape")
        node = self.graph.node[i]
        size = self.c * self.h * self.w
        if node.input[1] in self.constants:
            shape = self.constants[node.input[1]].tolist()
            return i if len(shape) == 2 and shape[1] in (-1, size) else None
        after = self.readers(node.output[0])
        if len(after) != 1 or self.graph.node[after[0]].op_type not in ("Gemm", "MatMul"):
            return None
        head = self.graph.node[after[0]]
        w = self.constants.get(head.input[1])
        transposed = head.op_type == "Gemm" and self.attribute(head, "transB", 0)
        return i if w is not None and w.shape[1 if transposed else 0] == size else None

    def front(self, tensor, i):
        """Per-channel constant arithmetic in front: ``x * a + b`` of the converted pixels."""
        a, b = np.ones(self.c), np.zeros(self.c)
        if self.scale == user.UNIT:
            a = a / 255.0
        elif isinstance(self.scale, tuple):
            mean, std = (np.asarray(v, np.float64) for v in self.scale)
            a, b = a / (255.0 * std), -mean / std
        while i is not None and self.graph.node[i].op_type in AFFINE:
            node = self.graph.node[i]
            other = [n for n in node.input if n != tensor]
            if len(other) != 1 or node.input[0] != tensor and node.op_type in ("Sub", "Div"):
                self.stop(i, "not a per-channel constant applied to the images")
            k = self.constant(i, other[0]).astype(np.float64)
            if not (k.size == 1 or (k.size == self.c and k.ndim >= 3 and k.shape[-3] == self.c)):
                self.stop(i, f"a constant of shape {k.shape}, not one per channel")
            k = np.broadcast_to(k.reshape(-1), (self.c,))
            if node.op_type == "Sub":
                b = b - k
            elif node.op_type == "Add":
                b = b + k
            elif node.op_type == "Mul":
                a, b = a * k, b * k
            else:
                a, b = a / k, b / k
            tensor = node.output[0]
            i = self.next(tensor)
        return tensor, i, (a, b)

    def affine(self, a, b) -> Conv:
        """A 1x1 convolution mapping the project's normalised pixels to the graph's input."""
        std, mean = np.asarray(CIFAR10_STD), np.asarray(CIFAR10_MEAN)
        c = self.c
        if c != len(std):
            raise Stop(f"{c}-channel images (the project's layers normalise 3 channels)")
        layer = Conv(c, c, 1, rngs=self.rngs)
        _set(layer.conv.kernel, np.diag(a * std).reshape(1, 1, c, c))
        _set(layer.conv.bias, a * mean + b)
        return layer

    def padding(self, i, node, kernel, stride) -> str:
        pads = list(self.attribute(node, "pads", [0, 0, 0, 0]))
        auto = self.attribute(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto == "VALID" or (auto == "NOTSET" and not any(pads)):
            return "VALID"
        same = [Axis.of(n, kernel, stride, "SAME") for n in (self.h, self.w)]
        if auto == "SAME_UPPER" or (auto == "NOTSET" and pads == [same[0].lo, same[1].lo,
                                                                   same[0].hi, same[1].hi]):
            return "SAME"
        self.stop(i, f"padding {pads or auto} differs from XLA's SAME split")

    def window(self, i, node) -> tuple[int, int]:
        kernel = list(self.attribute(node, "kernel_shape", []))
        strides = list(self.attribute(node, "strides", [1, 1]))
        if len(kernel) != 2 or kernel[0] != kernel[1] or strides[0] != strides[1]:
            self.stop(i, f"a {kernel} window with strides {strides} (square ones only)")
        if any(d != 1 for d in self.attribute(node, "dilations", [1, 1])):
            self.stop(i, "a dilated window")
        return kernel[0], strides[0]

    def move(self, kernel, stride, padding, channels):
        self.h, self.w = (Axis.of(n, kernel, stride, padding).out for n in (self.h, self.w))
        self.c = channels

    def conv(self, i, *, relu_allowed: bool):
        """Conv [BatchNormalization] [Relu] as a ConvBlock; returns it and its output."""
        node = self.graph.node[i]
        if self.attribute(node, "group", 1) != 1:
            self.stop(i, "a grouped convolution")
        w = self.constant(i, node.input[1])
        kernel = w.shape[2]
        strides = list(self.attribute(node, "strides", [1, 1]))
        if w.shape[2] != w.shape[3] or strides[0] != strides[1]:
            self.stop(i, f"a {w.shape[2]}x{w.shape[3]} kernel with strides {strides} (square "
                         f"ones only)")
        if any(d != 1 for d in self.attribute(node, "dilations", [1, 1])):
            self.stop(i, "a dilated convolution")
        stride = strides[0]
        padding = self.padding(i, node, kernel, stride)
        bias = (self.constant(i, node.input[2]) if len(node.input) > 2 and node.input[2]
                else np.zeros(w.shape[0]))
        scale, shift, mean, var, eps = (np.ones(w.shape[0]), np.zeros(w.shape[0]), -bias,
                                        np.ones(w.shape[0]), 0.0)
        out, j = node.output[0], self.next(node.output[0])
        if j is not None and self.graph.node[j].op_type == "BatchNormalization":
            bn = self.graph.node[j]
            scale, shift, m, var = (self.constant(j, n) for n in bn.input[1:5])
            mean, eps = m - bias, float(self.attribute(bn, "epsilon", 1e-5))
            out, j = bn.output[0], self.next(bn.output[0])
        relu = j is not None and self.graph.node[j].op_type == "Relu" and relu_allowed
        if relu:
            out = self.graph.node[j].output[0]
        block = ConvBlock(w.shape[1], w.shape[0], kernel, stride=stride, padding=padding,
                          relu=relu, rngs=self.rngs)
        _set(block.conv.kernel, np.transpose(w, (2, 3, 1, 0)))
        for name, value in (("scale", scale), ("bias", shift), ("mean", mean), ("var", var)):
            _set(getattr(block.norm, name), value)
        block.norm.epsilon = eps
        self.move(kernel, stride, padding, w.shape[0])
        return block, out

    def residual(self, tensor):
        """conv-relu-conv plus the block's input, then relu: a BasicBlock (identity shortcut)."""
        first_i, add_i = sorted(self.next(tensor, 2),
                                key=lambda k: self.graph.node[k].op_type == "Add")
        if self.graph.node[first_i].op_type != "Conv" or self.graph.node[add_i].op_type != "Add":
            self.stop(first_i, "a branch that is not a residual block of two convolutions")
        c, h, w = self.c, self.h, self.w
        first, mid = self.conv(first_i, relu_allowed=True)
        second_i = self.next(mid)
        if not first.relu or second_i is None or self.graph.node[second_i].op_type != "Conv":
            self.stop(first_i, "a residual branch that is not conv-relu-conv")
        second, out = self.conv(second_i, relu_allowed=False)
        if (self.c, self.h, self.w) != (c, h, w) or first.conv.strides not in (1, (1, 1)):
            self.stop(add_i, "a shortcut that changes the shape (identity shortcuts only)")
        if self.next(out) != add_i:
            self.stop(add_i, "a residual sum of other tensors")
        relu_i = self.next(self.graph.node[add_i].output[0])
        if relu_i is None or self.graph.node[relu_i].op_type != "Relu":
            self.stop(add_i, "a residual sum without a ReLU after it")
        block = BasicBlock(c, c, stride=1, rngs=self.rngs)
        block.first, block.second = first, second
        return block, self.graph.node[relu_i].output[0]

    def maxpool(self, i):
        node = self.graph.node[i]
        if self.attribute(node, "ceil_mode", 0) or len(node.output) > 1:
            self.stop(i, "ceil mode or indices")
        kernel, stride = self.window(i, node)
        padding = self.padding(i, node, kernel, stride)
        self.move(kernel, stride, padding, self.c)
        return MaxPool(kernel, stride, padding), node.output[0]

    def spatial_mean(self, i) -> bool:
        node = self.graph.node[i]
        axes = self.attribute(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = self.constant(i, node.input[1]).tolist()
        return sorted(int(a) % 4 for a in (axes or ())) == [2, 3]

    def dense(self, i, flattened):
        node = self.graph.node[i]
        w = self.constant(i, node.input[1]).astype(np.float32)
        if node.op_type == "Gemm":
            if self.attribute(node, "transA", 0) or self.attribute(node, "alpha", 1.0) != 1.0 \
                    or self.attribute(node, "beta", 1.0) != 1.0:
                self.stop(i, "a Gemm with transA, alpha or beta")
            if self.attribute(node, "transB", 0):
                w = w.T
            bias = (self.constant(i, node.input[2]) if len(node.input) > 2 and node.input[2]
                    else np.zeros(w.shape[1]))
            out = node.output[0]
        else:
            out, bias = node.output[0], np.zeros(w.shape[1])
            j = self.next(out)
            if j is not None and self.graph.node[j].op_type == "Add":
                other = [n for n in self.graph.node[j].input if n != out]
                bias, out = self.constant(j, other[0]).reshape(-1), self.graph.node[j].output[0]
        if flattened is not None:  # ONNX flattens (C, H, W); the project's layers (H, W, C)
            c, h, wd = flattened
            w = w.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(c * h * wd, -1)
        j = self.next(out)
        hidden = j is not None and self.graph.node[j].op_type == "Relu"
        layer = Dense(w.shape[0], w.shape[1], hidden=hidden, rngs=self.rngs)
        _set(layer.linear.kernel, w)
        if hidden:
            for name, value in (("scale", 1.0), ("bias", bias), ("mean", 0.0), ("var", 1.0)):
                _set(getattr(layer.norm, name), np.broadcast_to(value, (w.shape[1],)))
            layer.norm.epsilon = 0.0
            out = self.graph.node[j].output[0]
        else:
            _set(layer.linear.bias, bias)
        self.c = w.shape[1]
        return layer, out
