"""Locality analysis (Vargas & Su, arXiv 1902.02947): attacks re-applied around the attacked
pixel, success by Chebyshev distance."""

import csv
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _analysis_support import shared_results

from pixeljax.analysis import check_radius, load_attacks, locality, offsets, run_locality
from pixeljax.analysis.locality import NOT_EVALUATED, shift_candidates
from pixeljax.cli import main
from pixeljax.errors import PixeljaxError
from pixeljax.runs.results import ResultsWriter, read_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return shared_results(tmp_path_factory)


def column_sum_model(traces: list | None = None):
    """A hand-written victim: the class is (sum of column indices weighted by red / 255) % 10,
    so on a black image the class of a red pixel at column x is x % 10."""

    def predict(images):  # (B, H, W, C) -> (B, 10)
        if traces is not None:
            traces.append(images.shape)  # runs once per compilation
        columns = jnp.arange(images.shape[2], dtype=jnp.float32)
        score = (images[..., 0] / 255.0 * columns).sum(axis=(1, 2))
        return jax.nn.one_hot(jnp.round(score).astype(jnp.int32) % 10, 10)

    return predict


def test_offsets_are_chebyshev_rings_nearest_first():
    shifts = offsets(2)
    distance = np.abs(shifts).max(-1)
    assert shifts.shape == (25, 2) and shifts[0].tolist() == [0, 0]
    assert np.all(np.diff(distance) >= 0)
    assert np.bincount(distance).tolist() == [1, 8, 16]
    assert len({tuple(s) for s in shifts}) == 25


def test_shifted_patterns_that_leave_the_image_are_skipped():
    corner = np.array([[0, 0, 255, 0, 0]], np.float32)
    shifted, inside = shift_candidates(corner, offsets(1), (32, 32, 3))
    kept = offsets(1)[inside[0]]
    assert sorted(map(tuple, kept)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    wide = np.array([[0, 5, 255, 0, 0, 31, 5, 255, 0, 0]], np.float32)  # columns 0 and 31
    _, inside = shift_candidates(wide, offsets(1), (32, 32, 3))
    assert sorted(map(tuple, offsets(1)[inside[0]])) == [(-1, 0), (0, 0), (1, 0)]


def test_a_shift_moves_columns_by_dx_and_rows_by_dy_and_keeps_colours():
    candidate = np.array([[10.7, 20.2, 300.0, -4.0, 17.4]], np.float32)  # as applied: floored
    shifted, _ = shift_candidates(candidate, np.array([[-2, 3]]), (32, 32, 3))
    assert shifted[0, 0].tolist() == [13.0, 18.0, 255.0, 0.0, 17.0]


def test_targeted_and_non_targeted_success_rules_at_every_offset():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    candidates = np.array([[12, 16, 255, 0, 0]] * 3, np.float32)
    labels = np.array([2, 3, 2])
    targets = np.array([-1, -1, 4])  # non-targeted, non-targeted, targeted at class 4
    result = locality(column_sum_model(), images, candidates, labels, targets, radius=3)
    dx = result.offsets[:, 1]
    predicted = (12 + dx) % 10  # the class of each shifted image
    np.testing.assert_array_equal(result.outcome[0], predicted != 2)
    np.testing.assert_array_equal(result.outcome[1], predicted != 3)
    np.testing.assert_array_equal(result.outcome[2], predicted == 4)


def test_multi_pixel_patterns_move_as_a_whole():
    images = np.zeros((1, 32, 32, 3), np.uint8)
    pattern = np.array([[5, 3, 255, 0, 0, 9, 20, 255, 0, 0]], np.float32)  # columns 5 and 9
    result = locality(column_sum_model(), images, pattern, np.array([0]), np.array([6]),
                      radius=2)
    dx = result.offsets[:, 1]
    np.testing.assert_array_equal(result.outcome[0], (14 + 2 * dx) % 10 == 6)


def test_all_shifts_run_in_fixed_size_batches_of_one_compilation():
    traces = []
    images = np.zeros((4, 32, 32, 3), np.uint8)
    candidates = np.array([[x, 10, 255, 0, 0] for x in (3, 8, 16, 30)], np.float32)
    result = locality(jax.tree_util.Partial(column_sum_model(traces)), images, candidates,
                      np.zeros(4, int), -np.ones(4, int), radius=2, batch_size=16)
    assert traces == [(16, 32, 32, 3)]  # 4 x 25 shifts less 5 skipped, 16 at a time: 6 calls
    skipped = np.argwhere(result.outcome == NOT_EVALUATED)
    assert skipped[:, 0].tolist() == [3] * 5  # column 30 moved by dx = +2 leaves the image
    assert np.all(result.offsets[skipped[:, 1], 1] == 2)


def test_distance_zero_reproduces_every_recorded_outcome(results):
    attacks = load_attacks(results.directory)  # successes and failures, both modes
    assert attacks.found.success.any() and not attacks.found.success.all()
    assert (attacks.found.target >= 0).any() and (attacks.found.target < 0).any()
    result = locality(attacks.victim.predict, attacks.images, attacks.found.candidates,
                      attacks.found.label, attacks.found.target, radius=1, batch_size=32)
    assert result.distance[0] == 0
    np.testing.assert_array_equal(result.outcome[:, 0], attacks.found.success)


def test_the_command_writes_a_table_and_a_curve_per_model(results, tmp_path, capsys):
    out = tmp_path / "loc"
    assert main(["locality", "--results", str(results.directory), "--radius", "2",
                 "--out", str(out)]) == 0
    assert "tiny (" in capsys.readouterr().out
    with open(out / "locality.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["distance"]) for r in rows] == [0, 1, 2]
    assert all(r["model"] == "tiny" for r in rows)
    successes = sum(r["status"] == "success" for r in results.rows)
    assert int(rows[0]["attacks"]) == int(rows[0]["evaluated"]) == successes
    assert float(rows[0]["success_rate"]) == 1.0  # every successful attack, unmoved
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    assert int(rows[2]["evaluated"]) <= 16 * successes
    assert (out / "locality.png").read_bytes()[:8] == PNG_MAGIC


def test_two_folders_of_one_model_give_two_labelled_curves(results, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(results.directory, copy)
    summary = run_locality([results.directory, copy], tmp_path / "out", radius=0)
    assert [m["success_rate"] for m in summary["models"]] == [[1.0], [1.0]]
    with open(tmp_path / "out" / "locality.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


@pytest.mark.parametrize("radius", [-1, 32, 100, 2.5])
def test_a_radius_outside_the_image_is_refused(radius):
    with pytest.raises(PixeljaxError, match="radius"):
        check_radius(radius, (32, 32, 3))
    images = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(PixeljaxError, match="radius"):
        locality(column_sum_model(), images, np.zeros((1, 5), np.float32), np.zeros(1, int),
                 -np.ones(1, int), radius=radius)


def test_the_largest_radius_inside_the_image_is_accepted():
    assert check_radius(31, (32, 32, 3)) == 31
    assert check_radius(0, (32, 32, 3)) == 0


def test_the_command_refuses_a_bad_radius_and_another_model(results, tmp_path, capsys):
    for extra, message in ((["--radius", "-1"], "radius"), (["--radius", "32"], "radius"),
                           (["--model", "vgg16"], "not on 'vgg16'")):
        assert main(["locality", "--results", str(results.directory), "--out", str(tmp_path),
                     *extra]) == 2
        assert message in capsys.readouterr().err


def test_a_missing_results_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PixeljaxError, match="does not exist"):
        run_locality(tmp_path / "nowhere", tmp_path / "out")


def test_a_folder_without_successful_attacks_is_a_clear_error(results, tmp_path):
    failed = tmp_path / "failed"
    failed.mkdir()
    shutil.copy(results.directory / "config.json", failed)
    with ResultsWriter(failed, pixels=1) as writer:
        writer.write([r for r in results.rows if r["status"] == "failure"])
    assert read_rows(failed)
    with pytest.raises(PixeljaxError, match="no successful attack"):
        run_locality(failed, tmp_path / "out")


@pytest.mark.parametrize("change", [{"label": 1}, {"image_index": 4}, {"image_index": -1}])
def test_rows_that_do_not_match_the_data_are_refused(results, tmp_path, change):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(results.directory / "config.json", wrong)
    row = next(r for r in results.rows if r["status"] == "success")
    if "label" in change:
        change = {"label": (row["label"] + 1) % 10}  # the data holds 4 images
    with ResultsWriter(wrong, pixels=1) as writer:
        writer.write([{**row, **change}])
    with pytest.raises(PixeljaxError, match="made on other data"):
        load_attacks(wrong)
