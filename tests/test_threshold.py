"""The threshold (L-infinity) attack: every pixel value changes by at most ``th``.

Most tests use a hand-written victim with a planted weakness (``_threshold_support``): its
class flips once the image's mean moves by more than 1.9 pixel values, which changes of at most
3 can do and changes of at most 2 cannot (a clipped pixel stays where it is).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import _threshold_support as support
import numpy as np
import pytest
from _attack_support import (
    TINY_ENGINE,
    boundary_file,
    boundary_sample,
    kill_after_first_harvest,
    published_in_readme,
)

from pixeljax.attack import AttackSpec, pixel_attack, threshold_attack
from pixeljax.attack.run import attack_folder
from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult

REPO = Path(__file__).resolve().parents[1]


def _attack(th: int, **settings):
    x, y = support.images()
    return x, threshold_attack(support.mean_model(), x, y, th, **{**support.ENGINE, **settings})


def _rows(folder) -> list[dict]:
    return sorted(results.read_rows(folder), key=lambda r: r["attack_id"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted all-targets run at th = 3 into a results folder."""
    out = tmp_path_factory.mktemp("threshold") / "run"
    support.attack(out)
    return out


@pytest.fixture(scope="module")
def cmaes(tmp_path_factory):
    """The same run, searched by CMA-ES."""
    out = tmp_path_factory.mktemp("threshold") / "cmaes"
    support.attack(out, "cmaes")
    return out


# -- what a result is ----------------------------------------------------------------------------

@pytest.mark.parametrize("goal", ["non-targeted", "all-targets"])
def test_every_result_changes_each_pixel_value_by_at_most_th_and_is_a_uint8_image(goal):
    x, found = _attack(3, goal=goal)
    clean = x[found.image_index].astype(int)
    adversarial = found.adversarial
    assert adversarial.dtype == np.uint8 and found.delta.dtype == np.int16
    assert np.abs(found.delta).max() <= 3 and np.abs(adversarial.astype(int) - clean).max() <= 3
    np.testing.assert_array_equal(adversarial, np.clip(clean + found.delta, 0, 255))
    assert found.perturbation.shape == (len(found), 0, 5) and found.pixels == 0
    assert not found.delta[found.skipped].any()
    # the recorded class is the victim's on the uint8 image
    logits = np.asarray(support.mean_model()(adversarial))
    attacked = ~found.skipped
    np.testing.assert_array_equal(logits.argmax(-1)[attacked], found.adversarial_class[attacked])


def test_the_planted_weakness_is_found_at_its_level_and_not_below():
    for th in (1, 2):
        _, found = _attack(th, goal="all-targets")
        assert not found.success.any() and (~found.skipped).sum() == 10
        assert (found.generations[~found.skipped] == support.ENGINE["maxiter"]).all()
    for goal in ("non-targeted", "all-targets"):
        _, found = _attack(support.LEVEL, goal=goal)
        attacked = ~found.skipped
        assert found.success[attacked].all()
        shift = found.adversarial.reshape(len(found), -1).mean(1) - 100
        assert (np.abs(shift[attacked]) > support.MARGIN).all()
    _, down = _attack(support.LEVEL, goal="targeted", target_class=2)
    assert (down.adversarial_class[~down.skipped] == 2).all()


def test_a_threshold_outside_1_to_255_or_with_pixels_is_refused():
    for bad in (0, -1, 256, 2.5, True):
        with pytest.raises(PixeljaxError, match="threshold must be an integer"):
            AttackSpec(threshold=bad)
    with pytest.raises(PixeljaxError, match="give threshold or pixels, not both"):
        AttackSpec(threshold=3, pixels=2)
    assert AttackSpec(threshold=255).threshold == 255


def test_the_configuration_records_the_threshold_and_no_pixel_count():
    config = AttackSpec(threshold=7).to_config()
    assert config["threshold"] == 7 and config["pixels"] is None
    assert AttackSpec.from_config(config) == AttackSpec(threshold=7)
    assert "threshold" not in AttackSpec(pixels=3).to_config()  # pixel folders unchanged
    assert AttackSpec.from_config(AttackSpec(pixels=3).to_config()).threshold is None


def test_a_change_field_round_trips_through_the_results_file(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(-255, 256, (4, 5, 3)).astype(np.int16)
    np.testing.assert_array_equal(results.decode_delta(results.encode_delta(small)), small)
    with pytest.raises(PixeljaxError, match="corrupt"):
        results.decode_delta("4x5x3:bm90IHpsaWI=")
    # an ImageNet-sized change outgrows the csv module's default field size
    big = rng.integers(-10, 11, (1, 224, 224, 3)).astype(np.int16)
    found = AttackResult(attack_id=[1], image_index=[0], label=[0], target=[-1],
                         status=["failure"], adversarial_class=[0], confidence=[0.9],
                         true_prob_before=[0.9], true_prob_after=[0.9],
                         perturbation=np.zeros((1, 0, 5)), generations=[1], evaluations=[8],
                         nonfinite=[0], precision_flip=[False], delta=big)
    with results.ResultsWriter(tmp_path, 1, 3, threshold=True) as writer:
        writer.write(found.to_rows())
    (tmp_path / results.CONFIG).write_text(json.dumps(AttackSpec(threshold=10).to_config()))
    back = AttackResult.from_folder(tmp_path)
    assert back.threshold and back.channels == 3
    np.testing.assert_array_equal(back.delta, big)


# -- runs ----------------------------------------------------------------------------------------

def test_a_results_folder_holds_the_changes_and_the_same_seed_gives_the_same_rows(reference,
                                                                                 tmp_path):
    rows = _rows(reference)
    with open(reference / "results.csv") as f:
        assert f.readline().strip().split(",") == list(results.columns(0, threshold=True))
    found = AttackResult.from_folder(reference)
    assert found.threshold and np.abs(found.delta).max() <= support.LEVEL
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["threshold"] == support.LEVEL and summary["pixels"] is None
    assert summary["n_success"] == 5 and summary["scoring"].startswith("dense")
    support.attack(tmp_path / "again")
    assert _rows(tmp_path / "again") == rows
    other = attack_folder(support.mean_model(), support.data(), tmp_path / "seed1",
                          support.spec(goal="all-targets", seed=1), victim=support.VICTIM,
                          progress=False)
    assert other["n_success"] == 5
    assert [r["delta"] for r in _rows(tmp_path / "seed1")] != [r["delta"] for r in rows]


def test_a_killed_threshold_run_resumes_to_the_rows_of_an_uninterrupted_one(reference, tmp_path,
                                                                           monkeypatch):
    out = tmp_path / "run"
    real = kill_after_first_harvest(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        support.attack(out)
    written = results.read_rows(out)
    assert 2 <= len(written) < 12  # the skipped rows, then the first harvest
    import pixeljax.attack.pipeline as pipeline

    monkeypatch.setattr(pipeline, "stream", real)
    support.attack(out)
    assert _rows(out) == _rows(reference)


def test_a_threshold_run_of_another_level_is_refused_in_the_same_folder(reference):
    with pytest.raises(PixeljaxError, match="threshold: 3 there, 4 now"):
        attack_folder(support.mean_model(), support.data(), reference,
                      support.spec(goal="all-targets", threshold=4), victim=support.VICTIM,
                      progress=False)


def test_eight_devices_give_exactly_the_rows_of_one_device(reference, cmaes, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
               JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    done = subprocess.run([sys.executable, support.__file__, "devices", str(tmp_path / "eight")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    eight = json.loads(done.stdout.splitlines()[-1])
    assert sorted(eight["de"], key=lambda r: r["attack_id"]) == _rows(reference)
    assert sorted(eight["cmaes"], key=lambda r: r["attack_id"]) == _rows(cmaes)


def test_bfloat16_scored_threshold_results_are_rechecked_in_float32(victim):
    x, y, index = boundary_sample(victim[1], n=6)
    found = pixel_attack(victim[1].predict, x, y, threshold=4, precision="bfloat16",
                         image_ids=index, **TINY_ENGINE)
    attacked = ~found.skipped
    assert found.threshold and np.abs(found.delta).max() <= 4
    logits = np.asarray(victim[1].predict(found.adversarial.astype(np.float32)))
    np.testing.assert_array_equal(logits.argmax(-1)[attacked], found.adversarial_class[attacked])


# -- CMA-ES --------------------------------------------------------------------------------------

def test_cmaes_finds_the_planted_weakness_at_its_level_and_not_below(cmaes):
    found = AttackResult.from_folder(cmaes)
    attacked = ~found.skipped
    assert found.success[attacked].all() and np.abs(found.delta).max() <= support.LEVEL
    assert json.loads((cmaes / "config.json").read_text())["search"] == "cmaes"
    x, y = support.images()
    below = threshold_attack(support.mean_model(), x, y, support.LEVEL - 1,
                             goal="all-targets", **support.CMAES)
    assert not below.success.any() and np.abs(below.delta).max() <= support.LEVEL - 1


def test_cmaes_gives_the_same_rows_for_the_same_seed_whatever_the_slots(cmaes, tmp_path):
    x, y = support.images()
    found = AttackResult.from_folder(cmaes)
    again = threshold_attack(support.mean_model(), x, y, support.LEVEL, goal="all-targets",
                             **{**support.CMAES, "slots": 3, "segment": 2})
    again = again.in_order(found.attack_id)
    np.testing.assert_array_equal(again.delta, found.delta)
    np.testing.assert_array_equal(again.generations, found.generations)


def test_cmaes_is_for_the_threshold_attack_and_needs_evosax(monkeypatch):
    with pytest.raises(PixeljaxError, match="search cmaes is for the threshold attack"):
        AttackSpec(search="cmaes")
    with pytest.raises(PixeljaxError, match="unknown search 'pso'"):
        AttackSpec(threshold=3, search="pso")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "evosax" else real(name, *a))
    with pytest.raises(PixeljaxError, match="search cmaes needs evosax"):
        AttackSpec(threshold=3, search="cmaes")


# -- the command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_file(victim, tmp_path_factory) -> Path:
    return boundary_file(victim[1], tmp_path_factory.mktemp("data"), n=6)


def _args(victim, data_file, out, *extra) -> list[str]:
    engine = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_ENGINE.items()]
    return ["attack", "tiny", f"--checkpoint={victim[0]}", f"--data={data_file}", "--images=6",
            *engine, f"--out={out}", "--quiet", *extra]


def test_the_command_runs_a_threshold_attack_and_exports_its_images(victim, data_file, tmp_path,
                                                                    capsys):
    out = tmp_path / "run"
    assert main(_args(victim, data_file, out, "--threshold", "8")) == 0
    printed = capsys.readouterr().out
    assert "tiny threshold 8 non-targeted:" in printed
    found = AttackResult.from_folder(out)
    assert found.threshold and np.abs(found.delta).max() <= 8 and found.success.any()
    exported = tmp_path / "adv.npz"
    assert main(["export-adversarial", str(out), "--out", str(exported)]) == 0
    with np.load(exported) as npz:
        assert npz["x"].dtype == np.uint8 and npz["delta"].shape[1:] == (32, 32, 3)
        assert "pixels" not in npz.files
    capsys.readouterr()
    assert main(["propagation", "--results", str(out), "--out", str(tmp_path / "maps")]) != 0
    assert "holds a threshold attack" in capsys.readouterr().err
    # The folder's report names it as the threshold variant of the one-pixel grid.
    assert main(["report", str(out)]) == 0
    assert "| tiny | 1 | non-targeted+th8 |" in (out / "report.md").read_text()


@pytest.mark.parametrize("extra,message", [
    (["--threshold", "3", "--pixels", "2"], "--pixels is for the pixel attack"),
    (["--threshold", "0"], "argument --threshold: expected an integer >= 1, got '0'"),
    (["--threshold", "256"], "argument --threshold: expected an integer <= 255, got '256'"),
    (["--threshold", "2.5"], "argument --threshold: expected an integer, got '2.5'"),
    (["--search", "pso"], "argument --search: invalid choice: 'pso'"),
    (["--search", "cmaes"], "search cmaes is for the threshold attack"),
])
def test_bad_threshold_options_are_one_error_line_and_write_nothing(victim, data_file, tmp_path,
                                                                    capsys, extra, message):
    try:
        status = main(_args(victim, data_file, tmp_path / "run", *extra))
    except SystemExit as e:  # refused while parsing
        status = e.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


# -- robustness levels ---------------------------------------------------------------------------

def test_the_levels_suite_runs_both_families_at_levels_1_3_5_10_on_allconv_and_nin():
    from pixeljax.evaluation import load_suite

    suite = load_suite("levels-cpu")
    assert [v.name for v in suite.victims] == ["allconv", "nin"]
    keys = [c.key for c in suite.cell_list() if c.victim.name == "allconv"]
    assert keys == [f"allconv/{p}px-non-targeted" for p in (1, 3, 5, 10)] + [
        f"allconv/1px-non-targeted+th{th}" for th in (1, 3, 5, 10)]
    cell = next(c for c in suite.cell_list() if c.key == "allconv/1px-non-targeted+th5")
    spec = suite.spec(cell, n_images=30, first=False)
    assert (spec.threshold, spec.search, spec.pixels) == (5, "cmaes", 1)
    assert suite.spec(suite.cell_list()[3], n_images=30, first=False).pixels == 10


def test_a_threshold_variant_has_cells_at_one_pixel_only():
    from pixeljax.evaluation import Suite, Variant, Victim

    variant = Variant("th3", attack={"threshold": 3})
    with pytest.raises(PixeljaxError, match="a threshold variant's cells sit at one pixel"):
        Suite(name="x", victims=(Victim("allconv"),), pixels=(3,), variants=(variant,))
    suite = Suite(name="x", victims=(Victim("allconv"),), pixels=(1, 3), variants=(variant,),
                  modes=("non-targeted",))
    assert [c.key for c in suite.cell_list()][-1] == "allconv/1px-non-targeted+th3"
    assert len(suite.cell_list()) == 3


def test_a_levels_suite_reports_success_and_robust_accuracy_per_family_and_level(victim,
                                                                                tmp_path):
    from pixeljax.evaluation import (
        AttackSpec,
        EngineSizes,
        Suite,
        Variant,
        Victim,
        run_suite,
        write_report,
    )

    data = boundary_file(victim[1], tmp_path, n=6)
    suite = Suite(name="levels-test", victims=(Victim("tiny", checkpoint=str(victim[0])),),
                  pixels=(1,), modes=("non-targeted",), images=6, data=str(data),
                  attack=AttackSpec(popsize=8, maxiter=3),
                  variants=tuple(Variant(f"th{th}", attack={"threshold": th, "search": "cmaes"})
                                 for th in (2, 8)))
    run_suite(suite, tmp_path / "out", progress=False, sizes=EngineSizes(slots=4, batch_size=32))
    report = write_report(tmp_path / "out").read_text()
    section = report.split("## Robustness levels")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| L")]
    assert [line.split(" | ")[:2] for line in lines] == [
        ["| L0 pixels", "1"], ["| L-inf threshold", "2"], ["| L-inf threshold", "8"]]
    rows = list(csv.DictReader(open(tmp_path / "out" / "tables" / "levels.csv")))
    for row in rows:
        assert int(row["robust"]) == int(row["attacked"]) - int(row["fooled"])
        assert float(row["robust_low"]) <= float(row["robust_accuracy"]) <= float(
            row["robust_high"])
    assert (tmp_path / "out" / "figures" / "robust_by_level.png").is_file()
    # a stronger threshold never fools fewer images here (th 8 succeeds wherever th 2 does)
    assert int(rows[2]["fooled"]) >= int(rows[1]["fooled"])
    # Its publication shows the same levels, from the stored summaries alone.
    shown = published_in_readme(tmp_path / "out", tmp_path, "levels-test")
    assert shown[0] == ("| victim | attack | level | search | mode | images | clean accuracy "
                        "[95% CI] | fooled [95% CI] | robust accuracy [95% CI] | evaluations/s |")
    assert [r.split(" | ")[1:4] for r in shown[2:]] == [
        ["L0 pixels", "1", "DE"], ["L-inf threshold", "2", "CMA-ES"],
        ["L-inf threshold", "8", "CMA-ES"]]
    for line, row in zip(shown[2:], rows):
        assert line.split(" | ")[8].startswith(
            f"{int(row['robust']) / int(row['images']):.1%} [")


def test_a_levels_table_names_each_cells_family_level_search_and_variant():
    from pixeljax.evaluation.publish import levels_table

    base = {"model": "allconv", "pixels": 1, "mode": "non-targeted", "n_images": 10,
            "planned_images": 10, "n_attacked": 8, "n_success": 2,
            "evaluations_per_second": 100.0, "threshold": None, "search": "de"}
    cells = [{**base, "key": "allconv/3px-non-targeted", "pixels": 3},
             {**base, "key": "allconv/1px-non-targeted+best1-dither"},
             {**base, "key": "allconv/1px-sweep", "mode": "sweep"},
             {**base, "key": "allconv/1px-non-targeted+th5", "threshold": 5, "search": "cmaes"},
             {**base, "key": "nin/1px-non-targeted", "model": "nin"},
             {**base, "key": "allconv/1px-non-targeted+th10", "threshold": 10,
              "search": "cmaes", "n_images": 4}]
    rows = [line.split(" | ") for line in levels_table(cells)[2:]]
    assert [r[1:5] for r in rows] == [
        ["L0 pixels", "3", "DE", "non-targeted"],
        ["L0 pixels", "1", "DE", "non-targeted+best1-dither"],
        ["L0 pixels", "1", "–", "sweep"],
        ["L-inf threshold", "5", "CMA-ES", "non-targeted"],
        ["L-inf threshold", "10", "CMA-ES", "non-targeted"],
        ["L0 pixels", "1", "DE", "non-targeted"]]  # victim by victim
    assert rows[5][0] == "| nin"
    # clean accuracy 8/10, fooled 2/8, robust (correct and not fooled) 6/10
    assert [r[6][:6] for r in rows[:4]] == ["80.0% "] * 4
    assert [r[7][:6] for r in rows[:4]] == ["25.0% "] * 4
    assert [r[8][:6] for r in rows[:4]] == ["60.0% "] * 4
    assert rows[4][5:9] == ["4 of 10 done (running)", "–", "–", "–"]  # no rates while running


# -- bench ---------------------------------------------------------------------------------------

def test_the_bench_measures_the_threshold_engine_beside_the_pixel_engine(victim, data_file):
    from pixeljax.bench.measure import BenchConfig, engine_throughput
    from pixeljax.data import load_dataset

    config = BenchConfig(images=2, popsize=TINY_ENGINE["popsize"], maxiter=2,
                         slots=TINY_ENGINE["slots"], batch_size=TINY_ENGINE["batch_size"])
    data = load_dataset(data_file)
    rate, run = engine_throughput(victim[1].predict, data, config, threshold=4)
    assert rate > 0 and run["attacked"] == 2
    # two attacks: each its initial population and at most two generations
    p = config.popsize
    assert run["evaluations"] % p == 0 and 2 * p <= run["evaluations"] <= 2 * 3 * p
