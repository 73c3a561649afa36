"""A suite run's state in one file, so that a publication can be continued or re-analysed.

    DEST/run.tar.gz    OUT/suite.json and every cell folder of OUT (config, result rows, sweep
                       maps, timing, summary): everything ``pixeljax evaluate`` resumes from

:func:`write_archive` packs a results folder (atomically); :func:`restore` unpacks one into a
results folder cell by cell, leaving every cell the folder already has as it is, so a later
machine (or a fresh clone) continues a long run from what was committed:

    pixeljax evaluate SUITE --out OUT --continue-from DEST

Nothing but the suite's record and its cell folders travels: no trained victims, no locks, no
temporary files, no owner names.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pixeljax import locking
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation.plan import RECORD

ARCHIVE = "run.tar.gz"


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(out: str | Path, cells: Iterable[str], path: str | Path) -> Path:
    """Packs ``OUT/suite.json`` and the folders of ``cells`` (keys ``<victim>/<cell>``) into
    ``path``, replacing it only once the new archive is whole."""
    out, path = Path(out), Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(out / RECORD, RECORD, filter=_anonymous)
            for key in cells:
                for file in sorted((out / key).rglob("*")):
                    if file.is_file() and not file.name.startswith("."):  # locks, tmp files
                        tar.add(file, file.relative_to(out).as_posix(), filter=_anonymous)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _cell_of(name: str) -> str | None:
    """The cell key of an archive member (None: ``suite.json``).

    Raises:
      PixeljaxError: a member outside the layout above (an absolute path, ``..``, a file
        beside the cells).
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


def restore(source: str | Path, out: str | Path, *, suite: str, settings: dict) -> list[str]:
    """Unpacks the archive ``source`` (a publication folder or the archive itself) into the
    results folder ``out``: its ``suite.json`` when ``out`` has none, then every cell folder
    ``out`` lacks, each whole or not at all. Returns the keys of the cells restored.

    Raises:
      PixeljaxError: no archive there, a damaged one, or one of another suite or settings.
    """
    source, out = Path(source), Path(out)
    path = source / ARCHIVE if source.is_dir() else source
    if not path.is_file():
        raise PixeljaxError(f"--continue-from {source}: no {ARCHIVE} there (a folder written "
                            f"by 'pixeljax publish', or its {ARCHIVE})")
    try:
        with tarfile.open(path, "r:gz") as tar:
            record, cells = _members(tar)
            if record["suite"] != suite:
                raise PixeljaxError(f"{path} holds a run of suite {record['suite']!r}, not "
                                    f"{suite!r}")
            if record["settings"] != json.loads(json.dumps(settings)):
                raise PixeljaxError(f"{path} holds a run of suite {suite!r} with other "
                                    f"settings (images, data or attack); continue it with the "
                                    f"options it was published with")
            out.mkdir(parents=True, exist_ok=True)
            with locking.exclusive(out, "suite results folder"):
                if not (out / RECORD).is_file():
                    _extract(tar, [tar.getmember(RECORD)], out, RECORD)
                todo = [key for key in sorted(cells) if not (out / key).exists()]
                for key in todo:
                    _extract(tar, cells[key], out, key)
    except PixeljaxError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError, KeyError) as e:
        raise PixeljaxError(f"{path} is not a whole run archive ({e}); publish the run "
                            f"again") from None
    return todo


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], out: Path,
             name: str) -> None:
    """Extracts ``members`` into a scratch folder of ``out``, then moves ``name`` (a cell
    folder or ``suite.json``) into place in one step."""
    scratch = out / f".restore-{os.getpid()}"
    try:
        tar.extractall(scratch, members=members, filter="data")
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
