"""A user's model and inputs that do not fit, refused or handled: a model that fails on the
data, input scales and checkpoints of the wrong kind, class names that cannot be read or told
apart, folders of a plain predict function analysed, a run killed before its first row, another
selection of images on a resume, a report of any results folder.

Each test runs the defect's command and asserts the exact outcome: one error line (and nothing
written), or the right result.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from pixeljax.attack import pixel_attack
from pixeljax.cli import main
from pixeljax.data import load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model
from pixeljax.runs import results

MODULE = textwrap.dedent('''
    import jax, jax.numpy as jnp
    from flax import linen as nn
    from flax import nnx
    from pixeljax.models.base import SequentialVictim
    from pixeljax.models.layers import ConvBlock, GlobalAveragePool

    class Flat8(nnx.Module):
        """Built for 8 x 8 colour images (a flatten and a dense layer); declares no size."""
        def __init__(self, rngs):
            self.out = nnx.Linear(8 * 8 * 3, 4, rngs=rngs)

        def __call__(self, x):
            return self.out(x.reshape(x.shape[0], -1) / 255.0)

    class Colour(nnx.Module):
        """A convolution over 3 channels; declares no size."""
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)

        def __call__(self, x):
            return jnp.max(self.conv(x), axis=(1, 2))

    class Linen(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1) / 255.0)

    class Probabilities(nnx.Module):
        """Returns probabilities without saying so."""
        def __init__(self, rngs):
            self.inner = Flat8(rngs)

        def __call__(self, x):
            return jax.nn.softmax(self.inner(x) * 10.0)

    def make_flat8():
        return Flat8(nnx.Rngs(0))

    def make_probabilities():
        return Probabilities(nnx.Rngs(0))

    def make_colour():
        return Colour(nnx.Rngs(0))

    def make_linen():
        return Linen()

    def make_sequential():
        """The project's layers, any image size, no image_shape declared."""
        rngs = nnx.Rngs(1)
        return SequentialVictim([("c1", ConvBlock(3, 8, 3, rngs=rngs)),
                                 ("c2", ConvBlock(8, 4, 3, stride=2, rngs=rngs)),
                                 ("pool", GlobalAveragePool())], num_classes=4)

    _W = jax.random.normal(jax.random.key(3), (8 * 8 * 3, 4))

    def predict8(images):
        """A plain function with its own weights, over 8 x 8 colour pixel values."""
        x = jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1) / 255.0
        return 0.05 * x @ _W

    predict8.image_shape = (8, 8, 3)
''')


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The module importable (as from the current directory), NNX checkpoints, and data: 8 x 8
    and 16 x 16 colour, 16 x 16 grey, each labelled by the plain function on 8 x 8."""
    root = tmp_path_factory.mktemp("third")
    (root / "thirdnets.py").write_text(MODULE)
    sys.path.insert(0, str(root))
    import thirdnets

    checkpointer = ocp.StandardCheckpointer()
    for name in ("flat8", "colour", "probabilities"):
        checkpointer.save((root / f"{name}-state").absolute(),
                          nnx.state(getattr(thirdnets, f"make_{name}")()))
        checkpointer.wait_until_finished()
    checkpointer.close()
    rng = np.random.default_rng(0)
    x8 = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    y8 = np.asarray(thirdnets.predict8(x8)).argmax(-1)
    np.savez(root / "x8.npz", x=x8, y=y8)
    np.savez(root / "x16.npz", x=rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8),
             y=np.arange(4) % 4)
    np.savez(root / "grey16.npz", x=rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8),
             y=np.arange(4) % 4)
    yield root
    sys.path.remove(str(root))


def run(capsys, *argv) -> tuple[int, str, str]:
    """``pixeljax ARGV``: its exit status, stdout and stderr."""
    return (main([str(a) for a in argv]), *capsys.readouterr())


def refusal(capsys, *argv) -> str:
    """The one error line of a command that must be refused (exit status 2)."""
    status, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), (status, err)
    return lines[0]


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


BUDGET = ["--popsize", "10", "--maxiter", "6", "--quiet"]


@pytest.fixture(scope="module")
def predict_runs(world):
    """An attack and a sweep of the plain function (``--predict``) on the 8 x 8 images."""
    for command, extra in (("attack", BUDGET), ("sweep", ["--quiet"])):
        assert main([command, "--predict", "thirdnets:predict8", "--data",
                     str(world / "x8.npz"), "--images", "8", *extra, "--out",
                     str(world / f"predict-{command}")]) == 0
    return world / "predict-attack", world / "predict-sweep"


# -- the Python API: the module's own size, or the data's -----------------------------------------

def test_the_api_attacks_a_sequential_victim_declaring_no_size_at_the_datas_size(world):
    import thirdnets

    model = thirdnets.make_sequential()
    model.eval()
    x = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    y = np.asarray(model(x)).argmax(-1)
    result = pixel_attack(model, x, y, popsize=8, maxiter=1, slots=2)
    assert result.perturbation.shape == (2, 1, 5)
    with pytest.raises(PixeljaxError, match=r"the network takes 32x32 images with 3 channels"):
        pixel_attack(create_model("tiny"), x, y, popsize=8, maxiter=1)  # a registered victim
    with pytest.raises(PixeljaxError, match=r"cannot be applied to images of shape \(16, 16, 3\): "
                                            r"TypeError: dot_general"):
        pixel_attack(thirdnets.make_flat8(), x, y, popsize=8, maxiter=1)


# -- one error line instead of a traceback --------------------------------------------------------

@pytest.mark.parametrize("factory, data, message", [
    ("flat8", "x16.npz", "error: thirdnets:make_flat8: --data {d} ({d}): the model cannot be "
                         "applied to images of shape (16, 16, 3): TypeError: dot_general requires "
                         "contracting dimensions to have the same shape, got (768,) and (192,)."),
    ("colour", "grey16.npz", "error: thirdnets:make_colour: --data {d} ({d}): the model cannot be "
                             "applied to images of shape (16, 16, 1): ValueError: "
                             "conv_general_dilated lhs feature dimension size divided by "
                             "feature_group_count must equal the rhs input feature dimension "
                             "size, but 1 // 1 != 3."),
])
@pytest.mark.parametrize("command", ["attack", "sweep", "accuracy"])
def test_a_model_that_fails_on_the_data_is_one_error_line(world, capsys, tmp_path, factory,
                                                          data, message, command):
    out = [] if command == "accuracy" else ["--out", tmp_path / "out", "--quiet"]
    line = refusal(capsys, command, f"thirdnets:make_{factory}", "--checkpoint",
                   world / f"{factory}-state", "--data", world / data, *out)
    assert line == message.format(d=world / data)
    assert not (tmp_path / "out").exists()


def test_a_suite_whose_model_fails_on_its_data_is_refused_before_any_work(world, tmp_path):
    import thirdnets

    from pixeljax.evaluation import AttackSpec, Suite, Victim, run_suite
    from pixeljax.victims.checkpoint import save_victim

    save_victim(tmp_path / "flat8", thirdnets.make_flat8(),
                {"architecture": "thirdnets:make_flat8", "num_classes": 4})
    suite = Suite(name="fails", victims=(Victim("flat", architecture="thirdnets:make_flat8",
                                                checkpoint=str(tmp_path / "flat8")),),
                  pixels=(1,), modes=("non-targeted",), images=2, data=str(world / "x16.npz"),
                  attack=AttackSpec(popsize=8, maxiter=1))
    with pytest.raises(PixeljaxError) as refused:
        run_suite(suite, tmp_path / "out", progress=False)
    assert str(refused.value) == (
        "suite fails cannot run: victim flat: thirdnets:make_flat8: the suite's data: the model "
        "cannot be applied to images of shape (16, 16, 3): TypeError: dot_general requires "
        "contracting dimensions to have the same shape, got (768,) and (192,).")
    assert not (tmp_path / "out").exists()


def test_an_input_scale_of_another_channel_count_is_one_error_line(world, capsys, tmp_path):
    data = world / "x8.npz"
    line = refusal(capsys, "attack", "thirdnets:make_colour", "--checkpoint",
                   world / "colour-state", "--input-scale", "mean-std:0.5,0.5/0.2,0.2",
                   "--data", data, "--out", tmp_path / "out", "--quiet")
    assert line == (
        f"error: thirdnets:make_colour: --data {data} ({data}) has 3-channel images, but the "
        f"input scale mean-std:0.5,0.5/0.2,0.2 gives 2 means and stds; give one per channel (or "
        f"one for all)")
    assert not (tmp_path / "out").exists()


def test_a_linen_module_given_an_nnx_checkpoint_is_one_error_line(world, capsys, tmp_path):
    line = refusal(capsys, "attack", "thirdnets:make_linen", "--checkpoint",
                   world / "colour-state", "--data", world / "x8.npz", "--out",
                   tmp_path / "out", "--quiet")
    assert line == (
        f"error: model thirdnets:make_linen: checkpoint {world / 'colour-state'} holds no Linen "
        f"variables (no 'params' collection, found ['conv']; an NNX checkpoint of "
        f"nnx.state(model)?); save the variables of module.init")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("names, message", [
    (np.asarray(["a", "b", "c", "d"], dtype=object),
     "'class_names' is an array of Python objects, which is not read (it would need a pickle); "
     "save it as strings: class_names=np.asarray(names, dtype=str)"),
    (np.asarray(["a", "b", "a", "d"]),
     "'class_names' names two classes 'a' (classes [0, 2]); every class needs a name of its own"),
    (np.asarray(["a", " ", "c", "d"]),
     "'class_names' has an empty name for class 1; every class needs one to tell it apart in "
     "tables and figures"),
])
def test_class_names_that_cannot_be_read_or_told_apart_are_one_error_line(world, capsys,
                                                                           tmp_path, names,
                                                                           message):
    data = tmp_path / "named.npz"
    np.savez(data, x=np.zeros((2, 8, 8, 3), np.uint8), y=np.asarray([0, 1]), class_names=names)
    line = refusal(capsys, "attack", "--predict", "thirdnets:predict8", "--data", data,
                   "--out", tmp_path / "out", "--quiet")
    assert line == f"error: {data}: {message}"
    assert not (tmp_path / "out").exists()


# -- the folders of a plain predict function are analysed -----------------------------------------

def test_the_folders_of_a_predict_function_are_exported_and_analysed(predict_runs, capsys,
                                                                      tmp_path):
    for folder in predict_runs:
        fooled = sum(r["success"] for r in results.read_rows(folder))
        assert fooled, "the test needs successful attacks"
        status, _, err = run(capsys, "export-adversarial", folder, "--out",
                             tmp_path / f"{folder.name}.npz")
        assert status == 0, err
        exported = load_dataset(tmp_path / f"{folder.name}.npz")
        assert len(exported) == fooled and exported.x.shape[1:] == (8, 8, 3)
        with np.load(tmp_path / f"{folder.name}.npz") as f:
            attacked = json.loads(str(f["attacked"]))
        assert attacked["architecture"] == "predict:thirdnets:predict8"
        status, out, err = run(capsys, "locality", "--results", folder, "--radius", "1",
                               "--out", tmp_path / f"{folder.name}-loc")
        assert status == 0, err
        assert (tmp_path / f"{folder.name}-loc" / "locality.csv").is_file()
        line = refusal(capsys, "propagation", "--results", folder, "--out",
                       tmp_path / f"{folder.name}-prop")
        assert line == (
            "error: thirdnets:predict8 exposes no layers, only its output (a plain predict "
            "function or a Linen module): propagation maps need a network with "
            "activations(images), such as a SequentialVictim")
        assert not (tmp_path / f"{folder.name}-prop").exists()


# -- a run killed before its first row ------------------------------------------------------------

def test_a_run_killed_before_its_first_row_holds_no_finished_attack(predict_runs, capsys,
                                                                    tmp_path):
    folder = tmp_path / "killed"
    folder.mkdir()
    (folder / "config.json").write_bytes((predict_runs[0] / "config.json").read_bytes())
    header = (predict_runs[0] / "results.csv").read_text().splitlines()[0]
    (folder / "results.csv").write_text(header + "\n")
    before = listing(folder)
    expected = (f"error: {folder} holds no finished attack: its results.csv has no rows (the run "
                f"stopped before its first attack finished); run its command again to resume "
                f"it")
    for argv in (["export-adversarial", folder, "--out", tmp_path / "adv.npz"],
                 ["locality", "--results", folder, "--radius", "1", "--out", tmp_path / "loc"],
                 ["propagation", "--results", folder, "--out", tmp_path / "prop"]):
        line = refusal(capsys, *argv)
        assert line == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]
    assert listing(folder) == before


# -- another selection on a resume ----------------------------------------------------------------

def test_changing_images_on_a_resume_says_the_selection_changed_and_how_to_resume(
        predict_runs, capsys):
    folder = predict_runs[0]
    before = listing(folder)
    line = refusal(capsys, "attack", "--predict", "thirdnets:predict8", "--data",
                   folder.parent / "x8.npz", "--images", "5", *BUDGET, "--out", folder)
    assert line == (
        f"error: {folder} holds attacks on another selection of images (n_images: 8 there, 5 "
        f"now); resume with the options of that run (--images 8 --seed 0), or start a new run "
        f"in another --out")
    line = refusal(capsys, "sweep", "--predict", "thirdnets:predict8", "--data",
                   folder.parent / "x8.npz", "--images", "3", "--first", "--quiet",
                   "--out", predict_runs[1])
    assert line == (
        f"error: {predict_runs[1]} holds attacks on another selection of images (first: False "
        f"there, True now, n_images: 8 there, 3 now); resume with the options of that run "
        f"(--images 8 --seed 0), or start a new run in another --out")
    assert listing(folder) == before


# -- a report of any results folder ---------------------------------------------------------------

def test_report_writes_the_report_of_a_plain_attack_or_sweep_folder(predict_runs, capsys,
                                                                    tmp_path):
    import shutil

    for folder in predict_runs:
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        status, out, err = run(capsys, "report", copy)
        assert status == 0 and out.strip() == f"report: {copy / 'report.md'}", err
        text = (copy / "report.md").read_text()
        assert text.startswith(f"# One-pixel attack: results folder `{folder.name}`")
        summary = results.read_summary(copy)
        mode = summary["mode"]
        fooled = f"({summary['n_success']}/{summary['n_attacked']})"
        assert f"| thirdnets:predict8 | 1 | {mode} | 100.0% (8/8) |" in text and fooled in text
        assert "Progress: 1 of 1 cells complete" in text
        assert ("| population | 10 |" in text) == (mode != "sweep")
        assert ("| colour levels | [0, 255] |" in text) == (mode == "sweep")
        cells = (copy / "tables" / "cells.csv").read_text().splitlines()
        assert len(cells) == 2 and ",complete," in cells[1]
        assert (copy / "figures" / "class_pairs_thirdnets:predict8.png").is_file()
    line = refusal(capsys, "report", tmp_path / "nothing")
    assert line == (
        f"error: {tmp_path / 'nothing'} is not the results folder of a suite (no suite.json), "
        f"nor of an attack or sweep (no config.json); give the --out folder of 'pixeljax "
        f"evaluate', 'attack' or 'sweep'")


# -- the cheap low cases --------------------------------------------------------------------------

def test_a_factory_named_with_a_dot_gets_the_colon_as_a_hint(world, capsys, tmp_path):
    line = refusal(capsys, "attack", "thirdnets.make_flat8", "--checkpoint",
                   world / "flat8-state", "--data", world / "x8.npz", "--out",
                   tmp_path / "out", "--quiet")
    assert line == (
        "error: unknown model 'thirdnets.make_flat8'; expected one of allconv, allconv_imagenet, "
        "nin, resnet20, tiny, vgg16; a model of your own is named module.path:factory, with a "
        "colon: thirdnets:make_flat8?")
    assert not (tmp_path / "out").exists()


def test_explicit_logits_are_scored_as_logits_not_overruled_by_detection(world, capsys,
                                                                         tmp_path):
    status, _, err = run(capsys, "attack", "thirdnets:make_probabilities", "--checkpoint",
                         world / "probabilities-state", "--outputs", "logits", "--data",
                         world / "x8.npz", "--images", "2", "--first", *BUDGET, "--out",
                         tmp_path / "out")
    assert status in (0, 1) and "returns probabilities" not in err, err
    assert results.read_config(tmp_path / "out")["outputs"] == "logits"
    import jax
    import thirdnets

    model = thirdnets.make_probabilities()
    x = load_dataset(world / "x8.npz").x[:2]
    logits = np.asarray(model(x.astype(np.float32)))  # its probabilities, taken as logits
    expected = np.asarray(jax.nn.softmax(logits, -1))
    for r in results.read_rows(tmp_path / "out"):
        assert r["true_prob_before"] == pytest.approx(
            float(expected[r["image_index"], r["label"]]), abs=1e-5)


def test_declared_probabilities_of_a_logits_model_are_one_error_line(world, capsys, tmp_path):
    line = refusal(capsys, "attack", "thirdnets:make_flat8", "--checkpoint",
                   world / "flat8-state", "--outputs", "probabilities", "--data",
                   world / "x8.npz", "--out", tmp_path / "out", "--quiet")
    assert line == (
        "error: thirdnets:make_flat8 is declared to return probabilities (--outputs or its "
        "outputs attribute), but its outputs on the data are not (negative, or rows that do "
        "not sum to 1): declare logits, or nothing")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scale, shown", [
    ("mean-std:0,0,0/inf,1,1", "(0.0, 0.0, 0.0) and (inf, 1.0, 1.0)"),
    ("mean-std:nan,0,0/1,1,1", "(nan, 0.0, 0.0) and (1.0, 1.0, 1.0)"),
    ("mean-std:0,0,0/0,1,1", "(0.0, 0.0, 0.0) and (0.0, 1.0, 1.0)"),
])
def test_a_non_finite_or_zero_input_scale_is_one_error_line(world, capsys, tmp_path, scale,
                                                           shown):
    line = refusal(capsys, "attack", "thirdnets:make_colour", "--checkpoint",
                   world / "colour-state", "--input-scale", scale, "--data",
                   world / "x8.npz", "--out", tmp_path / "out", "--quiet")
    assert line == (
        f"error: input scale: mean and std need one finite value per channel and std > 0, got "
        f"{shown}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec, message", [
    ("tfds:", "--data tfds: names no data set; give tfds (CIFAR-10), tfds:DATA_DIR or "
              "tfds:NAME[:SPLIT][@DATA_DIR]"),
    ("tfds::test", "--data tfds::test names no data set before :; give "
                   "tfds:NAME[:SPLIT][@DATA_DIR]"),
])
def test_tfds_with_no_name_is_one_error_line_and_downloads_nothing(capsys, tmp_path, spec,
                                                                   message):
    line = refusal(capsys, "attack", "allconv", "--data", spec, "--out", tmp_path / "out",
                   "--quiet")
    assert line == f"error: {message}"
    assert not (tmp_path / "out").exists()


def test_data_naming_other_classes_than_the_model_has_are_one_error_line(world, capsys,
                                                                        tmp_path):
    data = tmp_path / "ten.npz"
    np.savez(data, x=np.zeros((2, 8, 8, 3), np.uint8), y=np.asarray([0, 1]),
             class_names=np.asarray([f"kind {k}" for k in range(10)]))
    line = refusal(capsys, "attack", "thirdnets:make_flat8", "--checkpoint",
                   world / "flat8-state", "--data", data, "--out", tmp_path / "out",
                   "--quiet")
    assert line == (
        f"error: --data {data} ({data}) names 10 classes (kind 0, kind 1, kind 2, ...), but the "
        f"model has 4; give data of the model's classes")
    assert not (tmp_path / "out").exists()


def test_random_adversarial_training_records_no_de_settings(capsys, tmp_path):
    from pixeljax.training import loop
    from pixeljax.training.config import TrainConfig

    recipe = TrainConfig(model="tiny", adversarial_fraction=0.5).to_dict()
    assert recipe["adversarial"] == "random" and "adversarial_popsize" not in recipe
    assert "adversarial_generations" not in recipe
    searched = TrainConfig(model="tiny", adversarial_fraction=0.5, adversarial="de").to_dict()
    assert searched["adversarial_popsize"] == 20 and searched["adversarial_generations"] == 5
    # A work dir of an earlier development version, which recorded them, is another recipe.
    (tmp_path / "config.json").write_text(json.dumps({**recipe, "adversarial_popsize": 20,
                                                      "adversarial_generations": 5}))
    with pytest.raises(PixeljaxError, match="holds a run of another recipe .differs in "
                                            "adversarial_generations, adversarial_popsize"):
        loop._check_json(tmp_path / "config.json", recipe, "another recipe")
    line = refusal(capsys, "train", "tiny", "--data", "sample", "--workdir",
                   tmp_path / "work", "--adversarial-fraction", "0.5",
                   "--adversarial-popsize", "8")
    assert line == (
        "error: --adversarial-popsize set(s) the DE search, but adversarial images are found at "
        "random ('random'): drop them, or give --adversarial de")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("lost", ["nontargeted.csv", "maps"])
def test_a_finished_sweep_missing_its_maps_or_nontargeted_rows_is_refused_not_zeroed(
        predict_runs, capsys, tmp_path, lost):
    import shutil

    folder = tmp_path / "sweep"
    shutil.copytree(predict_runs[1], folder)
    shutil.rmtree(folder / lost) if lost == "maps" else (folder / lost).unlink()
    before = listing(folder)
    line = refusal(capsys, "sweep", "--predict", "thirdnets:predict8", "--data",
                   predict_runs[1].parent / "x8.npz", "--images", "8", "--quiet", "--out",
                   folder)
    name = "maps/" if lost == "maps" else lost
    assert line == (
        f"error: {folder}: {name} lack(s) swept images that results.csv holds (8 missing from "
        f"{name}, e.g. image 0), deleted or damaged since; they cannot be rebuilt from the "
        f"rows: restore them, or sweep into a new folder")
    assert listing(folder) == before and (folder / "maps").is_dir() == (lost != "maps")
