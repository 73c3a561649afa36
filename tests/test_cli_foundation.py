"""``pixeljax train``, ``export``, ``accuracy`` and ``models``, called in-process."""

import json
from pathlib import Path

import numpy as np
import pytest

import pixeljax
from pixeljax.cli import main
from pixeljax.data import load_sample
from pixeljax.models import create_model
from pixeljax.training import export_victim
from pixeljax.victims.checkpoint import load_victim

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """``(folder, metadata)`` of an exported, untrained tiny victim."""
    folder = tmp_path_factory.mktemp("cli") / "tiny"
    meta = export_victim(create_model("tiny"), folder, architecture="tiny",
                         test_set=load_sample().take(range(50)), training={})
    return folder, meta


def run(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``pixeljax ARGV``."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_accuracy_prints_json(capsys, tiny_export):
    folder, meta = tiny_export
    status, out, _ = run(capsys, "accuracy", "tiny", "--checkpoint", folder, "--data", "sample",
                         "--json")
    assert status == 0
    result = json.loads(out)
    assert set(result) == {"model", "checkpoint", "n_images", "accuracy"}
    assert result["model"] == "tiny" and result["checkpoint"] == str(folder)
    assert result["n_images"] == 500
    assert result["accuracy"] == meta["sample_accuracy"]


def test_accuracy_honours_limit_and_prints_a_sentence_without_json(capsys, tiny_export):
    status, out, _ = run(capsys, "accuracy", "tiny", "--checkpoint", tiny_export[0], "--limit", 20)
    assert status == 0
    assert out.startswith("tiny: accuracy ") and "on 20 images of shipped CIFAR-10" in out


@pytest.mark.parametrize("argv, message", [
    (["accuracy", "nope"], "error: unknown model 'nope'; expected one of "),
    (["accuracy", "tiny", "--checkpoint", "/nonexistent/tiny"], "error: checkpoint "
                                                                "/nonexistent/tiny does not exist"),
    (["accuracy", "tiny", "--data", "/nonexistent.npz"], "error: "),
])
def test_user_errors_exit_2_with_one_error_line(capsys, tiny_export, argv, message):
    if "--data" in argv:
        argv = [*argv, "--checkpoint", str(tiny_export[0])]
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(message)


def test_unknown_model_error_names_the_choices(capsys):
    _, _, err = run(capsys, "accuracy", "nope")
    assert all(name in err for name in ("allconv", "nin", "vgg16", "tiny"))


def test_bad_limit_is_a_usage_error(capsys, tiny_export):
    with pytest.raises(SystemExit) as info:
        main(["accuracy", "tiny", "--checkpoint", str(tiny_export[0]), "--limit", "0"])
    assert info.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_models_lists_the_architectures(capsys):
    status, out, _ = run(capsys, "models")
    assert status == 0
    assert {"allconv", "nin", "vgg16", "tiny"} <= set(out.split())


def test_train_then_export_end_to_end(capsys, shared_cifar10, tmp_path):
    workdir, export = tmp_path / "run", tmp_path / "tiny"
    status, out, err = run(capsys, "train", "tiny", "--data", shared_cifar10, "--workdir", workdir,
                           "--epochs", 1, "--limit", 256, "--export", export, "--quiet")
    assert status == 0, err
    assert "tiny: test accuracy" in out and "after 1 epochs (4 steps" in out
    assert f"exported to {export}" in out
    victim = load_victim("tiny", export)
    meta = victim.metadata
    assert meta["architecture"] == "tiny" and meta["epochs"] == 1 and meta["steps"] == 4
    assert meta["test_images"] == 10_000 and meta["recipe"]["epochs"] == 1
    assert meta["test_accuracy"] == meta["history"][-1]["test_accuracy"]

    again = tmp_path / "again"
    status, out, err = run(capsys, "export", "--workdir", workdir, "--data", "sample",
                           "--out", again)
    assert status == 0, err
    summary = json.loads(out.splitlines()[0])
    assert summary["architecture"] == "tiny" and summary["epochs"] == 1
    assert summary["sample_accuracy"] == meta["sample_accuracy"]
    images = load_sample().x[:16]
    np.testing.assert_array_equal(np.asarray(victim.predict(images)),
                                  np.asarray(load_victim("tiny", again).predict(images)))

    # Without --out the victim goes into the work dir, never over a shipped one.
    shipped = sorted(p.stat().st_mtime_ns for p in (REPO / "checkpoints").rglob("*"))
    status, out, err = run(capsys, "export", "--workdir", workdir, "--data", "sample")
    assert status == 0, err
    assert f"to {workdir / 'victim'}" in out
    assert load_victim("tiny", workdir / "victim").metadata["epochs"] == 1
    assert sorted(p.stat().st_mtime_ns for p in (REPO / "checkpoints").rglob("*")) == shipped
    # Nothing is ever written into the installed package.
    inside = Path(pixeljax.__file__).resolve().parent / "_exported_here"
    for argv in (["export", "--workdir", workdir, "--data", "sample", "--out", inside],
                 ["train", "tiny", "--data", shared_cifar10, "--workdir", tmp_path / "w2",
                  "--epochs", 1, "--limit", 256, "--export", inside, "--quiet"]):
        status, out, err = run(capsys, *argv)
        assert status == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "lies inside the installed pixeljax package" in lines[0]
        assert not inside.exists()
