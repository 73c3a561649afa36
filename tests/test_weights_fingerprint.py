"""Every victim, whatever its form, is recorded by a fingerprint of the weights attacked, so a
resume, a suite cell, a restore from a publication or an analysis never mixes two networks:
an orbax checkpoint of a module's state, Linen variables (a factory's own, or a checkpoint's
over them) and a ``predict`` function's module file."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.victims.checkpoint import load_victim

MODULE = textwrap.dedent('''
    import jax, jax.numpy as jnp
    from flax import nnx, linen as nn

    class Net(nnx.Module):
        image_shape = (8, 8, 1)

        def __init__(self, rngs):
            self.out = nnx.Linear(64, 4, rngs=rngs)

        def __call__(self, x):
            return self.out(x.reshape(x.shape[0], -1) / 255.0)

    def make_net(seed=0):
        return Net(nnx.Rngs(seed))

    class LinenNet(nn.Module):
        image_shape = (8, 8, 1)

        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1) / 255.0)

    def make_linen(seed=0):
        module = LinenNet()
        return module, module.init(jax.random.key(seed), jnp.zeros((1, 8, 8, 1)))

    SCALE = 1.0

    def predict(images):
        """A function that holds its own weights (here: one number)."""
        return SCALE * jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1)[:, :4]

    predict.image_shape = (8, 8, 1)
''')


def save(path, tree):
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path.absolute(), tree, force=True)
    checkpointer.wait_until_finished()


@pytest.fixture()
def world(tmp_path, monkeypatch):
    (tmp_path / "weightnets.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("weightnets", None)
    import weightnets

    save(tmp_path / "state", nnx.state(weightnets.make_net(0)))
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    y = np.asarray(weightnets.make_net(0)(x.astype(np.float32))).argmax(-1)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    yield tmp_path
    sys.modules.pop("weightnets", None)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def attack(world, out, *victim):
    return ["attack", *map(str, victim), "--data", str(world / "data.npz"), "--images", "4",
            "--first", "--popsize", "8", "--maxiter", "2", "--quiet", "--json", "--out",
            str(out)]


def test_a_resume_on_an_orbax_state_saved_again_at_its_path_is_refused_and_keeps_the_rows(
        world, capsys):
    import weightnets

    out = world / "run"
    victim = ("weightnets:make_net", "--checkpoint", world / "state")
    assert main(attack(world, out, *victim)) == 0
    recorded = results.read_config(out)[results.WEIGHTS_FINGERPRINT]
    assert recorded == load_victim("weightnets:make_net", world / "state").weights_sha256
    before = (out / "results.csv").read_bytes()
    save(world / "state", nnx.state(weightnets.make_net(7)))  # retrained, saved at the path
    capsys.readouterr()
    assert main(attack(world, out, *victim)) == 2
    assert "holds attacks on other weights" in one_error_line(capsys)
    assert (out / "results.csv").read_bytes() == before
    # An analysis of the folder is refused as well, and writes nothing.
    assert main(["export-adversarial", str(out), "--out", str(world / "adv.npz")]) == 2
    assert "holds attacks on other weights" in one_error_line(capsys)
    assert not (world / "adv.npz").exists()


def test_a_checkpoint_given_to_a_factory_with_its_own_variables_is_the_one_attacked(
        world, capsys):
    import weightnets

    module, own = weightnets.make_linen(0)
    _, trained = weightnets.make_linen(1)
    save(world / "linen", trained)
    x = np.load(world / "data.npz")["x"]
    loaded = load_victim("weightnets:make_linen", world / "linen")
    np.testing.assert_allclose(np.asarray(loaded.predict(x)),
                               np.asarray(module.apply(trained, x)), atol=1e-6)
    assert loaded.weights_sha256 != load_victim("weightnets:make_linen").weights_sha256
    out = world / "linen-run"
    assert main(attack(world, out, "weightnets:make_linen", "--checkpoint", world / "linen")) \
        in (0, 1)
    config = results.read_config(out)
    assert config[results.WEIGHTS_FINGERPRINT] == loaded.weights_sha256
    # A checkpoint that does not fit the factory's variables is one error line.
    save(world / "other", {"params": {"Dense_0": {"kernel": np.zeros((3, 4), np.float32)}}})
    capsys.readouterr()
    assert main(attack(world, world / "bad", "weightnets:make_linen", "--checkpoint",
                       world / "other")) == 2
    assert "cannot read the variables" in one_error_line(capsys)
    assert not (world / "bad").exists()


def test_a_predict_function_whose_module_file_changed_is_not_resumed(world, capsys):
    out = world / "fn"
    assert main(attack(world, out, "--predict", "weightnets:predict")) in (0, 1)
    assert results.read_config(out)[results.WEIGHTS_FINGERPRINT] is not None
    path = world / "weightnets.py"
    path.write_text(path.read_text().replace("SCALE = 1.0", "SCALE = 2.0"))
    capsys.readouterr()
    assert main(attack(world, out, "--predict", "weightnets:predict")) == 2
    assert "holds attacks on other weights" in one_error_line(capsys)


def test_a_suite_never_resumes_nor_restores_cells_attacked_on_other_weights(world):
    import weightnets

    from pixeljax.evaluation import AttackSpec, Suite, Victim, run_suite
    from pixeljax.evaluation.publish import publish

    suite = Suite(name="fingerprint", victims=(Victim("net", architecture="weightnets:make_net",
                                                      checkpoint=str(world / "state")),),
                  pixels=(1,), modes=("non-targeted",), images=4,
                  data=str(world / "data.npz"), attack=AttackSpec(popsize=8, maxiter=2))
    run_suite(suite, world / "suite", progress=False)
    cell = world / "suite" / "net" / "1px-non-targeted"
    recorded = json.loads((cell / "config.json").read_text())[results.WEIGHTS_FINGERPRINT]
    assert recorded == load_victim("weightnets:make_net", world / "state").weights_sha256
    publish(world / "suite", world / "pub" / "fingerprint", command="x")
    save(world / "state", nnx.state(weightnets.make_net(7)))
    before = (cell / "results.csv").read_bytes()
    with pytest.raises(PixeljaxError, match="another configuration.*weights_sha256"):
        run_suite(suite, world / "suite", progress=False)
    assert (cell / "results.csv").read_bytes() == before
    with pytest.raises(PixeljaxError, match="the archive attacked another configuration.*"
                                            "weights_sha256"):
        run_suite(suite, world / "fresh", progress=False,
                  continue_from=world / "pub" / "fingerprint")
    assert not (world / "fresh" / "net").exists()
