"""The results folder of an attack run: one CSV row per attack, the run's configuration, and
its summary.

    DIR/config.json    what was run (a rerun with another configuration is refused)
    DIR/results.csv    one row per attack, appended as attacks finish (pandas.read_csv reads it)
    DIR/summary.json   the run's totals

A run over several processes (hosts) writes one shard per process instead of ``results.csv``:

    DIR/results-<p>-of-<n>.csv    the attacks of process p of n

:func:`read_rows` merges ``results.csv`` and every shard into one table, so whatever reads
results sees all of them. Rows are appended and flushed as attacks finish, so a killed run loses
only unfinished attacks; a truncated last line (a kill in mid-write) is dropped on resume.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pixeljax.errors import PixeljaxError

CONFIG = "config.json"
RESULTS = "results.csv"
SUMMARY = "summary.json"
_SHARD = re.compile(r"results-(\d+)-of-(\d+)\.csv")

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


def shard_name(process: int, num_processes: int) -> str:
    """The results file of process ``process`` of ``num_processes`` (``results.csv`` for one)."""
    return RESULTS if num_processes == 1 else f"results-{process}-of-{num_processes}.csv"


def result_files(directory: str | Path) -> list[Path]:
    """``results.csv`` (if any), then every process's shard, in a fixed order."""
    directory = Path(directory)
    shards = sorted((tuple(map(int, m.groups()))[::-1], p) for p in directory.glob("results-*.csv")
                    if (m := _SHARD.fullmatch(p.name)))
    single = [directory / RESULTS] if (directory / RESULTS).is_file() else []
    return single + [p for _, p in shards]


def _differences(previous: Mapping, config: Mapping) -> str:
    diff = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
    return ", ".join(f"{k}: {previous.get(k)!r} there, {config.get(k)!r} now" for k in diff)


def _write_atomic(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Writes ``text`` to ``path`` through a temporary file of its own (so processes writing
    the same folder never share one). ``exclusive``: only if ``path`` does not exist yet;
    returns False when it did."""
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}."
                         f"{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x") as f:
            f.write(text)
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_config(directory: str | Path, config: Mapping) -> None:
    """Writes ``config.json`` into a new results folder, or checks it against the one there.

    Safe when several processes start on the same folder at once: one of them writes the file,
    the others check against it.

    Raises:
      PixeljaxError: the folder holds results of another configuration.
    """
    directory = Path(directory)
    path = directory / CONFIG
    config = json.loads(json.dumps(dict(config)))  # normalise types as JSON would
    if not path.is_file():
        if result_files(directory):
            raise PixeljaxError(f"{directory} has {result_files(directory)[0].name} but no "
                                f"{CONFIG}; move it away")
        directory.mkdir(parents=True, exist_ok=True)
        if _write_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n",
                         exclusive=True):
            return
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PixeljaxError(f"{path} is corrupt ({e}); move the folder away") from None
    if previous != config:
        raise PixeljaxError(f"{directory} holds results of a different configuration "
                            f"({_differences(previous, config)}); use another --out or the "
                            f"same options")


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
    """Rows of the results folder as dicts (numbers parsed).

    With ``results.csv`` alone: its rows in file order. With process shards (a multi-process
    run): the rows of every file merged, one per attack_id (the first file's where several hold
    it), sorted by attack_id.

    A truncated or malformed final line (a kill in mid-write) is ignored, and with ``repair``
    removed from the file. A malformed line elsewhere is an error.
    """
    files = result_files(directory)
    if not files:
        return []
    if len(files) == 1 and files[0].name == RESULTS:
        return read_file(files[0], repair=repair)
    merged: dict[int, dict] = {}
    for path in files:
        for row in read_file(path, repair=repair):
            merged.setdefault(row["attack_id"], row)
    return [merged[k] for k in sorted(merged)]


def read_file(path: str | Path, *, repair: bool = False) -> list[dict]:
    """Rows of one results file (``results.csv`` or a shard), in file order; see
    :func:`read_rows`."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    # A header cut short (a kill while creating the file) is dropped like a cut row.
    rows, good_end = [], len(lines[0]) if lines[0].endswith("\n") else 0
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
    """Appends rows to ``results.csv`` (or to this process's shard in a multi-process run),
    flushed to disk after every call of :meth:`write`."""

    def __init__(self, directory: str | Path, pixels: int, channels: int = 3, *,
                 process: int = 0, num_processes: int = 1):
        self.path = Path(directory) / shard_name(process, num_processes)
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
    _write_atomic(Path(directory) / SUMMARY, json.dumps(dict(summary), indent=2) + "\n")
