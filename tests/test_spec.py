"""The attack specification: one value from the command line, a suite cell or the Python API
to the engine, and the one config.json schema."""

import json

import jax
import numpy as np
import pytest
from _sharding_support import VICTIM, attack, victim_and_data

from pixeljax.attack import pixel_attack
from pixeljax.attack.sizes import (
    ATTACK_SLOTS,
    CPU_BATCH_SIZE,
    SEGMENT,
    SWEEP_SLOTS,
    EngineSizes,
    SweepSizes,
)
from pixeljax.attack.spec import DEFAULTS, OPTION_FIELDS, AttackSpec
from pixeljax.cli import build_parser
from pixeljax.cli.attack import attack_spec
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation import Suite, Victim
from pixeljax.evaluation.suite import Cell
from pixeljax.runs import results
from pixeljax.runs.modes import Mode
from pixeljax.sweep.spec import SweepSpec


def test_the_defaults_are_the_papers():
    assert (DEFAULTS.pixels, DEFAULTS.goal, DEFAULTS.popsize, DEFAULTS.maxiter) == (
        1, Mode.NON_TARGETED, 400, 100)
    assert (DEFAULTS.strategy, DEFAULTS.F, DEFAULTS.crossover) == ("rand1", 0.5, None)


def test_config_round_trips_and_leaves_out_the_engine_sizes():
    sizes = EngineSizes(slots=5, batch_size=64, dense=True)
    spec = AttackSpec(pixels=3, goal="targeted", target_class=4, n_images=7, popsize=20,
                      maxiter=3, F=0.7, crossover=0.2, sizes=sizes)
    config = json.loads(json.dumps(spec.to_config()))
    assert config["mode"] == "targeted" and "slots" not in config and "dense" not in config
    assert AttackSpec.from_config(config, sizes) == spec
    assert AttackSpec.from_config(config) == spec.replace(sizes=EngineSizes())


@pytest.mark.parametrize("changes, message", [
    (dict(goal="sideways"), "goal must be one of"),
    (dict(goal="sweep"), "the sweep is pixel_sweep and SweepSpec"),
    (dict(goal="targeted"), "a targeted attack needs target_class"),
    (dict(target_class=3), "target_class is for targeted attacks only"),
    (dict(popsize=3), "popsize must be an integer >= 4, got 3"),
    (dict(strategy="best2"), "unknown strategy 'best2'"),
    (dict(n_images=0), "n_images must be an integer >= 1"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(popsize=2**21), "popsize must be an integer <= 1048576"),
    (dict(F=0), r"F must be a finite number in \(0, 2\]"),
    (dict(sizes=dict(slots=2)), "sizes must be an EngineSizes"),
])
def test_bad_settings_are_refused_when_the_spec_is_made(changes, message):
    with pytest.raises(PixeljaxError, match=message):
        AttackSpec(**changes)


@pytest.mark.parametrize("changes, message", [
    (dict(dense="yes"), "dense must be True or False"),
    (dict(slots=0), "slots must be an integer >= 1, got 0"),
    (dict(batch_size=2.0), "batch_size must be an integer >= 1, got 2.0"),
    (dict(segment=True), "segment must be an integer >= 1, got True"),
])
def test_bad_engine_sizes_are_refused_in_the_spec_and_its_replace(changes, message):
    with pytest.raises(PixeljaxError, match=message):
        EngineSizes(**changes)
    with pytest.raises(PixeljaxError, match=message):
        DEFAULTS.replace(**changes)


def test_engine_sizes_are_resolved_once_for_the_platform_and_the_devices():
    unset = EngineSizes()
    assert unset.resolve(per_slot=400, n_devices=1, platform="cpu") == EngineSizes(
        slots=ATTACK_SLOTS, batch_size=CPU_BATCH_SIZE, segment=SEGMENT, dense=False)
    assert unset.resolve(per_slot=400, n_devices=1, platform="gpu").batch_size == 1024
    # Slots round up to the devices; the micro-batch is what one device's slots can fill.
    assert EngineSizes(slots=5, batch_size=1024).resolve(per_slot=8, n_devices=2) == \
        EngineSizes(slots=6, batch_size=24, segment=SEGMENT)
    assert EngineSizes(batch_size=16).resolve(per_slot=8, n_devices=1).batch_size == 16
    # A sweep's default is its own; fewer tasks than the default slots leave slots idle (one
    # program for every run), more slots than the default are never more than the tasks.
    assert SweepSizes().resolve(per_slot=8192, n_devices=1, tasks=3).slots == SWEEP_SLOTS
    assert EngineSizes(slots=2000).resolve(per_slot=8, n_devices=1, tasks=2).slots == \
        ATTACK_SLOTS
    assert EngineSizes(slots=2000).resolve(per_slot=8, n_devices=1, tasks=100).slots == 100
    spec = DEFAULTS.replace(popsize=8, slots=4)
    assert spec.resolved_sizes(1).batch_size == min(32, CPU_BATCH_SIZE)
    # A sweep's sizes (whose summary records the slots) keep the sweep's default.
    assert SweepSpec().resolved_sizes((32, 32, 3), 1, images=100).slots == SWEEP_SLOTS
    assert SweepSpec().replace(slots=8).resolved_sizes((32, 32, 3), 1, images=100).slots == 8
    # A sweep has no DE generations: its sizes have no segment, and say so.
    assert "segment" not in SweepSizes.fields()
    with pytest.raises(PixeljaxError, match="segment is not one of the sizes of SweepSizes"):
        SweepSpec().replace(segment=3)
    with pytest.raises(PixeljaxError, match="sizes must be a SweepSizes, got EngineSizes"):
        SweepSpec(sizes=EngineSizes(slots=2))
    # A suite's sizes reach its sweep cells without the segment.
    assert SweepSizes.of(EngineSizes(slots=3, segment=7, dense=True)) == SweepSizes(
        slots=3, dense=True)


@pytest.mark.parametrize("changes, message", [
    (dict(pixels=()), "suite s: pixels must hold at least one value (integers >= 1)"),
    (dict(pixels=(1, 1)), "suite s: pixels must not repeat, got (1, 1)"),
    (dict(pixels=(0, 3)), "suite s: pixels must be integers >= 1, got (0, 3)"),
    (dict(pixels=3), "suite s: pixels must be a tuple, got 3"),
    (dict(modes=("sideways",)), "suite s: modes must be among ('non-targeted', 'all-targets', "
                                "'sweep'), got ('sideways',)"),
    (dict(images=0), "suite s: images must be an integer >= 1, got 0"),
    (dict(sample=2.5), "suite s: sample must be an integer >= 1, got 2.5"),
])
def test_a_suites_settings_are_checked_fields(changes, message):
    with pytest.raises(PixeljaxError) as e:
        Suite(name="s", victims=(Victim("tiny"),), **changes)
    assert str(e.value) == message
    suite = Suite(name="s", victims=(Victim("tiny"),), pixels=[1, 3], modes=["sweep"])
    assert (suite.pixels, suite.modes) == ((1, 3), ("sweep",))  # normalised to tuples


def test_evaluates_selection_options_are_the_suites_fields(capsys):
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["evaluate"].format_help()
    assert "a seeded random sample of N images (the paper: 500)" in " ".join(help_text.split())
    for option in ("--images", "--sample"):
        with pytest.raises(SystemExit):
            parser.parse_args(["evaluate", "quick", "--out", "o", option, "0"])
        assert "expected an integer >= 1, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of the two
        parser.parse_args(["evaluate", "quick", "--out", "o", "--images", "2", "--sample", "3"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_command_line_options_are_the_specs_fields_with_its_checks(capsys):
    parser = build_parser()
    for option, value, bound in (("--popsize", "3", ">= 4"),
                                 ("--popsize", "99999999999999999999", "<= 1048576"),
                                 ("--segment", "2147483648", "<= 2147483647"),
                                 ("--F", "0", "in (0, 2]"), ("--slots", "0", ">= 1"),
                                 ("--true-threshold", "2", "in [0, 1]")):
        with pytest.raises(SystemExit):
            parser.parse_args(["attack", "allconv", "--out", "o", option, value])
        err = capsys.readouterr().err
        assert f"{bound}, got '{value}'" in err, err
    help_text = parser._subparsers._group_actions[0].choices["attack"].format_help()
    for field in OPTION_FIELDS:
        assert "--" + field.replace("_", "-") in help_text
    every = attack_spec(parser.parse_args(["attack", "allconv", "--out", "o", "--images",
                                           "all"]))
    assert every.n_images is None  # all images: asked for, never the default


@pytest.mark.parametrize("options, message", [
    (["--target-threshold", "0.9"], "--target-threshold stops targeted attacks"),
    (["--all-targets", "--true-threshold", "0.3"], "--true-threshold stops non-targeted"),
    (["--targeted", "3", "--true-threshold", "0.3"], "--true-threshold stops non-targeted"),
])
def test_a_stopping_rule_the_goal_never_uses_is_refused(options, message, tmp_path, capsys):
    from pixeljax.cli import main

    out = tmp_path / "run"
    assert main(["attack", "allconv", "--out", str(out), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1] and not out.exists()


def test_the_command_line_builds_the_same_spec_as_the_api():
    parser = build_parser()
    args = parser.parse_args(["attack", "allconv", "--out", "o", "--targeted", "2", "--images",
                              "9", "--popsize", "30", "--crossover", "0.1", "--slots", "6"])
    assert attack_spec(args) == AttackSpec(goal=Mode.TARGETED, target_class=2, n_images=9,
                                           popsize=30, crossover=0.1,
                                           sizes=EngineSizes(slots=6))
    unset = attack_spec(parser.parse_args(["attack", "allconv", "--out", "o"]))
    assert unset == DEFAULTS.replace(n_images=100)  # the command's own default


def test_a_suite_cell_is_a_spec_with_the_suites_settings():
    attack = AttackSpec(popsize=20, maxiter=5, F=0.6, seed=2)
    suite = Suite(name="s", victims=(Victim("allconv"),), pixels=(3,), attack=attack)
    cell = Cell(suite.victims[0], 3, "all-targets")
    spec = suite.spec(cell, n_images=10, first=True, sizes=EngineSizes(slots=8))
    assert spec == attack.replace(pixels=3, goal=Mode.ALL_TARGETS, n_images=10, first=True,
                                  slots=8)
    with pytest.raises(PixeljaxError, match="suite s: attack sets pixels, n_images"):
        Suite(name="s", victims=(Victim("allconv"),), attack=AttackSpec(pixels=3, n_images=5))
    with pytest.raises(PixeljaxError, match="suite s: attack must be an AttackSpec"):
        Suite(name="s", victims=(Victim("allconv"),), attack={"popsize": 20})


def test_a_results_folder_records_the_victim_and_the_spec(tmp_path):
    attack(tmp_path / "run")
    config = results.read_config(tmp_path / "run")
    spec = AttackSpec.from_config(config)
    assert {k: config[k] for k in VICTIM} == VICTIM
    assert spec.to_config() == {k: config[k] for k in spec.to_config()}
    with pytest.raises(PixeljaxError, match="checkpoint missing"):
        results.run_config(spec, {"model": "m", "architecture": "m"})


def test_the_victim_block_is_one_record_built_and_read_in_one_place():
    from pixeljax.runs.victim_record import VictimRecord

    cli = VictimRecord(model="allconv", architecture="allconv", checkpoint="shipped:allconv",
                       data="sample", split="test")
    assert cli.to_config() == {"model": "allconv", "architecture": "allconv",
                               "checkpoint": "shipped:allconv", "data": "sample",
                               "split": "test"}
    cell = VictimRecord(suite="s", model="a", architecture="allconv", checkpoint="../checkpoint")
    assert cell.to_config()["checkpoint_exported"] is None  # a suite cell always records it
    config = results.run_config(DEFAULTS, cell)
    assert VictimRecord.from_config(config) == cell
    assert VictimRecord.of(cli.to_config()) == cli
    with pytest.raises(PixeljaxError, match="unknown field"):
        results.run_config(DEFAULTS, {**cli.to_config(), "popsize": 3})


def test_pixel_attack_takes_a_spec_or_its_fields_and_defaults_the_key_to_the_seed():
    predict, data = victim_and_data()
    spec = AttackSpec(popsize=8, maxiter=3, seed=3).replace(slots=4, batch_size=16)
    by_spec = pixel_attack(predict, data.x, data.y, spec)
    by_fields = pixel_attack(predict, data.x, data.y, popsize=8, maxiter=3, slots=4,
                             batch_size=16, key=jax.random.key(3))
    for field in ("success", "adversarial_class", "perturbation", "evaluations"):
        np.testing.assert_array_equal(getattr(by_spec, field), getattr(by_fields, field))
    with pytest.raises(PixeljaxError, match="unknown attack setting"):
        pixel_attack(predict, data.x, data.y, popsize=8, crossover_rate=0.5)


def test_a_targeted_spec_leaves_out_images_of_the_target_class_in_the_library_too(tmp_path):
    predict, data = victim_and_data()
    target = int(np.bincount(data.y).argmax())
    spec = AttackSpec(goal=Mode.TARGETED, target_class=target, popsize=8, maxiter=2,
                      first=True).replace(slots=4, batch_size=16)
    result = pixel_attack(predict, data.x, data.y, spec)
    assert (data.y[result.image_index] != target).all() and (result.target == target).all()
    assert len(result.image_index) == int((data.y != target).sum())
    from pixeljax.attack.run import attack_folder

    attack_folder(predict, data, tmp_path / "run", spec, victim=VICTIM, progress=False)
    rows = results.read_rows(tmp_path / "run")
    assert sorted(r["image_index"] for r in rows) == sorted(data.index[data.y != target])
