"""Boundaries and damaged files: one boundary check for the CLI and the API, one error line
instead of a traceback for damaged files, labelled curves, and the smaller cases (counted NaN
evaluations, slots capped at the attacks, an unwritable cache, paths with spaces, a malformed
last row).

Each test asserts the exact outcome: the error line and exit status, and the folder afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from _analysis_support import shared_results

from pixeljax.attack import pixel_attack
from pixeljax.attack.sizes import ATTACK_SLOTS
from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model
from pixeljax.runs import results
from pixeljax.training.export import portable
from pixeljax.victims.checkpoint import load_victim, save_victim

REPO = Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# -- one boundary check for the CLI and the API ---------------------------------------------------

@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3)])
def test_the_api_refuses_images_of_another_size_than_the_victim_takes(victim, shape):
    images = np.zeros((2, *shape), np.uint8)
    with pytest.raises(PixeljaxError, match=r"has images of shape .* but the network takes "
                                            r"32x32 images with 3 channels"):
        pixel_attack(victim[1].predict, images, np.zeros(2, np.int64), popsize=8, maxiter=1)


def test_labels_beyond_int32_are_refused_not_wrapped(victim):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(PixeljaxError, match="labels must be classes >= 0"):
        pixel_attack(victim[1].predict, images, np.asarray([1, 2 ** 32 + 1], np.int64),
                     popsize=8, maxiter=1)


def test_image_ids_too_large_for_attack_ids_are_refused(victim):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(PixeljaxError, match=r"image_ids must be at most 214,748,363 for a "
                                            r"10-class victim"):
        pixel_attack(victim[1].predict, images, np.zeros(2, np.int64),
                     image_ids=np.asarray([0, 2 ** 28]), popsize=8, maxiter=1)


def test_nan_evaluations_are_reported_to_api_users():
    def half_nan(images):
        x = jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1)
        logits = jnp.stack([x.mean(-1) / 255.0, 1.0 - x.mean(-1) / 255.0], -1)
        return jnp.where(x.max(-1, keepdims=True) > 250, jnp.nan, logits)

    images = np.full((2, 4, 4, 3), 10, np.uint8)
    result = pixel_attack(half_nan, images, np.ones(2, np.int64), popsize=8, maxiter=2, slots=2)
    assert result.nonfinite.shape == (2,) and result.nonfinite.sum() > 0


def test_slots_beyond_the_default_are_capped_at_the_attacks_there_are(monkeypatch, victim):
    from pixeljax.attack import generation

    seen = []
    real = generation.empty_slots
    monkeypatch.setattr(generation, "empty_slots",
                        lambda config, *a: seen.append(config.slots) or real(config, *a))
    images = np.zeros((2, 32, 32, 3), np.uint8)
    labels = np.asarray(victim[1].predict(images)).argmax(-1)
    pixel_attack(victim[1].predict, images, labels, popsize=8, maxiter=1, slots=2000)
    assert seen == [ATTACK_SLOTS]  # the default's program, never 2000 slots for 2 attacks


# -- one line instead of a traceback --------------------------------------------------------------

def test_out_naming_a_training_work_dir_is_not_an_attack_results_folder(victim, tmp_path,
                                                                        capsys):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps({"model": "tiny", "epochs": 2,
                                                     "batch_size": 64, "recipe": "x" * 1500}))
    images = tmp_path / "images.npz"
    np.savez(images, x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2, np.int64))
    before = sorted(p.name for p in workdir.iterdir())
    status = main(["attack", "tiny", "--checkpoint", str(victim[0]), "--data", str(images),
                   "--images", "2", "--popsize", "8", "--maxiter", "1", "--out", str(workdir),
                   "--quiet"])
    assert status == 2
    line = one_error_line(capsys)
    assert "is not an attack results folder" in line and len(line) < 300
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_a_damaged_init_json_is_one_error_line(tmp_path, capsys, shared_cifar10):
    workdir = tmp_path / "work"
    assert main(["train", "tiny", "--data", str(shared_cifar10), "--workdir", str(workdir),
                 "--epochs", "1", "--limit", "128", "--quiet"]) == 0
    (workdir / "init.json").write_text("{not json")
    capsys.readouterr()
    assert main(["export", "--workdir", str(workdir), "--data", "sample", "--out",
                 str(tmp_path / "v")]) == 2
    assert "init.json is damaged (JSONDecodeError" in one_error_line(capsys)
    assert not (tmp_path / "v").exists()
    assert main(["train", "tiny", "--data", str(shared_cifar10), "--workdir",
                 str(tmp_path / "w2"), "--epochs", "1", "--limit", "128", "--init-from",
                 str(workdir), "--quiet"]) == 2
    assert "init.json is damaged" in one_error_line(capsys)


@pytest.mark.parametrize("shape", ["abc", [32, 32], [32, 32, 0], [32, 32, True]])
def test_victim_metadata_with_a_bad_image_shape_is_one_error_line(tmp_path, capsys, shape):
    folder = tmp_path / "tiny"
    save_victim(folder, create_model("tiny"), {"architecture": "tiny", "num_classes": 10})
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "image_shape": shape}))
    with pytest.raises(PixeljaxError, match=r"metadata.json: image_shape must be \[height, "
                                            r"width, channels\]"):
        load_victim("tiny", folder)
    assert main(["accuracy", "tiny", "--checkpoint", str(folder), "--data", "sample"]) == 2
    assert "image_shape must be" in one_error_line(capsys)


@pytest.mark.parametrize("field, value, message", [
    ("class_names", [], "'class_names' must name at least 2 classes"),
    ("cells", None, "'cells' must be a list"),
    ("settings", "x", "'settings' must be a dict"),
    ("cells", [1, 2], "'cells' must be cell names"),
])
def test_a_damaged_suite_json_is_one_error_line_naming_the_field(tmp_path, capsys, field, value,
                                                                 message):
    record = {"suite": "s", "settings": {}, "cells": [], "victims": {},
              "class_names": ["a", "b"], field: value}
    (tmp_path / "suite.json").write_text(json.dumps(record))
    assert main(["report", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert "suite.json is corrupt" in line and message in line


# -- labelled curves, paths with spaces, a malformed last row -------------------------------------

def test_locality_labels_folders_of_the_same_name_by_their_path(tmp_path_factory, tmp_path):
    from pixeljax.analysis import run_locality

    fixture = shared_results(tmp_path_factory)
    a, b = tmp_path / "first" / "run", tmp_path / "second" / "run"
    shutil.copytree(fixture.directory, a)
    shutil.copytree(fixture.directory, b)
    summary = run_locality([a, b], tmp_path / "out", radius=0)
    labels = [m["label"] for m in summary["models"]]
    assert labels == ["tiny (first/run)", "tiny (second/run)"]


def test_exported_metadata_names_data_in_folders_with_spaces_by_their_last_part():
    assert portable("/home/me/my data/cifar 10 (test)") == "cifar 10 (test)"
    assert portable("/a/b/train-0.npz") == "train-0.npz"
    assert portable("shipped CIFAR-10 test sample") == "shipped CIFAR-10 test sample"


def test_a_complete_but_malformed_last_row_is_dropped_with_a_warning(tmp_path, capsys):
    path = tmp_path / "results.csv"
    header = ",".join(results.columns(1))
    good = ",".join(["1", "0", "3", "-1", "failure", "0", "3", "0.5", "0.6", "0.5", "1", "8",
                     "0", "0", "1.0", "2.0", "0.0", "0.0", "0.0"])
    path.write_text(f"{header}\n{good}\n{good.replace('failure,0', 'failure,zz')}\n")
    rows = results.read_file(path, repair=True)
    assert len(rows) == 1
    err = capsys.readouterr().err
    assert "warning: " in err and "the last line (3) is malformed" in err
    assert path.read_text() == f"{header}\n{good}\n"


def test_an_unwritable_compilation_cache_gives_one_warning(tmp_path):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    code = ("import jax, jax.numpy as jnp\n"
            "from pixeljax.runtime import compile_cache\n"
            "print(compile_cache.enable())\n"
            "for n in range(1, 4): jax.jit(lambda x: x * n)(jnp.ones(n)).block_until_ready()\n")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # root ignores file permissions through these capabilities
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PIXELJAX_COMPILE_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "is not writable; running without the cache" in warnings[0]


def test_bench_refuses_images_of_another_size(victim, tmp_path, capsys):
    images = tmp_path / "grey.npz"
    np.savez(images, x=np.zeros((4, 28, 28, 1), np.uint8), y=np.zeros(4, np.int64))
    assert main(["bench", "--model", "tiny", "--checkpoint", str(victim[0]), "--data",
                 str(images)]) == 2
    assert "but the network takes 32x32 images with 3 channels" in one_error_line(capsys)
