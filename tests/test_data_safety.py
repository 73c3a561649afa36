"""Hostile input that must not cost the user data: exports never delete what is not a victim,
weights are verified and may be stored small, one writer per folder, resumes notice changed
data, damaged work dirs are repaired or passed over, NaN logits are never successes, and the
summary's time covers every part of a run.

Every case asserts the exact outcome: the error line, the exit status and the folder afterwards.
Commands run in a subprocess where the process itself matters (locks, Ctrl-C, stderr noise);
elsewhere through ``pixeljax.cli.main`` in this process, which shares one compiled engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _attack_support import (
    TINY_ENGINE,
    boundary_sample,
    kill_after_first_harvest,
)
from flax import nnx

import pixeljax.attack.pipeline as pipeline
import pixeljax.attack.run as attack_run
import pixeljax.victims.checkpoint
from pixeljax._plumbing import locking
from pixeljax.attack.engine import fitness_from_logits
from pixeljax.attack.spec import AttackSpec
from pixeljax.cli import main
from pixeljax.data import ImageSet, load_dataset, load_sample
from pixeljax.errors import CheckpointError, PixeljaxError
from pixeljax.evaluation import EngineSizes, Suite, Victim, run_suite
from pixeljax.models import create_model
from pixeljax.runs import results
from pixeljax.training import TrainConfig, train
from pixeljax.victims.checkpoint import (
    as_stored,
    load_victim,
    read_metadata,
    save_victim,
    shipped_checkpoint,
    weight_digests,
)

REPO = Path(__file__).resolve().parents[1]
ENGINE_ARGS = ["--popsize", str(TINY_ENGINE["popsize"]), "--maxiter", str(TINY_ENGINE["maxiter"]),
               "--slots", str(TINY_ENGINE["slots"]),
               "--batch-size", str(TINY_ENGINE["batch_size"])]
# 64 images in batches of 32: two steps per epoch; a checkpoint after every step.
RECIPE = TrainConfig(model="tiny", epochs=2, batch_size=32, learning_rate=0.05,
                     warmup_epochs=0.5, checkpoint_every=1, eval_batch_size=64)


def child_env() -> dict:
    """The environment of a child process: this repository (and the tests' helpers) first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def cli(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """``pixeljax ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "pixeljax", *map(str, args)], cwd=cwd or REPO,
                          env=child_env(), capture_output=True, text=True, timeout=timeout)


def error_line(stderr: str) -> str:
    """The one ``error:`` line of a refused command (and nothing that looks like a traceback)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to compare before and after)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- shared fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_file(victim, tmp_path_factory) -> Path:
    x, y, index = boundary_sample(victim[1], n=6, wrong=1)
    path = tmp_path_factory.mktemp("data") / "boundary.npz"
    np.savez(path, x=x, y=y, index=index)
    return path


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    """64 shipped sample images: a data set for both training and testing."""
    sample = load_sample()
    path = tmp_path_factory.mktemp("small") / "small.npz"
    np.savez(path, x=sample.x[:64], y=sample.y[:64])
    return path


@pytest.fixture(scope="module")
def workdir(small_npz, tmp_path_factory) -> Path:
    """A finished training work dir (4 steps, a checkpoint after each; orbax keeps 3 and 4)."""
    folder = tmp_path_factory.mktemp("train") / "work"
    data = load_dataset(small_npz)
    train(RECIPE, data, data, folder, progress=False)
    return folder


@pytest.fixture
def work(workdir, tmp_path) -> Path:
    """A fresh copy of the finished work dir, to damage."""
    return shutil.copytree(workdir, tmp_path / "work")


def attack_args(victim, data, out, *extra) -> list[str]:
    return ["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(data),
            "--images", "6", *ENGINE_ARGS, "--out", str(out), "--quiet", *extra]


# -- 1. exports never delete what is not a victim ------------------------------------------------

def test_export_refuses_a_folder_that_is_not_a_victim_and_leaves_it_untouched(work, small_npz,
                                                                             tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "metadata.json").write_text('{"architecture": "tiny"}')  # looks like one, is not
    before = listing(out)
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", out)
    assert done.returncode == 2
    assert str(out) in error_line(done.stderr)
    assert listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "work"]  # no *.tmp left


def test_train_refuses_an_export_folder_that_is_not_a_victim_before_training(small_npz,
                                                                            tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.csv").write_text("attack_id\n1\n")
    done = cli("train", "tiny", "--data", small_npz, "--workdir", tmp_path / "work",
               "--export", out, "--quiet")
    assert done.returncode == 2
    assert str(out) in error_line(done.stderr)
    assert listing(out) == {"results.csv": b"attack_id\n1\n"}
    assert not list(tmp_path.glob("work/checkpoints/*"))  # refused before any training


def test_export_to_the_current_directory_is_refused(work, small_npz, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", ".", cwd=here)
    assert done.returncode == 2
    assert "error:" in error_line(done.stderr)
    assert list(here.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "work"]


def test_save_victim_refuses_anything_but_a_complete_victim(tmp_path, monkeypatch):
    model = create_model("tiny", seed=0)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(CheckpointError, match=f"refusing to write a victim to {a_file}: "
                                              f"something other than a folder"):
        save_victim(a_file, model, {"architecture": "tiny"})
    extra = tmp_path / "victim"
    save_victim(extra, model, {"architecture": "tiny"})
    (extra / "notes.txt").write_text("mine")  # a victim plus a file of the user's
    with pytest.raises(CheckpointError, match="holds files that are not a pixeljax victim"):
        save_victim(extra, model, {"architecture": "tiny"})
    assert (extra / "notes.txt").read_text() == "mine"
    monkeypatch.chdir(extra)
    for where in (".", "..", extra):
        with pytest.raises(CheckpointError, match="current directory or one of its parents"):
            save_victim(where, model, {"architecture": "tiny"})
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_victim_is_replaced_atomically_and_a_failed_write_keeps_the_old_one(tmp_path,
                                                                             monkeypatch):
    folder = tmp_path / "victim"
    save_victim(folder, create_model("tiny", seed=1), {"architecture": "tiny", "version": 1})
    old = listing(folder)

    def broken(weights):
        raise OSError("disk full")

    monkeypatch.setattr(pixeljax.victims.checkpoint, "weight_digests", broken)
    with pytest.raises(OSError, match="disk full"):
        save_victim(folder, create_model("tiny", seed=2), {"architecture": "tiny"})
    assert listing(folder) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]  # no temporary folder left
    monkeypatch.undo()
    save_victim(folder, create_model("tiny", seed=2), {"architecture": "tiny", "version": 2})
    assert read_metadata(folder)["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]


# -- 2. non-finite logits are the worst fitness, counted, never a success ------------------------

def test_fitness_from_logits_scores_non_finite_rows_worst():
    logits = jnp.asarray([[2.0, 0.0, 0.0], [jnp.nan, 0.0, 0.0], [jnp.inf, 0.0, 0.0],
                          [0.0, 5.0, 0.0]])
    label, target = jnp.asarray([0, 0, 0, 0]), jnp.asarray([-1, -1, 1, 1])
    fitness, true_prob, top_class, top_prob, nonfinite = map(
        np.asarray, fitness_from_logits(logits, label, target))
    assert nonfinite.tolist() == [0, 1, 1, 0]
    assert np.isinf(fitness[1:3]).all() and np.isfinite(fitness[[0, 3]]).all()
    assert top_class.tolist() == [0, 0, 0, 1]  # a NaN row never "fools" the model
    assert true_prob[1:3].tolist() == [1.0, 1.0] and top_prob[1:3].tolist() == [0.0, 0.0]
    probs = jax.nn.softmax(logits[3])
    assert fitness[3] == pytest.approx(1 - float(probs[1]))


def test_a_model_with_nan_logits_on_perturbed_images_fools_nothing(victim, tmp_path):
    sample = load_sample()
    clean = sample.x[:4]
    labels = np.asarray(victim[1].predict(clean)).argmax(-1)

    def nan_when_perturbed(images):
        logits = victim[1].predict(images)
        unchanged = jnp.all(images[:, None] == clean[None], axis=(2, 3, 4)).any(axis=1)
        return jnp.where(unchanged[:, None], logits, jnp.nan)

    data = ImageSet(x=clean, y=labels.astype(np.int32), index=np.arange(4),
                    source="four clean images")
    summary = attack_run.attack_folder(
        nan_when_perturbed, data, tmp_path / "run",
        AttackSpec(popsize=8, maxiter=2, n_images=4).replace(slots=4, batch_size=16),
        victim={"model": "nan", "architecture": "nan", "checkpoint": "none"}, progress=False)
    rows = results.read_rows(tmp_path / "run")
    assert [r["status"] for r in rows] == ["failure"] * 4
    assert all(r["nonfinite_evaluations"] == r["evaluations"] == 8 * 3 for r in rows)
    assert all(r["adversarial_class"] == r["label"] for r in rows)
    assert (summary["n_attacked"], summary["n_success"], summary["success_rate"]) == (4, 0, 0.0)
    assert summary["mean_confidence"] == 0.0
    assert summary["nonfinite_evaluations"] == 4 * 24 and summary["nonfinite_attacks"] == 4
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary


# -- 3. weight digests ---------------------------------------------------------------------------

def test_digests_are_recorded_and_a_flipped_byte_is_named_on_load(tmp_path):
    folder = tmp_path / "victim"
    save_victim(folder, create_model("tiny", seed=0), {"architecture": "tiny"})
    meta = read_metadata(folder)
    assert meta["weight_sha256"] == weight_digests(folder / "weights")
    biggest = max((p for p in (folder / "weights").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit: orbax alone would read wrong weights silently
    biggest.write_bytes(bytes(data))
    name = biggest.relative_to(folder).as_posix()
    with pytest.raises(CheckpointError, match=f"weight file {name} is damaged \\(its sha256 "
                                              f"differs from the one in metadata.json\\)"):
        load_victim("tiny", folder)


def test_a_checkpoint_without_digests_still_loads(tmp_path):
    folder = tmp_path / "old"
    model = create_model("tiny", seed=0)
    save_victim(folder, model, {"architecture": "tiny"})
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["weight_sha256"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    loaded = load_victim("tiny", folder)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(nnx.state(model)),
                                                    jax.tree.leaves(loaded.params)))


def test_the_shipped_allconv_records_its_digests_and_verifies_them():
    folder = shipped_checkpoint("allconv")
    if not folder.is_dir():
        pytest.skip(f"no shipped allconv at {folder}")
    meta = read_metadata(folder)
    assert meta["weight_sha256"] == weight_digests(folder / "weights")
    assert meta["dtype"] == "float32"
    assert load_victim("allconv").metadata == meta


# -- 4. weights stored small ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_weights_stored_small_load_back_as_float32_with_exact_batch_norm(dtype, tmp_path):
    sample = load_sample()
    model = create_model("tiny", seed=3)
    model.train()
    model(sample.x[:64])  # batch-norm statistics that differ from their initial values
    model.eval()
    save_victim(tmp_path / "f32", model, {"architecture": "tiny"})
    save_victim(tmp_path / "small", model, {"architecture": "tiny"}, dtype=dtype)
    size = {k: sum(p.stat().st_size for p in (tmp_path / k / "weights").rglob("*")
                   if p.is_file()) for k in ("f32", "small")}
    assert size["small"] < 0.8 * size["f32"]  # half the array bytes, plus the files' fixed overhead
    assert read_metadata(tmp_path / "small")["dtype"] == dtype
    loaded = load_victim("tiny", tmp_path / "small")
    assert {str(x.dtype) for x in jax.tree.leaves(loaded.params)} == {"float32"}
    expected = nnx.state(as_stored(model, dtype))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(expected),
                                                    jax.tree.leaves(loaded.params)))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    loaded_params = nnx.to_pure_dict(nnx.state(loaded.model, nnx.Param))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded_params)):
        assert np.array_equal(a, b) == (a.ndim < 2)  # per-channel vectors exact, kernels rounded
    stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    loaded_stats = nnx.to_pure_dict(nnx.state(loaded.model, nnx.BatchStat))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(stats),
                                                    jax.tree.leaves(loaded_stats)))
    logits = np.asarray(loaded.predict(sample.x[:32]))
    reference = np.asarray(load_victim("tiny", tmp_path / "f32").predict(sample.x[:32]))
    assert 0 < np.abs(logits - reference).max() < 0.05


def test_cli_export_with_dtype_records_it_and_the_accuracy_of_the_stored_weights(
        work, small_npz, tmp_path):
    out = tmp_path / "victim"
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", out,
               "--dtype", "bfloat16")
    assert done.returncode == 0, done.stderr
    meta = read_metadata(out)
    assert meta["dtype"] == "bfloat16" and meta["weight_sha256"]
    loaded = load_victim("tiny", out)
    data = load_dataset(small_npz)
    predicted = np.asarray(loaded.predict(data.x)).argmax(-1)
    assert meta["test_accuracy"] == pytest.approx(float(np.mean(predicted == data.y)))


# -- 5. one writer per folder --------------------------------------------------------------------

SLOW_ATTACK = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    import pixeljax.attack.pipeline as pipeline
    from pixeljax.cli import main
    real, go = pipeline.stream, Path(sys.argv[1])

    def waiting(*args, **kwargs):  # holds the folder until the test says go
        while not go.exists():
            time.sleep(0.05)
        yield from real(*args, **kwargs)

    pipeline.stream = waiting
    sys.exit(main(sys.argv[2:]))
    """)


def test_a_second_writer_is_refused_and_the_first_writes_one_run(victim, data_file, tmp_path):
    out, go = tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", SLOW_ATTACK, str(go),
                              *attack_args(victim, data_file, out)], cwd=REPO, env=child_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = out / locking.LOCK
        deadline = time.monotonic() + 120
        while f"pid={first.pid}" not in (lock.read_text() if lock.is_file() else ""):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first writer never took the lock"
            time.sleep(0.1)
        second = cli(*attack_args(victim, data_file, out))
        assert second.returncode == 2
        assert error_line(second.stderr) == (
            f"error: results folder {out} is in use by another pixeljax process (pid "
            f"{first.pid} on host {socket.gethostname()}); wait for it to finish or use "
            f"another folder")
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    rows = results.read_rows(out)
    assert len(rows) == 6 and len({r["attack_id"] for r in rows}) == 6
    lines = (out / "results.csv").read_text().splitlines()
    assert len(lines) == 7  # the header and one row per attack: nothing written twice
    assert lock.read_text() == ""  # released: no holder recorded


def test_a_training_work_dir_and_a_suite_folder_take_one_writer(small_npz, victim, tmp_path):
    data = load_dataset(small_npz)
    holder = f"pid {os.getpid()} on host {socket.gethostname()}"
    with locking.exclusive(tmp_path / "work", "training work dir"):
        with pytest.raises(PixeljaxError, match=f"training work dir {tmp_path / 'work'} is in "
                                                f"use by another pixeljax process \\({holder}\\)"):
            train(RECIPE, data, data, tmp_path / "work", progress=False)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [locking.LOCK]
    suite = Suite(name="locked", victims=(Victim("tiny", checkpoint=str(victim[0])),),
                  pixels=(1,), modes=("non-targeted",), images=2, data="sample",
                  attack=AttackSpec(popsize=8, maxiter=2))
    with locking.exclusive(tmp_path / "suite", "suite results folder"):
        with pytest.raises(PixeljaxError, match=f"suite results folder {tmp_path / 'suite'} is "
                                                f"in use by another pixeljax process"):
            run_suite(suite, tmp_path / "suite", progress=False, sizes=EngineSizes(
                slots=TINY_ENGINE["slots"], batch_size=TINY_ENGINE["batch_size"]))
    assert sorted(p.name for p in (tmp_path / "suite").iterdir()) == [locking.LOCK]


def test_each_shard_of_a_multi_process_run_has_its_own_writer(tmp_path):
    names = [locking.lock_name(p, 2) for p in (0, 1)]
    assert names == [".pixeljax-0-of-2.lock", ".pixeljax-1-of-2.lock"]
    with locking.exclusive(tmp_path, "results folder", name=names[0]):
        with locking.exclusive(tmp_path, "results folder", name=names[1]):  # side by side
            with pytest.raises(PixeljaxError, match="is in use by another pixeljax process"):
                with locking.exclusive(tmp_path, "results folder", name=names[0]):
                    pass


def test_the_lock_of_a_killed_process_is_free(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import time
        from pixeljax._plumbing import locking
        with locking.exclusive({str(tmp_path)!r}, "folder"):
            print("held", flush=True)
            time.sleep(600)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True, env=child_env())
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(PixeljaxError, match=f"pid {holder.pid}"):
        with locking.exclusive(tmp_path, "folder"):
            pass
    holder.kill()
    holder.wait()
    with locking.exclusive(tmp_path, "folder") as lock:  # no stale lock
        assert lock.read_text() == f"pid={os.getpid()} host={socket.gethostname()}\n"


def test_an_attack_written_twice_in_one_file_is_refused_not_read_once(tmp_path):
    writer = results.ResultsWriter(tmp_path, 1)
    row = {**{c: 0 for c in results.columns(1)}, "status": "failure"}
    writer.write([{**row, "attack_id": 1}, {**row, "attack_id": 2},
                  {**row, "attack_id": 1, "evaluations": 99}])
    writer.close()
    before = (tmp_path / "results.csv").read_bytes()
    with pytest.raises(PixeljaxError, match=r"results.csv: attack 1 appears twice \(the file was "
                                            r"edited or joined from two runs\)"):
        results.read_rows(tmp_path)
    assert (tmp_path / "results.csv").read_bytes() == before


def test_a_results_file_of_an_earlier_development_version_is_refused(tmp_path):
    header = [c for c in results.columns(1) if c not in ("nonfinite_evaluations",
                                                          "precision_flip")]
    (tmp_path / "results.csv").write_text(",".join(header) + "\n" + ",".join(
        "failure" if c == "status" else "0" for c in header) + "\n")
    before = (tmp_path / "results.csv").read_bytes()
    with pytest.raises(PixeljaxError, match="earlier development version of pixeljax .its "
                                            "header lacks nonfinite_evaluations, precision_flip"):
        results.read_rows(tmp_path)
    with pytest.raises(PixeljaxError, match="earlier development version"):
        results.ResultsWriter(tmp_path, 1)
    assert (tmp_path / "results.csv").read_bytes() == before


# -- 6. a resume notices changed data, not the spelling of its path ------------------------------

def test_resume_compares_the_data_not_the_spelling_of_its_path(victim, data_file, tmp_path,
                                                               monkeypatch, capsys):
    local = tmp_path / "data.npz"
    shutil.copy(data_file, local)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(attack_args(victim, "data.npz", out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"] == str(local.resolve()) and len(config["data_sha256"]) == 64
    before = listing(out)
    monkeypatch.setattr(pipeline, "stream", lambda *a, **k: pytest.fail("attacked again"))
    assert main(attack_args(victim, local, out)) == 0  # the same file by its absolute path
    assert listing(out)["results.csv"] == before["results.csv"]
    assert listing(out)["config.json"] == before["config.json"]

    with np.load(local) as f:
        arrays = dict(f)
    arrays["x"] = arrays["x"][::-1].copy()  # the same file name, other images
    np.savez(local, **arrays)
    capsys.readouterr()
    assert main(attack_args(victim, local, out)) == 2
    err = capsys.readouterr().err
    assert error_line(err) == (
        f"error: {out} holds results of other data: the images and labels of {str(local)!r} "
        f"differ from those attacked there (of {str(local.resolve())!r}; was the file changed? "
        f"or, for a "
        f"random sample, was it drawn by an earlier pixeljax, whose samples of one seed were "
        f"not nested?); use another --out or the original data")
    assert listing(out) == before


def test_a_folder_written_before_data_fingerprints_is_refused_with_one_line(
        victim, data_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(attack_args(victim, data_file, out)) == 0
    config = json.loads((out / "config.json").read_text())
    del config["data_sha256"]
    (out / "config.json").write_text(json.dumps(config))
    before = listing(out)
    capsys.readouterr()
    monkeypatch.setattr(pipeline, "stream", lambda *a, **k: pytest.fail("attacked again"))
    assert main(attack_args(victim, data_file, out)) == 2
    assert error_line(capsys.readouterr().err) == (
        f"error: {out}/config.json records no data_sha256: a results folder of an earlier "
        f"development version of pixeljax; attack again into a new --out folder")
    assert listing(out) == before


# -- 7. a cut-off metrics line -------------------------------------------------------------------

def test_a_cut_off_metrics_line_is_dropped_with_a_warning(work, small_npz, tmp_path, capfd):
    metrics = work / "metrics.jsonl"
    whole = metrics.read_text()
    metrics.write_text(whole + '{"epoch": 3, "step": 6, "train_lo')  # killed in mid-write
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", tmp_path / "v")
    assert done.returncode == 0, done.stderr
    assert f"warning: {metrics}: dropping its cut-off last line" in done.stderr
    assert [h["step"] for h in read_metadata(tmp_path / "v")["history"]] == [2, 4]
    data = load_dataset(small_npz)
    result = train(RECIPE, data, data, work, progress=False)  # resume: repairs the file
    assert result.steps == 4 and [h["step"] for h in result.history] == [2, 4]
    assert metrics.read_text() == whole
    assert "dropping its cut-off last line" in capfd.readouterr().err


def test_a_corrupt_metrics_line_before_the_last_is_an_error(work, small_npz):
    metrics = work / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("{garbage\n" + "".join(lines))
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", work.parent / "v")
    assert done.returncode == 2
    assert error_line(done.stderr).startswith(f"error: {metrics}: line 1 is corrupt")
    assert not (work.parent / "v").exists()


# -- 8. damaged checkpoints, Ctrl-C --------------------------------------------------------------

def damage_newest(work: Path) -> int:
    steps = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    for path in (work / "checkpoints" / str(steps[-1])).rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"\x00garbage" * 8)
    return steps[-1]


def test_a_damaged_newest_training_checkpoint_falls_back_to_the_older_one(work, small_npz,
                                                                         tmp_path, capfd):
    newest = damage_newest(work)
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", tmp_path / "v")
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "Traceback" not in done.stderr, done.stderr
    assert warning[0].startswith(f"warning: training checkpoint {work / 'checkpoints'}/"
                                 f"{newest} is damaged (")
    assert warning[0].endswith(f"; using the older checkpoint of step {newest - 1}")
    assert f"exported step {newest - 1} of" in done.stdout
    assert read_metadata(tmp_path / "v")["steps"] == newest - 1
    # Training again sets the damaged checkpoint aside and redoes its step.
    data = load_dataset(small_npz)
    result = train(RECIPE, data, data, work, progress=False)
    assert result.steps == newest
    assert (work / "damaged-checkpoints" / str(newest)).is_dir()
    assert "moved to" in capfd.readouterr().err
    assert cli("export", "--workdir", work, "--data", small_npz, "--out",
               tmp_path / "v").returncode == 0


def test_every_training_checkpoint_damaged_is_one_error(work, small_npz, tmp_path):
    for step in (work / "checkpoints").iterdir():
        for manifest in step.rglob("manifest.ocdbt"):
            manifest.unlink()
    done = cli("export", "--workdir", work, "--data", small_npz, "--out", tmp_path / "v")
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert "is damaged (" in line and "no older intact checkpoint is left" in line
    assert "another recipe" not in line and "Event loop" not in done.stderr
    assert not (tmp_path / "v").exists()


def test_a_victim_without_its_manifests_is_one_clean_error(victim, tmp_path):
    copy = shutil.copytree(victim[0], tmp_path / "tiny")
    for manifest in copy.rglob("manifest.ocdbt"):
        manifest.unlink()
    done = cli("accuracy", "tiny", "--checkpoint", copy, "--limit", "4")
    assert done.returncode == 2
    assert error_line(done.stderr) == (f"error: checkpoint {copy}: weight file "
                                       f"weights/manifest.ocdbt is missing; the checkpoint is "
                                       f"damaged")
    assert done.stderr.strip().splitlines() == [error_line(done.stderr)]


def test_ctrl_c_during_training_prints_only_the_interrupted_line(small_npz, tmp_path):
    recipe = tmp_path / "endless.py"
    recipe.write_text("from pixeljax.training import TrainConfig\n"
                      "RECIPE = TrainConfig(model='tiny', epochs=10000, batch_size=32, "
                      "checkpoint_every=1, eval_batch_size=64)\n")  # saving nearly all the time
    work = tmp_path / "work"
    run = subprocess.Popen([sys.executable, "-m", "pixeljax", "train", str(recipe), "--data",
                            str(small_npz), "--workdir", str(work), "--quiet"], cwd=REPO,
                           env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.monotonic() + 120
    while len(list((work / "checkpoints").glob("[0-9]*"))) < 2:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "training never saved a checkpoint"
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130
    assert stderr.strip().splitlines() == [
        "interrupted: finished work is saved; run the same command again to resume"], stderr


# -- 9. training values --------------------------------------------------------------------------

@pytest.mark.parametrize("rate", ["inf", "nan", "0", "-0.1"])
def test_a_bad_learning_rate_is_refused_at_once(rate, small_npz, tmp_path):
    done = cli("train", "tiny", "--data", small_npz, "--workdir", tmp_path / "work",
               "--learning-rate", rate)
    assert done.returncode == 2
    assert "learning" in done.stderr and rate in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "work").exists()


def test_a_diverging_run_stops_with_an_error_and_exports_nothing(small_npz, tmp_path):
    done = cli("train", "tiny", "--data", small_npz, "--workdir", tmp_path / "work",
               "--export", tmp_path / "victim", "--learning-rate", "1e30", "--batch-size", "32",
               "--epochs", "3", "--quiet")
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert line.startswith("error: training diverged: the loss became ")
    assert line.endswith("Train again with a lower --learning-rate and a new --workdir")
    assert not (tmp_path / "victim").exists()
    # Epoch 1 (warm-up from zero) was sound and saved; no diverged state was.
    assert [p.name for p in (tmp_path / "work" / "checkpoints").glob("[0-9]*")] == ["2"]


# -- 10. time and throughput over every part of a run --------------------------------------------

def test_the_summary_counts_the_time_of_every_part_and_survives_a_damaged_summary(
        victim, data_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_stream = kill_after_first_harvest(monkeypatch)
    assert main(attack_args(victim, data_file, out)) == 130
    first = json.loads((out / "timing.json").read_text())["parts"]
    assert len(first) == 1 and first[0]["evaluations"] > 0
    monkeypatch.setattr(pipeline, "stream", real_stream)
    assert main(attack_args(victim, data_file, out)) == 0
    parts = json.loads((out / "timing.json").read_text())["parts"]
    assert len(parts) == 2 and parts[:1] == first  # a resume adds a part
    summary = json.loads((out / "summary.json").read_text())
    total = sum(p["seconds"] for p in parts)
    assert summary["wall_seconds"] == pytest.approx(total, abs=1e-3)
    assert summary["evaluations"] == sum(p["evaluations"] for p in parts)
    assert summary["evaluations_per_second"] == pytest.approx(summary["evaluations"] / total)

    (out / "summary.json").write_text('{"wall_seconds": 0.0, "evalu')  # damaged
    monkeypatch.setattr(pipeline, "stream", lambda *a, **k: pytest.fail("attacked again"))
    assert main(attack_args(victim, data_file, out)) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["wall_seconds"] == summary["wall_seconds"]
    assert again["evaluations_per_second"] == pytest.approx(summary["evaluations_per_second"])
    assert json.loads((out / "timing.json").read_text())["parts"] == parts


# -- 11. export from a folder that is no training work dir ---------------------------------------

def test_export_from_an_attack_folder_is_a_clear_error(victim, data_file, small_npz, tmp_path):
    out = tmp_path / "attack"
    assert main(attack_args(victim, data_file, out)) == 0
    before = listing(out)
    done = cli("export", "--workdir", out, "--data", small_npz, "--out", tmp_path / "v")
    assert done.returncode == 2
    assert error_line(done.stderr) == (f"error: {out} is not a training work dir: its "
                                       f"config.json is not a training recipe (is it an attack "
                                       f"results folder?)")
    assert listing(out) == before and not (tmp_path / "v").exists()
