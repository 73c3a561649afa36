"""The published tables (``results/``) agree with what is stored beside them: every number of a
headline table is recomputed here from the ``summary.json`` files and the victims' accuracies
published with it, and compared with the table in its README and in the project's; the tables of
success against clean confidence are counted again from the rows in the run's archive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixeljax.evaluation.archive import ARCHIVE
from pixeljax.evaluation.confidence import (
    BINNED_CSV,
    CLEAN_CSV,
    FOOLED_CSV,
    MARGIN,
    TRUE_PROB,
    read_table,
)
from pixeljax.evaluation.publish import MECHANISM, PROVENANCE, mechanism_table, published_table
from pixeljax.reporting.readme_blocks import readme_block
from pixeljax.runs.stats import CONFIDENCE_BINS
from pixeljax.sweep.folder import read_maps

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p.parent for p in (REPO / "results").glob(f"*/{PROVENANCE}"))


def recomputed(dest: Path) -> str:
    return "\n".join(published_table(dest))


@pytest.mark.parametrize("dest", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_a_published_table_is_what_its_stored_summaries_give(dest):
    table = recomputed(dest)
    assert readme_block((dest / "README.md").read_text(), dest.name) == table
    assert readme_block((REPO / "README.md").read_text(), dest.name) == table


@pytest.mark.parametrize("dest", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_a_publication_names_its_command_commit_and_machine(dest):
    provenance = json.loads((dest / PROVENANCE).read_text())
    assert provenance["command"].startswith("pixeljax evaluate ")
    assert len(provenance["commit"].split("+")[0]) == 40
    assert provenance["machine"] and provenance["published"]
    for key, _ in provenance["cells"]:
        if (dest / "cells" / key / "summary.json").is_file():
            assert (dest / "cells" / key / "config.json").is_file()
    # Only what a reader needs: no result rows.
    assert not list(dest.rglob("*.csv.gz")) and not list(dest.rglob("results.csv"))


@pytest.mark.parametrize("dest", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_a_publication_carries_the_run_its_summaries_came_from(dest):
    """``run.tar.gz`` holds every published cell with the very summary published, beside the
    rows it was computed from (so the run can be re-analysed and continued)."""
    import tarfile

    with tarfile.open(dest / ARCHIVE) as tar:
        names = set(tar.getnames())
        for key, _ in json.loads((dest / PROVENANCE).read_text())["cells"]:
            published = dest / "cells" / key / "summary.json"
            if published.is_file():
                archived = json.load(tar.extractfile(f"{key}/summary.json"))
                assert archived == json.loads(published.read_text())
                assert f"{key}/results.csv" in names


@pytest.fixture(scope="module", params=PUBLISHED, ids=[p.name for p in PUBLISHED])
def restored(request, tmp_path_factory):
    """A publication and its run, unpacked from its archive."""
    import tarfile

    from pixeljax.evaluation.store import load_results

    dest, out = request.param, tmp_path_factory.mktemp("run")
    with tarfile.open(dest / ARCHIVE) as tar:
        tar.extractall(out, filter="data")
    return dest, load_results(out)


def _bin(value: float) -> int:
    """The bin of a clean probability or margin: edges belong to the bin above them."""
    return sum(value >= edge for edge in CONFIDENCE_BINS)


def _mode(cell) -> str:
    """A cell's mode as the tables show it: with its variant (``mode+variant``)."""
    return cell.mode + (f"+{cell.variant}" if cell.variant else "")


def test_the_published_confidence_tables_are_what_the_rows_give(restored):
    """``tables/success_by_confidence.csv`` and ``adversarial_confidence.csv``, counted again
    from the archived rows (and sweep maps) and the published clean probabilities."""
    dest, run = restored
    binned = read_table(dest / "tables" / BINNED_CSV)
    fooled = {(r["model"], r["pixels"], r["mode"]): r
              for r in read_table(dest / "tables" / FOOLED_CSV)}
    clean = {(r["model"], r["image_index"]): r for r in read_table(dest / "tables" / CLEAN_CSV)}
    shown = {(r["model"], r["pixels"], r["mode"]) for r in binned}
    for cell in [c for c in run.cells if c.started and not c.complete]:  # running: biased
        assert (cell.model, cell.pixels, _mode(cell)) not in shown
    for cell in [c for c in run.cells if c.complete]:
        found = cell.found.attacked()
        images = {}
        for i, p, ok in zip(found.image_index.tolist(), found.true_prob_before.tolist(),
                            found.success.tolist()):
            images[i] = (p, images.get(i, (p, False))[1] or ok)
        maps = read_maps(cell.directory)
        vulnerable = dict(zip(maps["image_index"].tolist(),
                              (maps["flips"] > 0).sum(axis=(1, 2)).tolist())) if maps else {}
        margins = {i: clean[(cell.model, i)] for i in images if (cell.model, i) in clean}
        for i, r in margins.items():  # the victim scored again agrees with the rows
            assert abs(r["true_prob"] - images[i][0]) <= 1e-2
            assert r["margin"] == pytest.approx(r["true_prob"] - r["runner_up_prob"])
        for by, value in ((TRUE_PROB, lambda i: images[i][0]),
                          (MARGIN, lambda i: margins[i]["margin"])):
            rows = [r for r in binned if (r["model"], r["pixels"], r["mode"], r["by"])
                    == (cell.model, cell.pixels, _mode(cell), by)]
            if by == MARGIN and len(margins) < len(images):
                assert not rows  # no margin table for a victim that was not scored again
                continue
            assert len(rows) == len(CONFIDENCE_BINS) + 1
            for k, row in enumerate(rows):
                inside = [i for i in images if _bin(value(i)) == k]
                assert row["images"] == len(inside)
                assert row["fooled"] == sum(images[i][1] for i in inside)
                if inside and vulnerable:
                    assert row["mean_vulnerable_pixels"] == pytest.approx(
                        np.mean([vulnerable[i] for i in inside]))
            if vulnerable and by == TRUE_PROB:  # the bins together give the summary's mean
                total = sum(r["mean_vulnerable_pixels"] * r["images"] for r in rows if r["images"])
                assert total / len(images) == pytest.approx(cell.summary["mean_vulnerable_pixels"])
        row = fooled[(cell.model, cell.pixels, _mode(cell))]
        won = found.confidence[found.success].astype(np.float64)
        assert row["successful_attacks"] == len(won)
        assert row["mean_confidence"] == pytest.approx(won.mean() if len(won) else None)
        assert (row["attacked"], row["fooled"]) == (len(images), sum(f for _, f in images.values()))
        if row["classes_per_attacked"] is not None:
            assert row["classes_per_attacked"] == pytest.approx(len(won) / len(images))


@pytest.mark.parametrize("dest", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_a_published_mechanism_table_is_what_its_stored_tables_give(dest):
    table = "\n".join(mechanism_table(dest))
    name = MECHANISM.format(dest.name)
    assert readme_block((dest / "README.md").read_text(), name) == table
    assert readme_block((REPO / "README.md").read_text(), name) in (None, table)
