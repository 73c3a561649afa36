"""ONNX models as victims: graphs built with onnx.helper agree with onnxruntime, are attacked,
swept and analysed from the command line and in a suite, and bad input is one error line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _onnx_support import cnn, op_net, reference, save  # skips the module without the onnx extra

from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.victims import onnx as onnx_victims
from pixeljax.victims.checkpoint import load_victim

pytest.importorskip("onnxruntime", reason="onnxruntime, the tests' reference, is not installed")

FIXTURE = Path(__file__).parent / "fixtures" / "cifar_cnn.onnx"
ENGINE = ["--popsize", "8", "--maxiter", "2", "--slots", "4", "--batch-size", "16"]


def images(n, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A residual CNN on 8x8 RGB images and data on which it is least sure (labels: its own
    predictions, so one-pixel attacks succeed)."""
    root = tmp_path_factory.mktemp("onnx")
    model = cnn(residual=True)
    save(model, root / "net.onnx")
    x = images(300)
    logits = reference(model, x)
    top2 = np.sort(logits, -1)[:, -2:]
    chosen = np.sort(np.argsort(top2[:, 1] - top2[:, 0])[:6])
    np.savez(root / "data.npz", x=x[chosen], y=logits[chosen].argmax(-1))
    return root


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("kind", [
    dict(), dict(residual=True), dict(normalise=True), dict(layout="nhwc"),
    dict(softmax=True), dict(batch=1), dict(view_flatten=True),
    dict(batch=1, view_flatten=True, layout="nhwc")])
def test_graphs_give_onnxruntimes_outputs_at_every_batch_size(tmp_path, kind):
    model = cnn(**kind)
    victim = load_victim(str(save(model, tmp_path / "m.onnx")))
    x = images(5)
    expected = reference(model, x, kind.get("layout", "nchw"))
    for n in (5, 2):  # each batch size translated with its own shapes
        got = np.asarray(victim.predict(x[:n]))
        np.testing.assert_allclose(got, expected[:n], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("op, inputs, opset, attributes", [
    ("Clip", [("lo", 40.0), ("hi", 200.0)], 17, {}),          # ReLU6, torch.clamp
    ("Clip", [], 6, dict(min=40.0, max=200.0)),
    ("MaxPool", [], 17, dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", [], 17, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                             ceil_mode=1)),
    ("MaxPool", [], 17, dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                             ceil_mode=1)),                    # the last window starts inside
    ("AveragePool", [], 17, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                 ceil_mode=1)),
    ("AveragePool", [], 19, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0],
                                 ceil_mode=1, count_include_pad=1)),
    ("AveragePool", [], 17, dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                                 count_include_pad=1)),
    ("Conv", [("w", np.linspace(-1, 1, 36).reshape(4, 1, 3, 3)[:3]), ("b", [1.0, 2, 3])], 17,
     dict(group=3, strides=[2, 2], pads=[1, 1, 1, 1])),      # depthwise, channels-last
    ("Conv", [("w", np.linspace(-1, 1, 54).reshape(2, 3, 3, 3))], 17,  # dilated
     dict(dilations=[2, 2], pads=[2, 1, 2, 1])),
    ("ReduceMax", [("axes", [3])], 20, dict(keepdims=1)),    # a revision that adds types
    ("Flatten", [], 21, {}),
])
def test_ops_fixed_locally_give_onnxruntimes_outputs(tmp_path, op, inputs, opset, attributes):
    model = op_net(op, inputs, opset=opset, **attributes)
    victim = load_victim(str(save(model, tmp_path / "op.onnx")))
    x = images(3, size=7)
    np.testing.assert_allclose(np.asarray(victim.predict(x)), reference(model, x),
                               rtol=1e-6, atol=1e-4)


def test_convolutions_run_channels_last_inside_the_engines_loops(tmp_path):
    """XLA's CPU convolutions of NCHW maps are about ten times slower inside a loop."""
    import jax

    victim = load_victim(str(save(cnn(), tmp_path / "m.onnx")))
    text = jax.jit(lambda p, x: p(x)).lower(victim.predict, images(2)).as_text()
    convolutions = [line for line in text.splitlines() if "convolution" in line]
    assert convolutions and all("[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]" in line
                                for line in convolutions)


@pytest.mark.parametrize("kind, scale, compared", [
    (dict(residual=True, normalise=True), None, True),
    (dict(layout="nhwc", view_flatten=True), "0-1", True),
    (dict(batch=1), "mean-std:0.5,0.4,0.3/0.2,0.25,0.3", False),
    (dict(view_flatten=True), None, False),
])
def test_chain_cnns_become_the_projects_layers_exact_at_every_border_pixel(tmp_path, kind,
                                                                           scale, compared):
    from _incremental_support import border_and_random_pixels, compare

    from pixeljax.models.base import SequentialVictim
    from pixeljax.models.user import converted, input_scale

    model = cnn(**kind)
    victim = onnx_victims.fitted(onnx_victims.load_onnx(str(save(model, tmp_path / "m.onnx")),
                                                        input_scale=scale), (8, 8, 3))
    assert isinstance(victim.model, SequentialVictim)
    x = images(4)
    np.testing.assert_allclose(np.asarray(victim.predict(x)),
                               reference(model, np.asarray(converted(x, input_scale(scale))),
                                         kind.get("layout", "nchw")),
                               rtol=1e-5, atol=1e-4)
    if compared:  # the cone's windows: every border row, column and corner
        rng = np.random.default_rng(0)
        assert compare(victim.model, x[:2].astype(np.float32),
                       border_and_random_pixels(8, 8, 6, rng)) == 2 * (28 + 6)


def test_the_pytorch_fixture_is_translated_and_scored_incrementally_exactly():
    import onnx
    from _incremental_support import border_and_random_pixels, compare, scaled

    from pixeljax.data import load_sample
    from pixeljax.models.resnet import BasicBlock

    x = load_sample().x[:3]
    victim = onnx_victims.fitted(load_victim(str(FIXTURE)), x.shape[1:])
    assert sum(isinstance(layer, BasicBlock) for layer in victim.model.layers) == 2
    np.testing.assert_allclose(np.asarray(victim.predict(x)),
                               reference(onnx.load(str(FIXTURE)), x), rtol=1e-4, atol=1e-4)
    images_ = x[:1].astype(np.float32)  # untrained: logits scaled up so one pixel matters
    compare(scaled(victim.model, images_), images_,
            border_and_random_pixels(32, 32, 4, np.random.default_rng(1)))


@pytest.mark.parametrize("make, node", [
    (lambda: cnn(softmax=True), "node #6 (probs) (Softmax)"),
    (lambda: _op("LeakyRelu"), "node act1 (LeakyRelu)"),
])
def test_other_graphs_are_scored_densely_naming_the_node_that_stopped_them(tmp_path, make,
                                                                           node):
    from pixeljax.attack import scoring

    victim = onnx_victims.fitted(load_victim(str(save(make(), tmp_path / "m.onnx"))),
                                 (8, 8, 3))
    described = scoring.describe(scoring.scorer_for(victim.predict))
    assert described.startswith("dense (") and node in described, described


def test_input_scale_converts_pixels_in_front_of_the_graph(tmp_path):
    model = cnn(seed=3)
    path = str(save(model, tmp_path / "m.onnx"))
    x = images(3)
    victim = onnx_victims.load_onnx(path, input_scale="0-1")
    np.testing.assert_allclose(np.asarray(victim.predict(x)), reference(model, x, scale=1 / 255),
                               rtol=1e-5, atol=1e-5)
    assert victim.metadata["input_scale"] == "0-1"


@pytest.mark.parametrize("dims, image, given, expected", [
    ((3, 32, 32), (32, 32, 3), None, "nchw"),
    ((32, 32, 3), (32, 32, 3), None, "nhwc"),
    ((None, None, None), (32, 32, 3), None, "nchw"),   # all symbolic: PyTorch's
    ((None, None, 3), (32, 32, 3), None, "nhwc"),      # the fixed channel dimension decides
    ((3, None, None), (16, 16, 3), None, "nchw"),
    ((3, 3, 3), (3, 3, 3), None, "nchw"),
    ((3, 3, 3), (3, 3, 3), "nhwc", "nhwc"),
    ((1, 28, 28), (28, 28, 1), None, "nchw"),
])
def test_the_layout_is_read_from_the_graph_and_the_images(dims, image, given, expected):
    graph = type("G", (), {"dims": dims, "label": "m.onnx"})()
    assert onnx_victims.layout_of(graph, image, given) == expected


@pytest.mark.parametrize("dims, image, given, message", [
    ((3, 32, 32), (28, 28, 1), None, "do not fit it as NCHW or NHWC"),
    ((3, 32, 32), (32, 32, 3), "nhwc", "do not fit it as NHWC"),
    ((3, 32, 32), (16, 16, 3), None, "images of 16x16x3"),
])
def test_images_that_fit_no_layout_are_refused(dims, image, given, message):
    graph = type("G", (), {"dims": dims, "label": "m.onnx"})()
    with pytest.raises(PixeljaxError, match=message):
        onnx_victims.layout_of(graph, image, given)


def test_an_onnx_model_is_attacked_swept_resumed_and_analysed_from_the_command_line(world, capsys):
    common = ["--data", world / "data.npz", "--images", "6", "--first", "--quiet", "--json"]
    status, out, err = run(capsys, "attack", world / "net.onnx", *common, *ENGINE,
                           "--out", world / "attack")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["model"] == "net.onnx" and summary["n_attacked"] == 6
    assert summary["n_success"] > 0 and summary["scoring"] == "incremental"  # a chain CNN
    config = results.read_config(world / "attack")
    assert config["architecture"] == str(world / "net.onnx")
    assert config["weights_sha256"] == onnx_victims.file_sha256(world / "net.onnx")
    rows = results.read_rows(world / "attack")
    status, out, err = run(capsys, "attack", world / "net.onnx", *common, *ENGINE,
                           "--out", world / "attack")  # a finished run: nothing more to do
    assert status == 0 and len(results.read_rows(world / "attack")) == len(rows), err

    status, out, err = run(capsys, "sweep", world / "net.onnx", *common, "--out",
                           world / "sweep")
    assert status == 0, err
    assert json.loads(out)["recheck_disagreements"] == 0
    status, out, err = run(capsys, "locality", "--results", world / "attack", "--radius", "1",
                           "--out", world / "loc")
    assert status == 0, err
    status, out, err = run(capsys, "propagation", "--results", world / "attack", "--out",
                           world / "propagation")
    assert status == 0, err
    with open(world / "propagation" / "propagation_layers.csv") as f:
        layers = [row["layer"] for row in csv.DictReader(f) if row["group"] == "all"]
    assert layers == ["input", "conv1_relu", "r2", "block_relu", "pool", "output"]
    status, out, err = run(capsys, "export-adversarial", world / "attack", "--out",
                           world / "adv.npz")
    assert status == 0, err
    adversarial = np.load(world / "adv.npz")
    victim = onnx_victims.fitted(load_victim(str(world / "net.onnx")), (8, 8, 3))
    predicted = np.asarray(victim.predict(adversarial["x"])).argmax(-1)
    assert (predicted == adversarial["adversarial_class"]).all()
    assert (predicted != adversarial["y"]).all()


def test_a_changed_file_is_refused_on_resume_and_by_the_analyses(world, capsys, tmp_path):
    path = tmp_path / "net.onnx"
    save(cnn(residual=True), path)
    argv = ["attack", path, "--data", world / "data.npz", "--images", "2", "--first",
            "--quiet", *ENGINE, "--out", tmp_path / "run"]
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    rows = (tmp_path / "run" / "results.csv").read_text()
    save(cnn(residual=True, seed=1), path)  # another export under the same name
    status, out, err = run(capsys, *argv)
    assert status == 2 and err.count("\n") == 1 and "holds attacks on other weights" in err
    status, out, err = run(capsys, "locality", "--results", tmp_path / "run", "--radius", "1",
                           "--out", tmp_path / "loc")
    assert status == 2 and "holds attacks on other weights" in err
    assert (tmp_path / "run" / "results.csv").read_text() == rows
    assert not (tmp_path / "loc").exists()


def test_accuracy_and_an_explicit_layout_on_the_command_line(tmp_path, capsys):
    model = cnn(layout="nhwc", size=6, channels=1, classes=4, seed=2)
    save(model, tmp_path / "grey.onnx")
    x = images(8, size=6, channels=1)
    y = reference(model, x, "nhwc").argmax(-1)
    y[:2] = (y[:2] + 1) % 4
    np.savez(tmp_path / "grey.npz", x=x, y=y)
    status, out, err = run(capsys, "accuracy", tmp_path / "grey.onnx", "--data",
                           tmp_path / "grey.npz", "--layout", "nhwc", "--json")
    assert status == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(6 / 8)
    status, out, err = run(capsys, "accuracy", tmp_path / "grey.onnx", "--data",
                           tmp_path / "grey.npz", "--layout", "nchw")
    assert status == 2 and "do not fit it as NCHW" in err


def test_a_suite_attacks_an_onnx_file_and_refuses_it_changed(world, tmp_path):
    from pixeljax.evaluation import AttackSpec, Suite, Victim, run_suite

    path = tmp_path / "suite-net.onnx"
    save(cnn(residual=True), path)

    def suite():
        return Suite(name="onnx-test", victims=(Victim("net", architecture=str(path)),),
                     pixels=(1,), modes=("non-targeted",), images=2,
                     data=str(world / "data.npz"), attack=AttackSpec(popsize=8, maxiter=2))

    summaries = run_suite(suite(), tmp_path / "suite", progress=False)
    assert summaries[0]["n_attacked"] == 2 and summaries[0]["scoring"] == "incremental"
    config = results.read_config(tmp_path / "suite" / "net" / "1px-non-targeted")
    assert config["weights_sha256"] == onnx_victims.file_sha256(path)
    save(cnn(residual=True, seed=1), path)
    with pytest.raises(PixeljaxError, match="weights_sha256"):
        run_suite(suite(), tmp_path / "suite", progress=False)


def _two_inputs():
    model = cnn()
    extra = model.graph.input.add()
    extra.CopyFrom(model.graph.input[0])
    extra.name = "y_extra"
    return model


def _two_outputs():
    from onnx import TensorProto, helper

    model = cnn()
    model.graph.output.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, ["N", 64]))
    return model


def _op(op_type):
    from onnx import helper

    model = cnn()
    node = next(n for n in model.graph.node if n.op_type == "Relu")
    node.CopyFrom(helper.make_node(op_type, list(node.input), list(node.output), name="act1"))
    return model


def _output_shape(shape):
    from onnx import helper

    model = cnn()
    unsqueezed = helper.make_node("Unsqueeze", ["logits", "axes"], ["logits3"])
    model.graph.node.append(unsqueezed)
    model.graph.initializer.append(
        __import__("onnx").numpy_helper.from_array(np.asarray([2], np.int64), "axes"))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(
        "logits3", __import__("onnx").TensorProto.FLOAT, shape))
    return model


def _nan_bias():
    from onnx import numpy_helper

    model = cnn()
    bias = next(t for t in model.graph.initializer if t.name == "bf")
    values = numpy_helper.to_array(bias).copy()
    values[3] = np.nan
    bias.CopyFrom(numpy_helper.from_array(values, "bf"))
    return model


BAD = {
    "not ONNX": (lambda p: p.write_bytes(b"\x00\x01 not a model \xff" * 20),
                 "is not an ONNX model"),
    "two inputs": (lambda p: save(_two_inputs(), p), "the graph has 2 inputs (x, y_extra)"),
    "two outputs": (lambda p: save(_two_outputs(), p), "the graph has 2 outputs (logits, f)"),
    "unsupported op": (lambda p: save(_op("Elu"), p),
                       "node 'act1' is a Elu node, an op pixeljax cannot run"),
    "output rank 3": (lambda p: save(_output_shape(["N", 10, 1]), p),
                      "has shape (?, 10, 1), not (batch, classes)"),
    "output rank 3 declared as 2": (lambda p: save(_output_shape(["N", 10]), p),
                                 "its output has shape (2, 10, 1) for a batch of 2"),
    "fixed batch 4": (lambda p: save(cnn(batch=4), p), "exported with a fixed batch of 4"),
    "image size": (lambda p: save(cnn(size=16), p), "images of 8x8x3"),
    "channels": (lambda p: save(cnn(channels=1), p), "images of 8x8x3"),
    "classes": (lambda p: save(cnn(classes=4), p), "labels must lie in [0, 3]"),
    "NaN outputs": (lambda p: save(_nan_bias(), p), "returns NaN outputs for 6 of the first 6 images"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_onnx_input_is_one_error_line_and_nothing_written(world, capsys, tmp_path, case):
    make, message = BAD[case]
    path = tmp_path / "bad.onnx"
    make(path)
    data = np.load(world / "data.npz")
    np.savez(tmp_path / "data.npz", x=data["x"], y=np.arange(6) + 4)  # labels up to 9
    status, out, err = run(capsys, "attack", path, "--data", tmp_path / "data.npz",
                           "--images", "2", "--quiet", *ENGINE, "--out", tmp_path / "out")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_for_an_onnx_file_and_a_layout_for_other_models_are_refused(world, capsys,
                                                                               tmp_path):
    for argv, message in (
            ([world / "net.onnx", "--checkpoint", world], "an ONNX file holds its own weights"),
            (["tiny", "--layout", "nchw"], "--layout is for ONNX models")):
        status, out, err = run(capsys, "attack", *argv, "--data", world / "data.npz",
                               "--quiet", "--out", tmp_path / "out")
        assert status == 2 and err.startswith("error: ") and message in err, err
        assert not (tmp_path / "out").exists()


def test_a_missing_extra_names_the_install_command(monkeypatch, world):
    monkeypatch.setitem(sys.modules, "jaxonnxruntime", None)  # as if not installed
    with pytest.raises(PixeljaxError, match=r'ONNX models need the onnx extra .*pip install '
                                            r'"pixeljax\[onnx\]"'):
        load_victim(str(world / "net.onnx"))


def test_importing_pixeljax_imports_no_onnx_library():
    code = ("import sys, pixeljax, pixeljax.cli; "
            "print(sorted(m for m in ('onnx', 'jaxonnxruntime', 'onnxruntime') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_pytorch_fixture_agrees_with_onnxruntime_on_cifar_images():
    """The committed CNN exported from PyTorch (tests/fixtures/export_cifar_cnn.py)."""
    import onnx

    from pixeljax.data import load_sample

    assert FIXTURE.stat().st_size < 1 << 20
    model = onnx.load(str(FIXTURE))
    x = load_sample().x[:7]
    victim = onnx_victims.fitted(load_victim(str(FIXTURE)), x.shape[1:], incremental=False)
    assert victim.model.layout == "nchw"
    np.testing.assert_allclose(np.asarray(victim.predict(x)), reference(model, x),
                               rtol=1e-4, atol=1e-4)


def test_a_pytorch_export_and_the_fixture_agree_with_pytorch_itself(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (needed only to "
                                                "compare the fixture with the network itself)")
    pytest.importorskip("onnxscript", reason="onnxscript (torch.onnx.export's dynamo=True) is "
                                             "not installed")
    sys.path.insert(0, str(FIXTURE.parent))
    try:
        import export_cifar_cnn
    finally:
        sys.path.remove(str(FIXTURE.parent))
    from pixeljax.data import load_sample

    net = export_cifar_cnn.network()
    x = load_sample().x[:5]
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    exported = export_cifar_cnn.export(net, tmp_path / "cifar_cnn.onnx")  # as the fixture
    for path in (exported, FIXTURE):
        victim = load_victim(str(path))
        np.testing.assert_allclose(np.asarray(victim.predict(x)), expected, rtol=1e-4,
                                   atol=1e-4)


def test_bench_measures_an_onnx_model(world, capsys):
    status, out, err = run(capsys, "bench", "--model", world / "net.onnx", "--data",
                           world / "data.npz", "--images", "1", "--popsize", "8", "--maxiter",
                           "1", "--slots", "1", "--batch-size", "16",
                           "--incremental-batch-size", "16", "--sweep-images", "0",
                           "--agreement-candidates", "0", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["forward_images_per_second"] > 0
    assert report["engines"]["incremental"]["scoring"] == "incremental"  # translated
