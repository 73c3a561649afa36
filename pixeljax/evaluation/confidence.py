"""Why one pixel fools: attack success against the victim's clean confidence.

Per cell, the images attacked are binned by their clean probability of the true class (which
every result row records, ``true_prob_before``) and by its margin over the runner-up class
(from the clean probabilities, recomputed with the victim the cell names); each bin's success
rate has its 95% Wilson interval, and for a sweep the mean number of vulnerable pixels (positions
where some colour of the grid fools the victim). Beside it, per cell, what the paper reports of
its successes: the mean confidence of the adversarial class and the classes reached per image
(over the images attacked and over those fooled).

Bins: :data:`pixeljax.runs.stats.CONFIDENCE_BINS`. Nothing here attacks: only clean images are scored.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from pixeljax.analysis.attacks import RESCORE_TOLERANCE, attacked_victim
from pixeljax.attack.pipeline import clean_logits
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation import paper
from pixeljax.evaluation.store import CellResults, SuiteResults
from pixeljax.evaluation.suite import VARIANT_SEPARATOR
from pixeljax.runs.modes import TARGET_MODES, Mode
from pixeljax.runs.results import read_config
from pixeljax.runs.stats import CONFIDENCE_BINS, CellStats, bin_labels, binned_means, binned_rates
from pixeljax.sweep.folder import read_maps

BINNED_CSV, CLEAN_CSV, FOOLED_CSV = (
    "success_by_confidence.csv", "clean_probabilities.csv", "adversarial_confidence.csv")
TRUE_PROB = "true-class probability"
MARGIN = "margin over the runner-up"
BINNED_COLUMNS = ("model", "pixels", "mode", "by", "bin", "low", "high", "images", "fooled",
                  "rate", "ci_low", "ci_high", "mean_vulnerable_pixels")
CLEAN_COLUMNS = ("model", "image_index", "label", "true_prob", "runner_up", "runner_up_prob",
                 "margin")
FOOLED_COLUMNS = ("model", "pixels", "mode", "successful_attacks", "mean_confidence",
                  "paper_confidence", "paper_confidence_source", "attacked", "fooled",
                  "classes_reached", "classes_per_attacked", "classes_per_fooled",
                  "paper_classes", "paper_classes_source")
BATCH = 256
NO_PAPER = "no paper figure"


def clean_probabilities(results: SuiteResults, images: Mapping[int, np.ndarray] | None
                        ) -> tuple[list[dict], list[str]]:
    """Each attacked image's clean true-class and runner-up probabilities, per victim, scored
    by the victim its cells name (behind its defence); and a note per victim left out (no
    images, a victim that cannot be loaded, or scores that disagree with the rows' own clean
    true-class probability by more than ``RESCORE_TOLERANCE``).

    Returns:
      Rows of :data:`CLEAN_COLUMNS`, and the notes.
    """
    rows, notes = [], []
    for model in results.models:
        cells = [c for c in results.cells if c.model == model and c.started]
        if not cells:
            continue
        found = _attacked_once(cells)
        ids = sorted(found)
        if images is None or any(i not in images for i in ids):
            notes.append(f"{model}: the attacked images cannot be read")
            continue
        x = np.stack([images[i] for i in ids])
        try:
            victim = attacked_victim(read_config(cells[0].directory), cells[0].directory, x)
            probs = np.asarray(jax.nn.softmax(clean_logits(victim.predict, x, BATCH), -1))
        except PixeljaxError as e:
            notes.append(f"{model}: its victim cannot be loaded ({e})")
            continue
        labels = np.asarray([found[i][0] for i in ids])
        true = probs[np.arange(len(ids)), labels]
        off = np.abs(true - np.asarray([found[i][1] for i in ids])) > RESCORE_TOLERANCE
        if off.any():
            notes.append(f"{model}: {int(off.sum())} of {len(ids)} clean images score otherwise "
                         f"than their rows record (the victim or the data changed)")
            continue
        others = probs.copy()
        others[np.arange(len(ids)), labels] = -1.0
        runner = others.argmax(-1)
        second = others[np.arange(len(ids)), runner]
        rows += [{"model": model, "image_index": i, "label": int(y), "true_prob": float(t),
                  "runner_up": int(r), "runner_up_prob": float(s), "margin": float(t - s)}
                 for i, y, t, r, s in zip(ids, labels, true, runner, second)]
    return rows, notes


def _attacked_once(cells: Sequence[CellResults]) -> dict[int, tuple[int, float]]:
    """Per image attacked in any of ``cells``: its label and the clean true-class probability
    its rows record."""
    out = {}
    for cell in cells:
        found = cell.found.attacked()
        for i, y, p in zip(found.image_index.tolist(), found.label.tolist(),
                           found.true_prob_before.tolist()):
            out.setdefault(int(i), (int(y), float(p)))
    return out


def _mode(cell: CellResults) -> str:
    """A table's mode column: the cell's mode, and its variant (``mode+variant``)."""
    return cell.mode + (f"{VARIANT_SEPARATOR}{cell.variant}" if cell.variant else "")


def image_table(cell: CellResults, clean: Sequence[Mapping]) -> dict[int, dict]:
    """Per image the cell attacked: whether it was fooled, its clean true-class probability
    (from the rows), its margin (from ``clean``, None where missing) and, for a sweep, its
    vulnerable pixels."""
    found = cell.found.attacked()
    outcomes = found.image_outcomes()
    true = dict(zip(found.image_index.tolist(), found.true_prob_before.tolist()))
    margin = {int(r["image_index"]): float(r["margin"]) for r in clean
              if r["model"] == cell.model}
    vulnerable = {}
    if cell.mode == Mode.SWEEP:
        maps = read_maps(cell.directory)
        if maps:
            counts = (maps["flips"] > 0).sum(axis=(1, 2))
            vulnerable = dict(zip(maps["image_index"].tolist(), counts.tolist()))
    return {i: {"fooled": fooled, "true_prob": true[i], "margin": margin.get(i),
                "vulnerable": vulnerable.get(i)} for i, fooled in sorted(outcomes.items())}


def binned_table(results: SuiteResults, clean: Sequence[Mapping],
                 edges: Sequence[float] = CONFIDENCE_BINS) -> list[dict]:
    """Rows of :data:`BINNED_COLUMNS`: per finished cell, by clean true-class probability and
    (where every image has one) by margin, each bin's images, fooled, rate and interval, and
    the sweep's mean vulnerable pixels."""
    table = []
    bounds = [0.0, *edges, 1.0]
    for cell in results.cells:
        if not cell.complete:  # a running cell's rates are biased: successes finish first
            continue
        per_image = list(image_table(cell, clean).values())
        for by, key in ((TRUE_PROB, "true_prob"), (MARGIN, "margin")):
            values = [r[key] for r in per_image]
            if not values or any(v is None for v in values):
                continue
            rates = binned_rates(values, [r["fooled"] for r in per_image], edges)
            counts = [r["vulnerable"] for r in per_image]
            means = (binned_means(values, counts, edges) if counts and None not in counts
                     else [None] * len(rates))
            for label, low, high, rate, mean in zip(bin_labels(edges), bounds[:-1], bounds[1:],
                                                    rates, means):
                ci_low, ci_high = rate.interval
                table.append({"model": cell.model, "pixels": cell.pixels, "mode": _mode(cell),
                              "by": by, "bin": label, "low": low, "high": high,
                              "images": rate.trials, "fooled": rate.successes,
                              "rate": rate.rate, "ci_low": ci_low, "ci_high": ci_high,
                              "mean_vulnerable_pixels": mean})
    return table


def fooled_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """Rows of :data:`FOOLED_COLUMNS`: per cell, the mean confidence of the adversarial class
    over its successful attacks and the classes reached per image attacked and per image
    fooled (target modes: the sweep and all-targets), beside the paper's figures (its
    protocol, one pixel)."""
    table = []
    for cell in results.cells:
        s = stats.get(cell.key)
        if s is None or not cell.complete:
            continue
        targets = cell.mode in TARGET_MODES
        reached = s.successful_attacks if targets else None
        compared = targets and cell.pixels == 1 and cell.architecture in paper.paper_models()
        conf = paper.published("confidence", None, 1) if compared else None
        classes = paper.published("classes_reached", None, 1) if compared else None
        fooled = s.success.successes
        table.append({
            "model": cell.model, "pixels": cell.pixels, "mode": _mode(cell),
            "successful_attacks": s.successful_attacks, "mean_confidence": s.mean_confidence,
            "paper_confidence": conf and conf.value,
            "paper_confidence_source": conf and conf.source, "attacked": s.attacked,
            "fooled": fooled, "classes_reached": reached,
            "classes_per_attacked": reached / s.attacked if targets and s.attacked else None,
            "classes_per_fooled": reached / fooled if targets and fooled else None,
            "paper_classes": classes and classes.value,
            "paper_classes_source": classes and classes.source})
    return table


def read_table(path: str | Path) -> list[dict]:
    """A CSV table as written by ``tables.write_csv``, numbers as numbers, empty as None."""
    def value(text: str):
        if text == "":
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="") as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.1%}"


def _by_bin(rows: Sequence[Mapping], entry) -> list[str]:
    """A markdown table of binned rows: a line per cell, a column per bin, ``entry(row)`` in
    each (a dash for an empty bin)."""
    labels = list(dict.fromkeys(r["bin"] for r in rows))
    lines = ["| victim | pixels | method | " + " | ".join(labels) + " |",
             "|" + " --- |" * (3 + len(labels))]
    for cell in dict.fromkeys((r["model"], r["pixels"], r["mode"]) for r in rows):
        mine = {r["bin"]: r for r in rows if (r["model"], r["pixels"], r["mode"]) == cell}
        lines.append("| " + " | ".join([*map(str, cell), *(
            entry(mine[b]) if mine[b]["images"] else "–" for b in labels)]) + " |")
    return lines


def binned_markdown(rows: Sequence[Mapping], by: str, *, intervals: bool = True) -> list[str]:
    """A markdown table of :func:`binned_table`'s rows ``by`` one variable: a line per cell, a
    column per bin; each entry ``fooled/images`` with the rate (and its interval)."""
    def entry(r):
        interval = f" [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]" if intervals else ""
        return f"{r['fooled']}/{r['images']} ({_pct(r['rate'])}{interval})"

    rows = [r for r in rows if r["by"] == by]
    return _by_bin(rows, entry) if rows else []


def vulnerable_markdown(rows: Sequence[Mapping]) -> list[str]:
    """Mean vulnerable pixels per bin of the clean true-class probability (images in the bin),
    per sweep cell."""
    rows = [r for r in rows if r["by"] == TRUE_PROB and r["mean_vulnerable_pixels"] is not None]
    return _by_bin(rows, lambda r: f"{r['mean_vulnerable_pixels']:.1f} ({r['images']})") \
        if rows else []


def _paper(metric: str, row: Mapping, *, percent: bool) -> str:
    """The paper's figure over its networks (one pixel), where ``row`` shows one."""
    found = paper.published(metric, None, 1)
    if row["mode"].partition(VARIANT_SEPARATOR)[0] not in TARGET_MODES or found is None:
        return "–"
    if row[f"paper_{'confidence' if metric == 'confidence' else 'classes'}"] is None:
        return NO_PAPER
    text = f"{found.value:.2%}" if percent else f"{found.value:g}"
    return f"{text}{'' if found.verified else '*'} ({found.version})"


def fooled_markdown(rows: Sequence[Mapping]) -> list[str]:
    """A markdown table of :func:`fooled_table`'s rows, the denominators named."""
    if not rows:
        return []
    lines = ["| victim | pixels | method | mean adversarial confidence (successful attacks) | "
             "paper | classes reached per attacked image | per fooled image | paper |",
             "|" + " --- |" * 8]
    for r in rows:
        per = [f"{r[k]:.2f} ({r['classes_reached']}/{r[n]})" if r[k] is not None else "–"
               for k, n in (("classes_per_attacked", "attacked"),
                            ("classes_per_fooled", "fooled"))]
        lines.append(" | ".join([
            f"| {r['model']}", str(r["pixels"]), r["mode"],
            f"{_pct(r['mean_confidence'])} ({r['successful_attacks']})",
            _paper("confidence", r, percent=True), *per,
            _paper("classes_reached", r, percent=False)]) + " |")
    return lines


def agreement_markdown(rows: Sequence[Mapping]) -> list[str]:
    """A markdown table of ``tables.comparison_table``'s rows: DE and the sweep on the same
    images."""
    if not rows:
        return []
    lines = ["| victim | method | images both attacked | method fooled | sweep fooled | "
             "fooled by both | method only | sweep only |", "|" + " --- |" * 8]
    for r in rows:
        both = r["method_fooled"] - r["method_only"]
        lines.append(f"| {r['model']} | {r['method']} | {r['images']} | {r['method_fooled']} | "
                     f"{r['sweep_fooled']} | {both} | {r['method_only']} | {r['sweep_only']} |")
    return lines
