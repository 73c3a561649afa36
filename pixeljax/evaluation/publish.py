"""``pixeljax publish``: a suite's results as a small folder a reader needs, and its headline table.

    DEST/README.md                  the headline table (below) and where the numbers come from
    DEST/report.md, figures/, tables/   the suite's report (``pixeljax report``)
    DEST/cells/<victim>/<cell>/     each cell's ``summary.json`` and ``config.json`` (paths of
                                    this machine cut to their last part, here and in the report)
    DEST/victims.json               each victim's clean accuracy, from its checkpoint metadata
    DEST/provenance.json            the command, the commit, the machine, the date and the
                                    kind of table shown (:func:`table_kind`)
    DEST/run.tar.gz                 the run itself: every cell's rows, sweep maps and timing
                                    (``pixeljax.evaluation.archive``), to re-analyse it or to
                                    continue it (``pixeljax evaluate ... --continue-from DEST``)

The headline table is computed from the stored summaries and ``victims.json`` alone
(:func:`headline_table`; a suite of defended victims shows :func:`robustness_table`, one that
runs the threshold attack :func:`levels_table`), so a test can recompute it from what is
published beside it; the paper's numbers come from :mod:`pixeljax.evaluation.paper`. Beside
it, :func:`mechanism_table` renders the report's tables of success against clean confidence, of
the successes' confidence and classes, and of DE against the sweep, from the CSV files in
``tables/`` (which a test recomputes from the rows in the archive). With ``readme``, the
headline table also replaces the block between ``<!-- published:NAME -->`` and
``<!-- /published:NAME -->`` there, and the mechanism tables the block ``NAME-mechanism`` where
the README has one.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from pixeljax.errors import PixeljaxError
from pixeljax.evaluation import confidence, paper
from pixeljax.evaluation.archive import ARCHIVE, write_archive
from pixeljax.evaluation.confidence import NO_PAPER
from pixeljax.evaluation.report import FIGURES, REPORT, TABLES, write_report
from pixeljax.evaluation.store import load_results, parse_key
from pixeljax.evaluation.suite import VARIANT_SEPARATOR
from pixeljax.evaluation.tables import COMPARISON_CSV, L0, LINF, threshold_variants
from pixeljax.reporting.readme_blocks import block, check_blocks, readme_block, write_blocks
from pixeljax.runs import results
from pixeljax.runs.modes import TARGET_MODES
from pixeljax.runs.stats import Rate
from pixeljax.training.export import portable

CELLS = "cells"
VICTIMS = "victims.json"
PROVENANCE = "provenance.json"
METHODS = {"non-targeted": "DE non-targeted", "all-targets": "DE all targets (paper's protocol)"}


def _method(cell: dict) -> str:
    """The method column: the mode, and the settings a variant cell changes (its config)."""
    if cell["mode"] != "sweep":
        method = METHODS.get(cell["mode"], cell["mode"])
        if cell.get("strategy", "rand1") != "rand1":
            method += f", DE/{cell['strategy'][:-1]}/1"
        if cell.get("dither"):
            method += f", F in [{cell['F']:g}, {cell['F'] + cell['dither']:g})"
    else:
        levels = cell.get("levels", [0, 255])
        method = "sweep, corners" if list(levels) == [0, 255] else f"sweep, levels {levels}"
    if cell.get("precision", "float32") != "float32":
        method += f", {cell['precision']} (float32 re-check)"
    return method


def _rate(successes: int, trials: int) -> str:
    if not trials:
        return "–"
    low, high = Rate(successes, trials).interval
    return f"{successes / trials:.1%} [{low:.1%}, {high:.1%}]"


def _paper(metric: str, model: str, pixels: int, *, percent: bool = True) -> str:
    """The paper's figure for ``model`` (or over its networks), labelled with the paper's
    version; none for a network the paper did not attack."""
    if model not in paper.paper_models():
        return "–" if metric == "accuracy" else NO_PAPER
    found = paper.published(metric, model, pixels) or paper.published(metric, None, pixels)
    if found is None:
        return "–"
    text = f"{found.value:.1%}" if percent else f"{found.value:g}"
    return (text + ("" if found.verified else "*") + f" {found.version}"
            + ("" if found.model else " (all)"))


MECHANISM = "{}-mechanism"  # the README block of a publication's mechanism tables


def mechanism_table(dest: str | Path) -> list[str]:
    """Why one pixel fools, from the tables a publication stores (see the module docstring):
    images fooled by bin of the clean true-class probability, the successes' confidence and
    classes beside the paper's, and DE against the sweep on the same images."""
    folder = Path(dest) / TABLES
    lines = ["Images fooled by the victim's clean probability of the true class (fooled/images "
             "in the bin, the rate; intervals and the margin over the runner-up class in the "
             "report):", ""]
    lines += confidence.binned_markdown(confidence.read_table(
        folder / confidence.BINNED_CSV), confidence.TRUE_PROB, intervals=False)
    lines += ["", "Confidence of the adversarial class and classes reached, denominators in "
              "brackets:", ""]
    lines += confidence.fooled_markdown(confidence.read_table(folder / confidence.FOOLED_CSV))
    agreement = confidence.agreement_markdown(confidence.read_table(folder / COMPARISON_CSV))
    if agreement:
        lines += ["", "DE and the sweep on the images both attacked:", ""] + agreement
    return lines


def read_cells(dest: str | Path) -> list[dict]:
    """The published cells' summaries (with ``key``, ``planned_images``, and the ``defence``
    and ``checkpoint`` of their ``config.json``), in suite order."""
    dest = Path(dest)
    order = json.loads((dest / PROVENANCE).read_text())["cells"]
    cells = []
    for key, planned in order:
        summary = results.read_summary(dest / CELLS / key)
        if summary is not None:
            config = results.read_config(dest / CELLS / key)
            cells.append({**summary, "key": key, "planned_images": planned,
                          **{k: config.get(k) for k in ("defence", "checkpoint", "strategy",
                                                        "F", "dither", "threshold")},
                          "search": config.get("search", "de")})
    return cells


def table_kind(suite) -> str:
    """Which table a suite's publication shows, from its settings (so it keeps its shape while
    the suite runs): "levels" when it runs the threshold attack (robustness levels, Kotyan &
    Vargas), "robustness" when a victim is defended, else "headline" (beside the paper's)."""
    if threshold_variants(suite):
        return "levels"
    if any(v.get("defence") for v in suite.record["victims"].values()):
        return "robustness"
    return "headline"


def published_table(dest: str | Path) -> list[str]:
    """The table a publication shows (its ``table`` kind, :func:`table_kind`), from what is
    stored in it."""
    dest = Path(dest)
    cells = read_cells(dest)
    kind = json.loads((dest / PROVENANCE).read_text())["table"]
    if kind == "levels":
        return levels_table(cells)
    if kind == "robustness":
        return robustness_table(cells)
    return headline_table(cells, json.loads((dest / VICTIMS).read_text()))


ROBUST_COLUMNS = ("images", "clean accuracy [95% CI]", "fooled [95% CI]",
                  "robust accuracy [95% CI]", "evaluations/s")


def _robust_rows(cells: list[dict], head) -> list[str]:
    """The rows of a table whose ``head(cell)`` columns are followed by :data:`ROBUST_COLUMNS`:
    clean accuracy on the cell's images, success over those attacked and robust accuracy
    (correctly classified and not fooled) over all of them, with 95% Wilson intervals."""
    lines = []
    for c in cells:
        if c["n_images"] < c["planned_images"]:  # no rates while running (see headline_table)
            shown = (f"{c['n_images']} of {c['planned_images']} done (running)",
                     "–", "–", "–", "–")
        else:
            attacked, fooled = c["n_attacked"], c["n_success"]
            shown = (c["n_images"], _rate(attacked, c["n_images"]), _rate(fooled, attacked),
                     _rate(attacked - fooled, c["n_images"]),
                     f"{c['evaluations_per_second']:,.0f}")
        lines.append("| " + " | ".join(str(v) for v in (*head(c), *shown)) + " |")
    return lines


def _header(columns) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def robustness_table(cells: list[dict]) -> list[str]:
    """Per cell, its victim's defence and checkpoint, then :data:`ROBUST_COLUMNS`."""
    return _header(("victim", "defence", "checkpoint", "pixels", *ROBUST_COLUMNS)) + \
        _robust_rows(cells, lambda c: (c["model"], c["defence"] or "none",
                                       f"`{c['checkpoint']}`", c["pixels"]))


SEARCHES = {"de": "DE", "cmaes": "CMA-ES"}


def levels_table(cells: list[dict]) -> list[str]:
    """Robustness levels (Kotyan & Vargas), victim by victim (each in suite order): per cell,
    the attack's family and level (pixels changed, L0, or the threshold th, L-infinity), its
    search and mode (with the variant of any other variant cell), then
    :data:`ROBUST_COLUMNS`."""
    def head(c):
        family, level = (LINF, c["threshold"]) if c["threshold"] else (L0, c["pixels"])
        search = "–" if c["mode"] == "sweep" else SEARCHES.get(c["search"], c["search"])
        variant = parse_key(c["key"])[3]
        mode = c["mode"] + (f"{VARIANT_SEPARATOR}{variant}"
                            if variant and not c["threshold"] else "")
        return c["model"], family, level, search, mode

    victims = list(dict.fromkeys(c["model"] for c in cells))
    return _header(("victim", "attack", "level", "search", "mode", *ROBUST_COLUMNS)) + \
        _robust_rows(sorted(cells, key=lambda c: victims.index(c["model"])), head)


def headline_table(cells: list[dict], victims: dict) -> list[str]:
    """The markdown table of the published figures (see the module docstring)."""
    lines = ["| victim | clean accuracy (paper) | method | pixels | images | fooled [95% CI] | "
             "paper | (image, target) pairs reached [95% CI] | paper | classes reached per "
             "image | paper | evaluations/s |",
             "|" + " --- |" * 12]
    for c in cells:
        model, pixels, mode = c["model"], c["pixels"], c["mode"]
        accuracy = victims.get(model, {}).get("test_accuracy")
        acc = (f"{accuracy:.1%}" if accuracy is not None else "–") + \
            f" ({_paper('accuracy', model, 1)})"
        images = f"{c['n_attacked']} of {c['n_images']}"
        if c["n_images"] < c["planned_images"]:
            # No rates yet: DE attacks that succeed stop early, so they finish first and a
            # partial cell's rate is biased upwards.
            lines.append("| " + " | ".join(str(v) for v in (
                model, acc, _method(c), pixels,
                f"{c['n_images']} of {c['planned_images']} done (running)",
                *["–"] * 6, "–")) + " |")
            continue
        targeted = "–"
        reached = "–"
        if "n_pairs" in c:
            pairs = round(c["targeted_success_rate"] * c["n_pairs"])
            targeted = _rate(pairs, c["n_pairs"])
            reached = f"{c['mean_classes_reached']:.2f}"
        protocol = mode == "all-targets" or mode == "sweep"
        lines.append("| " + " | ".join(str(v) for v in (
            model, acc, _method(c), pixels, images,
            _rate(c["n_success"], c["n_attacked"]), _paper("success", model, pixels),
            targeted, _paper("targeted", model, pixels) if protocol and pixels == 1 else "–",
            reached, _paper("classes_reached", model, pixels, percent=False)
            if protocol and pixels == 1 else "–",
            f"{c['evaluations_per_second']:,.0f}")) + " |")
    return lines


def _check_destination(suite_out: Path, dest: Path, suite: str, readme) -> None:
    """``dest`` is new, empty, or an earlier publication of the same suite (which is replaced);
    it neither holds nor lies inside the results it publishes; and the README block it
    writes, named after ``dest``, is this suite's own."""
    source, target = suite_out.resolve(), dest.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise PixeljaxError(f"--out {dest} and the results folder {suite_out} overlap; publish "
                            f"into a folder of its own (e.g. results/NAME)")
    elsewhere = f"publish suite {suite!r} into a folder of its own (e.g. results/{suite})"
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir())
                                                 and not (dest / PROVENANCE).is_file())):
        raise PixeljaxError(f"--out {dest} holds something other than a publication (no "
                            f"{PROVENANCE}); it is never replaced: {elsewhere}")
    if (dest / PROVENANCE).is_file():
        try:
            owner = json.loads((dest / PROVENANCE).read_text())["suite"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PixeljaxError(f"--out {dest}: its {PROVENANCE} is damaged ({e}); it is never "
                                f"replaced: {elsewhere}") from None
        if owner != suite:
            raise PixeljaxError(f"--out {dest} is the publication of suite {owner!r}, never "
                                f"replaced by another suite's: {elsewhere}")
    if readme is not None and dest.name != suite:
        raise PixeljaxError(f"--readme: the README block of a publication is named after its "
                            f"folder, and {dest.name!r} is not suite {suite!r}; {elsewhere}, "
                            f"or leave --readme out")


def _commit() -> str:
    """The commit of the working tree (with ``+changes`` when it has uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty.strip() else "")


def _machine() -> str:
    import jax

    return (f"{jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} cores, "
            f"{platform.machine()}, {platform.system()}")


def publish(suite_out: str | Path, dest: str | Path, *, command: str,
            readme: str | Path | None = None, data: str | None = None) -> Path:
    """Publishes the suite results folder ``suite_out`` into ``dest`` (replacing what an
    earlier ``publish`` wrote there); returns ``dest/README.md``. It publishes a copy of the
    folder taken first, so a run still writing into it cannot make the summaries, the report
    and the archive disagree.

    Raises:
      PixeljaxError: not a suite's results folder, no cell has a summary, or ``readme`` lacks
        the block markers of this publication.
    """
    suite_out, dest = Path(suite_out), Path(dest)
    suite = load_results(suite_out)  # a folder that is none is named before anything is copied
    _check_destination(suite_out, dest, suite.name, readme)
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / suite_out.name
        shutil.copytree(suite_out, snapshot, ignore=shutil.ignore_patterns(".*"))
        return _publish(snapshot, dest, command=command, readme=readme, data=data,
                        live=suite_out)


def _publish(suite_out: Path, dest: Path, *, command: str, readme, data, live: Path) -> Path:
    """:func:`publish` from ``suite_out``, a copy of the results folder ``live``."""
    suite = load_results(suite_out)
    ran = [c for c in suite.cells if c.summary is not None]
    if not ran:
        raise PixeljaxError(f"{suite_out}: no cell has a summary yet; nothing to publish")
    name = dest.name
    blocks = [name]
    if readme is not None:
        text = check_blocks(readme, [name])
        if readme_block(text, MECHANISM.format(name)) is not None:
            blocks.append(MECHANISM.format(name))
            check_blocks(readme, blocks)
    commit = _commit()  # before this publication rewrites tracked files
    write_report(suite_out, data=data)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for folder in (FIGURES, TABLES):
        shutil.copytree(suite_out / folder, dest / folder)
    local: dict[str, str] = {}  # paths of this machine in what is copied -> their last part
    for c in ran:
        (dest / CELLS / c.key).mkdir(parents=True)
        shutil.copy2(c.directory / results.SUMMARY, dest / CELLS / c.key / results.SUMMARY)
        config = results.read_config(c.directory)
        for key in ("data", "checkpoint"):
            value = config.get(key)
            if isinstance(value, str) and Path(value).is_absolute():
                local[value] = config[key] = portable(value)
        (dest / CELLS / c.key / results.CONFIG).write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_archive(suite_out, [c.key for c in suite.cells if c.directory.is_dir()],
                  dest / ARCHIVE)
    report = (suite_out / REPORT).read_text().replace(str(suite_out), str(live))
    for path, short in sorted(local.items(), key=lambda item: -len(item[0])):
        report = report.replace(path, short)
    (dest / REPORT).write_text(report)
    victims = {}
    for model in suite.models:
        meta = suite.victim_metadata(model) or {}
        victims[model] = {k: meta.get(k) for k in ("architecture", "test_accuracy",
                                                   "test_images", "exported")}
    (dest / VICTIMS).write_text(json.dumps(victims, indent=2) + "\n")
    provenance = {"suite": suite.name, "command": command, "commit": commit,
                  "machine": _machine(),
                  "published": datetime.datetime.now(datetime.timezone.utc).strftime(
                      "%Y-%m-%d %H:%M UTC"),
                  "table": table_kind(suite),
                  "cells": [[c.key, _planned_images(c, len(suite.class_names))]
                            for c in suite.cells]}
    (dest / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    table = published_table(dest)
    mechanism = mechanism_table(dest)
    page = dest / "README.md"
    page.write_text("\n".join([
        f"# Published: suite `{suite.name}`", "",
        f"Command: `{command}`  ", f"Commit: `{provenance['commit']}`  ",
        f"Machine: {provenance['machine']}  ", f"Published: {provenance['published']}", "",
        "Computed from the `summary.json` of each cell in `cells/` and the victims' clean "
        "accuracy in `victims.json` (on the 10,000 test images; a robustness or levels table "
        "gives the clean accuracy of each cell's images instead); paper numbers marked * are "
        "unverified, \"(all)\" is the paper's figure over its networks together, TEVC or "
        "arXiv v1 the version of the paper it is from. The whole "
        f"report: [report.md]({REPORT}). The run itself (every attack's row, the sweep's "
        f"maps) is `{ARCHIVE}`: `{_continued(command, dest)}` restores it and continues it "
        "where it stopped.", "", block(name, table), "",
        "## Why one pixel fools", "", block(MECHANISM.format(name), mechanism), ""]))
    if readme is not None:
        write_blocks(readme, {k: v for k, v in {name: table, MECHANISM.format(name): mechanism
                                                 }.items() if k in blocks})
    return page


def _continued(command: str, dest: Path) -> str:
    """``command`` continuing the run published in ``dest``."""
    return f"{command} --continue-from {dest.parent.name}/{dest.name}"


def _planned_images(cell, num_classes: int) -> int:
    """Images a cell attacks when finished (rows per image: K - 1 under all-targets and the
    sweep, else 1)."""
    return cell.attacks // (num_classes - 1 if cell.mode in TARGET_MODES else 1)
