"""The results folder of an attack run: one CSV row per attack, the run's configuration, and
its summary.

    DIR/config.json    what was run (a rerun with another configuration is refused), with a
                       fingerprint of the data attacked (a rerun on changed data is refused)
    DIR/results.csv    one row per attack, appended as attacks finish (pandas.read_csv reads it);
                       a pixel attack's row holds its pixels (x0, y0, r0, g0, b0, ...), a
                       threshold attack's its change of every pixel value (``delta``, see
                       :func:`encode_delta`)
    DIR/timing.json    the seconds and model evaluations of each part of the run (a resumed run
                       adds a part), so the summary's time and throughput cover every part
    DIR/summary.json   the run's totals

A run over several processes (hosts) writes one shard per process instead of ``results.csv``:

    DIR/results-<p>-of-<n>.csv    the attacks of process p of n
    DIR/timing-<p>-of-<n>.json    the time of process p of n

:func:`read_rows` merges ``results.csv`` and every shard into one table, so whatever reads
results sees all of them. Rows are appended and flushed as attacks finish, so a killed run loses
only unfinished attacks; a truncated last line (a kill in mid-write) is dropped on resume.
One process writes each file: writers lock the folder (``pixeljax._plumbing.locking``), readers do not.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import re
import sys
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pixeljax._plumbing.files import write_atomic
from pixeljax._plumbing.notices import warn
from pixeljax.errors import PixeljaxError
from pixeljax.runs.victim_record import VictimRecord

CONFIG = "config.json"
RESULTS = "results.csv"
SUMMARY = "summary.json"
TIMING = "timing.json"
DATA_FINGERPRINT = "data_sha256"  # config.json: sha256 of the images, labels and ids attacked
DATA_SPEC = "data"  # config.json: how the data was named (not compared when fingerprinted)
_SHARD = re.compile(r"results-(\d+)-of-(\d+)\.csv")

BASE_COLUMNS = ("attack_id", "image_index", "label", "target", "status", "success",
                "adversarial_class", "confidence", "true_prob_before", "true_prob_after",
                "generations", "evaluations", "nonfinite_evaluations", "precision_flip")
INT_COLUMNS = {"attack_id", "image_index", "label", "target", "success", "adversarial_class",
               "generations", "evaluations", "nonfinite_evaluations", "precision_flip"}
# A file whose header lacks a column was written by an earlier development version.
EARLIER_FILE = ("written by an earlier development version of pixeljax (its header lacks {}); "
                "attack again into a new --out folder")
PIXEL_FIELDS = ("x", "y", "r", "g", "b")
DELTA = "delta"  # a threshold attack's column: its change of every pixel value


def pixel_fields(channels: int = 3) -> tuple[str, ...]:
    """Names of one changed pixel's fields: x, y, then r, g, b (or v for grey images)."""
    return PIXEL_FIELDS if channels == 3 else ("x", "y") + (
        ("v",) if channels == 1 else tuple(f"c{m}" for m in range(channels)))


def columns(pixels: int, channels: int = 3, *, threshold: bool = False) -> tuple[str, ...]:
    """Column names of a results table for ``pixels``-pixel attacks, or (``threshold``) for
    threshold attacks."""
    if threshold:
        return BASE_COLUMNS + (DELTA,)
    return BASE_COLUMNS + tuple(f"{f}{k}" for k in range(pixels) for f in pixel_fields(channels))


def encode_delta(delta: np.ndarray) -> str:
    """A threshold attack's (H, W, C) integer change of every pixel value as one CSV field:
    ``HxWxC:`` and the base64 of its zlib-compressed little-endian int16 values, row-major."""
    delta = np.asarray(delta)
    packed = zlib.compress(np.ascontiguousarray(delta, "<i2").tobytes(), 9)
    return "x".join(map(str, delta.shape)) + ":" + base64.b64encode(packed).decode("ascii")


def delta_shape(text: str) -> tuple[int, ...]:
    """The (H, W, C) shape an :func:`encode_delta` field records."""
    try:
        shape = tuple(int(n) for n in text.split(":", 1)[0].split("x"))
    except ValueError:
        raise PixeljaxError(f"a delta field must start with HxWxC:, got {text[:20]!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise PixeljaxError(f"a delta field must start with HxWxC:, got {text[:20]!r}")
    return shape


def decode_delta(text: str) -> np.ndarray:
    """The (H, W, C) int16 change an :func:`encode_delta` field holds."""
    shape = delta_shape(text)
    try:
        values = np.frombuffer(zlib.decompress(base64.b64decode(text.split(":", 1)[1],
                                                                validate=True)), "<i2")
        return values.reshape(shape).astype(np.int16)
    except (ValueError, zlib.error) as e:
        raise PixeljaxError(f"a delta field of shape {shape} is corrupt ({e})") from None


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
    shown = lambda c, k: repr(c[k]) if k in c else "unset"  # noqa: E731
    return ", ".join(f"{k}: {shown(previous, k)} there, {shown(config, k)} now" for k in diff)


def data_fingerprint(images: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> str:
    """sha256 of the images, labels and image ids a run attacks (their bytes, dtypes and
    shapes), so a resume notices data that changed under the same name."""
    h = hashlib.sha256()
    for array in (images, labels, ids):
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


WEIGHTS_FINGERPRINT = "weights_sha256"  # config.json: the victim's weights fingerprint


def check_victim(config: Mapping, victim, directory: str | Path) -> None:
    """The victim loaded now (a :class:`~pixeljax.victims.loaded.LoadedVictim`) is the one a
    results folder attacked: the same weights, by their fingerprint (and, for a suite's cell,
    the same export). A folder whose writer recorded no fingerprint (a caller's own record
    through the Python API) is left to the analyses' check of the recorded scores.

    Raises:
      PixeljaxError: naming what changed.
    """
    recorded, now = config.get(WEIGHTS_FINGERPRINT), victim.weights_sha256
    if recorded is not None and recorded != now:
        raise PixeljaxError(f"{directory} holds attacks on other weights than those of "
                            f"{config.get('checkpoint')!r} now (weights sha256 "
                            f"{_short(recorded)} there, {_short(now)} now: re-exported, "
                            f"retrained or replaced?); restore the victim or use another "
                            f"folder")
    exported, metadata = config.get("checkpoint_exported"), victim.metadata
    if exported and metadata.get("exported") and exported != metadata["exported"]:
        raise PixeljaxError(f"{directory} holds attacks on the victim exported {exported}, "
                            f"but {config.get('checkpoint')!r} now holds one exported "
                            f"{metadata['exported']}; restore the victim or use another folder")


def _short(digest: str | None) -> str:
    return "none" if digest is None else digest[:12]


def without_fingerprint(config: Mapping) -> dict:
    """``config`` without its data fingerprint, which ``attack_folder`` adds itself: the
    settings a suite or a caller asks for."""
    return {k: v for k, v in config.items() if k != DATA_FINGERPRINT}


def _same_run(previous: Mapping, config: Mapping, directory: Path) -> bool:
    """Whether ``config`` is the run recorded as ``previous``. With a data fingerprint on both
    sides the data are compared by it, not by how their path was spelled.

    Raises:
      PixeljaxError: the fingerprints differ (the data changed).
    """
    if previous.get(WEIGHTS_FINGERPRINT) != config.get(WEIGHTS_FINGERPRINT):
        raise PixeljaxError(
            f"{directory} holds attacks on other weights than those of "
            f"{config.get('checkpoint')!r} now (weights sha256 "
            f"{_short(previous.get(WEIGHTS_FINGERPRINT))} there, "
            f"{_short(config.get(WEIGHTS_FINGERPRINT))} now: re-exported, retrained or "
            f"replaced?); use another --out, or restore the victim to resume")
    if DATA_FINGERPRINT not in previous:
        raise PixeljaxError(f"{directory}/{CONFIG} records no {DATA_FINGERPRINT}: a results "
                            f"folder of an earlier development version of pixeljax; attack "
                            f"again into a new --out folder")
    ignored = {DATA_SPEC, DATA_FINGERPRINT}
    before, now = ({k: v for k, v in c.items() if k not in ignored} for c in (previous, config))
    if DATA_FINGERPRINT in config and previous[DATA_FINGERPRINT] != config[DATA_FINGERPRINT]:
        if any(before.get(k) != now.get(k) for k in SELECTION):  # other images, same data
            raise PixeljaxError(f"{directory} holds attacks on another selection of images "
                                f"({_differences(before, now)}); resume with the options of "
                                f"that run ({_selection_options(before)}), or start a new run "
                                f"in another --out")
        raise PixeljaxError(f"{directory} holds results of other data: the images and labels "
                            f"of {config.get(DATA_SPEC)!r} differ from those attacked there "
                            f"(of {previous.get(DATA_SPEC)!r}; was the file changed? or, for "
                            f"a random sample, was it drawn by an earlier pixeljax, whose "
                            f"samples of one seed were not nested?); use another --out or the "
                            f"original data")
    return before == now


SELECTION = ("n_images", "first", "seed")  # config.json: which images of the data a run attacks


def _selection_options(config: Mapping) -> str:
    """The command-line options that make the selection ``config`` records."""
    n = config.get("n_images")
    return " ".join([f"--images {'all' if n is None else n}",
                     *(["--first"] if config.get("first") else []),
                     *([] if config.get("first") else [f"--seed {config.get('seed')}"])])


def run_config(spec, victim: VictimRecord | Mapping) -> dict:
    """A results folder's ``config.json``: what was attacked (a
    :class:`~pixeljax.runs.victim_record.VictimRecord`, or a mapping of its fields) and the attack's
    settings (``spec.to_config()``, see :class:`pixeljax.attack.spec.AttackSpec`).

    Raises:
      PixeljaxError: ``victim`` lacks a required field or has an unknown one.
    """
    return {**VictimRecord.of(victim).to_config(), **spec.to_config()}


def _check_results_config(previous, directory: Path) -> None:
    if not isinstance(previous, dict) or "mode" not in previous or "pixels" not in previous:
        raise PixeljaxError(f"{directory} is not an attack results folder: its {CONFIG} is "
                            f"another tool's (a training work dir?); use another --out")


def check_results_folder(directory: str | Path) -> None:
    """A folder about to be written as a results folder is new, or one: never a folder with
    another tool's ``config.json`` (checked before anything, a lock included, is written)."""
    path = Path(directory) / CONFIG
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # check_config names the damage
        _check_results_config(previous, Path(directory))


def check_config(directory: str | Path, config: Mapping) -> None:
    """Writes ``config.json`` into a new results folder, or checks it against the one there.

    Safe when several processes start on the same folder at once: one of them writes the file,
    the others check against it. When both hold a data fingerprint (``data_sha256``), the data
    are compared by it: the same file named by another path is the same run.

    Raises:
      PixeljaxError: the folder holds results of another configuration or other data.
    """
    directory = Path(directory)
    path = directory / CONFIG
    config = json.loads(json.dumps(dict(config)))  # normalise types as JSON would
    if not path.is_file():
        if result_files(directory):
            raise PixeljaxError(f"{directory} has {result_files(directory)[0].name} but no "
                                f"{CONFIG}; move it away")
        directory.mkdir(parents=True, exist_ok=True)
        if write_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n",
                         exclusive=True):
            return
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PixeljaxError(f"{path} is corrupt ({e}); move the folder away") from None
    _check_results_config(previous, directory)
    if not _same_run(previous, config, directory):
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
        if key in ("status", DELTA):
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
        return _unique(read_file(files[0], repair=repair), files[0])
    merged: dict[int, dict] = {}
    for path in files:
        for row in _unique(read_file(path, repair=repair), path):
            merged.setdefault(row["attack_id"], row)
    return [merged[k] for k in sorted(merged)]


def _unique(rows: list[dict], path: Path) -> list[dict]:
    """The rows, each attack once: a folder's lock lets one run write it, so an attack written
    twice means the file was edited or copied together."""
    seen: set[int] = set()
    for row in rows:
        if row["attack_id"] in seen:
            raise PixeljaxError(f"{path}: attack {row['attack_id']} appears twice (the file was "
                                f"edited or joined from two runs); move the folder away")
        seen.add(row["attack_id"])
    return rows


def read_file(path: str | Path, *, repair: bool = False) -> list[dict]:
    """Rows of one results file (``results.csv`` or a shard), in file order; see
    :func:`read_rows`."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    # a threshold attack's delta field outgrows the csv module's default field limit
    csv.field_size_limit(max(csv.field_size_limit(), min(len(text), sys.maxsize)))
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    # A header cut short (a kill while creating the file) is dropped like a cut row.
    rows, good_end = [], len(lines[0]) if lines[0].endswith("\n") else 0
    missing = [c for c in BASE_COLUMNS if c not in header]
    if good_end and missing:
        raise PixeljaxError(f"{path}: " + EARLIER_FILE.format(", ".join(missing)))
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
            if line.endswith("\n"):  # complete, yet unreadable: not a cut-off write
                warn(f"{path}: the last line ({i + 1}) is malformed ({e}); it is left out"
                     + (" and removed" if repair else "") + ", so its attack runs again")
    if repair and good_end != len(text):
        with open(path, "r+") as f:
            f.truncate(good_end)
    return rows


class ResultsWriter:
    """Appends rows to ``results.csv`` (or to this process's shard in a multi-process run, or
    to the file ``name``), flushed to disk after every call of :meth:`write`; ``threshold``:
    rows of a threshold attack (a ``delta`` column instead of pixels)."""

    def __init__(self, directory: str | Path, pixels: int, channels: int = 3, *,
                 process: int = 0, num_processes: int = 1, name: str | None = None,
                 threshold: bool = False):
        self.path = Path(directory) / (name or shard_name(process, num_processes))
        self.columns = columns(pixels, channels, threshold=threshold)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            missing = [c for c in BASE_COLUMNS if c not in header]
            if missing:
                raise PixeljaxError(f"{self.path}: " + EARLIER_FILE.format(", ".join(missing)))
            if tuple(header) != self.columns:
                raise PixeljaxError(f"{self.path} holds rows of another attack (columns "
                                    f"{', '.join(header)}); use another --out")
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
    write_atomic(Path(directory) / SUMMARY, json.dumps(dict(summary), indent=2) + "\n")


def read_summary(directory: str | Path) -> dict | None:
    """A results folder's ``summary.json``, or None when the run has not finished a summary."""
    path = Path(directory) / SUMMARY
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def timing_name(process: int, num_processes: int) -> str:
    """The time ledger of process ``process`` of ``num_processes`` (``timing.json`` for one)."""
    return TIMING if num_processes == 1 else f"timing-{process}-of-{num_processes}.json"


def _part(seconds, evaluations) -> dict | None:
    ok = (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0
          and isinstance(evaluations, int) and evaluations >= 0)
    return {"seconds": float(seconds), "evaluations": evaluations} if ok else None


def _read_parts(path: Path, *, quiet: bool = False) -> list[dict] | None:
    """The parts in a time ledger; None when there is none; [] (with a warning unless
    ``quiet``) when damaged."""
    if not path.is_file():
        return None
    try:
        parts = [_part(p["seconds"], p["evaluations"])
                 for p in json.loads(path.read_text())["parts"]]
        if None in parts:
            raise ValueError("a part without valid seconds and evaluations")
        return parts
    except (OSError, ValueError, KeyError, TypeError) as e:
        if not quiet:
            warn(f"{path} is damaged ({type(e).__name__}: {e}); the time of the earlier parts of "
                 f"this run is not counted")
        return []


class RunClock:
    """The time one writer (process) spends on a results folder. Each run is a part; the ledger
    (``timing.json`` or the process's ``timing-<p>-of-<n>.json``) holds every part's seconds and
    model evaluations and is rewritten as attacks finish, so a killed run keeps the time of the
    attacks it finished."""

    def __init__(self, directory: str | Path, process: int = 0, num_processes: int = 1):
        directory = Path(directory)
        self.path = directory / timing_name(process, num_processes)
        parts = _read_parts(self.path)
        self.parts = [] if parts is None else parts
        self.started = time.perf_counter()
        self.evaluations = 0

    def add(self, evaluations: int) -> None:
        """Records ``evaluations`` more, and the time so far, of this run's part."""
        self.evaluations += int(evaluations)
        if self.evaluations:  # a run that attacked nothing adds no part
            part = {"seconds": round(time.perf_counter() - self.started, 3),
                    "evaluations": self.evaluations}
            write_atomic(self.path, json.dumps({"parts": self.parts + [part]}, indent=1)
                          + "\n")


def run_time(directory: str | Path) -> tuple[float, int]:
    """``(wall seconds, model evaluations)`` recorded for a results folder: the parts of one
    writer add up; several writers (processes) ran side by side, so the longest is the wall
    time. Evaluations are those of the timed parts (for a throughput that is never absurd when a
    ledger was lost)."""
    directory = Path(directory)
    ledgers = [p for p in directory.glob("timing*.json")
               if p.name == TIMING or re.fullmatch(r"timing-\d+-of-\d+\.json", p.name)]
    parts = [_read_parts(p, quiet=True) or [] for p in ledgers] or [[]]
    seconds = max(sum(p["seconds"] for p in ps) for ps in parts)
    return seconds, sum(p["evaluations"] for ps in parts for p in ps)
