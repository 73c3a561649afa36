"""The README's performance tables, rendered from stored ``pixeljax bench --json`` reports
(``pixeljax bench --model NAME --json > results/bench/NAME.json``), so that no published rate
is typed by hand: ``pixeljax publish-bench results/bench --readme README.md`` writes them into
the README's blocks (:mod:`pixeljax.reporting.readme_blocks`), and a test recomputes them there.

Each row is one stored report, i.e. one run: its ratios were measured side by side and are
the result; absolute rates differ between machines and with what else the machine ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import BFLOAT16

ENGINES, LOOP, ROOFLINE, PRECISION, FRAMEWORKS = ("bench-engines", "bench-loop",
                                                  "bench-roofline", "bench-bfloat16",
                                                  "bench-frameworks")
NONE = "–"


def load_reports(folder: str | Path) -> list[tuple[Path, dict]]:
    """Every ``*.json`` bench report in ``folder``, by file name.

    Raises:
      PixeljaxError: the folder holds none, or a file is not a ``pixeljax bench --json``
        report.
    """
    if not Path(folder).is_dir():
        raise PixeljaxError(f"{folder} is not a folder of bench reports"
                            + ("" if Path(folder).exists() else " (it does not exist)"))
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise PixeljaxError(f"{folder} holds no bench report (*.json from 'pixeljax bench "
                            f"--json')")
    reports = []
    for path in files:
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise PixeljaxError(f"{path}: not a bench report ({err})") from None
        if not isinstance(report, dict) or not {"model", "engines"} <= report.keys():
            raise PixeljaxError(f"{path}: not a 'pixeljax bench --json' report (it has no "
                                f"model and engines)")
        reports.append((path, report))
    return reports


def _machine(report: dict) -> str:
    if report["platform"] != "cpu":
        return report["device"]
    cores = f", {report['cores']} cores" if report.get("cores") else ""
    native = {True: ", bfloat16 instructions", False: ", no bfloat16 instructions"}
    return "CPU" + cores + native.get(report.get("cpu_bfloat16_instructions"), "")


def _victim(report: dict) -> str:
    return report["model"] + (" (random weights)" if report.get("untrained") else "")


def _rate(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f}"


def _gflops(value: float) -> str:
    return f"{value / 1e9:,.1f} GFLOP/s"


def _head(columns: list[str]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "| " + " | ".join(["---"] * len(columns)) + " |"]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _link(path: Path, base: Path) -> str:
    return f"[{path.name}]({Path(os.path.relpath(path, base)).as_posix()})"


ENGINE_COLUMNS = ["report", "victim", "machine", "dense, evaluations/s (batch)",
                  "incremental, evaluations/s (batch)", "incremental / dense",
                  "multiply-adds per candidate, dense / incremental", "cache per slot"]


def engines_row(path: Path, r: dict, base: Path) -> list[str]:
    """Dense against incremental scoring (float32): rates, ratio, multiply-adds, cache."""
    dense, inc = r["engines"]["dense"], r["engines"]["incremental"]
    return [_link(path, base), _victim(r), _machine(r),
            f"{_rate(dense['evaluations_per_second'])} ({dense['batch_size']})",
            f"{_rate(inc['evaluations_per_second'])} ({inc['batch_size']})",
            f"**{r['incremental_over_dense']:.2f}x**",
            f"{dense['macs_per_candidate'] / 1e6:,.1f} M / {inc['macs_per_candidate'] / 1e6:,.1f}"
            f" M ({r['incremental_macs_fraction']:.2f})",
            f"{inc['cache_bytes_per_slot'] / 1e6:.2f} MB"]


LOOP_COLUMNS = ["report", "(a) forward, images/s", "(b) dense engine, evaluations/s",
                "(c) NumPy DE, evaluations/s", "(b)/(a)", "(b)/(c)", "incremental / NumPy DE",
                "threshold engine (th), evaluations/s", "one-image threshold loop, evaluations/s",
                "threshold engine / loop"]


def _ratio(value: float | None, bold: bool = False) -> str:
    if value is None:
        return NONE
    return f"**{value:.2f}x**" if bold else f"{value:.2f}"


def loop_row(path: Path, r: dict, base: Path) -> list[str]:
    """The engines against the forward pass alone and the one-image NumPy DE loop, and the
    threshold engine against the same loop running the threshold attack (reports from before
    that loop: "–")."""
    numpy_de = r["numpy_de_evaluations_per_second"]
    threshold = r["engines"].get("threshold")
    return [_link(path, base), _rate(r["forward_images_per_second"]),
            _rate(r["engine_evaluations_per_second"]), _rate(numpy_de),
            f"{r['engine_over_forward']:.2f}", f"{r['engine_over_numpy_de']:.2f}",
            f"**{r['incremental_evaluations_per_second'] / numpy_de:.2f}x**",
            NONE if threshold is None else (f"{_rate(threshold['evaluations_per_second'])} "
                                            f"({threshold['threshold']})"),
            _rate(r.get("numpy_threshold_evaluations_per_second")),
            _ratio(r.get("threshold_over_numpy_threshold"), bold=True)]


FRAMEWORK_COLUMNS = ["report", "victim", "PyTorch forward, images/s",
                     "pixeljax forward, images/s (/ PyTorch)",
                     "PyTorch one-image DE, evaluations/s",
                     "dense engine, evaluations/s (/ PyTorch DE)",
                     "incremental engine, evaluations/s (/ PyTorch DE)"]


def frameworks_row(path: Path, r: dict, base: Path) -> list[str] | None:
    """The engines on an ONNX file against the PyTorch network itself: its forward pass and the
    one-image DE loop calling it (None: a report without ``--torch``)."""
    if r.get("torch_de_evaluations_per_second") is None:
        return None
    over, engines = r["engine_over_torch_de"], r["engines"]
    torch = r.get("torch") or {}
    version = f" (torch {torch['version']}, {torch['threads']} threads)" if torch else ""
    return [_link(path, base), _victim(r) + version,
            _rate(r["torch_forward_images_per_second"]),
            f"{_rate(r['forward_images_per_second'])} "
            f"({_ratio(r['forward_over_torch_forward'])})",
            _rate(r["torch_de_evaluations_per_second"]),
            f"{_rate(engines['dense']['evaluations_per_second'])} "
            f"({_ratio(over['dense'], bold=True)})",
            f"{_rate(engines['incremental']['evaluations_per_second'])} "
            f"({_ratio(over['incremental'], bold=True)})"]


def _fraction(engine: dict) -> str:
    return (f"{_gflops(engine['flops_per_second'])}, "
            f"**{engine['fraction_of_matmul_float32']:.2f}** of matmul")


def _products(engine: dict, matmul: float) -> str:
    rate = engine.get("products_flops_per_second")
    return NONE if rate is None else f"{_gflops(rate)}, {rate / matmul:.2f} of matmul"


ROOFLINE_COLUMNS = ["report", "matrix multiply 2048 x 2048, float32 (the ceiling)",
                    "dense engine, float32", "incremental engine, float32",
                    "incremental engine's products alone",
                    "exhaustive sweep, candidates/s (/ incremental)"]


def roofline_row(path: Path, r: dict, base: Path) -> list[str]:
    """Each float32 engine's achieved FLOP/s against the machine's matmul rate, the rate of the
    incremental engine's products alone at their own shapes, and the sweep."""
    sweep, matmul = r.get("sweep_candidates_per_second"), r["matmul_flops_per_second"]
    inc = r["engines"]["incremental"]
    return [_link(path, base), _gflops(matmul["float32"]), _fraction(r["engines"]["dense"]),
            _fraction(inc), _products(inc, matmul["float32"]),
            NONE if sweep is None else f"{sweep:,.1f} ({r['sweep_over_incremental']:.2f})"]


def _fooled(r: dict, kind: str) -> str:
    low = r["engines"].get(f"{kind} {BFLOAT16}")
    high = r["engines"][kind]["run"]
    if low is None:
        return NONE
    return (f"{high['success']} / {low['run']['success']} of {high['attacked']} "
            f"({low['run']['precision_flips']} reversed)")


PRECISION_COLUMNS = ["report", "machine", "matmul, bfloat16 / float32",
                     "incremental, bfloat16 / float32", "dense, bfloat16 / float32",
                     "fooled, float32 / bfloat16 (reversed by the float32 re-check), "
                     "incremental; dense", "same class (differ, of candidates)",
                     "largest probability difference"]


def precision_row(path: Path, r: dict, base: Path) -> list[str] | None:
    """bfloat16 against float32: matmul, both engines, successes, agreement (None: the victim
    scores in float32 only)."""
    ratios = r.get("bfloat16_over_float32") or {}
    if "incremental" not in ratios:
        return None
    matmul = r["matmul_flops_per_second"]
    agree = None if r.get("untrained") else r.get("precision_agreement")  # random weights
    return [_link(path, base), _machine(r), f"{matmul['bfloat16'] / matmul['float32']:.2f}",
            f"**{ratios['incremental']:.2f}**", f"{ratios['dense']:.2f}",
            f"{_fooled(r, 'incremental')}; {_fooled(r, 'dense')}",
            NONE if not agree else (f"{agree['argmax_agreement']:.2%} "
                                    f"({agree['argmax_disagreements']} of "
                                    f"{agree['candidates']:,})"),
            NONE if not agree else f"{agree['max_probability_difference']:.3f}"]


TABLES = {ENGINES: (ENGINE_COLUMNS, engines_row), LOOP: (LOOP_COLUMNS, loop_row),
          ROOFLINE: (ROOFLINE_COLUMNS, roofline_row),
          PRECISION: (PRECISION_COLUMNS, precision_row),
          FRAMEWORKS: (FRAMEWORK_COLUMNS, frameworks_row)}


def bench_tables(folder: str | Path, base: str | Path = ".") -> dict[str, list[str]]:
    """Every table, by block name, from the reports in ``folder`` (links relative to
    ``base``, the README's folder): a header, then one row per report."""
    base = Path(base)
    tables = {name: _head(columns) for name, (columns, _) in TABLES.items()}
    for path, report in load_reports(folder):
        try:
            rows = {name: row(path, report, base) for name, (_, row) in TABLES.items()}
        except (KeyError, TypeError, AttributeError, ZeroDivisionError) as err:
            # a report another version wrote is named, not a traceback
            raise PixeljaxError(f"{path}: not a complete 'pixeljax bench --json' report "
                                f"({type(err).__name__}: {err}); run the bench again") from None
        for name, cells in rows.items():
            if cells is not None:
                tables[name].append(_row(cells))
    return tables
