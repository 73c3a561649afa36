"""The results folder of an attack run: one CSV row per attack, the run's configuration, and
its summary.

    DIR/config.json    what was run (a rerun with another configuration is refused)
    DIR/results.csv    one row per attack, appended as attacks finish (pandas.read_csv reads it)
    DIR/summary.json   the run's totals

Rows are appended and flushed as attacks finish, so a killed run loses only unfinished attacks;
a truncated last line (a kill in mid-write) is dropped on resume.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pixeljax.errors import PixeljaxError

CONFIG = "config.json"
RESULTS = "results.csv"
SUMMARY = "summary.json"

STATUS_SUCCESS, STATUS_FAILURE, STATUS_SKIPPED = "success", "failure", "skipped"
BASE_COLUMNS = ("attack_id", "image_index", "label", "target", "status", "success",
                "adversarial_class", "confidence", "true_prob_before", "true_prob_after",
                "generations", "evaluations")
INT_COLUMNS = {"attack_id", "image_index", "label", "target", "success", "adversarial_class",
               "generations", "evaluations"}
PIXEL_FIELDS = ("x", "y", "r", "g", "b")


def pixel_fields(channels: int = 3) -> tuple[str, ...]:
    """Names of one changed pixel's fields: x, y, then r, g, b (or v for grey images)."""
    return PIXEL_FIELDS if channels == 3 else ("x", "y") + (
        ("v",) if channels == 1 else tuple(f"c{m}" for m in range(channels)))


def columns(pixels: int, channels: int = 3) -> tuple[str, ...]:
    """Column names of a results table for ``pixels``-pixel attacks."""
    return BASE_COLUMNS + tuple(f"{f}{k}" for k in range(pixels) for f in pixel_fields(channels))


def perturbation(row: Mapping, pixels: int, channels: int = 3) -> np.ndarray:
    """The (pixels * (2 + C),) candidate of a row, as ``attack.perturb`` applies it."""
    return np.asarray([row[f"{f}{k}"] for k in range(pixels) for f in pixel_fields(channels)],
                      np.float32)


def check_config(directory: str | Path, config: Mapping) -> None:
    """Writes ``config.json`` into a new results folder, or checks it against the one there.

    Raises:
      PixeljaxError: the folder holds results of another configuration.
    """
    directory = Path(directory)
    path = directory / CONFIG
    config = json.loads(json.dumps(dict(config)))  # normalise types as JSON would
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise PixeljaxError(f"{path} is corrupt ({e}); move the folder away") from None
        if previous != config:
            diff = sorted(k for k in set(previous) | set(config)
                          if previous.get(k) != config.get(k))
            detail = ", ".join(f"{k}: {previous.get(k)!r} there, {config.get(k)!r} now"
                               for k in diff)
            raise PixeljaxError(f"{directory} holds results of a different configuration "
                                f"({detail}); use another --out or the same options")
        return
    if (directory / RESULTS).exists():
        raise PixeljaxError(f"{directory} has {RESULTS} but no {CONFIG}; move it away")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise PixeljaxError(f"{directory} is not an attack results folder (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PixeljaxError(f"{path} is corrupt ({e})") from None


def _parse(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key == "status":
            out[key] = value
        elif key in INT_COLUMNS:
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


def read_rows(directory: str | Path, *, repair: bool = False) -> list[dict]:
    """Rows of ``results.csv`` as dicts (numbers parsed), in file order.

    A truncated or malformed final line (a kill in mid-write) is ignored, and with ``repair``
    removed from the file. A malformed line elsewhere is an error.
    """
    path = Path(directory) / RESULTS
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    rows, good_end = [], len(lines[0])
    for i, line in enumerate(lines[1:], start=1):
        last = i == len(lines) - 1
        values = next(csv.reader([line]), [])
        try:
            if not line.endswith("\n") or len(values) != len(header):
                raise ValueError("incomplete line")
            rows.append(_parse(dict(zip(header, values))))
            good_end += len(line)
        except ValueError as e:
            if not last:
                raise PixeljaxError(f"{path}: line {i + 1} is corrupt ({e}); "
                                    f"move the folder away or fix the line") from None
    if repair and good_end != len(text):
        with open(path, "r+") as f:
            f.truncate(good_end)
    return rows


class ResultsWriter:
    """Appends rows to ``results.csv``, flushed to disk after every call of :meth:`write`."""

    def __init__(self, directory: str | Path, pixels: int, channels: int = 3):
        self.path = Path(directory) / RESULTS
        self.columns = columns(pixels, channels)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, lineterminator="\n")
        if fresh:
            self._writer.writeheader()
            self._flush()

    def write(self, rows: Iterable[Mapping]) -> None:
        for row in rows:
            self._writer.writerow({k: _fmt(row[k]) for k in self.columns})
        self._flush()

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(value):
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (np.integer, np.bool_, bool)):
        return int(value)
    return value


def write_summary(directory: str | Path, summary: Mapping) -> None:
    path = Path(directory) / SUMMARY
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(summary), indent=2) + "\n")
    os.replace(tmp, path)
