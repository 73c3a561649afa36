"""The report's tables as lists of rows, and CSV output (``pandas.read_csv`` reads them).

Every number is computed from stored results (``pixeljax.runs.stats``) or read from each cell's
``summary.json``; the paper's numbers come from ``pixeljax.evaluation.paper``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pixeljax.evaluation import paper
from pixeljax.evaluation.store import SuiteResults
from pixeljax.runs.modes import Mode
from pixeljax.runs.stats import CellStats, Rate, compare, pool

COST_COLUMNS = ("model", "pixels", "mode", "wall_seconds", "evaluations",
                "evaluations_per_second", "device", "devices", "processes")
PAIR_COLUMNS = ("model", "pixels", "mode", "original", "original_name", "adversarial",
                "adversarial_name", "count")
REACHED_COLUMNS = ("model", "pixels", "classes", "images")
POOLED_COLUMNS = ("pixels", "mode", "models", "successes", "trials", "rate", "ci_low",
                  "ci_high", "mean_of_rates", "paper", "paper_source", "paper_verified")
ROBUSTNESS_COLUMNS = ("model", "defence", "pixels", "mode", "images", "attacked",
                      "clean_accuracy", "fooled", "success_rate", "success_low", "success_high",
                      "robust", "robust_accuracy", "robust_low", "robust_high", "undefended",
                      "accuracy_cost")
LEVELS_COLUMNS = ("model", "family", "level", "mode", "variant", "images", "attacked", "fooled",
                  "success_rate", "success_low", "success_high", "robust", "robust_accuracy",
                  "robust_low", "robust_high", "complete")
L0, LINF = "L0 pixels", "L-inf threshold"
PAPER_COLUMNS = ("model", "pixels", "metric", "measured", "ci_low", "ci_high", "paper",
                 "paper_source", "paper_verified")


def _cell_id(cell) -> dict:
    return {"model": cell.model, "pixels": cell.pixels, "mode": cell.mode}


def undefended(results: SuiteResults, model: str) -> str | None:
    """The suite's victim that is ``model`` without its defence (the same architecture and
    checkpoint, no defence), or None (``model`` is undefended, or the suite lacks it)."""
    victims = results.record["victims"]
    entry = victims.get(model, {})
    if not entry.get("defence"):
        return None
    same = ("architecture", "checkpoint_path")
    return next((name for name, other in victims.items() if not other.get("defence")
                 and all(other.get(k) == entry.get(k) for k in same)), None)


def threshold_variants(results: SuiteResults) -> dict[str, int]:
    """The suite's variants that run the threshold attack, with their thresholds."""
    return {name: v["threshold"] for name, v in results.settings.get("variants", {}).items()
            if isinstance(v, Mapping) and v.get("threshold") is not None}


def levels_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """Robustness levels (Kotyan & Vargas), when the suite has threshold variants: per victim
    and mode, one row per pixel count of the pixel attack (the suite's own cells) and per
    threshold of the threshold attack (its threshold variants' cells), in that order, with
    success and robust accuracy and their Wilson intervals."""
    thresholds = threshold_variants(results)
    if not thresholds:
        return []
    table = []
    for cell in results.cells:
        s = stats.get(cell.key)
        if s is None or (cell.variant is not None and cell.variant not in thresholds):
            continue
        family, level = (L0, cell.pixels) if cell.variant is None else (
            LINF, thresholds[cell.variant])
        robust = Rate(s.attacked - s.success.successes, s.images)
        table.append({
            "model": cell.model, "family": family, "level": level, "mode": cell.mode,
            "variant": cell.variant or "", "images": s.images, "attacked": s.attacked,
            "fooled": s.success.successes,
            "success_rate": s.success.rate if s.attacked else 0.0,
            "success_low": s.success.interval[0], "success_high": s.success.interval[1],
            "robust": robust.successes, "robust_accuracy": robust.rate if s.images else 0.0,
            "robust_low": robust.interval[0], "robust_high": robust.interval[1],
            "complete": cell.complete})
    order = {m: i for i, m in enumerate(results.models)}
    return sorted(table, key=lambda r: (order[r["model"]], r["mode"], r["family"] != L0,
                                        r["level"]))


def robustness_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """One row per cell that has run: clean accuracy on its images, attack success, robust
    accuracy (correctly classified and not fooled, over all its images) with Wilson
    intervals, and, for a defended victim, its clean-accuracy cost against the undefended one
    on the same cell's images."""
    table = []
    for cell in results.cells:
        s = stats.get(cell.key)
        if s is None:
            continue
        robust = Rate(s.attacked - s.success.successes, s.images)
        base = undefended(results, cell.model)
        base_cell = results.cell(base, cell.pixels, cell.mode) if base else None
        base_stats = stats.get(base_cell.key) if base_cell is not None else None
        table.append({
            **_cell_id(cell), "defence": results.record["victims"].get(cell.model, {}).get(
                "defence") or "", "images": s.images, "attacked": s.attacked,
            "clean_accuracy": s.accuracy, "fooled": s.success.successes,
            "success_rate": s.success.rate if s.attacked else 0.0,
            "success_low": s.success.interval[0], "success_high": s.success.interval[1],
            "robust": robust.successes, "robust_accuracy": robust.rate if s.images else 0.0,
            "robust_low": robust.interval[0], "robust_high": robust.interval[1],
            "undefended": base or "",
            # On the same images: both cells finished (their images are then the same).
            "accuracy_cost": (base_stats.accuracy - s.accuracy if base_stats is not None
                              and cell.complete and base_cell.complete
                              else None)})
    return table


def status(cell) -> str:
    return "complete" if cell.complete else "partial" if cell.started else "not run"


def cells_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """One row per cell: progress, every statistic and the cost."""
    table = []
    for cell in results.cells:
        row = {**_cell_id(cell), "architecture": cell.architecture, "status": status(cell),
               "rows": len(cell.found), "planned_rows": cell.attacks}
        if cell.key in stats:
            row.update({k: v for k, v in stats[cell.key].to_dict().items() if k != "mode"})
        row.update(_cost(cell))
        table.append(row)
    return table


def _cost(cell) -> dict:
    s = cell.summary or {}
    return {"wall_seconds": s.get("wall_seconds"), "evaluations": s.get("evaluations"),
            "evaluations_per_second": s.get("evaluations_per_second"),
            "device": s.get("device"), "devices": s.get("devices"),
            "processes": s.get("processes")}


def cost_table(results: SuiteResults) -> list[dict]:
    """Wall time, model evaluations and throughput of every cell that ran."""
    return [{**_cell_id(c), **_cost(c)} for c in results.cells if c.summary]


def class_pair_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """Successful attacks by (original, adversarial) class, long form, every cell."""
    names = results.class_names
    table = []
    for cell in results.cells:
        if cell.key not in stats:
            continue
        for (a, b), count in np.ndenumerate(stats[cell.key].class_pairs):
            if a != b:
                table.append({**_cell_id(cell), "original": a, "original_name": names[a],
                              "adversarial": b, "adversarial_name": names[b],
                              "count": int(count)})
    return table


def classes_reached_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """Images that reach exactly k classes, for every all-targets cell."""
    table = []
    for cell in results.cells:
        s = stats.get(cell.key)
        if s is None or s.classes_reached is None:
            continue
        table += [{"model": cell.model, "pixels": cell.pixels, "classes": k,
                   "images": int(n)} for k, n in enumerate(s.classes_reached)]
    return table


def pooled_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """Per (pixels, mode): every model's images together, and the mean of the models' rates."""
    table = []
    keys = dict.fromkeys((c.pixels, c.mode) for c in results.cells)
    for pixels, mode in keys:
        cells = [c for c in results.cells if (c.pixels, c.mode) == (pixels, mode)
                 and c.key in stats]
        if not cells:
            continue
        pooled = pool([stats[c.key].success for c in cells])
        published = paper.published("success", None, pixels) if mode == Mode.ALL_TARGETS else None
        table.append({"pixels": pixels, "mode": mode, "models": len(cells),
                      **pooled.success.to_dict(), "mean_of_rates": pooled.mean_of_rates,
                      **_paper_fields(published)})
    return table


COMPARISON_CSV = "de_vs_sweep.csv"
COMPARISON_COLUMNS = ("model", "method", "images", "method_fooled", "sweep_fooled",
                      "either_fooled", "method_only", "sweep_only", "method_rate", "sweep_rate",
                      "either_rate", "either_ci_low", "either_ci_high")


def comparison_table(results: SuiteResults) -> list[dict]:
    """Per victim with a sweep cell (the suite's own, not a variant's): each of its finished
    one-pixel DE cells against the sweep, over the images both attacked (see
    :func:`pixeljax.runs.stats.compare`). A running DE cell is left out: its successes finish first."""
    table = []
    for sweep in [c for c in results.cells if c.mode == Mode.SWEEP and c.started and not c.variant]:
        for de in [c for c in results.cells if c.model == sweep.model and c.pixels == 1
                   and c.mode != Mode.SWEEP and c.complete]:
            cmp = compare(de.found, sweep.found)
            low, high = cmp.either.interval
            method = f"DE {de.mode}" + (f" ({de.variant})" if de.variant else "")
            table.append({"model": sweep.model, "method": method, "images": cmp.images,
                          "method_fooled": cmp.first.successes,
                          "sweep_fooled": cmp.second.successes,
                          "either_fooled": cmp.either.successes, "method_only": cmp.only_first,
                          "sweep_only": cmp.only_second, "method_rate": cmp.first.rate,
                          "sweep_rate": cmp.second.rate, "either_rate": cmp.either.rate,
                          "either_ci_low": low, "either_ci_high": high})
    return table


def _paper_fields(published: paper.Published | None) -> dict:
    if published is None:
        return {"paper": None, "paper_source": None, "paper_verified": None}
    return {"paper": published.value, "paper_source": published.source,
            "paper_verified": published.verified}


def paper_table(results: SuiteResults, stats: Mapping[str, CellStats]) -> list[dict]:
    """Measured numbers beside the published ones, for every all-targets cell (the paper's
    protocol) of a network the paper attacks."""
    table, paper_models = [], paper.paper_models()
    for cell in results.cells:
        s = stats.get(cell.key)
        if s is None or cell.mode != Mode.ALL_TARGETS or cell.architecture not in paper_models:
            continue
        measured = {"success": s.success, "targeted": s.targeted,
                    "confidence": s.mean_confidence, "classes_reached": s.mean_classes_reached,
                    "accuracy": s.accuracy}
        for metric, value in measured.items():
            published = (paper.published(metric, cell.architecture, cell.pixels)
                         or paper.published(metric, None, cell.pixels))
            if published is None:
                continue
            low = high = None
            if isinstance(value, Rate):
                (low, high), value = value.interval, value.rate
            table.append({"model": cell.model, "pixels": cell.pixels, "metric": metric,
                          "measured": value, "ci_low": low, "ci_high": high,
                          **_paper_fields(published)})
    return table


def _fmt(value):
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return "" if value is None else value


def write_csv(path: str | Path, rows: Sequence[Mapping], columns: Iterable[str] | None = None
              ) -> Path:
    """Writes ``rows`` with a header; missing values and NaN become empty cells."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    columns = list(columns)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return path
