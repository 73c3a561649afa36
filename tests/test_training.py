"""The training loop on real CIFAR-10: it learns, resumes exactly, and guards its work dir."""

import dataclasses
import json
import math
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from pixeljax.data import load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model, split_for_inference
from pixeljax.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]

# 512 images in batches of 64: 8 steps per epoch, 16 in all; checkpoints every 5 steps and at
# every epoch's end (steps 5, 8, 10, 15, 16).
CONFIG = TrainConfig(model="tiny", epochs=2, batch_size=64, learning_rate=0.05,
                     warmup_epochs=0.25, checkpoint_every=5, eval_batch_size=128)


@pytest.fixture(scope="module")
def data(shared_cifar10):
    train_set = load_dataset(shared_cifar10 / "train-0.npz").take(range(512))
    test_set = load_dataset(shared_cifar10 / "test.npz").take(range(128))
    return train_set, test_set


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    return workdir, train(CONFIG, *data, workdir, progress=False)


def leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]


def metric_lines(workdir):
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "elapsed_seconds"} for line in lines]


def mean_loss(model, images):
    apply, params = split_for_inference(model)
    logits = apply(params, images.x)
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, images.y).mean())


def test_a_few_training_steps_lower_the_loss(uninterrupted, data):
    train_set, _ = data
    _, result = uninterrupted
    assert result.steps == 16 and result.epochs == 2
    before = mean_loss(create_model("tiny", seed=CONFIG.seed), train_set)
    after = mean_loss(result.model, train_set)
    assert after < before
    assert after < math.log(10)  # better than chance
    assert [line["epoch"] for line in result.history] == [1, 2]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.test_accuracy == result.history[-1]["test_accuracy"]


def test_training_writes_config_metrics_and_checkpoints(uninterrupted):
    workdir, result = uninterrupted
    assert json.loads((workdir / "config.json").read_text()) == CONFIG.to_dict()
    lines = metric_lines(workdir)
    assert [(line["epoch"], line["step"]) for line in lines] == [(1, 8), (2, 16)]
    assert lines == [{k: v for k, v in h.items() if k != "elapsed_seconds"}
                     for h in result.history]
    assert lines[-1]["learning_rate"] == 0.0  # the cosine schedule ends at zero
    assert {p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()} <= \
        {"5", "8", "10", "15", "16"}


def test_killed_run_resumes_to_the_same_weights_and_metrics(uninterrupted, data, tmp_path):
    reference_dir, reference = uninterrupted
    # Killed at step 11: after epoch 1's metrics line and the checkpoints at 8 and 10.
    assert train(CONFIG, *data, tmp_path, progress=False, stop_after=11) is None
    assert [line["step"] for line in metric_lines(tmp_path)] == [8]
    # A line logged after the last checkpoint (killed before saving) is dropped on resume.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**metric_lines(tmp_path)[0], "epoch": 2, "step": 16}) + "\n")
    resumed = train(CONFIG, *data, tmp_path, progress=False)
    assert resumed.steps == reference.steps == 16
    assert len(leaves(resumed.model)) == len(leaves(reference.model))
    assert all(np.array_equal(a, b) for a, b in zip(leaves(resumed.model),
                                                    leaves(reference.model)))
    assert metric_lines(tmp_path) == metric_lines(reference_dir)


def test_finished_run_returns_its_result_without_training_again(uninterrupted, data):
    workdir, reference = uninterrupted
    again = train(CONFIG, *data, workdir, progress=False)
    assert again.steps == 16
    assert all(np.array_equal(a, b) for a, b in zip(leaves(again.model), leaves(reference.model)))
    assert metric_lines(workdir) == [{k: v for k, v in h.items() if k != "elapsed_seconds"}
                                     for h in again.history]


def test_work_dir_of_another_recipe_is_refused(uninterrupted, data):
    workdir, _ = uninterrupted
    before = (workdir / "config.json").read_text()
    other = CONFIG.replace(learning_rate=0.1, seed=1)
    with pytest.raises(PixeljaxError, match="holds a run of another recipe .*learning_rate, seed"):
        train(other, *data, workdir, progress=False)
    assert (workdir / "config.json").read_text() == before


def test_work_dir_with_a_corrupt_config_is_refused(data, tmp_path):
    (tmp_path / "config.json").write_text('{"model": "tiny", ')
    with pytest.raises(PixeljaxError, match="unreadable config.json"):
        train(CONFIG, *data, tmp_path, progress=False)


def test_training_set_smaller_than_a_batch_is_refused(data, tmp_path):
    train_set, test_set = data
    with pytest.raises(PixeljaxError, match="fewer than one batch of 64"):
        train(CONFIG, train_set.take(range(10)), test_set, tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("changes, message", [
    (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
    (dict(epochs=2.5), "epochs must be an integer >= 1, got 2.5"),
    (dict(batch_size=-8), "batch_size must be an integer >= 1, got -8"),
    (dict(checkpoint_every=0), "checkpoint_every must be an integer >= 1, got 0"),
    (dict(eval_batch_size=True), "eval_batch_size must be an integer >= 1, got True"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number > 0, got 0.0"),
    (dict(learning_rate=float("nan")), "learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate=float("inf")), "learning_rate must be a finite number > 0, got inf"),
    (dict(learning_rate=-1e-3), "learning_rate must be a finite number > 0, got -0.001"),
    (dict(weight_decay=float("inf")), "weight_decay must be a finite number >= 0, got inf"),
    (dict(learning_rate="0.1"), "learning_rate must be a number, got '0.1'"),
    (dict(warmup_epochs=-1.0), "warmup_epochs must be a finite number >= 0, got -1.0"),
    (dict(weight_decay=-1e-4), "weight_decay must be a finite number >= 0, got -0.0001"),
    (dict(crop_padding=-1), "crop_padding must be an integer >= 0, got -1"),
    (dict(crop_padding=1.5), "crop_padding must be an integer >= 0, got 1.5"),
    (dict(momentum=1.0), "momentum must be a finite number in \\[0, 1\\), got 1.0"),
    (dict(label_smoothing=1.0),
     "label_smoothing must be a finite number in \\[0, 1\\), got 1.0"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(model=""), "model must be a model name"),
    (dict(flip="yes"), "flip must be True or False, got 'yes'"),
    (dict(adversarial_fraction=1.5),
     "adversarial_fraction must be a finite number in \\[0, 1\\], got 1.5"),
    (dict(adversarial_fraction=0.5, adversarial="fgsm"),
     "unknown adversarial 'fgsm'; expected one of \\('random', 'de'\\)"),
    (dict(adversarial_popsize=3), "adversarial_popsize must be an integer >= 4, got 3"),
])
def test_bad_training_config_values_are_refused(changes, message):
    with pytest.raises(PixeljaxError, match=f"training config: {message}"):
        TrainConfig(**{"model": "tiny", **changes})


def params_of(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.mark.parametrize("source", ["workdir", "victim"])
def test_fine_tuning_starts_from_the_weights_it_names(uninterrupted, data, tmp_path, source):
    from pixeljax.training.initial import recorded
    from pixeljax.victims.checkpoint import save_victim

    workdir, result = uninterrupted
    if source == "victim":
        ref = tmp_path / "victim"
        save_victim(ref, result.model, {"architecture": "tiny", "num_classes": 10,
                                        "epochs": 2, "test_accuracy": result.test_accuracy})
    else:
        ref = workdir
    # A learning rate of almost nothing: the weights stay where the fine-tune started.
    tune = CONFIG.replace(epochs=1, learning_rate=1e-12, init_from=str(ref))
    tuned = train(tune, *data, tmp_path / "tuned", progress=False)
    for got, start in zip(params_of(tuned.model), params_of(result.model)):
        np.testing.assert_allclose(got, start, rtol=1e-6, atol=1e-7)
    fresh = train(dataclasses.replace(tune, init_from=None), *data, tmp_path / "fresh",
                  progress=False)
    assert not all(np.allclose(a, b) for a, b in zip(params_of(fresh.model),
                                                      params_of(result.model)))
    lineage = recorded(tmp_path / "tuned")
    assert lineage["epochs"] == 2
    assert lineage["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init_from"] == str(ref)
    assert "init_from" not in json.loads((tmp_path / "fresh" / "config.json").read_text())


@pytest.mark.parametrize("ref, message", [
    ("shipped:allconv", "is a 'allconv' network, not 'tiny'"),
    ("no/such/folder", "not a victim checkpoint folder, 'shipped:NAME' or a training work dir"),
])
def test_fine_tuning_from_something_unusable_is_refused_before_any_work(data, tmp_path, ref,
                                                                       message):
    with pytest.raises(PixeljaxError, match=message):
        train(CONFIG.replace(init_from=ref), *data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_every_shipped_recipe_loads_and_its_schedules_derive_from_it():
    from pixeljax.training import load_recipe, load_stages, recipe_names
    from pixeljax.training.recipes import RECIPES

    names = recipe_names()
    assert {"allconv", "nin", "vgg16", "resnet20", "tiny", "vgg16_cpu", "nin_cpu",
            "resnet20_cpu", "allconv_adv1px"} <= set(names)
    for name in names:
        stages = load_stages(name)
        family = name if (RECIPES / f"{name}.py").is_file() else name.rsplit("_", 1)[0]
        full = load_recipe(family)
        for stage in stages:
            assert stage.model == full.model, name
            # No stage chains itself by a work dir: the runner does (a shipped victim may
            # be named, as a fine-tune's start).
            assert stage.init_from is None or stage.init_from.startswith("shipped:"), name
            if stage.init_from:
                assert stage.init_from.split(":", 1)[1].replace("-", "_") in names, name
    # The shipped checkpoints' schedules are what their metadata recorded, stage by stage.
    for checkpoint, name in (("vgg16", "vgg16_cpu"), ("nin", "nin_cpu"),
                             ("resnet20", "resnet20_cpu")):
        meta = json.loads((REPO / "checkpoints" / checkpoint / "metadata.json").read_text())
        recorded = []
        while meta:
            recorded.insert(0, {k: v for k, v in meta["recipe"].items() if k != "init_from"})
            meta = meta.get("initialised_from")
        assert recorded == [s.to_dict() for s in load_stages(name)], name
    with pytest.raises(PixeljaxError, match="trains in 3 stages"):
        load_recipe("vgg16_cpu")
    with pytest.raises(PixeljaxError, match="unknown recipe 'vgg16_gpu'; expected one of"):
        load_stages("vgg16_gpu")


def test_a_schedule_trains_its_stages_in_order_each_from_the_one_before(data, tmp_path):
    from pixeljax.training import train_stages
    from pixeljax.training.initial import recorded
    from pixeljax.training.workdir import last_stage as recorded_workdir
    from pixeljax.training.workdir import restore_model

    stages = (CONFIG.replace(epochs=1), CONFIG.replace(epochs=1, learning_rate=0.01))
    seen = []
    result, config, last = train_stages(stages, *data, tmp_path / "run", progress=False,
                                        on_stage=lambda k, n, c, d: seen.append((k, n, d)))
    first, second = tmp_path / "run" / "stage-1", tmp_path / "run" / "stage-2"
    assert seen == [(1, 2, first), (2, 2, second)] and last == second
    assert config.init_from == str(first) and config.learning_rate == 0.01
    assert recorded(second)["recipe"] == stages[0].to_dict()  # started from stage 1's weights
    # Again, the work dir named by another path: both stages are finished, so nothing trains
    # and the result is the same.
    other_spelling = tmp_path / "run" / ".." / "run"
    again, *_ = train_stages(stages, *data, other_spelling, progress=False)
    assert again.steps == result.steps and again.test_accuracy == result.test_accuracy
    leaves_a, leaves_b = leaves(result.model), leaves(again.model)
    assert all(np.array_equal(a, b) for a, b in zip(leaves_a, leaves_b))
    # The schedule's folder exports and fine-tunes as its last stage.
    assert restore_model(tmp_path / "run")[2] == result.steps
    assert recorded_workdir(tmp_path / "run") == second
    # A one-stage run's work dir is not taken over by a schedule.
    with pytest.raises(PixeljaxError, match="holds a one-stage run"):
        train_stages(stages, *data, first, progress=False)


def test_a_recipe_file_of_ones_own_names_its_schedules(tmp_path):
    from pixeljax.training import load_stages

    file = tmp_path / "mine.py"
    file.write_text("from pixeljax.training import TrainConfig\n"
                    "RECIPE = TrainConfig(model='tiny', epochs=4)\n"
                    "SCHEDULES = {'short': (RECIPE.replace(epochs=1), RECIPE.replace(epochs=2))}\n")
    assert [s.epochs for s in load_stages(str(file))] == [4]
    assert [s.epochs for s in load_stages(f"{file}:short")] == [1, 2]
    with pytest.raises(PixeljaxError, match="unknown recipe"):
        load_stages(f"{file}:long")


def test_a_fine_tune_of_a_fine_tune_records_the_whole_chain(uninterrupted, data, tmp_path):
    from pixeljax.training.initial import recorded

    workdir, _ = uninterrupted
    tune = CONFIG.replace(epochs=1, init_from=str(workdir))
    train(tune, *data, tmp_path / "second", progress=False)
    train(tune.replace(init_from=str(tmp_path / "second")), *data, tmp_path / "third",
          progress=False)
    lineage = recorded(tmp_path / "third")
    assert lineage["epochs"] == 1 and lineage["recipe"]["init_from"] == str(workdir)
    assert lineage["initialised_from"]["epochs"] == 2
    assert "initialised_from" not in lineage["initialised_from"]  # the chain starts there


# -- one-pixel adversarial training --------------------------------------------------------------

def test_random_one_pixel_adversarials_change_one_pixel_to_a_corner_colour():
    from pixeljax.training.adversarial import adversarial_batch

    images = np.random.default_rng(0).integers(1, 255, (6, 8, 9, 3)).astype(np.float32)
    out = np.asarray(adversarial_batch("random", jax.random.key(3), images, np.zeros(6), 4))
    changed = (out != images).any(-1)
    assert (changed[:4].sum((1, 2)) == 1).all() and not changed[4:].any()
    assert set(np.unique(out[:4][changed[:4]])) <= {0.0, 255.0}
    again = np.asarray(adversarial_batch("random", jax.random.key(3), images, np.zeros(6), 4))
    np.testing.assert_array_equal(out, again)  # a pure function of the key


@pytest.mark.parametrize("kind", ["random", "de"])
def test_adversarial_fine_tuning_resumes_exactly_and_records_its_setting(kind, data, tmp_path):
    """A fine-tune of a trained tiny victim with half of each batch adversarial: killed and
    resumed it reaches the very weights of an uninterrupted run, and its recipe (exported into
    the victim's metadata) records the option."""
    from pixeljax.cli.foundation import _training_info

    config = CONFIG.replace(epochs=1, adversarial_fraction=0.5, adversarial=kind,
                            adversarial_popsize=8, adversarial_generations=2)
    assert config.adversarial_images == 32
    whole = train(config, *data, tmp_path / "whole", progress=False)
    assert train(config, *data, tmp_path / "cut", progress=False, stop_after=6) is None
    resumed = train(config, *data, tmp_path / "cut", progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(leaves(resumed.model), leaves(whole.model)))
    plain = train(CONFIG.replace(epochs=1), *data, tmp_path / "plain", progress=False)
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(plain.model),
                                                        leaves(whole.model)))
    recipe = _training_info(config, "x", 8, 1, 1.0, [], tmp_path / "whole")["recipe"]
    assert (recipe["adversarial_fraction"], recipe["adversarial"]) == (0.5, kind)
    assert "adversarial_fraction" not in CONFIG.to_dict()  # a recipe records what it uses


@pytest.mark.parametrize("args, message", [
    (["--adversarial-fraction", "-0.1"], "expected a finite number in [0, 1], got '-0.1'"),
    (["--adversarial-fraction", "1.5"], "expected a finite number in [0, 1], got '1.5'"),
    (["--adversarial", "de"], "give --adversarial-fraction F too"),
])
def test_a_bad_adversarial_option_is_one_error_line_and_creates_nothing(args, message, tmp_path,
                                                                       capsys):
    from pixeljax.cli import main

    try:
        code = main(["train", "tiny", "--data", "sample", "--workdir", str(tmp_path / "w"),
                     *args])
    except SystemExit as e:  # argparse's refusal
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "w").exists()


def test_a_schedule_takes_no_override_that_would_not_say_which_stage(tmp_path, capsys):
    from pixeljax.cli import main

    assert main(["train", "vgg16_cpu", "--data", "sample", "--workdir", str(tmp_path / "w"),
                 "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: recipe vgg16_cpu trains in 3 stages, so --epochs would not say "
                   "which; write a recipe file with the stages you want and train "
                   "FILE.py:SCHEDULE"]
    assert not (tmp_path / "w").exists()
