"""``pixeljax attack`` / ``demo`` and the resumable results folder, plus ``run_bench``.

The victim is an untrained ``tiny`` network exported with ``save_victim``; the data set is an
``.npz`` of shipped sample images on which it is least sure, labelled with its own predictions
(two of them wrongly, so they are skipped), so one-pixel attacks often succeed.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from _attack_support import (
    TINY_ENGINE,
    boundary_sample,
    kill_after_first_harvest,
)

import pixeljax.attack.pipeline as pipeline
from pixeljax.attack import pixel_attack
from pixeljax.bench.measure import BenchConfig, run_bench
from pixeljax.cli import main
from pixeljax.data import load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results

SUMMARY_KEYS = {"model", "pixels", "mode", "n_images", "n_attacked", "n_skipped", "n_success",
                "success_rate", "mean_confidence", "evaluations", "wall_seconds",
                "evaluations_per_second"}
ENGINE_ARGS = ["--popsize", str(TINY_ENGINE["popsize"]), "--maxiter", str(TINY_ENGINE["maxiter"]),
               "--slots", str(TINY_ENGINE["slots"]),
               "--batch-size", str(TINY_ENGINE["batch_size"])]


@pytest.fixture(scope="module")
def data_file(victim, tmp_path_factory) -> Path:
    x, y, index = boundary_sample(victim[1])
    path = tmp_path_factory.mktemp("data") / "boundary.npz"
    np.savez(path, x=x, y=y, index=index)
    return path


def attack_args(victim, data_file, out, *extra, images: int = 12) -> list[str]:
    return ["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(data_file),
            "--images", str(images), *ENGINE_ARGS, "--out", str(out), "--quiet", *extra]


def read_csv(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference(victim, data_file, tmp_path_factory) -> Path:
    """An uninterrupted non-targeted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(attack_args(victim, data_file, out)) == 0
    return out


# -- one run -------------------------------------------------------------------------------------

def test_attack_writes_one_csv_row_per_image_and_a_summary(reference):
    rows = read_csv(reference)
    assert list(rows[0]) == list(results.columns(1))
    assert len(rows) == 12 and len({r["attack_id"] for r in rows}) == 12
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 2
    assert all(r["success"] == "0" and r["evaluations"] == "0" for r in skipped)
    attacked = [r for r in rows if r["status"] != "skipped"]
    assert {r["status"] for r in attacked} == {"success", "failure"}
    for r in attacked:
        assert r["target"] == "-1"
        assert (r["status"] == "success") == (r["success"] == "1")
        assert (r["adversarial_class"] != r["label"]) == (r["success"] == "1")
        assert int(r["evaluations"]) == 8 * (int(r["generations"]) + 1)
        assert 0 <= float(r["x0"]) <= 31 and 0 <= float(r["y0"]) <= 31

    summary = json.loads((reference / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["model"] == "tiny" and summary["pixels"] == 1
    assert summary["mode"] == "non-targeted"
    assert (summary["n_images"], summary["n_attacked"], summary["n_skipped"]) == (12, 10, 2)
    n_success = sum(r["success"] == "1" for r in rows)
    assert summary["n_success"] == n_success
    assert summary["success_rate"] == pytest.approx(n_success / 10)
    assert summary["evaluations"] == sum(int(r["evaluations"]) for r in rows)
    assert summary["wall_seconds"] > 0 and summary["evaluations_per_second"] > 0
    assert json.loads((reference / "config.json").read_text())["popsize"] == 8


def test_the_folder_holds_what_pixel_attack_returns(reference, victim, data_file):
    data = load_dataset(data_file)
    result = pixel_attack(victim[1].predict, data.x, data.y, key=jax.random.key(0),
                          image_ids=data.index, **TINY_ENGINE)
    rows = {r["attack_id"]: r for r in results.read_rows(reference)}
    assert sorted(rows) == sorted(result.attack_id)
    for a, aid in enumerate(result.attack_id):
        row = rows[int(aid)]
        assert row["image_index"] == result.image_index[a]
        assert row["success"] == result.success[a]
        assert row["adversarial_class"] == result.adversarial_class[a]
        assert (row["generations"], row["evaluations"]) == (result.generations[a],
                                                            result.evaluations[a])
        np.testing.assert_array_equal(results.perturbation(row, 1), result.perturbation[a, 0])
        assert row["confidence"] == pytest.approx(float(result.confidence[a]), rel=1e-6)


# -- resuming ------------------------------------------------------------------------------------

def test_a_killed_run_resumes_to_the_rows_of_an_uninterrupted_one(reference, victim, data_file,
                                                                  tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_stream = kill_after_first_harvest(monkeypatch)
    assert main(attack_args(victim, data_file, out)) == 130
    written = read_csv(out)
    assert 2 < len(written) < 12  # the skipped rows, then the first harvest
    # A kill in the middle of writing a row leaves half a line.
    text = (out / "results.csv").read_bytes()
    last_start = text.rstrip(b"\n").rfind(b"\n") + 1
    cut = last_start + (len(text) - last_start) // 2
    (out / "results.csv").write_bytes(text[:cut])
    lost = written[-1]["attack_id"]

    resumed = []

    def counting(apply, attacks, *args, **kwargs):
        resumed.extend(a.attack_id for a in attacks)
        return real_stream(apply, attacks, *args, **kwargs)

    monkeypatch.setattr(pipeline, "stream", counting)
    assert main(attack_args(victim, data_file, out)) == 0
    # Only the unfinished attacks (and the one whose row was cut) ran again.
    assert sorted(resumed) == sorted(int(r["attack_id"]) for r in read_csv(reference)
                                     if r["attack_id"] not in
                                     {w["attack_id"] for w in written[:-1]})
    assert int(lost) in resumed
    rows = read_csv(out)
    ids = [r["attack_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 12
    by_id = lambda rs: sorted(rs, key=lambda r: int(r["attack_id"]))  # noqa: E731
    assert by_id(rows) == by_id(read_csv(reference))
    summary = json.loads((out / "summary.json").read_text())
    expected = json.loads((reference / "summary.json").read_text())
    for key in ("n_images", "n_attacked", "n_skipped", "n_success", "success_rate",
                "mean_confidence", "evaluations"):
        assert summary[key] == expected[key], key


def test_a_results_file_cut_inside_its_header_is_started_afresh(reference, victim, data_file,
                                                                tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_bytes((reference / "config.json").read_bytes())
    (out / "results.csv").write_text(",".join(results.columns(1))[:17])  # killed mid-header
    assert main(attack_args(victim, data_file, out)) == 0
    by_id = lambda rs: sorted(rs, key=lambda r: int(r["attack_id"]))  # noqa: E731
    assert by_id(read_csv(out)) == by_id(read_csv(reference))


def test_a_cut_last_line_is_ignored_and_a_corrupt_earlier_line_is_an_error(reference,
                                                                           tmp_path):
    text = (reference / "results.csv").read_text()
    lines = text.splitlines(keepends=True)
    (tmp_path / "results.csv").write_text(text[:-20])
    assert len(results.read_rows(tmp_path)) == len(lines) - 2
    assert (tmp_path / "results.csv").read_text() == text[:-20]  # read only: no repair
    results.read_rows(tmp_path, repair=True)
    assert (tmp_path / "results.csv").read_text() == "".join(lines[:-1])
    lines[3] = lines[3][:15] + "\n"
    (tmp_path / "results.csv").write_text("".join(lines))
    with pytest.raises(PixeljaxError, match="line 4 is corrupt"):
        results.read_rows(tmp_path)


def test_running_a_finished_command_again_computes_and_writes_nothing(reference, victim,
                                                                      data_file, monkeypatch):
    before = (reference / "results.csv").read_bytes()
    monkeypatch.setattr(pipeline, "stream", lambda *a, **k: pytest.fail("attacked again"))
    assert main(attack_args(victim, data_file, reference)) == 0
    assert (reference / "results.csv").read_bytes() == before


def test_a_folder_of_another_configuration_is_refused_and_left_untouched(victim, data_file,
                                                                        tmp_path, capsys):
    out = tmp_path / "run"
    args = ["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(data_file),
            "--images", "6", *ENGINE_ARGS, "--out", str(out), "--quiet"]
    assert main(args) == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(read_csv(out)) == 6
    capsys.readouterr()
    changed = list(args)
    changed[changed.index("--popsize") + 1] = "10"
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "popsize: 8 there, 10 now" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


# -- other modes ---------------------------------------------------------------------------------

def test_all_targets_attacks_each_image_towards_each_other_class(victim, data_file, tmp_path):
    out = tmp_path / "run"
    assert main(attack_args(victim, data_file, out, "--all-targets", images=4)) == 0
    rows = results.read_rows(out)
    assert len(rows) == 4 * 9
    by_image: dict[int, list[dict]] = {}
    for r in rows:
        by_image.setdefault(r["image_index"], []).append(r)
    assert len(by_image) == 4
    for image_rows in by_image.values():
        label = image_rows[0]["label"]
        assert sorted(r["target"] for r in image_rows) == [t for t in range(10) if t != label]
        for r in image_rows:
            if r["success"]:
                assert r["adversarial_class"] == r["target"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "all-targets" and SUMMARY_KEYS <= set(summary)
    attacked = [v for v in by_image.values() if v[0]["status"] != "skipped"]
    reached = [sum(r["success"] for r in v) for v in attacked]
    assert summary["n_attacked"] == len(attacked)
    assert summary["n_success"] == sum(n > 0 for n in reached)
    assert summary["mean_classes_reached"] == pytest.approx(np.mean(reached))


def test_a_targeted_run_attacks_the_other_classes_towards_the_target(victim, data_file,
                                                                     tmp_path):
    out = tmp_path / "run"
    assert main(attack_args(victim, data_file, out, "--targeted", "3")) == 0
    rows = results.read_rows(out)
    assert len(rows) == 12
    assert all(r["target"] == 3 and r["label"] != 3 for r in rows)
    for r in rows:
        assert r["success"] == (r["status"] != "skipped" and r["adversarial_class"] == 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "targeted"
    assert json.loads((out / "config.json").read_text())["target_class"] == 3


def test_demo_writes_a_figure_and_a_results_folder(victim, data_file, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "tiny", "--checkpoint", str(victim[0]), "--data",
                 str(data_file), "--images", "4", *ENGINE_ARGS, "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = results.read_rows(out)
    assert sorted(r["image_index"] for r in rows) == sorted(load_dataset(data_file).index[:4])
    assert "demo.png" in capsys.readouterr().out


@pytest.mark.parametrize("extra,message", [
    (["--targeted", "10"], r"target class must lie in \[0, 9\], got 10"),
    (["--images", "0"], "argument --images: expected an integer >= 1 or 'all', got '0'"),
    (["--popsize", "3"], "argument --popsize: expected an integer >= 4, got '3'"),
    (["--pixels", "2000"], "larger than the image"),
])
def test_bad_options_are_one_error_line(victim, data_file, tmp_path, capsys, extra, message):
    try:
        status = main(attack_args(victim, data_file, tmp_path / "run") + extra)
    except SystemExit as e:  # refused while parsing
        status = e.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err)
    assert not (tmp_path / "run").exists()


# -- bench ---------------------------------------------------------------------------------------

def test_run_bench_reports_three_throughputs_and_their_ratios(victim, data_file):
    config = BenchConfig(images=2, baseline_images=1, popsize=TINY_ENGINE["popsize"],
                         maxiter=TINY_ENGINE["maxiter"], slots=TINY_ENGINE["slots"],
                         batch_size=TINY_ENGINE["batch_size"], repeats=1,
                         agreement_candidates=0)
    report = run_bench(victim[1].predict, load_dataset(data_file), config)
    for key in ("forward_images_per_second", "engine_evaluations_per_second",
                "numpy_de_evaluations_per_second", "engine_over_forward",
                "engine_over_numpy_de"):
        assert report[key] > 0, key
    assert report["engine_over_forward"] == pytest.approx(
        report["engine_evaluations_per_second"] / report["forward_images_per_second"])
    assert report["engine_over_numpy_de"] == pytest.approx(
        report["engine_evaluations_per_second"] / report["numpy_de_evaluations_per_second"])
    assert report["engine_run"]["attacked"] == 2 and report["engine_run"]["evaluations"] > 0
    # The sweep, beside the incremental engine in the same run.
    assert report["sweep_run"]["candidates"] == 2 * 32 * 32 * 8
    assert report["sweep_over_incremental"] == pytest.approx(
        report["sweep_candidates_per_second"] / report["incremental_evaluations_per_second"])
    # The threshold engine, beside the one-image threshold loop (ART's ThresholdAttack).
    assert report["threshold_over_numpy_threshold"] == pytest.approx(
        report["engines"]["threshold"]["evaluations_per_second"]
        / report["numpy_threshold_evaluations_per_second"])
    assert report["torch_de_evaluations_per_second"] is report["engine_over_torch_de"] is None


def test_with_json_stdout_holds_exactly_one_json_document(victim, data_file, tmp_path, capsys):
    tiny = ["--checkpoint", str(victim[0]), "--data", str(data_file)]
    commands = {
        "attack": attack_args(victim, data_file, tmp_path / "a", "--json", images=2),
        "demo": ["demo", "--model", "tiny", *tiny, "--images", "2", *ENGINE_ARGS, "--out",
                 str(tmp_path / "d"), "--quiet", "--json"],
        "sweep": ["sweep", "tiny", *tiny, "--images", "1", "--out", str(tmp_path / "s"),
                  "--quiet", "--json"],
        "accuracy": ["accuracy", "tiny", *tiny, "--json"],
        "bench": ["bench", "--model", "tiny", *tiny, "--images", "1", "--popsize", "8",
                  "--maxiter", "1", "--slots", "1", "--batch-size", "8",
                  "--incremental-batch-size", "8", "--sweep-images", "1",
                  "--agreement-candidates", "0", "--json"],
    }
    for name, argv in commands.items():
        assert main(argv) == 0, name
        out, err = capsys.readouterr()
        assert isinstance(json.loads(out), dict), name  # one document, nothing else
        if name in ("attack", "demo", "sweep"):
            assert "results: " in err, name  # the lines beside it went to stderr


# -- adversarial examples out --------------------------------------------------------------------

def test_exported_adversarial_images_fool_the_victim_and_are_attacked_again_through_data(
        reference, victim, tmp_path, capsys):
    from pixeljax.data import load_dataset

    out = tmp_path / "adversarial.npz"
    assert main(["export-adversarial", str(reference), "--out", str(out)]) == 0
    rows = [r for r in read_csv(reference) if r["status"] == "success"]
    assert f"{len(rows)} adversarial image(s) of tiny written to" in capsys.readouterr().out
    with np.load(out) as f:
        assert f["x"].dtype == np.uint8 and len(f["x"]) == len(rows)
        np.testing.assert_array_equal(f["attack_id"], [int(r["attack_id"]) for r in rows])
        np.testing.assert_array_equal(f["source_index"], [int(r["image_index"]) for r in rows])
        assert f["pixels"].shape == (len(rows), 1, 5) and (f["target"] == -1).all()
        fooled = np.asarray(victim[1].predict(f["x"].astype(np.float32))).argmax(-1)
        np.testing.assert_array_equal(fooled, f["adversarial_class"])
        assert (fooled != f["y"]).all()
        attacked = json.loads(str(f["attacked"]))  # what these images fool, as run
    assert attacked == json.loads((reference / "config.json").read_text())
    assert attacked["model"] == "tiny" and attacked["pixels"] == 1
    assert len(load_dataset(str(out))) == len(rows)
    again = tmp_path / "again"
    # Read back through --data: every image is misclassified already, so each is skipped
    # (and the command says that nothing was attacked).
    assert main(["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(out),
                 "--images", str(len(rows)), *ENGINE_ARGS, "--out", str(again), "--quiet"]) == 1
    summary = json.loads((again / "summary.json").read_text())
    assert summary["n_skipped"] == summary["n_images"] == len(rows)
    assert "misclassifies every one of them" in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [("x.csv", "ending in .npz"),
                                           ("exists.npz", "exists; give a new file name"),
                                           ("no/such/x.npz", "does not exist")])
def test_export_adversarial_refuses_a_bad_destination_with_one_error_line(reference, tmp_path,
                                                                          capsys, name,
                                                                          message):
    (tmp_path / "exists.npz").write_bytes(b"mine")
    assert main(["export-adversarial", str(reference), "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err
    assert (tmp_path / "exists.npz").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.npz"]


def test_a_folder_attacked_with_a_relative_data_path_is_analysed_from_anywhere(
        victim, data_file, tmp_path, monkeypatch):
    from pixeljax.analysis import load_attacks

    monkeypatch.chdir(data_file.parent)
    out = tmp_path / "relative"
    assert main(attack_args(victim, Path(data_file.name), out, images=4)) == 0
    assert json.loads((out / "config.json").read_text())["data"] == str(data_file.resolve())
    monkeypatch.chdir(tmp_path)  # elsewhere: the recorded path still finds the images
    assert len(load_attacks(out)) > 0
    assert main(attack_args(victim, data_file, out, images=4)) == 0  # resumes, spelled anew
