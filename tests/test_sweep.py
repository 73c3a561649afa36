"""The exhaustive one-pixel sweep: exact against a brute-force loop, resumable, its command line,
its refusals, and its place in suites and reports.

Exactness is checked against a plain loop that writes every grid colour at every position into
the image and runs the whole network (dense) on it: the same reachable classes, the same
per-position counts of fooling colours and the same lowest true-class probabilities.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _attack_support import boundary_sample, kill_after_first_yield

import pixeljax.sweep.waves as waves_module
from pixeljax.attack.sizes import EngineSizes, SweepSizes
from pixeljax.cli import main
from pixeljax.data.arrays import make_image_set
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult
from pixeljax.sweep.api import pixel_sweep
from pixeljax.sweep.folder import NONTARGETED, read_maps, read_untargeted, sweep_folder
from pixeljax.sweep.spec import SweepSpec, announce
from pixeljax.sweep.waves import colour_grid

ENGINE = dict(sizes=SweepSizes(slots=2, batch_size=64))


@pytest.fixture(scope="module")
def boundary(victim):
    """Five images the untrained tiny victim is least sure of, labelled with its predictions
    except the last (mislabelled, so it is skipped)."""
    x, y, index = boundary_sample(victim[1], n=5, wrong=1)
    return x, y, index


def brute_force(predict, image: np.ndarray, label: int, levels) -> dict:
    """Every grid colour at every position, each image through the whole network."""
    h, w, c = image.shape
    grid = colour_grid(levels, c)
    images = np.repeat(image[None].astype(np.float32), h * w * len(grid), axis=0)
    k = 0
    for row in range(h):
        for col in range(w):
            for colour in grid:
                images[k, row, col] = colour
                k += 1
    logits = np.concatenate([np.asarray(predict(images[i:i + 1024]))
                             for i in range(0, len(images), 1024)])
    probs = np.asarray(jax.nn.softmax(logits, -1)).reshape(h, w, len(grid), -1)
    top = probs.argmax(-1)
    return {"reached": set(np.unique(top).tolist()) - {label},
            "flips": (top != label).sum(-1), "min_true": probs[..., label].min(-1)}


def check_against_brute_force(result, predict, x, y, levels):
    assert len(result.image)
    for m, i in enumerate(result.image):
        expected = brute_force(predict, x[i], int(y[i]), levels)
        mine = result.targets.image_index == i
        reached = set(result.targets.target[mine & result.targets.success].tolist())
        assert reached == expected["reached"]
        np.testing.assert_array_equal(result.flips[m], expected["flips"])
        np.testing.assert_allclose(result.min_true[m], expected["min_true"], atol=1e-4)
        assert result.untargeted.success[m] == bool(expected["reached"])


def test_the_sweep_finds_exactly_what_a_brute_force_loop_finds(victim, boundary):
    x, y, _ = boundary
    result = pixel_sweep(victim[1].predict, x, y, **ENGINE)
    assert result.candidates_per_image == 32 * 32 * 8
    assert list(result.image) == [0, 1, 2, 3]  # the mislabelled image is not swept
    assert result.targets.skipped[result.targets.image_index == 4].all()
    assert result.targets.success.any() and not result.targets.success.all()
    check_against_brute_force(result, victim[1].predict, x, y, (0, 255))
    assert result.disagreements == 0


def test_every_reported_adversarial_is_what_a_dense_pass_of_its_image_says(victim, boundary):
    x, y, _ = boundary
    result = pixel_sweep(victim[1].predict, x, y, **ENGINE)
    t = result.targets
    done = ~t.skipped
    probs = np.asarray(jax.nn.softmax(victim[1].predict(t.adversarial[done].astype(np.float32))))
    np.testing.assert_array_equal(probs.argmax(-1), t.adversarial_class[done])
    np.testing.assert_array_equal(t.success[done], t.adversarial_class[done] == t.target[done])
    np.testing.assert_allclose(probs.max(-1), t.confidence[done], atol=1e-6)
    # The changed pixel is a grid colour at an integer position.
    assert set(np.unique(t.perturbation[done][..., 2:])) <= {0.0, 255.0}
    # Non-targeted: the lowest true-class probability among fooling pixels.
    u = result.untargeted
    fooled = u.success & ~u.skipped
    assert (u.adversarial_class[fooled] != u.label[fooled]).all()


def grey_predict(images):
    """Three classes over 6 x 5 grey images: class 1 grows with the brightest pixel of the top
    row, class 2 with the darkest pixel of the left column."""
    x = jnp.asarray(images, jnp.float32)[..., 0] / 255.0
    return jnp.stack([jnp.full(x.shape[0], 0.6), 1.2 * jnp.max(x[:, 0, :], -1),
                      1.2 * (1 - jnp.min(x[:, :, 0], -1))], -1)


def test_any_image_size_and_channel_count_with_a_denser_grid():
    x = np.full((3, 6, 5, 1), 90, np.uint8)
    x[1, :, 0] = 200  # left column bright: class 2 harder to reach
    y = np.asarray(grey_predict(x)).argmax(-1)
    result = pixel_sweep(grey_predict, x, y, levels=(0, 100, 255), slots=3, batch_size=7)
    assert result.candidates_per_image == 6 * 5 * 3
    assert result.flips.shape == (3, 6, 5)
    check_against_brute_force(result, grey_predict, x, y, (0, 100, 255))
    # The same results whatever the slots and micro-batch.
    other = pixel_sweep(grey_predict, x, y, levels=(0, 100, 255), slots=1, batch_size=64)
    np.testing.assert_array_equal(other.flips, result.flips)
    np.testing.assert_array_equal(other.targets.perturbation, result.targets.perturbation)


@pytest.mark.parametrize("settings, message", [
    ({"levels": (0, 256)}, "levels must be integers in [0, 255]"),
    ({"levels": ()}, "levels is empty"),
    ({"levels": (0.5,)}, "levels must be integers"),
    ({"pixels": 3}, "unknown sweep setting(s) pixels"),
    ({"segment": 3}, "unknown sweep setting(s) segment"),
    ({"popsize": 10}, "unknown sweep setting(s) popsize"),
    ({"slots": 0}, "slots"),
])
def test_bad_sweep_settings_are_refused(settings, message):
    x = np.zeros((2, 6, 5, 1), np.uint8)
    with pytest.raises(PixeljaxError, match=None) as e:
        pixel_sweep(grey_predict, x, np.zeros(2, np.int64), **settings)
    assert message in str(e.value)


def test_a_victim_that_misclassifies_every_image_is_refused_before_anything_is_written(tmp_path):
    x = np.full((2, 6, 5, 1), 90, np.uint8)
    wrong = (np.asarray(grey_predict(x)).argmax(-1) + 1) % 3
    data = make_image_set(x, wrong, source="grey images")
    with pytest.raises(PixeljaxError, match="misclassifies every one of the 2"):
        sweep_folder(grey_predict, data, tmp_path / "out", SweepSpec(), victim=VICTIM)
    assert not (tmp_path / "out").exists()


VICTIM = {"model": "grey", "architecture": "grey", "checkpoint": "grey-test"}


def grey_data():
    rng = np.random.default_rng(1)
    x = rng.integers(60, 140, (7, 6, 5, 1)).astype(np.uint8)
    y = np.asarray(grey_predict(x)).argmax(-1)
    y[5] = (y[5] + 1) % 3  # mislabelled: skipped
    return make_image_set(x, y, source="grey images")


def test_a_killed_sweep_resumes_and_ends_with_exactly_the_rows_of_an_uninterrupted_one(
        tmp_path, monkeypatch):
    data = grey_data()
    spec = SweepSpec(levels=(0, 255), sizes=SweepSizes(slots=2, batch_size=16))
    whole = sweep_folder(grey_predict, data, tmp_path / "whole", spec, victim=VICTIM,
                         progress=False)
    real = kill_after_first_yield(monkeypatch, waves_module, "stream")
    with pytest.raises(KeyboardInterrupt):
        sweep_folder(grey_predict, data, tmp_path / "killed", spec, victim=VICTIM,
                     progress=False)
    partial = results.read_rows(tmp_path / "killed")
    assert 0 < sum(r["status"] != "skipped" for r in partial) < 6 * 2
    monkeypatch.setattr(waves_module, "stream", real)
    resumed = sweep_folder(grey_predict, data, tmp_path / "killed", spec, victim=VICTIM,
                           progress=False)
    key = lambda r: r["attack_id"]  # noqa: E731
    assert sorted(results.read_rows(tmp_path / "killed"), key=key) == sorted(
        results.read_rows(tmp_path / "whole"), key=key)
    assert (read_untargeted(tmp_path / "killed").to_rows()
            == read_untargeted(tmp_path / "whole").to_rows())
    for k, v in read_maps(tmp_path / "whole").items():
        np.testing.assert_array_equal(read_maps(tmp_path / "killed")[k], v)
    same = ("n_attacked", "n_success", "evaluations", "n_pairs", "mean_classes_reached",
            "mean_vulnerable_pixels", "images_swept")
    assert {k: resumed[k] for k in same} == {k: whole[k] for k in same}
    assert whole["images_swept"] == 6 and whole["evaluations"] == 6 * 30 * 2


def test_a_sweep_folder_refuses_other_levels_and_other_data(tmp_path):
    data = grey_data()
    sweep_folder(grey_predict, data, tmp_path / "run", SweepSpec(sizes=SweepSizes(slots=4)),
                 victim=VICTIM,
                 progress=False)
    with pytest.raises(PixeljaxError, match="different configuration.*levels"):
        sweep_folder(grey_predict, data, tmp_path / "run", SweepSpec(levels=(0, 128, 255)),
                     victim=VICTIM, progress=False)
    changed = make_image_set(data.x[::-1].copy(), data.y[::-1].copy(), source="grey images")
    with pytest.raises(PixeljaxError, match="results of other data"):
        sweep_folder(grey_predict, changed, tmp_path / "run", SweepSpec(), victim=VICTIM,
                     progress=False)


# -- the command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_file(boundary, tmp_path_factory) -> Path:
    x, y, index = boundary
    path = tmp_path_factory.mktemp("data") / "boundary.npz"
    np.savez(path, x=x, y=y, index=index)
    return path


def sweep_args(victim, data_file, out, *extra) -> list[str]:
    return ["sweep", "tiny", "--checkpoint", str(victim[0]), "--data", str(data_file),
            "--images", "5", "--first", "--slots", "2", "--batch-size", "64", "--out",
            str(out), "--quiet", *extra]


def test_the_sweep_command_writes_a_results_folder_and_one_json_document(
        victim, data_file, tmp_path, capsys):
    assert main(sweep_args(victim, data_file, tmp_path / "run", "--json")) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)  # stdout holds exactly the summary
    assert summary["mode"] == "sweep" and summary["images_swept"] == 4
    assert summary["n_pairs"] == 4 * 9 and summary["n_skipped"] == 1
    assert summary["evaluations"] == 4 * 8192 and summary["recheck_disagreements"] == 0
    assert summary["scoring"] == "incremental"
    config = results.read_config(tmp_path / "run")
    assert config["mode"] == "sweep" and config["levels"] == [0, 255]
    assert len(results.read_rows(tmp_path / "run")) == 5 * 9
    assert len(results.read_file(tmp_path / "run" / NONTARGETED)) == 4
    assert read_maps(tmp_path / "run")["flips"].shape == (4, 32, 32)


@pytest.mark.parametrize("extra, message", [
    (["--levels", "0,300"], "levels must be integers in [0, 255]"),
    (["--levels", "a,b"], "--levels takes comma-separated integers"),
])
def test_bad_sweep_options_get_one_error_line_and_write_nothing(victim, data_file, tmp_path,
                                                                 capsys, extra, message):
    assert main(sweep_args(victim, data_file, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra", [["--pixels", "3"], ["--segment", "3"]])
def test_the_sweep_has_no_de_options(victim, data_file, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as e:
        main(sweep_args(victim, data_file, tmp_path / "run", *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert err[0].startswith(f"error: unrecognized arguments: {' '.join(extra)}")
    assert not (tmp_path / "run").exists()


def test_many_levels_print_the_candidate_count_first(victim, data_file, tmp_path, capsys):
    levels = ",".join(str(v) for v in range(0, 256, 15))  # 18 levels: 5,832 colours
    spec = SweepSpec(levels=tuple(int(v) for v in levels.split(",")))
    announce(spec, (32, 32, 3), 10)
    err = capsys.readouterr().err
    assert "18 levels per channel: 5,832 colours, 5,971,968 candidates per image" in err


# -- suites, reports and analyses ----------------------------------------------------------------

@pytest.fixture(scope="module")
def suite_run(victim, data_file, tmp_path_factory):
    """A suite of one-pixel DE and the sweep over the same five images of the tiny victim."""
    from pixeljax.evaluation import run_suite

    out = tmp_path_factory.mktemp("suite") / "out"
    summaries = run_suite(_sweep_suite(victim, data_file), out, progress=False,
                          sizes=EngineSizes(slots=2, batch_size=64))
    return out, summaries


def _sweep_suite(victim, data_file):
    from pixeljax.evaluation import AttackSpec, Suite, Victim

    return Suite(name="sweep-test", victims=(Victim("tiny", checkpoint=str(victim[0])),),
                 images=5, data=str(data_file), attack=AttackSpec(popsize=8, maxiter=3),
                 cells=(("tiny/1px-sweep", 5), ("tiny/1px-non-targeted", 4)))


def test_a_suite_runs_sweep_and_de_cells_in_its_order_on_nested_images(suite_run):
    out, summaries = suite_run
    assert [s["mode"] for s in summaries] == ["sweep", "non-targeted"]
    assert [s["n_images"] for s in summaries] == [5, 4]
    sweep_rows = results.read_rows(out / "tiny" / "1px-sweep")
    de_rows = results.read_rows(out / "tiny" / "1px-non-targeted")
    assert {r["image_index"] for r in de_rows} <= {r["image_index"] for r in sweep_rows}
    record = json.loads((out / "suite.json").read_text())
    assert record["cells"] == ["tiny/1px-sweep", "tiny/1px-non-targeted"]
    assert record["settings"]["levels"] == [0, 255]


def test_the_report_compares_de_and_the_sweep_image_by_image(suite_run):
    from pixeljax.evaluation import write_report
    from pixeljax.runs.stats import compare

    out, _ = suite_run
    text = write_report(out).read_text()
    assert "## DE and the sweep, image by image" in text
    assert "## Where one pixel suffices (sweep)" in text
    assert (out / "figures" / "vulnerability_tiny.png").stat().st_size > 1000
    cmp = compare(AttackResult.from_folder(out / "tiny" / "1px-non-targeted"),
                  AttackResult.from_folder(out / "tiny" / "1px-sweep"))
    assert cmp.images == 4  # the DE cell's first four images, all correctly classified
    row = [line for line in text.splitlines() if line.startswith("| tiny | DE non-targeted |")]
    assert row and f"| {cmp.images} | {cmp.first.successes} (" in row[0]
    assert cmp.either.successes == cmp.first.successes + cmp.only_second
    # The sweep cell reads like an all-targets cell: classes reached, targeted pairs.
    assert "| tiny | 1 | sweep |" in text


def test_propagation_and_locality_work_on_a_sweep_folder(suite_run, tmp_path, victim):
    out, _ = suite_run
    folder = out / "tiny" / "1px-sweep"
    if not any(r["success"] for r in results.read_rows(folder)):
        pytest.skip("no successful sweep row to analyse")
    assert main(["locality", "--results", str(folder), "--radius", "1", "--out",
                 str(tmp_path / "loc")]) == 0
    assert main(["propagation", "--results", str(folder), "--out", str(tmp_path / "prop"),
                 "--limit", "2"]) == 0
    table = (tmp_path / "loc").glob("*.csv")
    assert any(table)


def test_a_suite_refuses_a_sweep_without_one_pixel_and_repeated_cells():
    from pixeljax.evaluation import Suite, Victim
    from pixeljax.evaluation.plan import shared_settings
    from pixeljax.evaluation.suite import Variant

    with pytest.raises(PixeljaxError, match="the sweep changes one pixel; add 1 to pixels"):
        Suite(name="s", victims=(Victim("tiny"),), pixels=(3,), modes=("sweep",))
    with pytest.raises(PixeljaxError, match="pixels must not repeat"):
        Suite(name="s", victims=(Victim("tiny"),), pixels=(1, 1), modes=("non-targeted",))
    # A suite lists its cells directly; their keys set the pixels and modes.
    listed = Suite(name="s", victims=(Victim("tiny"),),
                   cells=(("tiny/3px-all-targets", 5), ("tiny/1px-sweep", 7)))
    assert (listed.pixels, listed.modes) == ((3, 1), ("all-targets", "sweep"))
    assert [c.key for c in listed.cell_list()] == ["tiny/3px-all-targets", "tiny/1px-sweep"]
    with pytest.raises(PixeljaxError, match="cells names cells the suite cannot make"):
        Suite(name="s", victims=(Victim("tiny"),), cells=(("other/3px-non-targeted", 5),))
    with pytest.raises(PixeljaxError, match="which are not cell keys"):
        Suite(name="s", victims=(Victim("tiny"),), cells=(("tiny/three-pixels", 5),))
    with pytest.raises(PixeljaxError, match="give the grid .pixels, modes. or the cells"):
        Suite(name="s", victims=(Victim("tiny"),), pixels=(1,),
              cells=(("tiny/1px-non-targeted", 5),))
    with pytest.raises(PixeljaxError, match="whose mode is not one of"):
        Suite(name="s", victims=(Victim("tiny"),), cells=(("tiny/1px-targeted", 5),))
    # A threshold variant beside listed 3-pixel cells: only its own cells sit at one pixel.
    th5 = (Variant("th5", attack={"threshold": 5}),)
    Suite(name="s", victims=(Victim("tiny"),), variants=th5,
          cells=(("tiny/3px-non-targeted", 5),))
    with pytest.raises(PixeljaxError, match="cells names cells the suite cannot make"):
        Suite(name="s", victims=(Victim("tiny"),), variants=th5,
              cells=(("tiny/3px-non-targeted+th5", 5),))
    # The colour levels are each sweep cell's own setting, so a suite may gain its first one.
    assert shared_settings({"seed": 0, "levels": [0, 255], "n_images": 5}) == {"seed": 0}


def test_publish_copies_what_a_reader_needs_and_its_table_comes_from_the_summaries(
        suite_run, tmp_path):
    from pixeljax.evaluation.publish import headline_table, publish, read_cells
    from pixeljax.reporting.readme_blocks import readme_block

    out, summaries = suite_run
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- published:sweep-test -->\nold\n<!-- /published:sweep-test -->\n")
    dest = tmp_path / "results" / "sweep-test"
    page = publish(out, dest, command="pixeljax evaluate sweep-test --out OUT", readme=readme)
    cells = read_cells(dest)
    assert [c["mode"] for c in cells] == ["sweep", "non-targeted"]
    victims = json.loads((dest / "victims.json").read_text())
    table = "\n".join(headline_table(cells, victims))
    assert readme_block(page.read_text(), "sweep-test") == table
    assert readme_block(readme.read_text(), "sweep-test") == table
    sweep = summaries[0]
    assert f"| {sweep['n_attacked']} of {sweep['n_images']} |" in table
    assert (dest / "report.md").is_file() and list((dest / "figures").glob("*.png"))
    assert not list(dest.rglob("results.csv"))  # rows travel only inside run.tar.gz
    assert (dest / "run.tar.gz").is_file()
    assert "--continue-from sweep-test" not in page.read_text()
    assert "--continue-from results/sweep-test" in page.read_text()
    bare = tmp_path / "BARE.md"
    bare.write_text("# x\n")
    with pytest.raises(PixeljaxError, match="has no block"):
        publish(out, tmp_path / "more" / "sweep-test", command="x", readme=bare)


def test_a_publication_of_another_suite_is_never_replaced(suite_run, tmp_path):
    from pixeljax.evaluation.publish import publish

    out, _ = suite_run
    other = tmp_path / "results" / "paper-cpu"  # another suite's publication, its run inside
    other.mkdir(parents=True)
    (other / "provenance.json").write_text(json.dumps({"suite": "paper-cpu"}))
    (other / "run.tar.gz").write_bytes(b"eleven hours of attacks")
    readme = tmp_path / "README.md"
    text = "<!-- published:paper-cpu -->\nthe paper-cpu table\n<!-- /published:paper-cpu -->\n"
    readme.write_text(text)
    with pytest.raises(PixeljaxError, match="is the publication of suite 'paper-cpu', never "
                                            "replaced by another suite's: publish suite "
                                            "'sweep-test' into a folder of its own"):
        publish(out, other, command="x", readme=readme)
    assert (other / "run.tar.gz").read_bytes() == b"eleven hours of attacks"
    # A new folder of that name elsewhere would still rewrite the other suite's README block.
    with pytest.raises(PixeljaxError, match="'paper-cpu' is not suite 'sweep-test'"):
        publish(out, tmp_path / "elsewhere" / "paper-cpu", command="x", readme=readme)
    assert readme.read_text() == text and not (tmp_path / "elsewhere").exists()


def test_a_published_run_continues_in_a_fresh_folder_from_its_archive(
        suite_run, victim, data_file, tmp_path):
    """A fresh clone holds only the publication: the same command with --continue-from
    restores the finished cells (no attack runs again) and runs the cells the archive lacks,
    to the same rows."""
    from pixeljax.evaluation import run_suite
    from pixeljax.evaluation.publish import publish

    out, summaries = suite_run
    dest = tmp_path / "results" / "tiny-pub"
    publish(out, dest, command="pixeljax evaluate sweep-test --out OUT")
    suite = _sweep_suite(victim, data_file)
    fresh = tmp_path / "fresh"
    again = run_suite(suite, fresh, progress=False, sizes=EngineSizes(slots=2, batch_size=64),
                      continue_from=dest)
    assert again == summaries  # the very summaries: nothing was attacked anew
    assert not list(fresh.rglob(".restore-*"))
    # An archive of the sweep alone: the DE cell runs, to the rows of the first run.
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    shutil.rmtree(partial / "tiny" / "1px-non-targeted")
    publish(partial, tmp_path / "results" / "sweep-only", command="x")
    rest = tmp_path / "rest"
    lines = []
    run_suite(suite, rest, progress=False, sizes=EngineSizes(slots=2, batch_size=64),
              continue_from=tmp_path / "results" / "sweep-only" / "run.tar.gz", log=lines.append)
    assert "restored from" in lines[0] and "tiny/1px-sweep" in lines[0]
    for cell in ("1px-sweep", "1px-non-targeted"):
        assert results.read_rows(rest / "tiny" / cell) == results.read_rows(out / "tiny" / cell)
    # Run again with the same command: the folder's own cells are left as they are.
    run_suite(suite, rest, progress=False, sizes=EngineSizes(slots=2, batch_size=64),
              continue_from=tmp_path / "results" / "sweep-only", log=lines.append)
    assert any("no cell this folder lacks" in line for line in lines)


def test_a_published_run_continues_where_its_data_lie_on_this_machine(
        suite_run, victim, data_file, tmp_path):
    """The archive records no path of the machine that ran it: the same images elsewhere (by
    their fingerprint) continue it, and the restored cells name this machine's data."""
    import tarfile

    from pixeljax.evaluation import run_suite
    from pixeljax.evaluation.publish import publish

    out, summaries = suite_run
    dest = tmp_path / "pub"
    publish(out, dest, command="x")
    with tarfile.open(dest / "run.tar.gz") as tar:
        text = "".join(tar.extractfile(m).read().decode() for m in tar.getmembers()
                       if m.name.endswith(".json"))
    assert str(data_file.parent) not in text and str(victim[0].parent) not in text
    moved = tmp_path / "elsewhere" / data_file.name
    moved.parent.mkdir()
    shutil.copy(data_file, moved)
    suite = dataclasses.replace(_sweep_suite(victim, data_file), data=str(moved))
    again = run_suite(suite, tmp_path / "fresh", progress=False,
                      sizes=EngineSizes(slots=2, batch_size=64),
                      continue_from=dest)
    assert [s["n_success"] for s in again] == [s["n_success"] for s in summaries]
    config = json.loads((tmp_path / "fresh" / "tiny" / "1px-sweep" / "config.json").read_text())
    assert config["data"] == str(moved.resolve())


def test_a_run_archive_of_another_suite_victim_or_data_or_with_foreign_files_is_refused(
        suite_run, victim, data_file, tmp_path):
    import tarfile

    from pixeljax.evaluation import run_suite
    from pixeljax.evaluation.publish import publish

    suite = _sweep_suite(victim, data_file)
    out, _ = suite_run
    dest = tmp_path / "pub"
    publish(out, dest, command="x")

    def refused(archive, message, run=suite):
        target = tmp_path / "target"
        with pytest.raises(PixeljaxError, match=message):
            run_suite(run, target, progress=False, continue_from=archive)
        assert not target.exists() or not [p for p in target.iterdir()
                                            if p.name != ".pixeljax.lock"]

    def archive(name, *files):
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as tar:
            for source, member in files:
                tar.add(source, member)
        return path

    record = (out / "suite.json", "suite.json")
    refused(archive("evil.tar.gz", record, (out / "suite.json", "../escaped.json")),
            "not a whole run archive.*'../escaped.json'")
    assert not (tmp_path / "escaped.json").exists()
    # A victim's checkpoint planted beside the cells would be attacked instead of the given one.
    planted = archive("planted.tar.gz", record,
                      (victim[0] / "metadata.json", "tiny/checkpoint/metadata.json"))
    refused(planted, "holds 'tiny/checkpoint', which is no cell of suite 'sweep-test'")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes((dest / "run.tar.gz").read_bytes()[:-200])
    refused(cut, "not a whole run archive")
    refused(dest, "holds a run of suite 'sweep-test', not 'other'",
            dataclasses.replace(suite, name="other"))
    refused(dest, "other settings .*popsize",
            dataclasses.replace(suite, attack=suite.attack.replace(popsize=10)))
    refused(tmp_path / "nothing", "no run.tar.gz there")
    # Other images under the same indices: refused by their fingerprint.
    x, y, index = np.load(data_file)["x"], np.load(data_file)["y"], np.load(data_file)["index"]
    other = tmp_path / "other.npz"
    np.savez(other, x=255 - x, y=y, index=index)
    refused(dest, "attacked other images", dataclasses.replace(suite, data=str(other)))
    # A cell left by a killed restore is cleaned up, not mixed in.
    target = tmp_path / "target"
    (target / ".restore-stale" / "tiny").mkdir(parents=True)
    run_suite(suite, target, progress=False, sizes=EngineSizes(slots=2, batch_size=64),
              continue_from=dest)
    assert not list(target.glob(".restore-*"))


def test_a_cell_still_running_is_published_without_rates(suite_run, tmp_path):
    """DE attacks that succeed stop early and finish first: a partial cell's rate would be
    biased, so the headline table shows only how far it is."""
    from pixeljax.evaluation.publish import headline_table, publish, read_cells

    out, _ = suite_run
    dest = tmp_path / "pub"
    publish(out, dest, command="x")
    cells = read_cells(dest)
    running = {**cells[1], "planned_images": cells[1]["n_images"] + 5}
    row = headline_table([running], {})[2]
    assert f"{running['n_images']} of {running['planned_images']} done (running)" in row
    assert "%" not in row.split("|", 3)[3]  # no rate after the clean accuracy


def test_publish_never_replaces_the_results_or_a_folder_of_something_else(suite_run, tmp_path):
    from pixeljax.evaluation.publish import publish

    out, _ = suite_run
    with pytest.raises(PixeljaxError, match="overlap"):
        publish(out, out / "published", command="x")
    with pytest.raises(PixeljaxError, match="overlap"):
        publish(out, out.parent, command="x")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(PixeljaxError, match="holds something other than a publication"):
        publish(out, other, command="x")
    assert (other / "mine.txt").read_text() == "keep me"
    assert (out / "suite.json").is_file()


def nan_at_the_corner(images):
    """grey_predict, but NaN logits whenever the top-left pixel is white."""
    logits = grey_predict(images)
    white = jnp.asarray(images, jnp.float32)[:, 0, 0, 0] > 250
    return jnp.where(white[:, None], jnp.nan, logits)


def test_candidates_with_nan_logits_are_counted_and_never_reported(tmp_path):
    data = grey_data()
    summary = sweep_folder(nan_at_the_corner, data, tmp_path / "run",
                           SweepSpec(sizes=SweepSizes(slots=2)), victim=VICTIM, progress=False)
    assert summary["nonfinite_evaluations"] == summary["images_swept"]  # one per image
    for r in results.read_rows(tmp_path / "run") + read_untargeted(tmp_path / "run").to_rows():
        if r["status"] != "skipped":
            assert not (r["x0"] == 0 and r["y0"] == 0 and r["r0"] == 255)


def test_a_cut_off_last_untargeted_row_is_repaired_on_resume(tmp_path):
    data = grey_data()
    spec = SweepSpec(sizes=SweepSizes(slots=2))
    sweep_folder(grey_predict, data, tmp_path / "run", spec, victim=VICTIM, progress=False)
    path = tmp_path / "run" / NONTARGETED
    text = path.read_text()
    cut = results.read_file(path)[-1]["image_index"]
    path.write_text(text[:-7])  # a kill in mid-write, which leaves the image without rows
    rows = tmp_path / "run" / results.RESULTS
    lines = rows.read_text().splitlines(keepends=True)
    rows.write_text("".join(line for line in lines if line.split(",")[1] != str(cut)))
    sweep_folder(grey_predict, data, tmp_path / "run", spec, victim=VICTIM, progress=False)
    # The cut row is dropped, not left corrupt in the middle, and the resume sweeps its image
    # again.
    assert len(read_untargeted(tmp_path / "run")) == 6
    assert path.read_text().endswith("\n")


def _tiny_suite(victim, data_file, name, cells, variants=()):
    from pixeljax.evaluation import AttackSpec, Suite, Victim

    return Suite(name=name, victims=(Victim("tiny", checkpoint=str(victim[0])),), images=5,
                 data=str(data_file), attack=AttackSpec(popsize=8, maxiter=3),
                 variants=variants, cells=cells)


def _rows_by_attack(directory):
    return sorted(results.read_rows(directory), key=lambda r: r["attack_id"])


def test_variant_cells_run_beside_the_suites_own_with_the_settings_they_change(
        victim, data_file, tmp_path):
    from pixeljax.attack.run import attack_folder
    from pixeljax.attack.spec import AttackSpec
    from pixeljax.data import load_dataset
    from pixeljax.evaluation import Variant, run_suite
    from pixeljax.evaluation.publish import publish, published_table

    suite = _tiny_suite(victim, data_file, "variants", (
        ("tiny/1px-non-targeted", 5), ("tiny/1px-non-targeted+best1-dither", 5),
        ("tiny/1px-sweep+grey", 5)),
        variants=(Variant("best1-dither", attack={"strategy": "best1", "dither": 0.5}),
                  Variant("grey", levels=(0, 128, 255))))
    out = tmp_path / "out"
    summaries = run_suite(suite, out, progress=False, sizes=EngineSizes(slots=2, batch_size=64))
    config = results.read_config(out / "tiny" / "1px-non-targeted+best1-dither")
    assert (config["strategy"], config["dither"], config["F"]) == ("best1", 0.5, 0.5)
    # The variant's rows are those of the same attack run by itself.
    spec = AttackSpec(popsize=8, maxiter=3, strategy="best1", dither=0.5, n_images=5, first=True)
    attack_folder(victim[1].predict, load_dataset(data_file), tmp_path / "alone", spec,
                  victim={"model": "tiny", "architecture": "tiny", "checkpoint": "x"},
                  progress=False)
    assert _rows_by_attack(out / "tiny" / "1px-non-targeted+best1-dither") == \
        _rows_by_attack(tmp_path / "alone")
    assert _rows_by_attack(out / "tiny" / "1px-non-targeted") != _rows_by_attack(tmp_path / "alone")
    h, w, c = load_dataset(data_file).x.shape[1:]
    assert summaries[2]["candidates_per_image"] == h * w * 3 ** c
    dest = tmp_path / "results" / "variants"
    publish(out, dest, command="x")
    methods = [row.split(" | ")[2] for row in published_table(dest)[2:]]
    assert methods == ["DE non-targeted", "DE non-targeted, DE/best/1, F in [0.5, 1)",
                       "sweep, levels [0, 128, 255]"]
    from pixeljax.evaluation.confidence import read_table

    binned = read_table(dest / "tables" / "success_by_confidence.csv")
    assert {r["mode"] for r in binned} == {"non-targeted", "non-targeted+best1-dither",
                                           "sweep+grey"}
    with pytest.raises(PixeljaxError, match="attack sets pixels, which the suite sets"):
        Variant("x", attack={"pixels": 3})
    with pytest.raises(PixeljaxError, match="variant x: .*strategy"):
        Variant("x", attack={"strategy": "best2"})


def test_a_cell_given_more_images_keeps_its_rows_and_attacks_only_the_new_ones(
        victim, data_file, tmp_path):
    from pixeljax.evaluation import run_suite
    from pixeljax.evaluation.publish import publish

    sizes = EngineSizes(slots=2, batch_size=64)
    cells = (("tiny/1px-non-targeted", 2), ("tiny/1px-sweep", 2))
    small = _tiny_suite(victim, data_file, "grow", cells)
    out = tmp_path / "out"
    run_suite(small, out, progress=False, sizes=sizes)
    publish(out, tmp_path / "results" / "grow", command="x")
    before = {c: (out / c / "results.csv").read_bytes() for c, _ in cells}
    big = _tiny_suite(victim, data_file, "grow", tuple((c, 5) for c, _ in cells))
    run_suite(big, out, progress=False, sizes=sizes)
    run_suite(big, tmp_path / "fresh", progress=False, sizes=sizes)
    run_suite(big, tmp_path / "restored", progress=False, sizes=sizes,
              continue_from=tmp_path / "results" / "grow")
    for cell, _ in cells:
        grown = (out / cell / "results.csv").read_bytes()
        assert grown.startswith(before[cell]) and len(grown) > len(before[cell])
        assert results.read_config(out / cell)["n_images"] == 5
        assert _rows_by_attack(out / cell) == _rows_by_attack(tmp_path / "fresh" / cell)
        assert _rows_by_attack(tmp_path / "restored" / cell) == \
            _rows_by_attack(tmp_path / "fresh" / cell)
