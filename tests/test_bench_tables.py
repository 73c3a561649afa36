"""``pixeljax publish-bench``: the README's performance tables come from stored bench reports,
and the project's README shows exactly what its ``results/bench`` reports give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pixeljax.bench.tables import (
    ENGINES,
    FRAMEWORKS,
    LOOP,
    PRECISION,
    ROOFLINE,
    bench_tables,
)
from pixeljax.cli import main
from pixeljax.reporting.readme_blocks import block, readme_block

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "results" / "bench"


def test_the_readme_performance_tables_are_what_the_stored_bench_reports_give():
    readme = (REPO / "README.md").read_text()
    for name, table in bench_tables(BENCH, REPO).items():
        assert readme_block(readme, name) == "\n".join(table), name


def _report(tmp_path: Path, name: str = "allconv.json") -> Path:
    folder = tmp_path / "bench"
    folder.mkdir(exist_ok=True)
    shutil.copy(BENCH / "allconv.json", folder / name)
    return folder


def test_a_row_is_computed_from_its_report(tmp_path):
    folder = _report(tmp_path)
    report = json.loads((folder / "allconv.json").read_text())
    report["engines"]["incremental"]["evaluations_per_second"] = 1234.5
    report["incremental_over_dense"] = 8.25
    report["cores"], report["cpu_bfloat16_instructions"] = 16, False
    (folder / "allconv.json").write_text(json.dumps(report))
    tables = bench_tables(folder, tmp_path)
    row = tables[ENGINES][2]
    assert "[allconv.json](bench/allconv.json)" in row and "1,234.5 (64)" in row
    assert "**8.25x**" in row and "CPU, 16 cores, no bfloat16 instructions" in row
    assert len(tables[ROOFLINE]) == len(tables[PRECISION]) == 3


def test_the_threshold_loop_and_pytorch_columns_are_computed_from_the_report(tmp_path):
    folder = _report(tmp_path)
    report = json.loads((folder / "allconv.json").read_text())
    report["engine_evaluations_per_second"] = report["engines"]["dense"][
        "evaluations_per_second"] = 400.0
    report["incremental_evaluations_per_second"] = report["engines"]["incremental"][
        "evaluations_per_second"] = 2000.0
    report["forward_images_per_second"], report["numpy_de_evaluations_per_second"] = 500.0, 250.0
    report["engine_over_forward"], report["engine_over_numpy_de"] = 0.8, 1.6
    report["engines"]["threshold"] = {**report["engines"]["dense"], "threshold": 10,
                                      "evaluations_per_second": 360.0}
    report["numpy_threshold_evaluations_per_second"] = 120.0
    report["threshold_over_numpy_threshold"] = 3.0
    report["torch_forward_images_per_second"] = 1250.0
    report["forward_over_torch_forward"] = 0.4
    report["torch_de_evaluations_per_second"] = 100.0
    report["engine_over_torch_de"] = {"dense": 4.0, "incremental": 20.0}
    report["torch"] = {"file": "net.pt", "version": "2.13.0+cpu", "threads": 2}
    (folder / "allconv.json").write_text(json.dumps(report))
    del report["torch"]  # a report whose PyTorch was not recorded
    report["model"] = "net.onnx"
    (folder / "net.json").write_text(json.dumps(report))
    tables = bench_tables(folder, tmp_path)
    link = "[allconv.json](bench/allconv.json)"
    assert tables[LOOP][2] == (f"| {link} | 500.0 | 400.0 | 250.0 | 0.80 | 1.60 | **8.00x** "
                               f"| 360.0 (10) | 120.0 | **3.00x** |")
    assert tables[FRAMEWORKS][2:] == [
        f"| {link} | allconv (torch 2.13.0+cpu, 2 threads) | 1,250.0 | 500.0 (0.40) | 100.0 "
        f"| 400.0 (**4.00x**) | 2,000.0 (**20.00x**) |",
        "| [net.json](bench/net.json) | net.onnx | 1,250.0 | 500.0 (0.40) | 100.0 "
        "| 400.0 (**4.00x**) | 2,000.0 (**20.00x**) |"]


def test_a_report_from_before_the_new_loops_shows_dashes_and_no_pytorch_row(tmp_path):
    folder = _report(tmp_path)
    report = json.loads((folder / "allconv.json").read_text())
    for key in ("numpy_threshold_evaluations_per_second", "threshold_over_numpy_threshold",
                "torch_de_evaluations_per_second", "engine_over_torch_de"):
        report.pop(key, None)
    report["engines"].pop("threshold", None)
    (folder / "allconv.json").write_text(json.dumps(report))
    tables = bench_tables(folder, tmp_path)
    assert tables[LOOP][2].endswith("| – | – | – |")
    assert len(tables[FRAMEWORKS]) == 2  # the header only


def test_publish_bench_writes_every_block_and_leaves_the_rest(tmp_path, capsys):
    folder = _report(tmp_path)
    readme = tmp_path / "README.md"
    names = list(bench_tables(folder, tmp_path))
    readme.write_text("# title\n\n" + "\n\ntext between\n\n".join(
        block(name, ["stale row"]) for name in names) + "\n\nthe end\n")
    assert main(["publish-bench", str(folder), "--readme", str(readme)]) == 0
    text = readme.read_text()
    for name, table in bench_tables(folder, tmp_path).items():
        assert readme_block(text, name) == "\n".join(table)
    assert text.startswith("# title\n") and "text between" in text and text.endswith("end\n")


def test_a_readme_without_a_block_is_named_and_left_untouched(tmp_path, capsys):
    folder = _report(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(block(ENGINES, ["stale row"]) + "\n")
    before = readme.read_text()
    assert main(["publish-bench", str(folder), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bench-loop" in err
    assert readme.read_text() == before


@pytest.mark.parametrize("content, message", [(None, "holds no bench report"),
                                              ("", "not a bench report"),
                                              ('{"model": "x"}', "has no model and engines")])
def test_a_folder_without_good_reports_is_refused_with_one_line(tmp_path, capsys, content,
                                                                message):
    folder = tmp_path / "bench"
    folder.mkdir()
    if content is not None:
        (folder / "half-written.json").write_text(content)
    assert main(["publish-bench", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1


def test_a_block_given_twice_is_refused_and_a_marker_inside_prose_is_left_alone(tmp_path,
                                                                               capsys):
    folder = _report(tmp_path)
    readme = tmp_path / "README.md"
    good = "\n\n".join(block(name, ["stale row"]) for name in bench_tables(folder, tmp_path))
    twice = good + "\n\n" + block(ENGINES, ["again"]) + "\n"
    readme.write_text(twice)
    assert main(["publish-bench", str(folder), "--readme", str(readme)]) == 2
    assert "not exactly one block <!-- published:bench-engines" in capsys.readouterr().err
    assert readme.read_text() == twice
    prose = f"the marker <!-- published:{ENGINES} --> in prose\n\n"
    readme.write_text(prose + good + "\n")
    assert main(["publish-bench", str(folder), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(prose) and "stale row" not in text
    for name, table in bench_tables(folder, tmp_path).items():
        assert readme_block(text, name) == "\n".join(table)


def test_publish_bench_writes_through_a_link_and_keeps_the_mode(tmp_path):
    folder = _report(tmp_path)
    target = tmp_path / "real.md"
    target.write_text("\n\n".join(block(name, ["stale row"])
                                  for name in bench_tables(folder)) + "\n")
    target.chmod(0o600)
    (tmp_path / "README.md").symlink_to(target)
    assert main(["publish-bench", str(folder), "--readme", str(tmp_path / "README.md")]) == 0
    assert (tmp_path / "README.md").is_symlink() and "stale row" not in target.read_text()
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_missing_folder_and_an_incomplete_report_are_named(tmp_path, capsys):
    assert main(["publish-bench", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    folder = _report(tmp_path)
    report = json.loads((folder / "allconv.json").read_text())
    del report["engines"]["incremental"]["flops_per_second"]
    (folder / "allconv.json").write_text(json.dumps(report))
    assert main(["publish-bench", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "allconv.json: not a complete" in err
    assert "flops_per_second" in err and len(err.strip().splitlines()) == 1
