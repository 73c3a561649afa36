"""A classifier exported to ONNX, attacked as a compiled JAX function.

A model from any framework (PyTorch's ``torch.onnx.export``, ``tf2onnx``, Keras) is named by
its file, ``path/to/model.onnx``, where a victim's name goes. jaxonnxruntime (pure JAX)
translates its graph into a JAX function, which the engine compiles, batches and shards like
any victim: neither the model's framework nor an ONNX runtime is needed at attack time.

* The graph takes one image tensor and returns one (batch, classes) tensor of logits or
  probabilities (detected, as for a user's model; see :mod:`pixeljax.models.user`).
* Layout: NCHW (PyTorch) or NHWC (TensorFlow/Keras), read from the graph's input shape and the
  images' channel count (both fitting: the one whose channel dimension is fixed, else NCHW), or
  given (``layout``, ``--layout``).
* Input scale as for a user's model (``input_scale``, ``--input-scale``): pixeljax converts the
  uint8 pixel values in front of the graph.
* A dynamic batch dimension is used as it is; a graph exported with a fixed batch of 1 runs
  image by image under ``vmap`` (slower).
* The file's sha256 (with its external data files, if any) is the victim's weights fingerprint
  (``config.json``'s ``weights_sha256``): a resume, an analysis or a suite never mixes two
  versions of a model.

The graph is translated once per batch size, with that size's shapes fixed (so shapes the graph
computes from its input, e.g. a flatten written as ``x.view(x.size(0), -1)``, are right). Once
the images are known (:func:`fitted`), a chain CNN becomes the project's own layers and is
scored incrementally (:mod:`pixeljax.victims.onnx_layers`); jaxonnxruntime's ops are used with
local fixes (:mod:`pixeljax.victims.onnx_ops`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax._plumbing.notices import note
from pixeljax.errors import PixeljaxError
from pixeljax.models import split_for_inference, user
from pixeljax.victims.loaded import LoadedVictim
from pixeljax.victims.onnx_layers import translate

NCHW, NHWC = "nchw", "nhwc"
LAYOUTS = (NCHW, NHWC)
FILE_SHA256 = "file_sha256"  # metadata: the model file's sha256 (its weights fingerprint)
INSTALL = 'pip install "pixeljax[onnx]"'
_FLOAT = 1  # onnx.TensorProto.FLOAT
# Nodes whose outputs the propagation maps show (ONNX computes these maps NCHW).
LAYER_OPS = {"Relu", "LeakyRelu", "PRelu", "Clip", "MaxPool", "AveragePool",
             "GlobalAveragePool"}


def is_onnx(name) -> bool:
    """A victim named by an ONNX file (a path ending in ``.onnx``).

    >>> is_onnx("exports/resnet.onnx"), is_onnx("allconv"), is_onnx("mynets:make")
    (True, False, False)
    """
    return str(name).lower().endswith(".onnx")


def _libraries():
    """``(onnx, jaxonnxruntime.call_onnx, jaxonnxruntime.config, onnx_ops)``, or the install
    command."""
    try:
        import onnx
        from jaxonnxruntime import call_onnx, config

        from pixeljax.victims import onnx_ops
    except ImportError as e:
        raise PixeljaxError(f"ONNX models need the onnx extra ({e.name} is not installed): "
                            f"{INSTALL}") from None
    return onnx, call_onnx, config, onnx_ops


def file_sha256(path: str | Path, external: tuple[str, ...] = ()) -> str:
    """The sha256 of a model file, its weights fingerprint; with weights in ``external`` data
    files beside it (their names, as the model records them), one sha256 over all of them."""
    h = hashlib.sha256()
    for name in (None, *sorted(external)):
        if name is not None:
            h.update(f"\0{name}\0".encode())
        with open(path if name is None else Path(path).parent / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class Graph:
    """A checked ONNX graph: one image input of rank 4, one output, only ops jaxonnxruntime
    runs. ``dims`` are the input's three non-batch dimensions (None where symbolic), ``batch``
    its batch dimension (None: dynamic, or 1)."""

    def __init__(self, path: str | Path):
        onnx, call_onnx, _, onnx_ops = _libraries()
        self.path = Path(path)
        self.label = str(path)
        if not self.path.is_file():
            raise PixeljaxError(f"ONNX model {path} does not exist" if not self.path.exists()
                                else f"ONNX model {path} is not a file")
        try:
            model = onnx.load(str(self.path), load_external_data=False)
            external = tuple({e.value for t in model.graph.initializer
                              if t.data_location == onnx.TensorProto.EXTERNAL
                              for e in t.external_data if e.key == "location"})
            missing = [name for name in external if not (self.path.parent / name).is_file()]
            if not missing:
                onnx.load_external_data_for_model(model, str(self.path.parent))
                onnx.checker.check_model(model)
        except Exception as e:  # protobuf's DecodeError, onnx's ValidationError, ...
            text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise PixeljaxError(f"{path} is not an ONNX model ({type(e).__name__}"
                                + (f": {text})" if text else ")")) from None
        if missing:
            raise PixeljaxError(f"{path} keeps its weights in {missing[0]}, which is not beside "
                                f"it")
        self.sha256 = file_sha256(self.path, external)
        graph = model.graph
        if not graph.node:
            raise PixeljaxError(f"{path} is not an ONNX model (its graph has no nodes)")
        weights = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in weights]
        for kind, found in (("input", inputs), ("output", list(graph.output))):
            if len(found) != 1:
                raise PixeljaxError(f"{path}: the graph has {len(found)} {kind}s "
                                    f"({', '.join(v.name for v in found) or 'none'}); pixeljax "
                                    f"attacks a classifier with one image input and one "
                                    f"output")
        self.input_name, out = inputs[0].name, graph.output[0]
        tensor = inputs[0].type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in tensor.shape.dim)
        if len(shape) != 4:
            raise PixeljaxError(f"{path}: its input {self.input_name!r} has shape "
                                f"{_shape(shape)}, not a batch of images (N, C, H, W) or "
                                f"(N, H, W, C)")
        if tensor.elem_type != _FLOAT:
            raise PixeljaxError(f"{path}: its input {self.input_name!r} takes "
                                f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}, not "
                                f"FLOAT (float32)")
        if shape[0] not in (None, 1):
            raise PixeljaxError(f"{path} was exported with a fixed batch of {shape[0]}; export "
                                f"it with a dynamic batch dimension (torch.onnx.export's "
                                f"dynamic_shapes or dynamic_axes), or a batch of 1")
        self.batch, self.dims = shape[0], shape[1:]
        out_shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                          for d in out.type.tensor_type.shape.dim)
        if out.type.tensor_type.HasField("shape") and len(out_shape) != 2:
            raise PixeljaxError(f"{path}: its output {out.name!r} has shape {_shape(out_shape)}, "
                                f"not (batch, classes)")
        handlers = onnx_ops.handlers(model.opset_import, call_onnx._get_all_handlers)
        for i, node in enumerate(graph.node):
            handler = handlers.get(node.domain, {}).get(node.op_type)
            if handler is None or not hasattr(handler, f"version_{handler.SINCE_VERSION}"):
                domain = f"{node.domain}." if node.domain else ""
                raise PixeljaxError(f"{path}: node {node.name or f'#{i}'!r} is a "
                                    f"{domain}{node.op_type} node, an op pixeljax cannot run "
                                    f"(opset {_opset(model)}); it runs "
                                    f"{', '.join(supported_ops())}")
        self.model = model

    def parameters(self) -> dict[str, np.ndarray]:
        """The graph's initializers (its weights), by name."""
        from onnx import numpy_helper

        return {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}

    def function(self, shape: tuple[int, ...], extra: tuple[str, ...] = ()):
        """``f(params, [x]) -> [y, *extra]``, the graph translated for inputs of exactly
        ``shape``; ``extra``: inner tensors it also returns."""
        _, call_onnx, config, onnx_ops = _libraries()
        model = copy.deepcopy(self.model)  # the library renames its nodes
        for name in extra:
            model.graph.output.add().name = name
        # Values the graph computes from its input's shape are fixed for this shape.
        with (jax.ensure_compile_time_eval(), _static_args_from_inputs(config),
              onnx_ops.translating(call_onnx)):
            f, _ = call_onnx.call_onnx_model(model, [np.zeros(shape, np.float32)])
        return f

    def layers(self) -> tuple[tuple[str, str], ...]:
        """``(name, tensor)`` of every activation and pooling node's output but the last, the
        layers a propagation map shows (named by their nodes)."""
        final = self.model.graph.output[0].name
        return tuple((node.name or node.output[0], node.output[0])
                     for node in self.model.graph.node
                     if node.op_type in LAYER_OPS and node.output[0] != final)


@contextlib.contextmanager
def _static_args_from_inputs(config):
    name = "jaxort_only_allow_initializers_as_static_args"
    before = getattr(config, name)
    config.update(name, False)
    try:
        yield
    finally:
        config.update(name, before)


def supported_ops() -> list[str]:
    """The ONNX ops (default domain) jaxonnxruntime runs."""
    _libraries()
    from jaxonnxruntime.core.handler import Handler

    return sorted({h.OP_TYPE for h in Handler.__subclasses__()
                   if getattr(h, "DOMAIN", "") == "" and hasattr(h, "OP_TYPE")})


def _opset(model) -> int | str:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")


def _shape(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def layout_of(graph: Graph, image_shape, layout: str | None = None) -> str:
    """The layout in which ``graph`` takes images of ``image_shape`` (height, width, channels):
    ``layout`` when given (checked), else the one that fits; both fitting, the one whose
    channel dimension is fixed, else NCHW.

    Raises:
      PixeljaxError: the images fit neither layout (or not the given one).
    """
    h, w, c = (int(d) for d in image_shape)
    order = {NCHW: (c, h, w), NHWC: (h, w, c)}
    fits = [k for k in LAYOUTS if (layout is None or k == layout)
            and all(d is None or d == e for d, e in zip(graph.dims, order[k]))]
    if not fits:
        how = f"as {layout.upper()}" if layout else "as NCHW or NHWC"
        raise PixeljaxError(f"{graph.label} takes input {_shape((None, *graph.dims))}: images "
                            f"of {h}x{w}x{c} (height x width x channels) do not fit it {how}")
    fixed = [k for k in fits if graph.dims[0 if k == NCHW else 2] is not None]
    return (fixed or fits)[0]


class OnnxApply:
    """``apply(params, images) -> outputs`` of an ONNX graph on NHWC images (in the graph's
    input scale); hashable by the file's content and the layout, so compiled programs are
    reused across loads."""

    def __init__(self, graph: Graph, layout: str | None):
        self.graph, self.layout = graph, layout
        self._functions: dict[tuple, object] = {}

    def __call__(self, params, images):
        out = self.run(params, images)[0]
        if out.ndim != 2 or out.shape[0] != len(images):
            raise PixeljaxError(f"{self.graph.label}: its output has shape {tuple(out.shape)} "
                                f"for a batch of {len(images)}, not (batch, classes)")
        return out

    def run(self, params, images, extra: tuple[str, ...] = ()) -> list:
        """The graph's output, then the inner tensors ``extra``, on NHWC ``images``."""
        layout = layout_of(self.graph, images.shape[1:], self.layout)
        x = jnp.asarray(images, jnp.float32)
        if layout == NCHW:
            x = jnp.transpose(x, (0, 3, 1, 2))
        if self.graph.batch == 1:  # a fixed batch of 1: image by image
            return jax.vmap(lambda one: [y[0] for y in self._run(params, one[None], extra)])(x)
        return self._run(params, x, extra)

    def _run(self, params, x, extra):
        key = (tuple(x.shape), extra)
        with warnings.catch_warnings():  # shapes are int64 in ONNX, int32 in JAX: harmless
            warnings.filterwarnings("ignore", "Explicitly requested dtype int64")
            if key not in self._functions:
                self._functions[key] = self.graph.function(*key)
            return self._functions[key](params, [x])

    def _key(self):
        return self.graph.sha256, self.graph.batch, self.layout

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, OnnxApply) and other._key() == self._key()


class OnnxActivations:
    """``activations(params, images) -> [(name, output)]`` of an ONNX graph for the
    propagation maps: the input, every activation and pooling node's output (ONNX's maps are
    NCHW; returned channels last) and the graph's output."""

    def __init__(self, apply: OnnxApply, scale):
        self.apply, self.scale = apply, scale

    def __call__(self, params, images):
        layers = self.apply.graph.layers()
        names, tensors = tuple(n for n, _ in layers), tuple(t for _, t in layers)
        out, *inner = self.apply.run(params, user.converted(images, self.scale), tensors)
        inner = [jnp.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a for a in inner]
        return [("input", jnp.asarray(images, jnp.float32)), *zip(names, inner),
                ("output", out)]

    def __hash__(self):
        return hash((self.apply, self.scale))

    def __eq__(self, other):
        return isinstance(other, OnnxActivations) and (other.apply, other.scale) == (
            self.apply, self.scale)


def load_onnx(path: str | Path, *, layout: str | None = None, input_scale=None,
              outputs=None):
    """Loads an ONNX classifier as a victim.

    Args:
      path: the ``.onnx`` file.
      layout: ``"nchw"`` or ``"nhwc"``; default: detected from the graph's input shape and the
        images it is given.
      input_scale: what the graph takes (``"0-255"``, the default, ``"0-1"``, or
        ``(mean, std)``), as for a user's model (:func:`pixeljax.models.user.input_scale`).
      outputs: ``"logits"`` (default) or ``"probabilities"`` (also detected on images by the
        command line and the analyses).

    Returns:
      A :class:`~pixeljax.victims.loaded.LoadedVictim` whose ``predict`` takes uint8-valued NHWC
      images, e.g. ``pixeljax.pixel_attack(victim.predict, x, y)``.

    Raises:
      PixeljaxError: a missing extra, a file that is not ONNX, a graph with several inputs or
        outputs, an op that cannot run, an input that is not a batch of images.
    """
    if layout is not None and layout not in LAYOUTS:
        raise PixeljaxError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    scale, kind = user.input_scale(input_scale), user.outputs(outputs)
    graph = Graph(path)
    if graph.batch == 1:
        note(f"{path} was exported with a fixed batch of 1: it runs image by image under vmap, "
             f"slower than with a dynamic batch dimension")
    metadata = {"architecture": str(Path(path).absolute()), "input_scale": scale,
                "outputs": kind, "layout": layout, FILE_SHA256: graph.sha256,
                "opset": _opset(graph.model), "producer": graph.model.producer_name or None}
    return _victim(OnnxModel(graph, layout, scale),
                   jax.tree.map(jnp.asarray, graph.parameters()), metadata)


class OnnxModel:
    """What a loaded ONNX victim's ``model`` holds: its graph, its layout (None: detected from
    the images), its input scale and the image size it takes (None until known)."""

    def __init__(self, graph: Graph, layout: str | None, scale, image_shape=None):
        self.graph, self.layout, self.scale = graph, layout, scale
        self.image_shape = image_shape

    def activations_of(self, params) -> jax.tree_util.Partial:
        """``activations(images) -> [(name, output)]`` with the weights ``params`` (see
        :class:`OnnxActivations`), for the propagation maps."""
        scale = self.scale if isinstance(self.scale, str) else tuple(map(tuple, self.scale))
        return jax.tree_util.Partial(OnnxActivations(OnnxApply(self.graph, self.layout), scale),
                                     params)


def _victim(model: OnnxModel, params, metadata: dict, dense_reason: str = ""):
    inner = OnnxApply(model.graph, model.layout)
    inner.dense_reason = dense_reason
    apply = user.wrap_apply(inner, metadata["input_scale"], metadata["outputs"])
    return LoadedVictim(name=model.graph.path.name, model=model, apply=apply, params=params,
                        metadata=metadata, weights_sha256=metadata[FILE_SHA256])


def fitted(victim, image_shape, *, incremental: bool = True):
    """``victim`` (an ONNX one) with its layout fixed for images of ``image_shape`` (height,
    width, channels) and that size declared, so images are checked before anything runs.

    With ``incremental``, a chain CNN becomes the project's own layers
    (:func:`pixeljax.victims.onnx_layers.translate`), scored incrementally like the shipped
    victims; any other graph runs as it is, and its scoring names the node that stopped the
    translation.

    Raises:
      PixeljaxError: the images fit the graph's input in no layout (or not the given one).
    """
    model = victim.model
    shape = tuple(int(d) for d in image_shape)
    layout = layout_of(model.graph, shape, model.layout)
    network, why = None, ""
    if incremental and victim.metadata["outputs"] != user.PROBABILITIES:
        network, why = translate(model.graph, layout, shape, model.scale)
        why = why and f"{model.graph.label} is not a chain CNN of the project's layers: {why}"
    if network is None:
        return _victim(OnnxModel(model.graph, layout, model.scale, shape), victim.params,
                       victim.metadata, why)
    network.image_shape = shape
    apply, params = split_for_inference(network)
    return LoadedVictim(name=victim.name, model=network, apply=apply, params=params,
                        metadata={**victim.metadata, "translated": "project layers"},
                        weights_sha256=victim.weights_sha256)
