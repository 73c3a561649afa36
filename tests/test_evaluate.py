"""Evaluation suites end to end on CPU: a tiny victim trained by its recipe, then attacked in
every cell; resume, skipping and every refusal (unknown names, other suites or settings,
corrupt results) checked on it.

The expensive part (train a tiny network for two short epochs, attack 12 images) runs once per
module; the other tests reuse its results folder or its trained checkpoint.
"""

import dataclasses
import json
import shutil
import textwrap

import pytest

from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation import (
    EngineSizes,
    Suite,
    Victim,
    load_suite,
    make_plan,
    run_suite,
    runner,
    suite_names,
    write_report,
)
from pixeljax.evaluation import plan as plan_module
from pixeljax.evaluation.runner import with_images
from pixeljax.evaluation.suite import SUITES
from pixeljax.models import registry
from pixeljax.runs import results

# The same sizes everywhere: one compilation per module.
ENGINE = dict(sizes=EngineSizes(slots=4, batch_size=32))
IMAGES = 12


def write_suite(folder, *, name="tiny-test", victim=None, images=IMAGES,
                modes=("non-targeted", "all-targets")):
    """A suite file like the shipped ones: the command first, then SUITE = Suite(...)."""
    victim = victim or ("Victim('tiny', recipe=load_recipe('tiny').replace(epochs=2, "
                        "learning_rate=0.1, checkpoint_every=1000), train_images=1024, "
                        "eval_images=200)")
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(textwrap.dedent(f'''\
        """A tiny suite for the tests.

            pixeljax evaluate {path} --train-data CIFAR10/train-0.npz --out OUT
        """
        from pixeljax.evaluation import AttackSpec, Suite, Victim
        from pixeljax.training import load_recipe

        SUITE = Suite(name={name!r}, victims=({victim},), pixels=(1,), modes={modes!r},
                      images={images}, data="sample",
                      attack=AttackSpec(popsize=8, maxiter=4))
        '''))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shared_cifar10):
    """Runs the tiny suite once: trains the victim from its recipe, then attacks both cells."""
    root = tmp_path_factory.mktemp("evaluate")
    suite_file = write_suite(root)
    out = root / "out"
    log = []
    summaries = run_suite(load_suite(suite_file), out,
                          train_data=str(shared_cifar10 / "train-0.npz"), train_missing=True,
                          progress=False, log=log.append, **ENGINE)
    return {"suite_file": suite_file, "out": out, "summaries": summaries, "log": log,
            "checkpoint": out / "tiny" / "checkpoint"}


def checkpoint_suite(folder, checkpoint, **kw):
    return write_suite(folder, victim=f"Victim('tiny', checkpoint={str(checkpoint)!r})", **kw)


# --- suite files --------------------------------------------------------------------------

def test_shipped_suites_are_listed_and_load_by_name_with_a_dash():
    assert {"paper-cifar10", "quick"} <= set(suite_names())
    assert load_suite("paper-cifar10").name == "paper-cifar10"


def test_the_robustness_suite_attacks_the_shipped_allconv_behind_every_defence_and_tuned():
    from pixeljax.victims.defences import KINDS, parse_defences

    suite = load_suite("robustness-cpu")
    defended = [v.defence for v in suite.victims if v.defence is not None]
    assert {v.architecture or v.name for v in suite.victims} == {"allconv"}
    assert {parse_defences(d)[0].kind for d in defended} == set(KINDS)
    tuned = [v for v in suite.victims if v.checkpoint == "shipped:allconv-adv1px"]
    assert len(tuned) == 1 and tuned[0].defence is None
    assert suite.pixels == (1, 3, 5) and suite.modes == ("non-targeted",)
    assert len(suite.cell_list()) == 3 * (len(defended) + 2) and suite.sample == 30


def test_paper_suite_is_the_papers_grid_at_full_budget_on_every_image():
    suite = load_suite("paper-cifar10")
    assert [v.name for v in suite.victims] == ["allconv", "nin", "vgg16"]
    assert suite.pixels == (1, 3, 5) and suite.modes == ("non-targeted", "all-targets")
    a = suite.attack
    assert (a.popsize, a.maxiter, a.F, a.crossover) == (400, 100, 0.5, None)
    assert suite.images is None and suite.sample is None
    assert len(suite.cell_list()) == 18
    assert with_images(suite, sample=500).sample == 500


def test_quick_suite_is_the_same_grid_on_a_handful_of_images_and_a_small_budget():
    paper, quick = load_suite("paper-cifar10"), load_suite("quick")
    assert [c.key for c in quick.cell_list()] == [c.key for c in paper.cell_list()]
    assert quick.images <= 10 and quick.attack.popsize * quick.attack.maxiter < 1000
    assert quick.data == "sample"


def test_every_suite_file_starts_with_the_command_that_runs_it():
    for name in suite_names():
        text = (SUITES / f"{name.replace('-', '_')}.py").read_text()
        assert f"pixeljax evaluate {name}" in text.split('"""')[1]


def test_unknown_suite_is_an_error_naming_the_known_ones():
    with pytest.raises(PixeljaxError, match="unknown suite 'nope'.*paper-cifar10"):
        load_suite("nope")


def test_suite_rejects_bad_grids():
    with pytest.raises(PixeljaxError, match="modes"):
        Suite(name="x", victims=(Victim("tiny"),), modes=("sideways",))
    with pytest.raises(PixeljaxError, match="not both"):
        Suite(name="x", victims=(Victim("tiny"),), images=5, sample=5)
    with pytest.raises(PixeljaxError, match="unique"):
        Suite(name="x", victims=(Victim("tiny"), Victim("tiny")))


# --- problems found up front ------------------------------------------------------------------

def test_every_problem_is_reported_up_front_and_nothing_is_written(tmp_path):
    suite = Suite(name="broken", victims=(Victim("resnet999"),
                                          Victim("mine", recipe="no_such_recipe")),
                  data=str(tmp_path / "no-data"))
    with pytest.raises(PixeljaxError) as e:
        run_suite(suite, tmp_path / "out", progress=False)
    message = str(e.value)
    assert "unknown model 'resnet999'" in message
    assert "unknown recipe 'no_such_recipe'" in message
    assert "no-data" in message and "does not exist" in message
    assert not (tmp_path / "out").exists()


def test_victim_without_checkpoint_or_recipe_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "shipped_checkpoint", lambda name: tmp_path / "nothing")
    suite = Suite(name="x", victims=(Victim("tiny"),), data="sample")
    with pytest.raises(PixeljaxError, match="no checkpoint .* and no recipe"):
        make_plan(suite, tmp_path / "out")


def test_training_on_the_shipped_sample_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "shipped_checkpoint", lambda name: tmp_path / "nothing")
    suite = Suite(name="x", victims=(Victim("tiny", recipe="tiny"),), data="sample")
    with pytest.raises(PixeljaxError, match="test images only; pass --train-data"):
        make_plan(suite, tmp_path / "out", train_missing=True)


def test_a_victim_without_checkpoint_is_skipped_unless_training_is_asked_for(
        tmp_path, monkeypatch):
    shipped = plan_module.shipped_checkpoint
    monkeypatch.setattr(plan_module, "shipped_checkpoint",
                        lambda name: tmp_path / "nothing" if name == "tiny" else shipped(name))
    suite = Suite(name="x", victims=(Victim("tiny", recipe="tiny"),), data="sample", images=2)
    with pytest.raises(PixeljaxError, match="no victim to attack: tiny has no checkpoint; pass "
                                            "--train-missing to train it first"):
        make_plan(suite, tmp_path / "out")
    suite = Suite(name="x", victims=(Victim("tiny", recipe="tiny"),
                                     Victim("allconv", recipe="allconv")), data="sample", images=2)
    plan = make_plan(suite, tmp_path / "out")
    assert list(plan.victims) == ["allconv"] and [v.victim.name for v in plan.skipped] == ["tiny"]
    assert {c.cell.victim.name for c in plan.cells} == {"allconv"}
    assert plan.train_set is None  # nothing loads the training set either
    assert "tiny (tiny): no checkpoint; skipped (5 epochs with recipe tiny: pass " \
           "--train-missing to train it first)" in plan.describe()


def test_a_users_own_architecture_is_planned_for_training_from_its_recipe_file(
        tmp_path, monkeypatch, shared_cifar10):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone afterwards
    recipe = tmp_path / "mynet.py"
    recipe.write_text(textwrap.dedent("""\
        from pixeljax.models import register_model
        from pixeljax.models.tiny import tiny
        from pixeljax.training import TrainConfig

        register_model("mynet", tiny)
        RECIPE = TrainConfig(model="mynet", epochs=1, batch_size=64)
        """))
    suite = Suite(name="mine", victims=(Victim("mine", recipe=str(recipe)),), data="sample",
                  images=4)
    plan = make_plan(suite, tmp_path / "out", train_data=str(shared_cifar10 / "train-0.npz"),
                     train_missing=True)
    victim = plan.victims["mine"]
    assert (victim.architecture, victim.needs_training) == ("mynet", True)
    assert victim.checkpoint == tmp_path / "out" / "mine" / "checkpoint"
    assert "mine (mynet): to train first (1 epoch on" in plan.describe()


# --- the train-and-attack pipeline ------------------------------------------------------------

def test_suite_trains_a_missing_victim_then_attacks_every_cell(trained_run):
    out = trained_run["out"]
    meta = json.loads((trained_run["checkpoint"] / "metadata.json").read_text())
    assert meta["architecture"] == "tiny" and meta["trained_by_suite"] == "tiny-test"
    assert meta["train_images"] == 1024 and meta["epochs"] == 2
    assert (out / "tiny" / "train" / "config.json").is_file()
    record = json.loads((out / "suite.json").read_text())
    assert record["suite"] == "tiny-test"
    assert record["cells"] == ["tiny/1px-non-targeted", "tiny/1px-all-targets"]
    planned = {"non-targeted": IMAGES, "all-targets": IMAGES * 9}
    attacked = {}
    for key, summary in zip(record["cells"], trained_run["summaries"]):
        mode = key.split("px-")[1]
        rows = results.read_rows(out / key)
        assert len(rows) == len({r["attack_id"] for r in rows}) == planned[mode]
        assert summary["mode"] == mode and summary["n_images"] == IMAGES
        attacked[mode] = {r["image_index"] for r in rows if r["status"] != "skipped"}
        assert results.read_config(out / key)["suite"] == "tiny-test"
    assert attacked["non-targeted"] == attacked["all-targets"]  # the same victim, same images
    assert attacked["non-targeted"], "the trained tiny network should get some images right"
    assert any("[2/2] tiny/1px-all-targets" in line for line in trained_run["log"])


def test_report_of_the_run_has_every_cell_and_its_figures(trained_run):
    path = write_report(trained_run["out"])
    text = path.read_text()
    assert "| tiny | 1 | non-targeted |" in text and "| tiny | 1 | all-targets |" in text
    for png in ("success_by_pixels", "class_pairs_tiny", "classes_reached_tiny",
                "examples_tiny"):
        assert f"figures/{png}.png" in text
        assert (trained_run["out"] / "figures" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_finished_cells_are_skipped_without_training_or_attacking(trained_run, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished suite must not train or attack again")

    monkeypatch.setattr(runner, "train_victim", fail)
    monkeypatch.setattr(runner, "attack_folder", fail)
    summaries = run_suite(load_suite(trained_run["suite_file"]), trained_run["out"],
                          progress=False, **ENGINE)
    assert [s["mode"] for s in summaries] == ["non-targeted", "all-targets"]


def test_resume_after_a_kill_keeps_every_finished_row_exactly_once(trained_run, tmp_path,
                                                                   monkeypatch):
    suite = load_suite(checkpoint_suite(tmp_path, trained_run["checkpoint"], name="resume",
                                        modes=("all-targets",)))
    out = tmp_path / "out"
    cell = out / "tiny" / "1px-all-targets"
    real = runner.attack_folder

    def killed_after_first_harvest(*args, on_rows=None, **kwargs):
        def hook(rows):
            on_rows(rows)
            raise KeyboardInterrupt

        return real(*args, on_rows=hook, **kwargs)

    monkeypatch.setattr(runner, "attack_folder", killed_after_first_harvest)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, progress=False, **ENGINE)
    before = {r["attack_id"]: r for r in results.read_rows(cell)}
    assert 0 < len(before) < IMAGES * 9
    with open(cell / results.RESULTS, "a") as f:  # a kill in the middle of writing a row
        f.write("123456,7,3,")
    monkeypatch.setattr(runner, "attack_folder", real)
    run_suite(suite, out, progress=False, **ENGINE)
    after = results.read_rows(cell)
    ids = [r["attack_id"] for r in after]
    assert len(ids) == len(set(ids)) == IMAGES * 9
    by_id = {r["attack_id"]: r for r in after}
    assert all(by_id[a] == r for a, r in before.items())
    # The resumed run found what the uninterrupted one did: results do not depend on the kill.
    uninterrupted = {r["attack_id"]: r for r in
                     results.read_rows(trained_run["out"] / "tiny" / "1px-all-targets")}
    for a, r in by_id.items():
        assert (r["status"], r["adversarial_class"], r["x0"], r["y0"]) == (
            uninterrupted[a]["status"], uninterrupted[a]["adversarial_class"],
            uninterrupted[a]["x0"], uninterrupted[a]["y0"])


def test_sample_option_attacks_a_random_sample(trained_run, tmp_path):
    suite = load_suite(checkpoint_suite(tmp_path, trained_run["checkpoint"]))
    plan = make_plan(with_images(suite, sample=5), tmp_path / "out")
    assert (plan.first, plan.n_images, plan.settings()["first"]) == (False, 5, False)
    assert plan.total == 5 + 5 * 9 and plan.done == 0


# --- refusing to mix results ------------------------------------------------------------------

def test_results_folder_of_another_suite_is_refused(trained_run, tmp_path):
    other = load_suite(checkpoint_suite(tmp_path, trained_run["checkpoint"], name="other"))
    with pytest.raises(PixeljaxError, match="holds results of suite 'tiny-test', not 'other'"):
        run_suite(other, trained_run["out"], progress=False, **ENGINE)


def test_results_folder_with_other_settings_is_refused(trained_run):
    suite = load_suite(trained_run["suite_file"])
    with pytest.raises(PixeljaxError, match="other settings.*seed: 0 there, 3 now"):
        make_plan(dataclasses.replace(suite, attack=suite.attack.replace(seed=3)),
                  trained_run["out"])
    # Fewer images than its cells hold: each such cell is another configuration.
    with pytest.raises(PixeljaxError, match="cell tiny/1px-non-targeted: .* another "
                                            "configuration \\(n_images: 12 there, 5 now\\)"):
        make_plan(with_images(suite, images=5), trained_run["out"])


def test_a_cell_of_another_configuration_is_refused_up_front(trained_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(trained_run["out"], out)
    config = out / "tiny" / "1px-all-targets" / results.CONFIG
    config.write_text(json.dumps({**json.loads(config.read_text()), "popsize": 999}))
    with pytest.raises(PixeljaxError, match="1px-all-targets.*another configuration.*popsize"):
        make_plan(load_suite(trained_run["suite_file"]), out)


def test_a_corrupt_results_file_is_reported_up_front(trained_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(trained_run["out"], out)
    path = out / "tiny" / "1px-non-targeted" / results.RESULTS
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "garbage,line\n"
    path.write_text("".join(lines))
    with pytest.raises(PixeljaxError, match="1px-non-targeted.*corrupt"):
        make_plan(load_suite(trained_run["suite_file"]), out)


def test_a_non_empty_folder_that_is_no_suite_is_refused(tmp_path):
    (tmp_path / "something.txt").write_text("mine")
    suite = Suite(name="x", victims=(Victim("resnet20", recipe="resnet20"),), data="sample")
    with pytest.raises(PixeljaxError, match="not empty and holds no suite.json"):
        make_plan(suite, tmp_path)


# --- command line ------------------------------------------------------------------------------

def test_cli_reports_an_unknown_suite_as_one_error_line(tmp_path, capsys):
    assert main(["evaluate", "no-such-suite", "--out", str(tmp_path / "o")]) == 2
    assert "error: unknown suite 'no-such-suite'" in capsys.readouterr().err


def test_cli_report_on_a_folder_that_is_no_suite_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not the results folder of a suite" in capsys.readouterr().err


def test_cli_dry_run_prints_the_plan_of_a_finished_suite(trained_run, capsys):
    assert main(["evaluate", str(trained_run["suite_file"]), "--out",
                 str(trained_run["out"]), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "suite tiny-test: 2 cells" in printed and "0 of 2 cells to run" in printed


def test_cli_dense_flag_scores_every_cell_densely(trained_run, tmp_path):
    suite = checkpoint_suite(tmp_path, trained_run["checkpoint"], modes=("non-targeted",))
    out = tmp_path / "out"
    assert main(["evaluate", str(suite), "--out", str(out), "--dense", "--quiet",
                 "--no-report", "--slots", "4", "--batch-size", "32"]) == 0
    assert results.read_summary(out / "tiny" / "1px-non-targeted")["scoring"].startswith("dense")
    default = tmp_path / "default"
    assert main(["evaluate", str(suite), "--out", str(default), "--quiet", "--no-report",
                 "--slots", "4", "--batch-size", "32"]) == 0
    assert results.read_summary(default / "tiny" / "1px-non-targeted")["scoring"] == "incremental"


def test_cli_evaluate_that_attacks_no_image_says_so_and_fails(trained_run, tmp_path, capsys):
    import numpy as np

    from pixeljax.data import load_sample
    from pixeljax.victims.checkpoint import load_victim

    sample = load_sample()
    x = sample.x[:3]
    predicted = np.asarray(load_victim("tiny", trained_run["checkpoint"]).predict(x)).argmax(-1)
    np.savez(tmp_path / "wrong.npz", x=x, y=(predicted + 1) % 10)  # all misclassified
    suite = checkpoint_suite(tmp_path, trained_run["checkpoint"], images=3,
                             modes=("non-targeted",))
    assert main(["evaluate", str(suite), "--out", str(tmp_path / "out"), "--data",
                 str(tmp_path / "wrong.npz"), "--quiet", "--no-report", "--slots", "4",
                 "--batch-size", "32"]) == 1
    assert "error: no cell attacked any image: every victim misclassifies all 3 selected " \
           "image(s)" in capsys.readouterr().err
