"""Small ONNX classifiers built with ``onnx.helper`` for the ONNX victim tests (no framework
needed): a plain CNN, a residual one, one normalising its input in front, NCHW and NHWC,
logits or softmax outputs, a dynamic batch or a fixed batch of 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

onnx = __import__("pytest").importorskip("onnx", reason="the onnx extra is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 17


def _weights(rng, name, shape, scale):
    return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)


def _const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def cnn(*, size=8, channels=3, classes=10, batch="N", layout="nchw", residual=False,
        normalise=False, softmax=False, view_flatten=False, seed=0) -> onnx.ModelProto:
    """A small CIFAR-style CNN: [normalise] -> conv-BN-relu -> [residual block: conv-relu-conv,
    plus its input, relu] -> max pool -> flatten -> Gemm [-> softmax], on (batch, C, H, W) or
    (batch, H, W, C) pixel values.

    ``view_flatten``: flatten as PyTorch's ``x.view(x.size(0), -1)`` exports it (Shape, Gather,
    Concat, Reshape), a shape computed from the input.
    """
    rng = np.random.default_rng(seed)
    width = 4
    inits = [_weights(rng, "w1", (width, channels, 3, 3), 0.3),
             _weights(rng, "b1", (width,), 0.1),
             _const("bn_scale", rng.uniform(0.5, 1.5, width)),
             _const("bn_bias", rng.normal(0, 0.1, width)),
             _const("bn_mean", rng.normal(0, 5, width)),
             _const("bn_var", rng.uniform(20, 80, width)),
             _weights(rng, "wf", (classes, width * (size // 2) ** 2), 0.05),
             _weights(rng, "bf", (classes,), 0.1)]
    nodes, x = [], "x"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", [x], ["x_nchw"], perm=[0, 3, 1, 2]))
        x = "x_nchw"
    if normalise:  # (x / 255 - mean) / std, as a torchvision transform inside forward
        inits += [_const("k255", [255.0]),
                  _const("mean", np.linspace(0.4, 0.5, channels).reshape(1, channels, 1, 1)),
                  _const("std", np.linspace(0.2, 0.3, channels).reshape(1, channels, 1, 1))]
        nodes += [helper.make_node("Div", [x, "k255"], ["x01"]),
                  helper.make_node("Sub", ["x01", "mean"], ["xc"]),
                  helper.make_node("Div", ["xc", "std"], ["xn"])]
        x = "xn"
    nodes += [helper.make_node("Conv", [x, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1],
                               name="conv1"),
              helper.make_node("BatchNormalization", ["c1", "bn_scale", "bn_bias", "bn_mean",
                                                      "bn_var"], ["n1"], epsilon=1e-5),
              helper.make_node("Relu", ["n1"], ["r1"], name="conv1_relu")]
    h = "r1"
    if residual:  # a ResNet basic block with an identity shortcut
        inits += [_weights(rng, "w2", (width, width, 3, 3), 0.3),
                  _weights(rng, "b2", (width,), 0.1),
                  _weights(rng, "w3", (width, width, 3, 3), 0.3),
                  _weights(rng, "b3", (width,), 0.1)]
        nodes += [helper.make_node("Conv", [h, "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c2"], ["r2"]),
                  helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
                  helper.make_node("Add", ["c3", h], ["sum"]),
                  helper.make_node("Relu", ["sum"], ["r3"], name="block_relu")]
        h = "r3"
    nodes.append(helper.make_node("MaxPool", [h], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                                  name="pool"))
    if view_flatten:
        inits += [_const("i0", [0], np.int64), _const("m1", [-1], np.int64)]
        nodes += [helper.make_node("Shape", ["p1"], ["s"]),
                  helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
                  helper.make_node("Concat", ["n", "m1"], ["shape"], axis=0),
                  helper.make_node("Reshape", ["p1", "shape"], ["f"])]
    else:
        nodes.append(helper.make_node("Flatten", ["p1"], ["f"], axis=1))
    nodes.append(helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1))
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    dims = [batch, channels, size, size] if layout == "nchw" else [batch, size, size, channels]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           dims)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                             [batch, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pixeljax-tests")
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def reference(model: onnx.ModelProto, images_nhwc: np.ndarray, layout: str = "nchw",
              scale: float = 1.0) -> np.ndarray:
    """The outputs onnxruntime gives for uint8-valued NHWC images (times ``scale``)."""
    import onnxruntime

    x = np.asarray(images_nhwc, np.float32) * scale
    if layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    name = model.graph.input[0].name
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value == 1:
        return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    return session.run(None, {name: np.ascontiguousarray(x)})[0]


def op_net(op_type, extra_inputs=(), *, opset=OPSET, size=7, **attributes) -> onnx.ModelProto:
    """One op on (batch, 3, size, size) images, flattened to (batch, features);
    ``extra_inputs``: ``(name, values)`` pairs of its constant inputs (int64 when integer)."""
    inits = [numpy_helper.from_array(np.asarray(v, np.int64 if np.asarray(v).dtype.kind == "i"
                                                else np.float32), name)
             for name, v in extra_inputs]
    nodes = [helper.make_node(op_type, ["x", *(name for name, _ in extra_inputs)], ["h"],
                              **attributes),
             helper.make_node("Flatten", ["h"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, op_type, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                       ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "features"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model
