"""A user's own model and data from the command line: a factory in a module of their own, its
weights in an orbax checkpoint or a victim folder, images of any size and class count (28 x 28
grey, 64 x 64 colour, 100 classes), folders of PNG images, and every way that can go wrong.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from pixeljax.cli import main
from pixeljax.data import load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.victims.checkpoint import load_victim, save_victim

MODULE = textwrap.dedent('''
    import jax, jax.numpy as jnp
    from flax import nnx
    from pixeljax.models.base import SequentialVictim
    from pixeljax.models.layers import ConvBlock, GlobalAveragePool

    class Grey(nnx.Module):
        """28 x 28 grey images in [0, 1], 100 classes; not built from the project's layers."""
        input_scale = "0-1"
        image_shape = (28, 28, 1)

        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 8, (3, 3), rngs=rngs)
            self.out = nnx.Linear(8, 100, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.max(jax.nn.relu(self.conv(x)), axis=(1, 2)))

    class Probabilities(nnx.Module):
        """Returns probabilities without saying so."""
        def __init__(self, rngs):
            self.inner = Grey(rngs)

        def __call__(self, x):
            return jax.nn.softmax(self.inner(x / 255.0) * 10.0)

    def make_grey():
        return Grey(nnx.Rngs(0))

    def make_probabilities():
        return Probabilities(nnx.Rngs(0))

    def make_sequential():
        """64 x 64 colour images, 100 classes, from the project's layers: scored incrementally."""
        rngs = nnx.Rngs(1)
        return SequentialVictim([("c1", ConvBlock(3, 8, 3, rngs=rngs)),
                                 ("c2", ConvBlock(8, 100, 3, stride=2, rngs=rngs)),
                                 ("pool", GlobalAveragePool())], num_classes=100)

    _W = jax.random.normal(jax.random.key(3), (28 * 28, 100))

    def predict_grey(images):
        """A plain function with its own weights, over 28 x 28 grey pixel values."""
        x = jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1) / 255.0
        return x @ _W

    predict_grey.image_shape = (28, 28, 1)

    from flax import linen as nn

    class LinenNet(nn.Module):
        image_shape = (28, 28, 1)

        @nn.compact
        def __call__(self, x):
            return nn.Dense(100)(jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1) / 255.0)

    def make_linen():
        module = LinenNet()
        return module, module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))

    def make_linen_alone():
        return LinenNet()

    def broken():
        raise ValueError("no weights here")

    def not_a_module():
        return 3
''')


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The module on sys.path (as the current directory would be), checkpoints and data."""
    import sys

    root = tmp_path_factory.mktemp("user")
    (root / "usernets.py").write_text(MODULE)
    sys.path.insert(0, str(root))
    import usernets

    grey = usernets.make_grey()
    ocp.StandardCheckpointer().save((root / "grey-state").absolute(), nnx.state(grey))
    ocp.StandardCheckpointer().wait_until_finished()
    seq = usernets.make_sequential()
    save_victim(root / "seq-victim", seq, {"architecture": "usernets:make_sequential",
                                          "num_classes": 100})
    probs = usernets.make_probabilities()
    ocp.StandardCheckpointer().save((root / "probs-state").absolute(), nnx.state(probs))
    ocp.StandardCheckpointer().wait_until_finished()
    rng = np.random.default_rng(0)
    x28 = rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    y28 = np.asarray(grey(x28.astype(np.float32) / 255.0)).argmax(-1)
    np.savez(root / "grey.npz", x=x28, y=y28,
             class_names=np.asarray([f"kind {k}" for k in range(100)]))
    np.savez(root / "fn.npz", x=x28, y=np.asarray(usernets.predict_grey(x28)).argmax(-1))
    module, variables = usernets.make_linen()
    np.savez(root / "linen.npz", x=x28, y=np.asarray(module.apply(variables, x28)).argmax(-1))
    ocp.StandardCheckpointer().save((root / "linen-vars").absolute(), variables)
    ocp.StandardCheckpointer().wait_until_finished()
    x64 = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    y64 = np.asarray(load_victim("usernets:make_sequential", root / "seq-victim").predict(
        x64)).argmax(-1)
    np.savez(root / "colour.npz", x=x64, y=y64)
    yield root
    sys.path.remove(str(root))


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_factory_with_an_orbax_state_checkpoint_attacks_and_sweeps_grey_images(world, capsys):
    common = ["--checkpoint", world / "grey-state", "--data", world / "grey.npz", "--images",
              "3", "--first", "--quiet", "--json"]
    status, out, err = run(capsys, "attack", "usernets:make_grey", *common, "--popsize", "8",
                           "--maxiter", "2", "--out", world / "grey-attack")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["n_attacked"] == 3 and summary["scoring"].startswith("dense")
    config = results.read_config(world / "grey-attack")
    assert config["architecture"] == "usernets:make_grey"
    status, out, err = run(capsys, "sweep", "usernets:make_grey", *common, "--out",
                           world / "grey-sweep")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["candidates_per_image"] == 28 * 28 * 2  # grey: 2 corner colours
    assert summary["images_swept"] == 3 and summary["recheck_disagreements"] == 0


def test_the_model_sees_its_own_input_scale(world):
    victim = load_victim("usernets:make_grey", world / "grey-state")
    import usernets

    grey = usernets.make_grey()
    x = load_dataset(world / "grey.npz").x[:2]
    np.testing.assert_allclose(np.asarray(victim.predict(x)),
                               np.asarray(grey(x.astype(np.float32) / 255.0)), atol=1e-5)
    assert victim.metadata["input_scale"] == "0-1"


def test_class_names_travel_with_the_data(world):
    data = load_dataset(world / "grey.npz")
    assert data.num_classes == 100 and data.class_names[7] == "kind 7"


def test_a_model_of_the_projects_layers_is_scored_incrementally_at_64x64(world, capsys):
    status, out, err = run(capsys, "sweep", "usernets:make_sequential", "--checkpoint",
                           world / "seq-victim", "--data", world / "colour.npz", "--images", "2",
                           "--first", "--quiet", "--json", "--out", world / "seq-sweep")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["scoring"] == "incremental" and summary["candidates_per_image"] == 64 * 64 * 8
    assert summary["recheck_disagreements"] == 0
    status, out, err = run(capsys, "locality", "--results", world / "seq-sweep", "--radius", "1",
                           "--out", world / "seq-loc")
    if any(r["success"] for r in results.read_rows(world / "seq-sweep")):
        assert status == 0, err
    else:
        assert status == 2 and "no successful attack" in err


def test_probabilities_are_detected_and_never_softmaxed_twice(world, capsys):
    status, out, err = run(capsys, "accuracy", "usernets:make_probabilities", "--checkpoint",
                           world / "probs-state", "--data", world / "grey.npz", "--json")
    status, out, err = run(capsys, "attack", "usernets:make_probabilities", "--checkpoint",
                           world / "probs-state", "--data", world / "grey.npz", "--images", "2",
                           "--first", "--popsize", "8", "--maxiter", "1", "--quiet", "--json",
                           "--out", world / "probs-attack")
    assert "returns probabilities (its rows sum to 1), not logits" in err
    if status == 0:
        rows = results.read_rows(world / "probs-attack")
        import usernets

        model = usernets.make_probabilities()
        state = ocp.StandardCheckpointer().restore((world / "probs-state").absolute(),
                                                   nnx.state(model))
        nnx.update(model, state)
        x = load_dataset(world / "grey.npz").x[:2].astype(np.float32)
        p = np.asarray(model(x))
        for r in rows:
            assert r["true_prob_before"] == pytest.approx(float(p[r["image_index"], r["label"]]),
                                                          abs=1e-5)


@pytest.mark.parametrize("model, checkpoint, message", [
    ("nosuchmodule_xyz:make", "grey-state", "cannot import 'nosuchmodule_xyz' "
                                            "(ModuleNotFoundError"),
    ("usernets:missing", "grey-state", "'usernets' has no 'missing'"),
    ("usernets:broken", "grey-state", "the factory raised ValueError: no weights here"),
    ("usernets:not_a_module", "grey-state", "returned a int, not a Flax NNX module"),
    ("usernets:make_sequential", "grey-state", "does not hold the state of this module"),
    ("usernets:make_grey", None, "a model of your own needs --checkpoint"),
])
def test_bad_user_models_are_one_error_line(world, capsys, tmp_path, model, checkpoint,
                                            message):
    argv = ["attack", model, "--data", world / "grey.npz", "--images", "1", "--popsize", "8",
            "--maxiter", "1", "--quiet", "--out", tmp_path / "out"]
    if checkpoint:
        argv += ["--checkpoint", world / checkpoint]
    status, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


def test_images_of_another_size_than_the_model_declares_are_refused(world, capsys, tmp_path):
    status, out, err = run(capsys, "attack", "usernets:make_grey", "--checkpoint",
                           world / "grey-state", "--data", world / "colour.npz", "--out",
                           tmp_path / "out", "--quiet")
    assert status == 2 and "but the network takes 28x28 images with 1 channel" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_of_class_folders_of_png_images_is_data(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs", "owls")):
        (tmp_path / "pets" / "test" / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / "test" / name / f"{i}.png")
    data = load_dataset(tmp_path / "pets", "test")
    assert data.x.shape == (6, 12, 10, 3) and data.class_names == ("cats", "dogs", "owls")
    assert data.y.tolist() == [0, 0, 1, 1, 2, 2]
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "pets" / "test" / "owls" /
                                                        "odd.png")
    with pytest.raises(PixeljaxError, match="images must all have one size"):
        load_dataset(tmp_path / "pets", "test")


def test_a_tfds_name_that_is_not_prepared_says_how_to_prepare_it(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(PixeljaxError, match=r"mnist is not prepared in .*; prepare it once with "
                                            r"'tfds build mnist --data_dir"):
        load_dataset(f"tfds:mnist:test@{tmp_path}", "test")
    with pytest.raises(PixeljaxError, match="tfds knows no data set 'nosuchset_xyz'"):
        load_dataset(f"tfds:nosuchset_xyz@{tmp_path}", "test")


def test_a_suite_attacks_and_sweeps_a_users_model_and_reports_with_its_class_names(world):
    from pixeljax.evaluation import AttackSpec, Suite, Victim, run_suite, write_report

    suite = Suite(name="user-test", victims=(Victim("grey", architecture="usernets:make_grey",
                                                    checkpoint=str(world / "grey-state")),),
                  pixels=(1,), modes=("non-targeted", "sweep"), images=3,
                  data=str(world / "grey.npz"), attack=AttackSpec(popsize=8, maxiter=2))
    summaries = run_suite(suite, world / "suite", progress=False)
    assert [s["mode"] for s in summaries] == ["non-targeted", "sweep"]
    assert summaries[1]["candidates_per_image"] == 28 * 28 * 2
    text = write_report(world / "suite").read_text()
    assert "| grey | 1 | sweep |" in text
    record = json.loads((world / "suite" / "suite.json").read_text())
    assert record["class_names"][:2] == ["kind 0", "kind 1"] and len(record["class_names"]) == 100


def test_a_plain_predict_function_is_attacked_and_swept_and_reloaded(world, capsys):
    for command, out in (("attack", "fn-attack"), ("sweep", "fn-sweep")):
        extra = ["--popsize", "8", "--maxiter", "2"] if command == "attack" else []
        status, text, err = run(capsys, command, "--predict", "usernets:predict_grey", "--data",
                                world / "fn.npz", "--images", "3", "--first", "--quiet",
                                "--json", *extra, "--out", world / out)
        assert status == 0, err
        summary = json.loads(text)
        assert summary["model"] == "usernets:predict_grey" and summary["n_attacked"] == 3
        assert summary["scoring"].startswith("dense")
    config = results.read_config(world / "fn-sweep")
    assert config["architecture"] == "predict:usernets:predict_grey"
    victim = load_victim(config["architecture"], None)
    assert victim.predict(np.zeros((2, 28, 28, 1), np.uint8)).shape == (2, 100)


def test_bfloat16_for_a_plain_function_is_one_error_line_and_leaves_no_folder(world, capsys):
    for command in ("attack", "sweep"):
        out = world / f"fn-bf16-{command}"
        status, text, err = run(capsys, command, "--predict", "usernets:predict_grey", "--data",
                                world / "fn.npz", "--images", "2", "--quiet", "--precision",
                                "bfloat16", "--out", out)
        assert status == 2 and not out.exists()
        assert err.count("error:") == 1 and "scores in float32 only: drop --precision" in err


@pytest.mark.parametrize("argv, message", [
    (["usernets:make_grey", "--predict", "usernets:predict_grey"], "name the victim once"),
    (["--predict", "usernets:predict_grey", "--checkpoint", "x"], "no --checkpoint"),
    (["--predict", "not a reference"], "--predict takes module.path:function"),
])
def test_predict_option_mistakes_are_one_error_line(world, capsys, tmp_path, argv, message):
    status, out, err = run(capsys, "attack", *argv, "--data", world / "grey.npz", "--out",
                           tmp_path / "out", "--quiet")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("factory, checkpoint", [("usernets:make_linen", None),
                                                 ("usernets:make_linen_alone", "linen-vars")])
def test_a_linen_module_with_its_variables_is_attacked(world, capsys, tmp_path, factory,
                                                       checkpoint):
    argv = ["attack", factory, "--data", world / "linen.npz", "--images", "2", "--first",
            "--popsize", "8", "--maxiter", "2", "--quiet", "--json", "--out", tmp_path / "out"]
    if checkpoint:
        argv += ["--checkpoint", world / checkpoint]
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["n_attacked"] == 2 and summary["scoring"].startswith("dense")
    config = results.read_config(tmp_path / "out")
    from pixeljax.victims import checkpoint_ref

    again = load_victim(config["architecture"], checkpoint_ref.resolve(config, tmp_path / "out"))
    x = load_dataset(world / "linen.npz").x[:2]
    module, variables = __import__("usernets").make_linen()
    np.testing.assert_allclose(np.asarray(again.predict(x)),
                               np.asarray(module.apply(variables, x)), atol=1e-5)


def test_input_scale_and_outputs_given_on_the_command_line_are_recorded(world, capsys, tmp_path):
    status, out, err = run(capsys, "attack", "usernets:make_probabilities", "--checkpoint",
                           world / "probs-state", "--outputs", "probabilities", "--data",
                           world / "grey.npz", "--images", "2", "--first", "--popsize", "8",
                           "--maxiter", "1", "--quiet", "--json", "--out", tmp_path / "out")
    assert status in (0, 1), err
    assert "returns probabilities" not in err  # declared, so nothing to detect
    config = results.read_config(tmp_path / "out")
    assert config["outputs"] == "probabilities"
    status, out, err = run(capsys, "attack", "allconv", "--input-scale", "0-1", "--out",
                           tmp_path / "other", "--quiet")
    assert status == 2 and "are for models of your own" in err
    assert not (tmp_path / "other").exists()
