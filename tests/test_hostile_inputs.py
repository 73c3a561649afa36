"""Hostile input: every bad input is refused with one ``error: ...`` line and a non-zero exit
status, before any work and without leaving anything behind; never a traceback.

The command-line cases run the real CLI in subprocesses, many cases per process (starting one
costs seconds for the JAX import): a small driver calls ``pixeljax.cli.main`` for each command
line in turn and records its exit status, stdout and stderr. Read-only folders are real: as
root, whom file permissions do not stop, the driver runs without the capabilities that bypass
them (``setpriv``). A full disk is simulated by an injected ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from _attack_support import boundary_sample, toy_model

import pixeljax.runs.results
from pixeljax.attack import pixel_attack
from pixeljax.attack.validation import check_images, check_key
from pixeljax.cli import main
from pixeljax.data import load_dataset
from pixeljax.errors import DataError, PixeljaxError
from pixeljax.models import create_model
from pixeljax.victims.checkpoint import load_victim, save_victim

REPO = Path(__file__).resolve().parents[1]
ENGINE = ["--popsize", "8", "--maxiter", "2", "--slots", "4", "--quiet"]

DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from pixeljax.cli import main

    cases = json.loads(open(sys.argv[1]).read())
    results = {}
    for name, argv in cases.items():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as e:
                status = e.code
            except BaseException:
                status = "uncaught"
                err.write(traceback.format_exc())
        results[name] = {"status": status, "out": out.getvalue(), "err": err.getvalue()}
    open(sys.argv[2], "w").write(json.dumps(results))
""")


def drive(cases: dict[str, list], work: Path, *, unprivileged: bool = False) -> dict:
    """Runs each command line of ``cases`` through ``pixeljax.cli.main`` in one subprocess;
    returns ``{name: {"status", "out", "err"}}``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "cases.json").write_text(json.dumps({k: [str(a) for a in v]
                                                 for k, v in cases.items()}))
    command = [sys.executable, "-c", DRIVER, str(work / "cases.json"), str(work / "out.json")]
    if unprivileged and os.geteuid() == 0:
        # Root ignores file permissions through these two capabilities; drop them.
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "out.json").read_text())


def refused(result: dict, line: str, status: int = 2) -> None:
    """Exit ``status`` and, on stderr, exactly one line: ``line``."""
    assert result["status"] == status, result
    assert "Traceback" not in result["err"], result["err"]
    assert result["err"].splitlines() == [line], result["err"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders that a failed write left behind."""
    return [p for p in folder.rglob("*")
            if p.name.endswith(".tmp") or p.name.startswith(".pixeljax-write-test-")]


# -- the world the commands run in ----------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny victim, data files good and bad, suite and recipe files, and a plain file."""
    base = tmp_path_factory.mktemp("hostile")
    victim = base / "tiny"
    save_victim(victim, create_model("tiny", seed=0),
                {"architecture": "tiny", "num_classes": 10, "note": "untrained, for tests"})
    x, y, index = boundary_sample(load_victim("tiny", victim), n=6, wrong=1)
    np.savez(base / "good.npz", x=x, y=y, index=index)
    np.savez(base / "wrong.npz", x=x, y=(y + 1) % 10, index=index)      # all misclassified
    np.savez(base / "relabelled.npz", x=x, y=(y + 3) % 10, index=index)  # same indices
    np.savez(base / "small.npz", x=x[:, :16, :16], y=y, index=index)
    np.savez(base / "grey.npz", x=x[..., :1], y=y, index=index)
    np.savez(base / "empty.npz", x=np.zeros((0, 32, 32, 3), np.uint8), y=np.zeros(0, np.int64))
    np.savez(base / "dup.npz", x=x, y=y, index=np.r_[index[:-1], index[0]])
    np.savez(base / "negative.npz", x=x, y=y, index=np.r_[index[:-1], -1])
    np.savez(base / "one-class.npz", x=x, y=np.full(len(y), 3), index=index)
    (base / "afile").write_text("not a folder\n")
    (base / "foreign").mkdir()
    (base / "foreign" / "notes.txt").write_text("someone's work\n")
    suite = textwrap.dedent(f"""\
        from pixeljax.evaluation import AttackSpec, Suite, Victim
        SUITE = Suite(name="hostile", victims=(Victim("tiny", checkpoint={str(victim)!r}),),
                      pixels=(1,), modes=("non-targeted",), images=3,
                      data={str(base / "good.npz")!r},
                      attack=AttackSpec(popsize=8, maxiter=2{{extra}}))
        """)
    (base / "suite.py").write_text(suite.format(extra=""))
    (base / "nan_suite.py").write_text(suite.format(extra=", F=float('nan')"))
    (base / "syntax_suite.py").write_text("from pixeljax.evaluation import Suite\n"
                                          "SUITE = Suite(name='x',,)\n")
    (base / "raising_suite.py").write_text("import math\n"
                                           "SCALE = 1 / 0\n")
    (base / "raising_recipe.py").write_text("from pixeljax.training import TrainConfig\n"
                                            "\n"
                                            "RECIPE = TrainConfig(model=undefined_name)\n")
    return base


def attack(world: Path, data: str, out, *extra) -> list:
    return ["attack", "tiny", "--checkpoint", world / "tiny", "--data", world / data,
            "--images", "6", "--first", *ENGINE, "--out", out, *extra]


@pytest.fixture(scope="module")
def runs(world) -> dict:
    """Every command-line case of a writable world, in one subprocess."""
    w = world
    victim = ["--checkpoint", w / "tiny"]
    cases = {
        # file-system errors
        "out_file": attack(w, "good.npz", w / "afile"),
        "out_under_file": attack(w, "good.npz", w / "afile" / "run"),
        "out_empty": attack(w, "good.npz", ""),
        "evaluate_out_file": ["evaluate", w / "suite.py", "--out", w / "afile"],
        "report_file": ["report", w / "afile"],
        "propagation_out_file": ["propagation", "--results", w / "finished", "--out",
                                 w / "afile"],
        "locality_out_file": ["locality", "--results", w / "finished", "--out", w / "afile"],
        "train_workdir_file": ["train", "tiny", "--data", w / "good.npz", "--workdir",
                               w / "afile"],
        "export_out_file": ["export", "--workdir", w / "nowork", "--data", w / "good.npz",
                            "--out", w / "afile"],
        "export_out_foreign": ["export", "--workdir", w / "nowork", "--data", w / "good.npz",
                               "--out", w / "foreign"],
        # suite and recipe files
        "syntax_suite": ["evaluate", w / "syntax_suite.py", "--out", w / "s1"],
        "raising_suite": ["evaluate", w / "raising_suite.py", "--out", w / "s2"],
        "raising_suite_verbose": ["evaluate", w / "raising_suite.py", "--out", w / "s2",
                                  "--verbose"],
        "nan_suite": ["evaluate", w / "nan_suite.py", "--out", w / "s3"],
        "raising_recipe": ["train", w / "raising_recipe.py", "--data", w / "good.npz",
                           "--workdir", w / "w1"],
        # values
        "F_nan": attack(w, "good.npz", w / "v", "--F", "nan"),
        "crossover_5": attack(w, "good.npz", w / "v", "--crossover", "5"),
        "timeout_negative": attack(w, "good.npz", w / "v", "--coordinator-timeout", "-1"),
        "seed_negative": attack(w, "good.npz", w / "v", "--seed", "-1"),
        "threshold_inf": attack(w, "good.npz", w / "v", "--target-threshold", "inf"),
        "learning_rate_nan": ["train", "tiny", "--data", w / "good.npz", "--workdir", w / "v",
                              "--learning-rate", "nan"],
        "evaluate_slots_0": ["evaluate", w / "suite.py", "--out", w / "v", "--slots", "0"],
        "accuracy_empty": ["accuracy", "tiny", *victim, "--data", w / "empty.npz", "--json"],
        # images the victim cannot take
        "small_images": attack(w, "small.npz", w / "v"),
        "grey_images": attack(w, "grey.npz", w / "v"),
        "accuracy_small": ["accuracy", "tiny", *victim, "--data", w / "small.npz"],
        "duplicate_index": attack(w, "dup.npz", w / "v"),
        "negative_index": attack(w, "negative.npz", w / "v"),
        "one_class_targeted": attack(w, "one-class.npz", w / "v", "--targeted", "3"),
        "nothing_attacked": attack(w, "wrong.npz", w / "nothing"),
        # runs that work: more --images than data, a micro-batch above slots x popsize
        "finished": attack(w, "good.npz", w / "finished", "--images", "50",
                           "--batch-size", "1024"),
        "evaluate": ["evaluate", w / "suite.py", "--out", w / "suite", "--no-report",
                     "--quiet", "--batch-size", "1024"],
        "report_relabelled": ["report", w / "suite", "--data", w / "relabelled.npz"],
        "report_good": ["report", w / "suite", "--data", w / "good.npz"],
        "locality_radius": ["locality", "--results", w / "finished", "--out", w / "v",
                            "--radius", "-1"],
    }
    return drive(cases, w / "driver")


# -- file-system errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("case, option, path", [
    ("out_file", "--out", "afile"),
    ("evaluate_out_file", "--out", "afile"),
    ("report_file", "results folder", "afile"),
    ("propagation_out_file", "--out", "afile"),
    ("locality_out_file", "--out", "afile"),
    ("train_workdir_file", "--workdir", "afile"),
    ("export_out_file", "--out", "afile"),
])
def test_an_output_folder_that_is_a_file_is_refused(runs, world, case, option, path):
    refused(runs[case], f"error: {option} {world / path} is a file, not a folder")
    assert (world / "afile").read_text() == "not a folder\n"


def test_an_output_folder_under_a_file_is_refused(runs, world):
    refused(runs["out_under_file"], f"error: --out {world / 'afile' / 'run'}: "
                                    f"{world / 'afile'} is a file, not a folder")


def test_an_empty_output_path_is_a_usage_error_not_the_current_folder(runs, world):
    refused(runs["out_empty"], "error: argument --out: expected a path, got an empty string "
                               "(see 'pixeljax attack --help')")
    assert not (world / "driver" / "config.json").exists()


def test_export_never_replaces_a_folder_that_is_not_a_checkpoint(runs, world):
    result = runs["export_out_foreign"]
    assert result["status"] == 2 and len(result["err"].splitlines()) == 1, result
    assert result["err"].startswith(f"error: refusing to write a victim to {world / 'foreign'}")
    assert (world / "foreign" / "notes.txt").read_text() == "someone's work\n"


def test_nothing_is_left_behind_by_refused_commands(runs, world):
    assert leftovers(world) == []
    for folder in ("v", "s1", "s2", "s3", "w1"):
        assert not (world / folder).exists(), folder


@pytest.fixture(scope="module")
def read_only(runs, world) -> tuple[dict, dict, dict]:
    """The commands again, on read-only folders: new, empty, a finished and a partial run, a
    suite's results. Returns (results, snapshots before, snapshots after)."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    ro = world / "ro"
    ro.mkdir()
    shutil.copytree(world / "finished", ro / "finished")
    shutil.copytree(world / "finished", ro / "partial")
    lines = (ro / "partial" / "results.csv").read_text().splitlines(keepends=True)
    (ro / "partial" / "results.csv").write_text("".join(lines[:2]))  # header and one row
    shutil.copytree(world / "suite", ro / "suite")
    folders = [ro, ro / "finished", ro / "partial", ro / "suite"]
    for path in sorted(ro.rglob("*"), reverse=True) + [ro]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = {str(f): snapshot(f) for f in folders}
    cases = {
        "attack_new": attack(world, "good.npz", ro / "new"),
        "attack_empty": attack(world, "good.npz", ro),
        "attack_finished": attack(world, "good.npz", ro / "finished", "--images", "50",
                                  "--batch-size", "1024"),
        "attack_partial": attack(world, "good.npz", ro / "partial", "--images", "50",
                                 "--batch-size", "1024"),
        "evaluate": ["evaluate", world / "suite.py", "--out", ro / "suite", "--quiet"],
        "report": ["report", ro / "suite"],
        "propagation": ["propagation", "--results", world / "finished", "--out", ro / "maps"],
        "locality": ["locality", "--results", world / "finished", "--out", ro / "locality"],
        "train": ["train", "tiny", "--data", world / "good.npz", "--workdir", ro / "work"],
        "export": ["export", "--workdir", world / "nowork", "--data", world / "good.npz",
                   "--out", ro / "checkpoint"],
    }
    try:
        results = drive(cases, world / "driver-ro", unprivileged=True)
        after = {str(f): snapshot(f) for f in folders}
    finally:
        for path in [ro, *ro.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return results, before, after


@pytest.mark.parametrize("case, option, target, where", [
    ("attack_new", "--out", "new", ""),
    ("attack_empty", "--out", "", None),
    ("attack_finished", "--out", "finished", None),
    ("attack_partial", "--out", "partial", None),
    ("evaluate", "--out", "suite", None),
    ("report", "results folder", "suite", None),
    ("propagation", "--out", "maps", ""),
    ("locality", "--out", "locality", ""),
    ("train", "--workdir", "work", ""),
    ("export", "--out", "checkpoint", ""),
])
def test_a_read_only_output_folder_is_refused_before_any_work(read_only, world, case, option,
                                                              target, where):
    results, before, after = read_only
    ro = world / "ro"
    path = ro / target if target else ro
    inside = f" (in {ro})" if where == "" else ""  # a new folder would be created in ro
    refused(results[case], f"error: {option} {path}: cannot write there{inside}: "
                           f"Permission denied")
    assert before == after  # nothing written, nothing created, no temporary files


def test_a_full_disk_is_one_error_line_and_leaves_no_temporary_files(world, monkeypatch,
                                                                     capsys):
    def full(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(pixeljax.runs.results.ResultsWriter, "_flush", full)
    out = world / "full"
    status = main([str(a) for a in attack(world, "good.npz", out)])
    err = capsys.readouterr().err
    assert status == 1
    assert err.splitlines() == [f"error: {out / 'results.csv'}: No space left on device"]
    assert leftovers(world) == []


# -- suite and recipe files -----------------------------------------------------------------------

def test_a_suite_file_with_a_syntax_error_names_file_and_line(runs, world):
    refused(runs["syntax_suite"], f"error: suite file {world / 'syntax_suite.py'}, line 2: "
                                  f"SyntaxError: invalid syntax")


def test_a_suite_file_whose_code_raises_names_file_line_and_exception(runs, world):
    refused(runs["raising_suite"], f"error: suite file {world / 'raising_suite.py'}, line 2: "
                                   f"ZeroDivisionError: division by zero")


def test_verbose_adds_the_traceback_of_the_users_code(runs, world):
    result = runs["raising_suite_verbose"]
    assert result["status"] == 2
    err = result["err"].splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert f'File "{world / "raising_suite.py"}", line 2' in result["err"]
    assert "SCALE = 1 / 0" in result["err"]
    assert err[-1] == (f"error: suite file {world / 'raising_suite.py'}, line 2: "
                       f"ZeroDivisionError: division by zero")


def test_a_suite_with_a_nan_value_is_refused(runs, world):
    refused(runs["nan_suite"], f"error: suite file {world / 'nan_suite.py'}, line 5: F must be "
                               f"a finite number in (0, 2], got nan")


def test_a_recipe_file_whose_code_raises_names_file_and_line(runs, world):
    refused(runs["raising_recipe"], f"error: recipe file {world / 'raising_recipe.py'}, line "
                                    f"3: NameError: name 'undefined_name' is not defined")


# -- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, command, line", [
    ("F_nan", "attack", "argument --F: expected a finite number in (0, 2], got 'nan'"),
    ("crossover_5", "attack", "argument --crossover: expected a finite number in [0, 1], "
                              "got '5'"),
    ("timeout_negative", "attack", "argument --coordinator-timeout: expected a finite number "
                                   "> 0, got '-1'"),
    ("seed_negative", "attack", "argument --seed: expected an integer >= 0, got '-1'"),
    ("threshold_inf", "attack", "argument --target-threshold: expected a finite number in "
                                "[0, 1], got 'inf'"),
    ("learning_rate_nan", "train", "argument --learning-rate: expected a finite number > 0, "
                                   "got 'nan'"),
    ("evaluate_slots_0", "evaluate", "argument --slots: expected an integer >= 1, got '0'"),
])
def test_non_finite_or_out_of_range_values_are_refused(runs, case, command, line):
    refused(runs[case], f"error: {line} (see 'pixeljax {command} --help')")


def test_a_radius_outside_the_image_is_refused(runs, world):
    result = runs["locality_radius"]  # pixeljax.analysis.locality.check_radius words it
    assert result["status"] == 2 and len(result["err"].splitlines()) == 1, result
    assert result["err"].startswith("error: radius must ") and "got -1" in result["err"]
    assert not (world / "v").exists()


def test_accuracy_of_no_images_is_an_error_not_nan(runs, world):
    path = world / "empty.npz"
    refused(runs["accuracy_empty"], f"error: --data {path}: {path} holds no images")
    assert runs["accuracy_empty"]["out"] == ""


# -- images the victim cannot take ----------------------------------------------------------------

@pytest.mark.parametrize("case, file, shape", [
    ("small_images", "small.npz", (16, 16, 3)),
    ("grey_images", "grey.npz", (32, 32, 1)),
    ("accuracy_small", "small.npz", (16, 16, 3)),
])
def test_images_of_another_size_or_channel_count_are_refused(runs, world, case, file, shape):
    path = world / file
    refused(runs[case], f"error: --data {path} ({path}) has images of shape {shape} (height, "
                        f"width, channels), but the network takes 32x32 images with 3 "
                        f"channels (32, 32, 3)")


def test_duplicate_or_negative_image_indices_are_refused(runs, world):
    x, y, index = (np.load(world / "dup.npz")[k] for k in ("x", "y", "index"))
    refused(runs["duplicate_index"],
            f"error: {world / 'dup.npz'}: 'index' must name each image once, but "
            f"[{index[0]}] occur more than once; attacks are identified by it")
    refused(runs["negative_index"],
            f"error: {world / 'negative.npz'}: 'index' values must lie in [0, 214748363] "
            f"(positions in the source split), got values from -1 to {index[:-1].max()}")


def test_a_targeted_run_with_no_image_of_another_class_is_refused(runs, world):
    refused(runs["one_class_targeted"], f"error: every image of {world / 'one-class.npz'} is "
                                        f"of class 3: none can be attacked towards it")


def test_a_run_that_attacks_no_image_says_so_and_fails(runs, world):
    result = runs["nothing_attacked"]
    assert result["status"] == 1
    assert result["err"].splitlines() == [
        "error: none of the 6 image(s) was attacked: the victim misclassifies every one of "
        "them (they are skipped); check that --data holds the images and labels the victim "
        "was trained for"]
    summary = json.loads((world / "nothing" / "summary.json").read_text())
    assert summary["n_attacked"] == 0 and summary["n_skipped"] == 6


def test_more_images_than_the_data_holds_says_how_many_are_attacked(runs, world):
    result = runs["finished"]
    assert result["status"] == 0, result
    path = world / "good.npz"
    assert result["err"].splitlines() == [f"note: 50 images asked for, but {path} has 6 "
                                          f"images: attacking all 6"]
    assert len(pixeljax.runs.results.read_rows(world / "finished")) == 6


# -- the micro-batch ------------------------------------------------------------------------------

def test_the_micro_batch_is_capped_at_what_the_slots_fill_and_recorded(runs, world):
    # 4 slots x population 8 fill at most 32 images per model call; 1,024 would be padding.
    summary = json.loads((world / "finished" / "summary.json").read_text())
    assert summary["batch_size"] == 32 and summary["slots"] == 4
    assert runs["evaluate"]["status"] == 0, runs["evaluate"]
    cell = json.loads((world / "suite" / "tiny" / "1px-non-targeted" / "summary.json")
                      .read_text())
    assert cell["batch_size"] == 32 * 8  # evaluate's default 32 slots



# -- report --data --------------------------------------------------------------------------------

def test_report_refuses_data_that_labels_the_attacked_images_otherwise(runs, world):
    rows = pixeljax.runs.results.read_rows(world / "suite" / "tiny" / "1px-non-targeted")
    first = rows[0]
    relabelled = load_dataset(world / "relabelled.npz")
    found = int(relabelled.y[list(relabelled.index).index(first["image_index"])])
    refused(runs["report_relabelled"],
            f"error: --data {world / 'relabelled.npz'}: image {first['image_index']} is "
            f"labelled {found} there, but tiny/1px-non-targeted attacked it as class "
            f"{first['label']}: these are not the images the suite ran on; pass the data it "
            f"ran on with --data")
    assert runs["report_good"]["status"] == 0, runs["report_good"]
    assert (world / "suite" / "report.md").is_file()


# -- the library's boundary -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    images = np.full((2, 8, 8, 3), 100, np.uint8)
    return toy_model(), images, np.zeros(2, np.int64)


@pytest.mark.parametrize("changes, message", [
    (dict(pixels=True), "pixels must be an integer >= 1, got True"),
    (dict(pixels=0), "pixels must be an integer >= 1, got 0"),
    (dict(popsize=4.0), "popsize must be an integer >= 4, got 4.0"),
    (dict(key=0), "key must be a JAX PRNG key array, got int 0; make one with "
                  "jax.random.key(seed), e.g. key=jax.random.key(0)"),
    (dict(key=np.arange(2)), "key must be a JAX PRNG key array (a typed key, or uint32 key "
                             "data of shape (2,)), got int64 of shape (2,); make one with "),
    (dict(key=jax.random.split(jax.random.key(0), 3)), "key must be one PRNG key, got an "
                                                       "array of keys of shape (3,)"),
    (dict(F=float("nan")), "F must be a finite number in (0, 2], got nan"),
    (dict(crossover=5), "crossover rate must be a finite number in [0, 1], got 5.0"),
    (dict(true_threshold=-0.5), "true threshold must be a finite number in [0, 1], got -0.5"),
    (dict(devices=True), "devices must be None, a number of devices or a sequence of devices, "
                         "got True"),
    (dict(targets=True), "targets must be None, 'all' or integer classes, got booleans"),
])
def test_pixel_attack_checks_its_arguments_at_the_boundary(toy, changes, message):
    model, images, labels = toy
    kwargs = dict(popsize=8, maxiter=1, slots=2, batch_size=16, key=jax.random.key(0))
    with pytest.raises(PixeljaxError) as info:
        pixel_attack(model, images, labels, **{**kwargs, **changes})
    assert str(info.value).startswith(message)


def test_typed_and_legacy_keys_are_both_accepted():
    check_key(jax.random.key(0))
    check_key(jax.random.PRNGKey(0))
    check_key(np.asarray(jax.random.PRNGKey(0)))


def test_float_images_in_0_1_warn_that_pixel_values_are_expected():
    labels = np.zeros(2, np.int64)
    with pytest.warns(UserWarning, match=r"lie in \[0.0, 1.0\]: pixeljax expects pixel values "
                                         r"in \[0, 255\]"):
        check_images(np.linspace(0, 1, 2 * 4 * 4 * 3).reshape(2, 4, 4, 3), labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_images(np.full((2, 4, 4, 3), 200.0), labels)
        check_images(np.zeros((2, 4, 4, 3), np.float32), labels)  # black images are fine


def test_image_indices_must_be_distinct_and_in_range():
    from pixeljax.data import make_image_set

    x, y = np.zeros((3, 4, 4, 3), np.uint8), np.zeros(3, np.int64)
    with pytest.raises(DataError, match=r"'index' must name each image once, but \[7\]"):
        make_image_set(x, y, source="s", index=[7, 1, 7])
    with pytest.raises(DataError, match=r"'index' values must lie in \[0, 214748363\]"):
        make_image_set(x, y, source="s", index=[0, 1, 2**31])
    assert make_image_set(x, y, source="s", index=[5, 0, 214748363]).index.tolist() == \
        [5, 0, 214748363]
