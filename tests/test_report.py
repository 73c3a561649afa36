"""``pixeljax report``: report.md, its figures and CSV tables, on a hand-made suite results
folder (written through ``pixeljax.runs.results`` as the runner would), so every count is known."""

import csv
import functools
import json

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from pixeljax.cli import main
from pixeljax.data import load_sample
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation import write_report
from pixeljax.evaluation.paper import PUBLISHED, published
from pixeljax.reporting import figures
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.stats import wilson_interval

N = 10
SETTINGS = {"data": "sample", "split": "test", "n_images": N, "first": True, "seed": 0,
            "popsize": 10, "maxiter": 5, "strategy": "rand1", "F": 0.5, "crossover": None,
            "target_threshold": 0.5, "true_threshold": None}
MODELS = ("allconv", "tiny")
PIXELS = (1, 3)
MODES = ("non-targeted", "all-targets")
# The made-up victim's clean true-class probabilities, across every confidence bin.
TINY_PROBS = (0.3, 0.45, 0.55, 0.65, 0.75, 0.85, 0.92, 0.97, 0.995, 0.999)
EDGES = (0.5, 0.7, 0.9, 0.99)


@functools.cache
def allconv_probs():
    """The shipped AllConv's clean probabilities of the first N sample images, as the engine
    records them, so that the report can score the clean images again and agree."""
    import jax

    from pixeljax.attack.pipeline import clean_logits
    from pixeljax.victims.checkpoint import load_victim

    logits = clean_logits(load_victim("allconv").predict, load_sample().x[:N], 16)
    return np.asarray(jax.nn.softmax(logits, -1))


def make_rows(seed, pixels, mode, index, labels, true_probs):
    """Result rows of a made-up run: every fifth image skipped, about 40% of attacks won."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (image, label) in enumerate(zip(index, labels)):
        targets = [-1] if mode == "non-targeted" else [t for t in range(10) if t != label]
        for t in targets:
            skipped = i % 5 == 4
            won = not skipped and rng.random() < 0.4
            adversarial = (t if t >= 0 else (label + 1) % 10) if won else label
            row = {"attack_id": int(image) * 10 + (t if t >= 0 else int(label)),
                   "image_index": int(image), "label": int(label), "target": t,
                   "status": "skipped" if skipped else "success" if won else "failure",
                   "success": int(won), "adversarial_class": int(adversarial),
                   "confidence": float(rng.uniform(0.5, 1)),
                   "true_prob_before": float(true_probs[i]),
                   "true_prob_after": 0.3, "generations": 0 if skipped else int(rng.integers(6)),
                   "evaluations": 0 if skipped else int(rng.integers(10, 60)),
                   "nonfinite_evaluations": 0, "precision_flip": 0}
            for k in range(pixels):
                row.update({f"x{k}": float(rng.integers(32)), f"y{k}": float(rng.integers(32)),
                            f"r{k}": 255.0, f"g{k}": 0.0, f"b{k}": 0.0})
            rows.append(row)
    return rows


def make_results(out, *, data="sample", keep=None):
    """A suite results folder; ``keep`` maps a cell key to how many rows it keeps."""
    sample = load_sample()
    index, labels = sample.index[:N], sample.y[:N]
    keys = [f"{m}/{p}px-{mode}" for m in MODELS for p in PIXELS for mode in MODES]
    settings = {**SETTINGS, "data": data}
    record = {"suite": "handmade", "description": "A hand-made results folder.",
              "settings": settings, "class_names": list(sample.class_names),
              "victims": {m: {"architecture": m, "checkpoint": f"checkpoints/{m} (shipped)",
                              "checkpoint_path": str(out / "nowhere")} for m in MODELS},
              "cells": keys}
    out.mkdir(parents=True)
    (out / "suite.json").write_text(json.dumps(record))
    written = {}
    for seed, key in enumerate(keys):
        model, rest = key.split("/")
        pixels, mode = int(rest.split("px-")[0]), rest.split("px-")[1]
        # AllConv: the shipped victim, whose clean images the report scores again; the tiny
        # victim names no checkpoint, so its margins are left out.
        true_probs = (allconv_probs()[np.arange(N), labels] if model == "allconv"
                      else TINY_PROBS)
        shipped = {"checkpoint": "shipped:allconv"} if model == "allconv" else {}
        rows = make_rows(seed, pixels, mode, index, labels, true_probs)[:(keep or {}).get(key)]
        if not rows:
            continue
        directory = out / key
        results.check_config(directory, {"suite": "handmade", "model": model,
                                          "architecture": model, "pixels": pixels,
                                          "mode": mode, **shipped, **settings})
        with results.ResultsWriter(directory, pixels) as writer:
            writer.write(rows)
        evaluations = sum(r["evaluations"] for r in rows)
        results.write_summary(directory, {"model": model, "pixels": pixels, "mode": mode,
                                          "wall_seconds": 2.0, "evaluations": evaluations,
                                          "evaluations_per_second": evaluations / 2.0,
                                          "device": "cpu"})
        written[key] = rows
    return written


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    rows = make_results(out)
    return out, rows, write_report(out).read_text()


def test_report_has_every_cell_beside_the_papers_published_numbers(report):
    out, rows, text = report
    for key in rows:
        model, rest = key.split("/")
        assert f"| {model} | {rest.split('px-')[0]} | {rest.split('px-')[1]} |" in text
    allconv = next(line for line in text.splitlines()
                   if line.startswith("| allconv | 1 | all-targets |"))
    assert "68.71% TEVC" in allconv and "19.82%* TEVC" in allconv
    assert "74.03% TEVC (all)" in allconv and "2.3* arXiv v1 (all)" in allconv
    tiny = next(line for line in text.splitlines() if line.startswith("| tiny | 1 | all-targets |"))
    assert "68.71%" not in tiny and "67.97%" not in tiny  # no paper number for other networks
    assert "All networks together" in text and "67.97%" in text
    assert "Caveats of the comparison" in text and "Kaggle" in text


def test_success_rates_in_the_report_are_computed_from_the_rows(report):
    out, rows, text = report
    cell = rows["allconv/1px-all-targets"]
    attacked = {r["image_index"] for r in cell if r["status"] != "skipped"}
    fooled = {r["image_index"] for r in cell if r["success"]}
    pairs = sum(r["success"] for r in cell)
    line = next(line for line in text.splitlines()
                if line.startswith("| allconv | 1 | all-targets |"))
    assert f"({len(fooled)}/{len(attacked)})" in line
    assert f"({pairs}/{len(attacked) * 9})" in line


def test_figures_are_written_as_png_and_linked_from_the_report(report):
    out, _, text = report
    names = ["success_by_pixels", "success_by_confidence"] + [f"{kind}_{m}" for m in MODELS
                                     for kind in ("class_pairs", "classes_reached", "examples")]
    for name in names:
        assert f"(figures/{name}.png)" in text
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_examples_caption_names_the_colours_the_figure_circles_in(report, tmp_path):
    _, _, text = report
    assert "(red: the attack succeeded, orange: it failed)" in text
    grey = np.full((32, 32, 3), 128, np.uint8)
    shown = AttackResult(
        attack_id=[0, 1], image_index=[0, 0], label=[0, 0], target=[-1, -1],
        status=["success", "failure"], adversarial_class=[1, 1], confidence=[0.6, 0.6],
        true_prob_before=[0.9, 0.9], true_prob_after=[0.1, 0.1],
        perturbation=np.asarray([[[16.0, 16.0, 0.0, 0.0, 0.0]]] * 2), generations=[0, 0],
        evaluations=[0, 0], nonfinite=[0, 0], precision_flip=[False, False])
    path = figures.adversarial_grid(shown, {0: grey}, [str(c) for c in range(10)],
                                    tmp_path / "grid.png")
    pixels = mpimg.imread(path)[..., :3].reshape(-1, 3)
    for name in ("red", "orange"):
        colour = np.asarray(to_rgb(f"tab:{name}"))
        assert (np.abs(pixels - colour).max(-1) < 0.02).any(), f"no {name} circle drawn"


def test_class_pair_table_totals_equal_the_number_of_successes(report):
    out, rows, _ = report
    table = read_csv(out / "tables" / "class_pairs.csv")
    for key, cell in rows.items():
        model, rest = key.split("/")
        pixels, mode = rest.split("px-")
        counted = sum(int(r["count"]) for r in table
                      if (r["model"], r["pixels"], r["mode"]) == (model, pixels, mode))
        assert counted == sum(r["success"] for r in cell)


def test_tables_hold_reachable_classes_accuracy_effort_and_cost(report):
    out, rows, _ = report
    cells = {(r["model"], r["pixels"], r["mode"]): r for r in read_csv(out / "tables" /
                                                                      "cells.csv")}
    reached = read_csv(out / "tables" / "classes_reached.csv")
    for key, cell in rows.items():
        model, rest = key.split("/")
        pixels, mode = rest.split("px-")
        row = cells[(model, pixels, mode)]
        attacked = len({r["image_index"] for r in cell if r["status"] != "skipped"})
        assert float(row["accuracy"]) == attacked / N
        assert int(row["success_trials"]) == attacked and row["status"] == "complete"
        wins = [r["evaluations"] for r in cell if r["success"]]
        assert float(row["evaluations_median"]) == float(np.median(wins))
        if mode == "all-targets":
            images = sum(int(r["images"]) for r in reached
                         if (r["model"], r["pixels"]) == (model, pixels))
            assert images == attacked
    cost = read_csv(out / "tables" / "cost.csv")
    assert len(cost) == len(rows) and all(r["device"] == "cpu" for r in cost)
    comparison = read_csv(out / "tables" / "paper_comparison.csv")
    assert {r["model"] for r in comparison} == {"allconv"}
    assert {float(r["paper"]) for r in comparison} <= {p.value for p in PUBLISHED}
    assert published("success", "allconv", 1).value in {float(r["paper"]) for r in comparison}


def test_report_notes_unfinished_cells(tmp_path):
    make_results(tmp_path / "out", keep={"tiny/3px-all-targets": 20,
                                         "tiny/3px-non-targeted": 0})
    text = write_report(tmp_path / "out").read_text()
    assert "Progress: 6 of 8 cells complete" in text
    assert "`tiny/3px-all-targets` (partial, 20/90)" in text
    assert "`tiny/3px-non-targeted` (not run, 0/10)" in text


def test_report_without_the_attacked_images_leaves_examples_out_with_a_note(tmp_path):
    make_results(tmp_path / "out", data=str(tmp_path / "moved-away"))
    text = write_report(tmp_path / "out").read_text()
    assert "Examples left out" in text and "--data SPEC" in text
    assert not list((tmp_path / "out" / "figures").glob("examples_*.png"))
    assert (tmp_path / "out" / "figures" / "success_by_pixels.png").is_file()


def test_report_refuses_a_cell_of_another_suite(tmp_path):
    make_results(tmp_path / "out")
    config = tmp_path / "out" / "tiny" / "1px-non-targeted" / results.CONFIG
    config.write_text(json.dumps({**json.loads(config.read_text()), "suite": "other"}))
    with pytest.raises(PixeljaxError, match="another suite or configuration"):
        write_report(tmp_path / "out")


def test_report_refuses_a_corrupt_suite_record(tmp_path, capsys):
    (tmp_path / "suite.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    assert "suite.json is corrupt" in capsys.readouterr().err


def _cell(key):
    model, rest = key.split("/")
    pixels, mode = rest.split("px-")
    return model, pixels, mode


def _per_image(cell):
    """Per attacked image of made-up rows: (clean true-class probability, fooled)."""
    out = {}
    for r in cell:
        if r["status"] != "skipped":
            prob, fooled = out.get(r["image_index"], (r["true_prob_before"], False))
            out[r["image_index"]] = (prob, fooled or bool(r["success"]))
    return out


def test_success_by_clean_confidence_is_recomputed_from_the_rows(report):
    out, rows, text = report
    table = read_csv(out / "tables" / "success_by_confidence.csv")
    for key, cell in rows.items():
        mine = [r for r in table if (r["model"], r["pixels"], r["mode"]) == _cell(key)
                and r["by"] == "true-class probability"]
        assert len(mine) == len(EDGES) + 1
        images = _per_image(cell).values()
        for k, row in enumerate(mine):
            low, high = ((0.0,) + EDGES)[k], (EDGES + (1.0,))[k]
            inside = [f for p, f in images if low <= p < high or (k == len(EDGES) and p == 1)]
            assert (int(row["images"]), int(row["fooled"])) == (len(inside), sum(inside))
            if inside:
                assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(
                    wilson_interval(sum(inside), len(inside)))
        assert sum(int(r["images"]) for r in mine) == len(images)
    section = text.split("By clean true-class probability:")[1].split("By clean margin")[0]
    line = next(line for line in section.splitlines()
                if line.startswith("| tiny | 1 | non-targeted |"))
    counts = [f for p, f in _per_image(rows["tiny/1px-non-targeted"]).values() if p < 0.5]
    assert line.split(" | ")[3].startswith(f"{sum(counts)}/{len(counts)} (")


def test_margins_come_from_the_victim_scoring_the_clean_images_again(report):
    out, rows, text = report
    clean = read_csv(out / "tables" / "clean_probabilities.csv")
    assert {r["model"] for r in clean} == {"allconv"}  # the tiny victim cannot be loaded
    assert "Margins left out: tiny: its victim cannot be loaded" in text
    probs = allconv_probs()
    labels = load_sample().y[:N]
    for r in clean:
        p = probs[int(r["image_index"]) == load_sample().index[:N]][0]
        y = int(r["label"])
        assert y == labels[int(r["image_index"]) == load_sample().index[:N]][0]
        assert float(r["margin"]) == pytest.approx(p[y] - np.delete(p, y).max(), abs=1e-5)
    margins = [r for r in read_csv(out / "tables" / "success_by_confidence.csv")
               if r["by"] == "margin over the runner-up"]
    assert {r["model"] for r in margins} == {"allconv"}
    attacked = len(_per_image(rows["allconv/1px-all-targets"]))
    assert sum(int(r["images"]) for r in margins if r["mode"] == "all-targets"
               and r["pixels"] == "1") == attacked


def test_confidence_and_classes_per_fooled_image_are_computed_from_the_rows(report):
    out, rows, text = report
    table = {(r["model"], r["pixels"], r["mode"]): r
             for r in read_csv(out / "tables" / "adversarial_confidence.csv")}
    for key, cell in rows.items():
        row = table[_cell(key)]
        won = [r for r in cell if r["success"]]
        images = _per_image(cell)
        fooled = sum(f for _, f in images.values())
        assert float(row["mean_confidence"]) == pytest.approx(
            np.mean([r["confidence"] for r in won]), abs=1e-6)
        assert (int(row["successful_attacks"]), int(row["attacked"]), int(row["fooled"])) == (
            len(won), len(images), fooled)
        if _cell(key)[2] == "all-targets":
            assert float(row["classes_per_attacked"]) == pytest.approx(len(won) / len(images))
            assert float(row["classes_per_fooled"]) == pytest.approx(len(won) / fooled)
            # The paper's figures: one pixel, on the networks it attacked.
            paper = published("confidence", None, 1).value
            assert row["paper_confidence"] == (str(paper) if key == "allconv/1px-all-targets"
                                               else "")
        else:
            assert row["classes_per_fooled"] == "" and row["paper_confidence"] == ""
    assert "## Success against clean confidence" in text and "74.03% (TEVC)" in text
