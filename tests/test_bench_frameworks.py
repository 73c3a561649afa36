"""``pixeljax bench`` beside the loops others run: the PyTorch network itself (``--torch``, the
one-image DE loop calling it) and the one-image threshold-attack loop. The measurements are
ratios in the stored reports (tests/test_bench_tables.py); here: what is measured, and bad
input refused with one line. PyTorch is needed only where a test says so."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixeljax.bench.measure import _add_changes
from pixeljax.bench.torch_model import check_same_network, load_torch_model
from pixeljax.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
ONNX = FIXTURES / "cifar_cnn.onnx"
SMALL = ["--images", "1", "--popsize", "8", "--maxiter", "1", "--slots", "1", "--batch-size",
         "16", "--incremental-batch-size", "16", "--sweep-images", "0",
         "--agreement-candidates", "0", "--json"]


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_importing_pixeljax_imports_no_torch():
    code = ("import sys, pixeljax, pixeljax.cli, pixeljax.bench.measure, "
            "pixeljax.bench.tables; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_a_threshold_candidate_is_the_image_plus_its_change_within_th_rounded_and_clipped():
    image = np.array([[[0, 128, 250]]], np.uint8)  # 1 x 1 x 3
    changes = np.array([[-3.4, 12.0, 9.6], [30.0, -0.4, -20.0]], np.float32)
    np.testing.assert_array_equal(_add_changes(image, changes, 10),
                                  [[[[0, 138, 255]]], [[[10, 128, 240]]]])


@pytest.mark.parametrize("argv, message", [
    (["--model", "allconv", "--torch", ONNX], "give the export as --model net.onnx"),
    (["--model", "allconv", "--untrained", "--torch", ONNX], "give the export as --model"),
    (["--model", ONNX, "--torch", FIXTURES / "absent.pt"], "absent.pt: no such file"),
])
def test_bad_torch_input_is_one_error_line_and_nothing_written(capsys, argv, message):
    status, out, err = run(capsys, "bench", *argv, *SMALL)
    assert status == 2 and out == ""
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1


def test_torch_without_pytorch_names_the_install_command(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    status, out, err = run(capsys, "bench", "--model", ONNX, "--torch", ONNX, *SMALL)
    assert status == 2 and out == ""
    assert err.startswith("error:") and "pip install torch" in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    """The fixture network as TorchScript, as an exported program, and another network."""
    pytest.importorskip("torch", reason="PyTorch is not installed (needed only to measure it "
                                        "beside the engine)")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    sys.path.insert(0, str(FIXTURES))
    try:
        import export_cifar_cnn
    finally:
        sys.path.remove(str(FIXTURES))
    import torch

    root = tmp_path_factory.mktemp("torch")
    net = export_cifar_cnn.network()
    files = {kind: export_cifar_cnn.save_torch(net, root / f"cifar_cnn.{kind}")
             for kind in ("pt", "pt2")}
    with torch.no_grad():
        net.head[-1].weight.mul_(-1)  # other classes
    files["other"] = export_cifar_cnn.save_torch(net, root / "other.pt")
    (root / "not_torch.pt").write_bytes(b"not a TorchScript file")
    files["not"] = root / "not_torch.pt"
    return files


@pytest.mark.parametrize("kind", ["pt", "pt2"])
def test_both_kinds_of_file_give_the_onnx_models_outputs(torch_files, kind):
    from pixeljax.data import load_sample
    from pixeljax.victims.checkpoint import load_victim

    x = load_sample().x[:8].astype(np.float32)
    logits = load_torch_model(torch_files[kind], "nchw")
    np.testing.assert_allclose(logits(x), np.asarray(load_victim(str(ONNX)).predict(x)),
                               rtol=1e-4, atol=1e-4)
    check_same_network(logits, load_victim(str(ONNX)).predict, x, "cifar_cnn.onnx", kind)


def test_bench_measures_pytorch_beside_the_engines_on_its_onnx_export(capsys, torch_files):
    kind = "pt"
    status, out, err = run(capsys, "bench", "--model", ONNX, "--torch", torch_files[kind],
                           *SMALL)
    assert status == 0, err
    report = json.loads(out)
    assert report["torch_forward_images_per_second"] > 0
    assert report["torch_de_evaluations_per_second"] > 0
    for engine in ("dense", "incremental"):
        assert report["engine_over_torch_de"][engine] == pytest.approx(
            report["engines"][engine]["evaluations_per_second"]
            / report["torch_de_evaluations_per_second"])
    assert report["forward_over_torch_forward"] == pytest.approx(
        report["forward_images_per_second"] / report["torch_forward_images_per_second"])
    assert report["torch"]["file"] == torch_files[kind].name and report["torch"]["threads"] >= 1
    assert report["torch"]["sha256"] == hashlib.sha256(torch_files[kind].read_bytes()).hexdigest()


@pytest.mark.parametrize("kind, message", [("not", "not a TorchScript file"),
                                           ("other", "is not the network of")])
def test_a_file_that_is_not_the_onnx_models_network_is_refused(capsys, torch_files, kind,
                                                               message):
    status, out, err = run(capsys, "bench", "--model", ONNX, "--torch", torch_files[kind],
                           *SMALL)
    assert status == 2 and out == ""
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
