"""``OUT/report.md``: a suite's results, beside the paper's, with figures and tables (or those
of one ``pixeljax attack`` or ``sweep`` results folder, read as a suite of one cell).

Files written into the results folder:
  * ``report.md``: settings, progress, the results table with the paper's published numbers
    and their caveats, figures, generations and evaluations to success, victims, cost;
  * ``figures/success_by_pixels.png``, ``figures/class_pairs_<model>.png``,
    ``figures/classes_reached_<model>.png``, ``figures/examples_<model>.png``,
    ``figures/success_by_confidence.png``;
  * ``tables/*.csv``: every table of the report (``pandas.read_csv`` reads them).

Everything is computed from the stored results; the only typed-in numbers are the paper's, in
``pixeljax.evaluation.paper``. Reference: Su, Vargas, Sakurai, "One pixel attack for fooling
deep neural networks", arXiv 1710.08864 (TEVC 2019).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np

from pixeljax.data import load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation import confidence, paper, tables
from pixeljax.evaluation.plan import RECORD
from pixeljax.evaluation.store import CellResults, SuiteResults, load_folder_results, load_results
from pixeljax.reporting import figures
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import Mode
from pixeljax.runs.results import CONFIG
from pixeljax.runs.stats import CellStats, Rate, cell_statistics
from pixeljax.sweep.folder import read_maps

REPORT = "report.md"
FIGURES = "figures"
TABLES = "tables"
EXAMPLES = 8


def _pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.1%}"


def _rate(rate: Rate | None) -> str:
    if rate is None or not rate.trials:
        return "–"
    low, high = rate.interval
    return f"{rate.rate:.1%} [{low:.1%}, {high:.1%}] ({rate.successes}/{rate.trials})"


def _num(value, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:,.{digits}f}"


def _paper(metric: str, architecture: str | None, pixels: int, *, percent: bool = True) -> str:
    """The published number for a paper network (or, with None, the networks together)."""
    if architecture is not None and architecture not in paper.paper_models():
        return "–"
    own = paper.published(metric, architecture, pixels) if architecture else None
    found = own or paper.published(metric, None, pixels)
    if found is None:
        return "–"
    text = f"{found.value:.2%}" if percent else f"{found.value:g}"
    return text + ("" if found.verified else "*") + f" {found.version}" + (
        "" if own else " (all)")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def compute_statistics(results: SuiteResults) -> dict[str, CellStats]:
    """Statistics of every cell that has results."""
    k = len(results.class_names)
    return {c.key: cell_statistics(c.found, mode=c.mode, num_classes=k)
            for c in results.cells if c.started}


def write_report(out: str | Path, *, data: str | None = None) -> Path:
    """Writes ``OUT/report.md`` with its figures and CSV tables; returns its path.

    Args:
      out: a suite's results folder (``pixeljax evaluate ... --out OUT``), or the results folder
        of one attack or sweep (``pixeljax attack ... --out OUT``).
      data: where the attacked images are, for the example grids (default: the data the suite
        ran on, as recorded in ``suite.json`` or ``config.json``).

    Raises:
      PixeljaxError: not a suite's results folder, its results are corrupt or mixed, or
        ``data`` labels an attacked image otherwise than the results do (other images under
        the same indices), found before anything is written.
    """
    out = Path(out)
    if not (out / RECORD).is_file() and not (out / CONFIG).is_file():
        raise PixeljaxError(f"{out} is not the results folder of a suite (no {RECORD}), nor of "
                            f"an attack or sweep (no {CONFIG}); give the --out folder of "
                            f"'pixeljax evaluate', 'attack' or 'sweep'")
    plain = not (out / RECORD).is_file()
    results = load_folder_results(out, data=data) if plain else load_results(out)
    stats = compute_statistics(results)
    examples, note = _write_examples(results, out / FIGURES, data)  # first: it checks ``data``
    clean, unscored = confidence.clean_probabilities(results, _attacked_images(results, data))
    binned = confidence.binned_table(results, clean)
    fooled = confidence.fooled_table(results, stats)
    csvs = _write_tables(results, stats, out / TABLES) + [
        tables.write_csv(out / TABLES / confidence.BINNED_CSV, binned,
                         confidence.BINNED_COLUMNS),
        tables.write_csv(out / TABLES / confidence.CLEAN_CSV, clean,
                         confidence.CLEAN_COLUMNS),
        tables.write_csv(out / TABLES / confidence.FOOLED_CSV, fooled,
                         confidence.FOOLED_COLUMNS)]
    pngs = _write_figures(results, stats, out / FIGURES, data)
    if binned:
        pngs["success_by_confidence"] = _confidence_figure(results, binned, out / FIGURES)
    lines = _header(results)
    lines += _results_section(results, stats)
    lines += _confidence_section(binned, fooled, unscored, pngs)
    lines += _comparison_section(results)
    lines += _robustness_section(results, stats, pngs)
    lines += _levels_section(results, stats, pngs)
    lines += _figures_section(results, pngs)
    lines += _vulnerability_section(results, pngs)
    lines += _examples_section(results, examples, note)
    lines += _effort_section(results, stats)
    lines += _victims_section(results)
    lines += _cost_section(results)
    lines += ["## Tables", "", "Every table above as CSV:", ""]
    lines += [f"- [{p.name}]({TABLES}/{p.name})" for p in csvs] + [""]
    path = out / REPORT
    path.write_text("\n".join(lines))
    return path


def _write_tables(results, stats, folder: Path) -> list[Path]:
    return [
        tables.write_csv(folder / "cells.csv", tables.cells_table(results, stats)),
        tables.write_csv(folder / "paper_comparison.csv", tables.paper_table(results, stats),
                         tables.PAPER_COLUMNS),
        tables.write_csv(folder / "pooled.csv", tables.pooled_table(results, stats),
                         tables.POOLED_COLUMNS),
        tables.write_csv(folder / "class_pairs.csv", tables.class_pair_table(results, stats),
                         tables.PAIR_COLUMNS),
        tables.write_csv(folder / "classes_reached.csv",
                         tables.classes_reached_table(results, stats), tables.REACHED_COLUMNS),
        tables.write_csv(folder / "cost.csv", tables.cost_table(results), tables.COST_COLUMNS),
        tables.write_csv(folder / tables.COMPARISON_CSV, tables.comparison_table(results),
                         tables.COMPARISON_COLUMNS),
        tables.write_csv(folder / "robustness.csv", tables.robustness_table(results, stats),
                         tables.ROBUSTNESS_COLUMNS),
        *([tables.write_csv(folder / "levels.csv", tables.levels_table(results, stats),
                            tables.LEVELS_COLUMNS)] if tables.threshold_variants(results)
          else []),
    ]


def _header(results: SuiteResults) -> list[str]:
    s = results.settings
    done = [c for c in results.cells if c.complete]
    rows_done = sum(min(len(c.found), c.attacks) for c in results.cells)
    rows_all = sum(c.attacks for c in results.cells)
    images = ("every image" if s["n_images"] is None else  # --images all
              f"the first {s['n_images']:,}" if s["first"] else
              f"a random sample of {s['n_images']:,} (seed {s['seed']})")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# One-pixel attack: {results.kind} `{results.name}`", ""]
    if results.record.get("description"):
        lines += [results.record["description"], ""]
    lines += [f"Written by `pixeljax report` on {now} from the results in this folder. Every "
              f"number is computed from them, except the paper's published numbers (constants "
              f"of the paper, in `pixeljax/evaluation/paper.py`).", "",
              "## Settings", ""]
    search = [
        ["population", s["popsize"]], ["generations", s["maxiter"]],
        ["strategy", f"DE/{s['strategy']}, F = {s['F']}, " + (
            "no crossover" if s["crossover"] is None else f"crossover {s['crossover']}")],
        ["targeted early stop", f"target probability > {s['target_threshold']}"],
        ["non-targeted early stop", "misclassified" if s["true_threshold"] is None
         else f"true-class probability < {s['true_threshold']}"],
    ] if "popsize" in s else [["colour levels", s.get("levels")]]  # a sweep's folder: no DE
    lines += _table(["setting", "value"], [
        ["data", f"`{s['data']}` ({s['split']} split)"], ["images", images], *search,
        ["seed", s["seed"]]])
    lines += ["", f"Progress: {len(done)} of {len(results.cells)} cells complete, "
                  f"{rows_done:,} of {rows_all:,} attacks."]
    unfinished = [f"`{c.key}` ({tables.status(c)}, {len(c.found):,}/{c.attacks:,})"
                  for c in results.cells if not c.complete]
    if unfinished:
        lines += ["", "Not finished (numbers below cover what is done): "
                  + ", ".join(unfinished) + "."]
    return lines + [""]


def _results_section(results: SuiteResults, stats) -> list[str]:
    from pixeljax.evaluation.suite import VARIANT_SEPARATOR

    header = ["model", "pixels", "mode", "accuracy on selected images", "success [95% CI]",
              "paper", "targeted [95% CI]", "paper", "mean confidence", "paper",
              "classes reached", "paper"]
    rows = []
    for c in results.cells:
        s = stats.get(c.key)
        if s is None:
            continue
        protocol = c.mode == Mode.ALL_TARGETS
        arch = c.architecture
        mode = c.mode + (f"{VARIANT_SEPARATOR}{c.variant}" if c.variant else "")
        rows.append([c.model, c.pixels, mode, f"{_pct(s.accuracy)} ({s.attacked}/{s.images})",
                     _rate(s.success), _paper("success", arch, c.pixels) if protocol else "",
                     _rate(s.targeted), _paper("targeted", arch, c.pixels) if protocol else "",
                     _pct(s.mean_confidence),
                     _paper("confidence", arch, c.pixels) if protocol else "",
                     _num(s.mean_classes_reached),
                     _paper("classes_reached", arch, c.pixels, percent=False)
                     if protocol else ""])
    lines = ["## Results", ""]
    if not rows:
        return lines + ["No cell has results yet.", ""]
    lines += _table(header, rows) + [""]
    pooled = tables.pooled_table(results, stats)
    if pooled and len(results.models) > 1:
        lines += ["All networks together (images pooled; the paper averages its networks' "
                  "rates):", ""]
        lines += _table(["pixels", "mode", "networks", "success [95% CI]", "mean of rates",
                         "paper"],
                        [[p["pixels"], p["mode"], p["models"],
                          _rate(Rate(p["successes"], p["trials"])), _pct(p["mean_of_rates"]),
                          _paper("success", None, p["pixels"])
                          if p["mode"] == Mode.ALL_TARGETS else ""] for p in pooled]) + [""]
    lines += ["Success counts images fooled out of images attacked (correctly classified); "
              "under all-targets an image is fooled when any of its targets is reached, the "
              "paper's definition. Targeted counts (image, target) pairs. Intervals are 95% "
              "Wilson intervals. Paper numbers marked * are unverified, \"(all)\" marks a "
              "number over the paper's networks together, TEVC or arXiv v1 the version of the "
              "paper it is from.", "", "Caveats of the comparison:", ""]
    lines += [f"- {c}" for c in paper.CAVEATS] + [""]
    return lines


def _confidence_section(binned: list[dict], fooled: list[dict], unscored: list[str],
                        pngs: dict[str, Path]) -> list[str]:
    """Success by the clean confidence in the true class, and what the successes reach."""
    if not fooled:
        return []
    lines = ["## Success against clean confidence", "",
             "The images each cell attacked, binned by the victim's clean probability of the "
             "true class (recorded in every result row) and by its margin over the runner-up "
             "class (the clean image scored again by the victim): images fooled of images in "
             "the bin, the rate and its 95% Wilson interval.", ""]
    for by in (confidence.TRUE_PROB, confidence.MARGIN):
        table = confidence.binned_markdown(binned, by)
        lines += [f"By clean {by}:", ""] + table + [""] if table else []
    if unscored:
        lines += ["Margins left out: " + "; ".join(unscored) + ".", ""]
    vulnerable = confidence.vulnerable_markdown(binned)
    if vulnerable:
        lines += ["Sweeps: mean vulnerable pixels per image (positions where a colour of the "
                  "grid fools the victim), by clean true-class probability (images in the "
                  "bin):", ""] + vulnerable + [""]
    if "success_by_confidence" in pngs:
        lines += [f"![success by clean confidence]({FIGURES}/success_by_confidence.png)", ""]
    lines += ["### Confidence and classes per fooled image", "",
              "Mean probability of the adversarial class over the successful attacks (their "
              "number), and the classes reached per image (successful (image, target) pairs "
              "over images attacked and over images fooled; target modes only), beside the "
              "paper's figures over its networks (one pixel, its protocol; TEVC or arXiv v1 "
              "marks the paper's version).", ""]
    return lines + confidence.fooled_markdown(fooled) + [""]


def _confidence_figure(results: SuiteResults, binned: list[dict], folder: Path) -> Path:
    def series(by, key, interval):
        rows = [r for r in binned if r["by"] == by and r[key] is not None]
        out = []
        for model, pixels, mode in dict.fromkeys((r["model"], r["pixels"], r["mode"])
                                                 for r in rows):
            mine = [r for r in rows if (r["model"], r["pixels"], r["mode"]) == (model, pixels,
                                                                               mode)]
            out.append((f"{model} {pixels} px {mode}", [r[key] for r in mine],
                        [r["ci_low"] for r in mine] if interval else None,
                        [r["ci_high"] for r in mine] if interval else None))
        return out

    panels = [(f"clean {by}", "images fooled (%)", series(by, "rate", True))
              for by in (confidence.TRUE_PROB, confidence.MARGIN)]
    panels.append((f"clean {confidence.TRUE_PROB}", "vulnerable pixels per image (sweep)",
                   series(confidence.TRUE_PROB, "mean_vulnerable_pixels", False)))
    return figures.success_by_confidence(
        [p for p in panels if p[2]], list(dict.fromkeys(r["bin"] for r in binned)),
        folder / "success_by_confidence.png",
        title=f"{results.name}: success against the victim's clean confidence")


def _defended(results: SuiteResults) -> bool:
    return any(v.get("defence") for v in results.record["victims"].values())


def _robustness_section(results: SuiteResults, stats, pngs: dict[str, Path]) -> list[str]:
    """Clean accuracy, success and robust accuracy per cell, when a victim is defended."""
    if not _defended(results):
        return []
    rows = [[r["model"], r["defence"] or "none", r["pixels"], r["mode"],
             f"{_pct(r['clean_accuracy'])} ({r['attacked']}/{r['images']})",
             _rate(Rate(r["fooled"], r["attacked"])) if r["attacked"] else "–",
             _rate(Rate(r["robust"], r["images"])),
             "–" if r["accuracy_cost"] is None else
             f"{r['accuracy_cost'] * 100:+.1f} pt vs {r['undefended']}"]
            for r in tables.robustness_table(results, stats)]
    lines = ["## Robustness", "",
             "Per victim and defence (the attack sees the whole defended pipeline): clean "
             "accuracy on the cell's images, attack success over the images attacked, and "
             "robust accuracy (correctly classified and not fooled) over all of them, with 95% "
             "Wilson intervals; the accuracy cost is the undefended victim's clean accuracy "
             "minus the defended one's, on the same images. A noise defence is scored by its "
             "class probabilities averaged over its draws.", ""]
    lines += _table(["victim", "defence", "pixels", "mode", "clean accuracy",
                     "success [95% CI]", "robust accuracy [95% CI]", "accuracy cost"], rows)
    if "robust_by_pixels" in pngs:
        lines += ["", f"![robust accuracy by pixels]({FIGURES}/robust_by_pixels.png)"]
    return lines + [""]


def _levels_section(results: SuiteResults, stats, pngs: dict[str, Path]) -> list[str]:
    """Robustness levels (Kotyan & Vargas): per victim, success and robust accuracy of the
    pixel attack (L0) per pixel count and of the threshold attack (L-infinity) per threshold,
    when the suite has threshold variants."""
    rows = tables.levels_table(results, stats)
    if not rows:
        return []
    lines = ["## Robustness levels", "",
             "Kotyan & Vargas (arXiv 1906.06026) assess a network by both families of attacks "
             "over a range of strengths: the pixel attack (L0) changes a few pixels (level: "
             "how many), the threshold attack (L-infinity) every pixel value by at most th on "
             "the 0-255 scale (level: th). Success over the images attacked, robust accuracy "
             "(correctly classified and not fooled) over all of them, with 95% Wilson "
             "intervals; a cell still running is marked *.", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        lines += [f"### {model}", ""]
        lines += _table(["attack", "level", "mode", "images attacked", "success [95% CI]",
                         "robust accuracy [95% CI]"],
                        [[r["family"], f"{r['level']}" + ("" if r["complete"] else " *"),
                          r["mode"], f"{r['attacked']}/{r['images']}",
                          _rate(Rate(r["fooled"], r["attacked"])) if r["attacked"] else "–",
                          _rate(Rate(r["robust"], r["images"]))]
                         for r in rows if r["model"] == model])
        lines.append("")
    if "robust_by_level" in pngs:
        lines += [f"![robust accuracy by level]({FIGURES}/robust_by_level.png)", ""]
    return lines


def _attacked_images(results: SuiteResults, data: str | None) -> dict[int, object] | None:
    """The attacked images by index, or None when the data cannot be read."""
    try:
        images = load_dataset(data or results.settings["data"], results.settings["split"])
    except PixeljaxError:
        return None
    return {int(i): x for i, x in zip(images.index, images.x)}


def _write_figures(results: SuiteResults, stats, folder: Path,
                   data: str | None = None) -> dict[str, Path]:
    pngs: dict[str, Path] = {}
    series = []
    for model in results.models:
        for mode in dict.fromkeys(c.mode for c in results.cells):
            cells = [c for c in results.cells if (c.model, c.mode) == (model, mode)
                     and c.key in stats and c.variant is None]
            if cells:
                rates = [stats[c.key].success for c in cells]
                series.append((model, mode, [c.pixels for c in cells],
                               [r.rate for r in rates], [r.interval[0] for r in rates],
                               [r.interval[1] for r in rates]))
    if series:
        published = [p for p in paper.PUBLISHED if p.metric == "success" and p.model is None]
        pngs["success_by_pixels"] = figures.success_by_pixels(
            series, folder / "success_by_pixels.png",
            paper=[("paper: all networks, any target", p.pixels, p.value)
                   for p in published],
            title=f"{results.name}: success rate by pixels changed")
    # Finished cells only: a running cell's rate is biased (successes finish first).
    finished = {(c.model, c.pixels, c.mode) for c in results.cells if c.complete}
    robust = [(r["model"], r["mode"], r["pixels"], Rate(r["robust"], r["images"]))
              for r in tables.robustness_table(results, stats)
              if (r["model"], r["pixels"], r["mode"]) in finished]
    if _defended(results) and robust:
        curves = {}
        for model, mode, pixels, rate in robust:
            curves.setdefault((model, mode), []).append((pixels, rate))
        pngs["robust_by_pixels"] = figures.success_by_pixels(
            [(model, mode, [p for p, _ in points], [r.rate for _, r in points],
              [r.interval[0] for _, r in points], [r.interval[1] for _, r in points])
             for (model, mode), points in curves.items()],
            folder / "robust_by_pixels.png", ylabel="robust accuracy (%)",
            title=f"{results.name}: robust accuracy by pixels changed, per defence")
    levels = [r for r in tables.levels_table(results, stats) if r["complete"]]
    if levels:
        curves = {}
        for r in levels:
            curves.setdefault((r["model"], r["family"]), []).append(r)
        pngs["robust_by_level"] = figures.success_by_pixels(
            [(model, family, [r["level"] for r in rows], [r["robust_accuracy"] for r in rows],
              [r["robust_low"] for r in rows], [r["robust_high"] for r in rows])
             for (model, family), rows in curves.items()],
            folder / "robust_by_level.png", ylabel="robust accuracy (%)",
            xlabel="level: pixels changed (L0) or threshold th (L-infinity)",
            title=f"{results.name}: robust accuracy by robustness level")
    sweeps = [c for c in results.cells if c.mode == Mode.SWEEP and c.started]
    images = _attacked_images(results, data) if sweeps else None
    for c in sweeps:
        maps = read_maps(c.directory)
        if maps:
            h, w = maps["flips"].shape[1:]
            colours = (c.summary or {}).get("candidates_per_image", 0) // (h * w) or len(
                results.settings.get("levels", (0, 255))) ** 3
            pngs[f"vulnerability_{c.model}"] = figures.vulnerability_maps(
                maps["flips"], int(colours),
                folder / f"vulnerability_{c.model}.png", image_index=maps["image_index"],
                images=images,
                title=f"{c.model}: one-pixel vulnerability over {len(maps['flips'])} images")
    for model in results.models:
        cells = [c for c in results.cells if c.model == model and c.key in stats]
        if cells:
            pngs[f"class_pairs_{model}"] = figures.class_pair_heatmaps(
                [(f"{c.pixels} px {c.mode}", stats[c.key].class_pairs) for c in cells],
                results.class_names, folder / f"class_pairs_{model}.png",
                title=f"{model}: successful attacks by class pair")
        reached = [(f"{c.pixels} px", stats[c.key].classes_reached) for c in cells
                   if stats[c.key].classes_reached is not None]
        if reached:
            pngs[f"classes_reached_{model}"] = figures.classes_reached_histogram(
                reached, folder / f"classes_reached_{model}.png",
                title=f"{model}: classes each image can be perturbed to")
    return pngs


def _comparison_section(results: SuiteResults) -> list[str]:
    rows = tables.comparison_table(results)
    if not rows:
        return []
    lines = ["## DE and the sweep, image by image", "",
             "Over the images both attacked: images each method fooled, the worst case over "
             "both (an image counts when either fools it, as AutoAttack reports its attacks) "
             "and the images only one of them fooled.", ""]
    lines += _table(["model", "method", "images", "method fooled", "sweep fooled",
                     "either [95% CI]", "method only", "sweep only"],
                    [[r["model"], r["method"], r["images"],
                      f"{r['method_fooled']} ({_pct(r['method_rate'])})",
                      f"{r['sweep_fooled']} ({_pct(r['sweep_rate'])})",
                      _rate(Rate(r["either_fooled"], r["images"])), r["method_only"],
                      r["sweep_only"]] for r in rows])
    return lines + [""]


def _vulnerability_section(results: SuiteResults, pngs: dict[str, Path]) -> list[str]:
    cells = [c for c in results.cells if f"vulnerability_{c.model}" in pngs and c.mode == Mode.SWEEP]
    if not cells:
        return []
    lines = ["## Where one pixel suffices (sweep)", "",
             "For every position, how many colours of the sweep's grid fool the network: the "
             "mean over the swept images, the fraction of images fooled there, and the most "
             "vulnerable images (their maps over the image, where the data can be read).", ""]
    for c in cells:
        lines += [f"### {c.model}", "",
                  f"![{c.model} vulnerability]({FIGURES}/vulnerability_{c.model}.png)", ""]
    return lines


def _figures_section(results: SuiteResults, pngs: dict[str, Path]) -> list[str]:
    lines = []
    if "success_by_pixels" in pngs:
        lines += ["## Success rate by pixel count", "",
                  f"![success rate by pixels]({FIGURES}/success_by_pixels.png)", ""]
    heatmaps = [m for m in results.models if f"class_pairs_{m}" in pngs]
    if heatmaps:
        lines += ["## Class pairs", "", "Successful attacks by original class (rows) and "
                  "adversarial class (columns).", ""]
        for m in heatmaps:
            lines += [f"### {m}", "", f"![{m} class pairs]({FIGURES}/class_pairs_{m}.png)", ""]
    reached = [m for m in results.models if f"classes_reached_{m}" in pngs]
    if reached:
        lines += ["## Number of classes reached", "", "For each attacked image, how many of "
                  "the other classes an all-targets attack reaches.", ""]
        for m in reached:
            lines += [f"### {m}", "",
                      f"![{m} classes reached]({FIGURES}/classes_reached_{m}.png)", ""]
    return lines


def _example_cell(results: SuiteResults, model: str) -> CellResults | None:
    cells = [c for c in results.cells if c.model == model and c.started]
    if not cells:
        return None
    return min(cells, key=lambda c: (c.pixels, c.mode != "non-targeted"))


def _examples(cell: CellResults) -> AttackResult:
    """Successes first (most confident first), one attack per image."""
    found = cell.found.attacked()
    found = found.take(np.lexsort((-found.confidence, ~found.success)))
    _, first = np.unique(found.image_index, return_index=True)
    return found.take(np.sort(first)[:EXAMPLES])


def _check_labels(results: SuiteResults, images, spec: str) -> None:
    """Every attacked image that ``images`` holds must carry the label its rows record; other
    labels mean other images under the same indices, whose grids would be wrong."""
    label = {int(i): int(y) for i, y in zip(images.index, images.y)}
    for cell in results.cells:
        for i, y in zip(cell.found.image_index.tolist(), cell.found.label.tolist()):
            found = label.get(i)
            if found is not None and found != y:
                raise PixeljaxError(
                    f"--data {spec}: image {i} is labelled {found} there, but {cell.key} "
                    f"attacked it as class {y}: these are not the images the suite ran on; "
                    f"pass the data it ran on with --data")


def _write_examples(results: SuiteResults, folder: Path,
                    data: str | None) -> tuple[dict[str, tuple[Path, CellResults]], str]:

    wanted = {m: c for m in results.models if (c := _example_cell(results, m)) is not None}
    wanted = {m: (c, shown) for m, c in wanted.items() if len(shown := _examples(c))}
    if not wanted:
        return {}, ""
    spec = data or results.settings["data"]
    try:
        images = load_dataset(spec, results.settings["split"])
    except PixeljaxError as e:
        return {}, (f"Examples left out: the attacked images cannot be read ({e}); "
                    f"run `pixeljax report {results.out} --data SPEC`.")
    needed = {i for _, shown in wanted.values() for i in shown.image_index.tolist()}
    lookup = {int(i): x for i, x in zip(images.index, images.x) if int(i) in needed}
    missing = needed - lookup.keys()
    if missing:
        return {}, (f"Examples left out: {spec} lacks attacked image(s) "
                    f"{sorted(missing)[:5]}; pass the data the suite ran on with --data.")
    _check_labels(results, images, spec)
    out = {}
    for model, (cell, shown) in wanted.items():
        path = figures.adversarial_grid(shown, lookup, images.class_names,
                                        folder / f"examples_{model}.png",
                                        title=f"{model}: {cell.pixels}-pixel {cell.mode} "
                                              f"({shown.success.sum()} of {len(shown)} shown "
                                              f"succeed)")
        out[model] = (path, cell)
    return out, ""


def _examples_section(results, examples, note: str) -> list[str]:
    if not examples and not note:
        return []
    lines = ["## Adversarial examples", "", "Originals (top) with their class and "
             "probability, adversarial images (bottom) with the class they are given; the "
             f"changed pixels are circled ({figures.OUTCOME_COLOURS[True]}: the attack succeeded, "
             f"{figures.OUTCOME_COLOURS[False]}: it failed).", ""]
    if note:
        lines += [note, ""]
    for model, (path, cell) in examples.items():
        lines += [f"### {model} ({cell.pixels} px, {cell.mode})", "",
                  f"![{model} examples]({FIGURES}/{path.name})", ""]
    return lines


def _spread(q) -> str:
    if not q.count:
        return "–"
    return (f"{_num(q.median, 0)} ({_num(q.q25, 0)}–{_num(q.q75, 0)}; "
            f"90%: {_num(q.q90, 0)})")


def _effort_section(results: SuiteResults, stats) -> list[str]:
    rows = []
    for c in results.cells:
        s = stats.get(c.key)
        if s is None:
            continue
        rows.append([c.model, c.pixels, c.mode, s.successful_attacks,
                     _spread(s.generations), _spread(s.evaluations),
                     _num(s.evaluations.mean, 0)])
    s = results.settings
    if not rows or "popsize" not in s:  # no DE ran (a sweep's folder)
        return []
    budget = s["popsize"] * (s["maxiter"] + 1)
    return (["## Effort of successful attacks", "",
             f"Generations and model evaluations a successful attack needed: median "
             f"(quartiles; 90th percentile). The budget is {budget:,} evaluations "
             f"({s['popsize']} x {s['maxiter']} generations plus the initial population).", ""]
            + _table(["model", "pixels", "mode", "successful attacks", "generations",
                      "evaluations", "mean evaluations"], rows) + [""])


def _victims_section(results: SuiteResults) -> list[str]:
    rows = []
    for model in results.models:
        entry = results.record["victims"].get(model, {})
        meta = results.victim_metadata(model) or {}
        seconds = meta.get("training_seconds")
        published = paper.published("accuracy", entry.get("architecture"), 1)
        label = entry.get("checkpoint_label", "–")
        rows.append([model, entry.get("architecture", model), f"`{label}`",
                     _pct(meta.get("test_accuracy")), f"{meta.get('test_images', '–')}",
                     f"{published.value:.1%}*" if published else "–",
                     "–" if seconds is None else f"{seconds / 60:,.1f} min"])
    return (["## Victims", ""]
            + _table(["model", "architecture", "checkpoint", "test accuracy (checkpoint)",
                      "test images", "paper", "training time"], rows) + [""])


def _device(cost: dict) -> str:
    """``H200``, or ``H200 x 8`` for a run over several devices."""
    n = cost.get("devices")
    return f"{cost['device']}" + (f" x {n}" if isinstance(n, int) and n > 1 else "")


def _cost_section(results: SuiteResults) -> list[str]:
    cost = tables.cost_table(results)
    if not cost:
        return []
    rows = [[c["model"], c["pixels"], c["mode"], f"{c['wall_seconds']:,.1f} s",
             f"{c['evaluations']:,}", f"{c['evaluations_per_second']:,.0f}", _device(c)]
            for c in cost]
    wall = sum(c["wall_seconds"] for c in cost)
    evaluations = sum(c["evaluations"] for c in cost)
    devices = ", ".join(sorted({_device(c) for c in cost}))
    rows.append(["**total**", "", "", f"{wall:,.1f} s ({wall / 3600:.2f} h)",
                 f"{evaluations:,}", f"{evaluations / wall:,.0f}" if wall else "–", devices])
    return (["## Cost", "", "From each cell's `summary.json`: wall time of the attacks "
             "(compilation included, training excluded), model evaluations and throughput.", ""]
            + _table(["model", "pixels", "mode", "wall time", "model evaluations",
                      "evaluations/s", "device"], rows) + [""])
