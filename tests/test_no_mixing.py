"""Results that cannot silently mix: a resume or an analysis on another victim or other data is
refused with one line naming what changed, and the folder is left as it was.

Each case: attack (killed after its first harvest, or finished), change the victim's weights or
the data under the same name, then rerun or analyse.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _attack_support import TINY_ENGINE, boundary_sample, kill_after_first_harvest

from pixeljax.cli import main
from pixeljax.models import create_model
from pixeljax.runs import results
from pixeljax.victims.checkpoint import load_victim, save_victim

ENGINE_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_ENGINE.items()]


@pytest.fixture
def world(tmp_path):
    """A tiny victim of its own (seed 0) and images it is least sure of, in ``tmp_path``."""
    checkpoint = tmp_path / "tiny"
    save_victim(checkpoint, create_model("tiny", seed=0),
                {"architecture": "tiny", "num_classes": 10})
    x, y, index = boundary_sample(load_victim("tiny", checkpoint), n=8, wrong=1)
    data = tmp_path / "images.npz"
    np.savez(data, x=x, y=y, index=index)
    return checkpoint, data


def attack(world, out, *extra) -> list[str]:
    checkpoint, data = world
    return ["attack", "tiny", "--checkpoint", str(checkpoint), "--data", str(data), "--images",
            "8", "--first", *ENGINE_ARGS, "--out", str(out), "--quiet", *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def replace_weights(checkpoint: Path) -> None:
    """A re-export of other weights under the same path (as ``train --export`` would)."""
    save_victim(checkpoint, create_model("tiny", seed=1),
                {"architecture": "tiny", "num_classes": 10})


def test_a_resume_on_replaced_weights_is_refused_and_keeps_the_rows(world, tmp_path, capsys,
                                                                    monkeypatch):
    out = tmp_path / "run"
    real = kill_after_first_harvest(monkeypatch)
    assert main(attack(world, out)) == 130  # interrupted, finished work saved
    assert 0 < len(results.read_rows(out)) < 8
    monkeypatch.setattr("pixeljax.attack.pipeline.stream", real)
    before = (out / "results.csv").read_bytes()
    replace_weights(world[0])
    capsys.readouterr()
    assert main(attack(world, out)) == 2
    line = one_error_line(capsys)
    assert "holds attacks on other weights" in line and "re-exported, retrained or replaced" in line
    assert (out / "results.csv").read_bytes() == before


def test_an_analysis_of_replaced_weights_is_refused(world, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(attack(world, out)) == 0
    replace_weights(world[0])
    capsys.readouterr()
    for command in (["locality", "--results", str(out), "--radius", "1", "--out",
                     str(tmp_path / "loc")],
                    ["propagation", "--results", str(out), "--out", str(tmp_path / "prop")]):
        assert main(command) == 2
        assert "holds attacks on other weights" in one_error_line(capsys)
        assert not (tmp_path / "loc").exists() and not (tmp_path / "prop").exists()


def test_an_analysis_of_changed_data_is_refused(world, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(attack(world, out)) == 0
    if not any(r["success"] for r in results.read_rows(out)):
        pytest.skip("no successful attack to analyse")
    checkpoint, data = world
    with np.load(data) as f:
        x, y, index = f["x"].copy(), f["y"], f["index"]
    x[2] = 255 - x[2]  # one attacked image changed under the same name
    np.savez(data, x=x, y=y, index=index)
    capsys.readouterr()
    assert main(["locality", "--results", str(out), "--radius", "1", "--out",
                 str(tmp_path / "loc")]) == 2
    assert "no longer holds the images and labels the run attacked" in one_error_line(capsys)


def test_an_analysis_whose_candidates_no_longer_score_as_recorded_is_refused(world, tmp_path,
                                                                             capsys):
    """The last guard: a victim that changed without a recorded digest (hand-copied weights)."""
    out = tmp_path / "run"
    assert main(attack(world, out)) == 0
    config = results.read_config(out)
    del config[results.WEIGHTS_FINGERPRINT]
    (out / "config.json").write_text(__import__("json").dumps(config))
    other = tmp_path / "other"
    save_victim(other, create_model("tiny", seed=1), {"architecture": "tiny",
                                                      "num_classes": 10})
    shutil.rmtree(world[0] / "weights")
    shutil.copytree(other / "weights", world[0] / "weights")
    shutil.copy2(other / "metadata.json", world[0] / "metadata.json")
    capsys.readouterr()
    status = main(["locality", "--results", str(out), "--radius", "1", "--out",
                   str(tmp_path / "loc")])
    assert status == 2
    line = one_error_line(capsys)
    assert ("no longer score as recorded" in line
            or "no longer holds the images and labels" in line)
