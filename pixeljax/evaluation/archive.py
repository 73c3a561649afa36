"""A suite run's state in one file, so that a publication can be continued or re-analysed.

    DEST/run.tar.gz    OUT/suite.json and every cell folder of OUT (config, result rows, sweep
                       maps, timing, summary): everything ``pixeljax evaluate`` resumes from

:func:`write_archive` packs a results folder (atomically); :func:`restore` unpacks one into a
results folder cell by cell, leaving every cell the folder already has as it is, so a later
machine (or a fresh clone) continues a long run from what was committed:

    pixeljax evaluate SUITE --out OUT --continue-from DEST

Nothing but the suite's record and its cell folders travels: no trained victims, no locks, no
temporary files, no owner names, no paths of the machine that ran (cut to their last part).
On restore every archived cell is checked against the cell this run plans (victim, attack and,
by their fingerprint, the images) and bound to this run's data and checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pixeljax._plumbing import locking
from pixeljax._plumbing.files import atomic_path
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation.plan import RECORD, SCRATCH, Plan, _differences, shared_settings
from pixeljax.runs import results
from pixeljax.training.export import portable

ARCHIVE = "run.tar.gz"


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _portable(value):
    """``value`` (JSON) with every absolute path cut to its last part."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return portable(value)
    return value


def _add_json(tar: tarfile.TarFile, file: Path, name: str) -> None:
    """Adds a JSON file with the paths of this machine cut (see :func:`_portable`)."""
    data = (json.dumps(_portable(json.loads(file.read_text())), indent=2, sort_keys=True)
            + "\n").encode()
    info = _anonymous(tar.gettarinfo(file, name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_archive(out: str | Path, cells: Iterable[str], path: str | Path) -> Path:
    """Packs ``OUT/suite.json`` and the folders of ``cells`` (keys ``<victim>/<cell>``) into
    ``path``, replacing it only once the new archive is whole."""
    out, path = Path(out), Path(path)
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            _add_json(tar, out / RECORD, RECORD)
            for key in cells:
                for file in sorted((out / key).rglob("*")):
                    name = file.relative_to(out).as_posix()
                    if not file.is_file() or file.name.startswith("."):  # locks, tmp files
                        continue
                    if file.name == results.CONFIG:
                        _add_json(tar, file, name)
                    else:
                        tar.add(file, name, filter=_anonymous)
    return path


def _cell_of(name: str) -> str | None:
    """The cell key of an archive member (None: ``suite.json``).

    Raises:
      ValueError: a member outside the layout above (an absolute path, ``..``, a file beside
        the cells).
    """
    parts = PurePosixPath(name).parts
    if name == RECORD:
        return None
    if name.startswith("/") or ".." in parts or len(parts) < 3:
        raise ValueError(f"it holds {name!r}, which is no file of a cell")
    return "/".join(parts[:2])


def _members(tar: tarfile.TarFile) -> tuple[dict, dict[str, list[tarfile.TarInfo]]]:
    """The archive's ``suite.json`` and its files grouped by cell."""
    cells: dict[str, list[tarfile.TarInfo]] = {}
    record = None
    for member in tar.getmembers():
        if not member.isfile():
            raise ValueError(f"it holds {member.name!r}, which is not a plain file")
        key = _cell_of(member.name)
        if key is None:
            record = json.load(tar.extractfile(member))
        else:
            cells.setdefault(key, []).append(member)
    if not isinstance(record, dict) or "suite" not in record or "settings" not in record:
        raise ValueError(f"it has no {RECORD} naming its suite and settings")
    return record, cells


# Where the data and checkpoint lay on the machine that ran (the data are compared by their
# fingerprint, the victim by its export time and weights fingerprint): rebound to this run's
# on restore.
LOCAL_KEYS = (results.DATA_SPEC, results.DATA_FINGERPRINT, "checkpoint")


def _without_data(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in LOCAL_KEYS}


def _checked_config(tar: tarfile.TarFile, plan: Plan, key: str) -> dict:
    """An archived cell's ``config.json``, checked against the cell this run plans (the same
    attack of the same victim on the same images, by their fingerprint) and bound to this
    run's data.

    Raises:
      PixeljaxError: naming what differs.
    """
    cell = next(c for c in plan.cells if c.cell.key == key)
    victim = plan.victims[cell.cell.victim.name]
    if victim.needs_training:
        raise PixeljaxError(f"cell {key}: its victim is trained by the suite and the archive "
                            f"does not carry it; train it first (--train-missing) into a new "
                            f"--out")
    try:
        config = json.load(tar.extractfile(f"{key}/{results.CONFIG}"))
    except KeyError:
        raise PixeljaxError(f"cell {key} has no {results.CONFIG} in the archive") from None
    expected = json.loads(json.dumps(plan.cell_config(cell.cell, victim.fingerprint,
                                                      victim.weights_sha256)))
    # The start of a cell grown since is restored as it is; the run then grows it.
    bound = {**config, **{k: expected[k] for k in (results.DATA_SPEC, "checkpoint")}}
    if plan.grown(cell.cell, bound, expected):
        return bound
    if _without_data(config) != _without_data(expected):
        raise PixeljaxError(f"cell {key}: the archive attacked another configuration "
                            f"({_differences(_without_data(config), _without_data(expected))})")
    if config.get(results.DATA_FINGERPRINT) != plan.cell_fingerprint(cell.cell):
        raise PixeljaxError(f"cell {key}: the archive attacked other images than those of "
                            f"{plan.data_spec!r} (their fingerprints differ)")
    return {**config, results.DATA_SPEC: expected[results.DATA_SPEC],
            "checkpoint": expected["checkpoint"]}


def restore(source: str | Path, plan: Plan) -> list[str]:
    """Unpacks the archive ``source`` (a publication folder or the archive itself) into the
    results folder of ``plan``: its ``suite.json`` when the folder has none, then every cell
    folder the folder lacks, each whole or not at all, bound to this run's data (the archive
    records where the data lay on the machine that made it). Returns the keys restored.

    Raises:
      PixeljaxError: no archive there, a damaged one, or one of another suite, settings,
        victim, configuration or data, found before anything is written.
    """
    source, out = Path(source), plan.out
    path = source / ARCHIVE if source.is_dir() else source
    if not path.is_file():
        raise PixeljaxError(f"--continue-from {source}: no {ARCHIVE} there (a folder written "
                            f"by 'pixeljax publish', or its {ARCHIVE})")
    settings = json.loads(json.dumps(plan.settings()))
    try:
        with tarfile.open(path, "r:gz") as tar:
            record, cells = _members(tar)
            if record["suite"] != plan.suite.name:
                raise PixeljaxError(f"{path} holds a run of suite {record['suite']!r}, not "
                                    f"{plan.suite.name!r}")
            archived = _without_data(shared_settings(record["settings"]))
            if archived != _without_data(shared_settings(settings)):
                raise PixeljaxError(
                    f"{path} holds a run of suite {plan.suite.name!r} with other settings "
                    f"({_differences(archived, _without_data(shared_settings(settings)))}); "
                    f"continue it with the options it was published with")
            planned = {c.cell.key for c in plan.cells}
            foreign = sorted(set(cells) - planned)
            if foreign:
                raise PixeljaxError(f"{path} holds {foreign[0]!r}, which is no cell of suite "
                                    f"{plan.suite.name!r}")
            todo = [key for key in sorted(cells) if not (out / key).exists()]
            configs = {key: _checked_config(tar, plan, key) for key in todo}
            out.mkdir(parents=True, exist_ok=True)
            with locking.exclusive(out, "suite results folder"):
                for stale in out.glob(f"{SCRATCH}*"):  # of a restore that was killed
                    shutil.rmtree(stale, ignore_errors=True)
                if not (out / RECORD).is_file():
                    _extract(tar, [tar.getmember(RECORD)], out, RECORD,
                             {RECORD: {**record, "settings": settings}})
                for key in todo:
                    _extract(tar, cells[key], out, key,
                             {f"{key}/{results.CONFIG}": configs[key]})
    except PixeljaxError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError, KeyError) as e:
        raise PixeljaxError(f"{path} is not a whole run archive ({e}); publish the run "
                            f"again") from None
    return todo


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], out: Path, name: str,
             rewritten: dict[str, dict]) -> None:
    """Extracts ``members`` into a scratch folder of ``out``, writes the JSON files
    ``rewritten`` over their archived copies, then moves ``name`` (a cell folder or
    ``suite.json``) into place in one step."""
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH, dir=out))
    try:
        tar.extractall(scratch, members=members, filter="data")
        for member, content in rewritten.items():
            (scratch / member).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
