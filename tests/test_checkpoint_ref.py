"""Results folders name their victim loadably (``pixeljax.victims.checkpoint_ref``): ``pixeljax
propagation`` and ``pixeljax locality`` run on a suite's cells, whether the victim is shipped or
trained by the suite, and on folders moved elsewhere; a folder of an earlier development version
(a description such as "checkpoints/tiny (shipped)" instead of a reference, or no architecture)
gets one clear error.

The victim is an untrained ``tiny`` network posing as the shipped one (the shipped folder is
redirected to a temporary one); its two images lie near its decision boundary, so the tiny
attack budget finds successes for the locality analysis.
"""

import csv
import json
import shutil

import numpy as np
import pytest
from _analysis_support import boundary_images, save_tiny

import pixeljax.victims.checkpoint
from pixeljax.analysis import load_attacks
from pixeljax.cli import main
from pixeljax.evaluation import AttackSpec, EngineSizes, Suite, Victim, run_suite
from pixeljax.runs import results

ENGINE = dict(sizes=EngineSizes(slots=2, batch_size=32))
CELL = "tiny/1px-non-targeted"


def tiny_suite(data) -> Suite:
    return Suite(name="refs", victims=(Victim("tiny"),), pixels=(1,), modes=("non-targeted",),
                 images=2, data=str(data), attack=AttackSpec(popsize=10, maxiter=2))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny victim in a stand-in for the shipped ``checkpoints/`` folder, and its data."""
    root = tmp_path_factory.mktemp("refs")
    victim = save_tiny(root / "checkpoints" / "tiny")
    images = boundary_images(victim, 2)
    labels = np.asarray(victim.predict(images.astype(np.float32))).argmax(-1)
    np.savez(root / "data.npz", x=images, y=labels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pixeljax.victims.checkpoint, "shipped_folder", lambda kind: root / kind)
        yield root


@pytest.fixture(scope="module")
def suite_out(shipped):
    out = shipped / "out"
    run_suite(tiny_suite(shipped / "data.npz"), out, progress=False, **ENGINE)
    return out


def analyse(cell, where) -> None:
    """Both analyses through the command line, each writing its table."""
    assert main(["propagation", "--results", str(cell), "--out", str(where / "pm")]) == 0
    assert main(["locality", "--results", str(cell), "--out", str(where / "loc"),
                 "--radius", "1"]) == 0
    with open(where / "pm" / "propagation_layers.csv") as f:
        assert {r["layer"] for r in csv.DictReader(f)} >= {"input", "logits"}
    with open(where / "loc" / "locality.csv") as f:
        assert [int(r["distance"]) for r in csv.DictReader(f)] == [0, 1]


def test_a_suite_cell_records_architecture_and_shipped_reference(suite_out):
    config = results.read_config(suite_out / CELL)
    assert config["architecture"] == "tiny" and config["checkpoint"] == "shipped:tiny"
    victim = json.loads((suite_out / "suite.json").read_text())["victims"]["tiny"]
    assert victim["checkpoint_label"] == "checkpoints/tiny (shipped)"
    successes = [r for r in results.read_rows(suite_out / CELL) if r["success"]]
    assert successes, "the locality analysis needs a successful attack"


def test_a_suite_victim_may_name_another_shipped_checkpoint(shipped):
    from pixeljax.evaluation import make_plan

    suite = Suite(name="refs", victims=(Victim("again", architecture="tiny",
                                               checkpoint="shipped:tiny"),),
                  pixels=(1,), modes=("non-targeted",), images=2, data=str(shipped / "data.npz"),
                  attack=AttackSpec(popsize=10, maxiter=2))
    plan = make_plan(suite, shipped / "elsewhere")
    victim = plan.victims["again"]
    assert victim.reference == "shipped:tiny"  # loadable on any machine, no path recorded
    assert victim.checkpoint == shipped / "checkpoints" / "tiny"
    assert victim.checkpoint_id == "checkpoints/tiny (shipped)"


def test_propagation_and_locality_run_on_a_suite_cell(suite_out, tmp_path):
    analyse(suite_out / CELL, tmp_path)


@pytest.mark.parametrize("change", [{"checkpoint": "checkpoints/tiny (shipped)"},
                                    {"architecture": None}])
def test_a_cell_of_an_earlier_version_is_refused_with_one_clear_error(suite_out, tmp_path,
                                                                      change, capsys):
    out = tmp_path / "old"
    shutil.copytree(suite_out, out)
    path = out / CELL / results.CONFIG
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert main(["locality", "--results", str(out / CELL), "--out", str(tmp_path / "loc"),
                 "--radius", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "earlier development version" in err
    assert not (tmp_path / "loc").exists()


def test_a_victim_trained_by_the_suite_is_found_after_the_folder_moves(shipped, suite_out,
                                                                       tmp_path):
    out = tmp_path / "out"  # the suite's folder, its cell gone and a victim of its own there
    shutil.copytree(suite_out, out)
    shutil.rmtree(out / CELL)
    shutil.copytree(shipped / "checkpoints" / "tiny", out / "tiny" / "checkpoint")
    run_suite(tiny_suite(shipped / "data.npz"), out, progress=False, **ENGINE)
    assert results.read_config(out / CELL)["checkpoint"] == "../checkpoint"
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    attacks = load_attacks(moved / CELL)
    assert attacks.victim.name == "tiny" and len(attacks) == 2
