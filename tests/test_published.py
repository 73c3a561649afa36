"""The published tables (``results/``) agree with the summaries stored beside them: every
number of a headline table is recomputed here from the ``summary.json`` files and the victims'
accuracies published with it, and compared with the table in its README and in the project's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixeljax.evaluation.archive import ARCHIVE
from pixeljax.evaluation.publish import PROVENANCE, published_table
from pixeljax.readme_blocks import readme_block

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
