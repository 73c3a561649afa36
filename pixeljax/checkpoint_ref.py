"""How a results folder names the victim it attacked, so that an analysis can load it again.

Every results folder's ``config.json`` records ``architecture`` (the registry name) and
``checkpoint``, a reference that :func:`resolve` turns back into a checkpoint folder:

  * ``"shipped:NAME"`` or null: the shipped victim ``checkpoints/NAME`` (of the checkout, or
    inside an installed wheel);
  * an absolute path;
  * a relative path, from the results folder (a suite's own trained victim is
    ``../checkpoint``, beside the victim's cell folders).

Human-readable descriptions ("checkpoints/allconv (shipped)") belong in reports, not here.
Folders written by earlier versions hold such descriptions instead, lack ``architecture``, or
hold paths relative to where the attack ran; :func:`resolve` reads them, and :func:`upgrade` /
:func:`migrate` rewrite them in today's form so an unfinished run resumes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pixeljax.checkpoint import shipped_checkpoint
from pixeljax.errors import PixeljaxError
from pixeljax.results import DATA_FINGERPRINT

SHIPPED = "shipped:"
CONFIG = "config.json"
_OLD_SHIPPED = re.compile(r"^checkpoints/(?P<name>[^/]+) \(shipped\)$")
_OLD_TRAINED = re.compile(r"^(?P<victim>[^/]+)/(?P<folder>[^/]+) \(trained by this suite\)$")


def shipped(architecture: str) -> str:
    """The reference to the shipped victim of ``architecture``.

    >>> shipped("allconv")
    'shipped:allconv'
    """
    return SHIPPED + architecture


def of_path(directory: str | Path) -> str:
    """The reference to the checkpoint folder ``directory``: its absolute path, so it loads
    from any working directory.

    >>> of_path("/data/victims/nin")
    '/data/victims/nin'
    """
    return str(Path(directory).expanduser().absolute())


def architecture_of(config: Mapping) -> str:
    """The architecture a results folder attacked (folders of ``pixeljax attack`` written before
    ``architecture`` was recorded name it in ``model``)."""
    name = config.get("architecture") or config.get("model")
    if not isinstance(name, str) or not name:
        raise PixeljaxError(f"{CONFIG} names no architecture (no 'architecture' or 'model')")
    return name


def resolve(config: Mapping, results: str | Path) -> Path | None:
    """The checkpoint folder a results folder's ``config.json`` refers to; None for the
    shipped victim of its architecture (``load_victim(architecture, None)`` loads it).

    >>> resolve({"architecture": "allconv", "checkpoint": "shipped:allconv"}, "runs/a")
    >>> resolve({"model": "nin", "checkpoint": "../checkpoint"}, "runs/q/nin/1px-non-targeted")
    PosixPath('runs/q/nin/checkpoint')
    >>> resolve({"model": "allconv", "checkpoint": "checkpoints/allconv (shipped)"}, "runs/q")

    Raises:
      PixeljaxError: a reference of another kind than a string or null.
    """
    ref = config.get("checkpoint")
    if ref is None:
        return None
    if not isinstance(ref, str) or not ref:
        raise PixeljaxError(f"{CONFIG}: checkpoint must be a path or 'shipped:NAME', got {ref!r}")
    results = Path(results)
    if ref.startswith(SHIPPED) or _OLD_SHIPPED.match(ref):
        name = ref[len(SHIPPED):] if ref.startswith(SHIPPED) else _OLD_SHIPPED.match(ref)["name"]
        architecture = architecture_of(config)
        if name != architecture:  # "shipped:vgg16" in a folder of an allconv attack
            return shipped_checkpoint(name)
        return None
    old = _OLD_TRAINED.match(ref)
    if old:  # OUT/<victim>/checkpoint, named from OUT; the results are OUT/<victim>/<cell>
        return _normal(results.parent.parent / old["victim"] / old["folder"])
    path = Path(ref).expanduser()
    if path.is_absolute():
        return path
    beside = results / path
    if beside.exists() or not path.exists():  # else an old path from where the attack ran
        return _normal(beside)
    return path


def _normal(path: Path) -> Path:
    """``path`` without ``..`` parts, by text (the folder may not exist)."""
    return Path(os.path.normpath(path))


def upgrade(config: Mapping, results: str | Path) -> dict:
    """``config`` in today's form: with ``architecture``, and ``checkpoint`` as a reference.

    >>> upgrade({"model": "allconv", "checkpoint": None}, "runs/a")
    {'model': 'allconv', 'checkpoint': 'shipped:allconv', 'architecture': 'allconv'}
    >>> upgrade({"model": "n", "architecture": "nin",
    ...          "checkpoint": "n/checkpoint (trained by this suite)"}, "runs/q/n/1px-non-targeted")
    {'model': 'n', 'architecture': 'nin', 'checkpoint': '../checkpoint'}
    """
    new = dict(config)
    architecture = architecture_of(config)
    new.setdefault("architecture", architecture)
    ref = config.get("checkpoint")
    if "checkpoint" not in config:
        return new
    directory = resolve(config, results)
    if directory is None:
        new["checkpoint"] = shipped(architecture)
    elif isinstance(ref, str) and _OLD_SHIPPED.match(ref):
        new["checkpoint"] = shipped(_OLD_SHIPPED.match(ref)["name"])
    elif isinstance(ref, str) and _OLD_TRAINED.match(ref):
        new["checkpoint"] = f"../{_OLD_TRAINED.match(ref)['folder']}"
    elif not Path(ref).expanduser().is_absolute() and directory == Path(ref):
        new["checkpoint"] = of_path(directory)  # an old path from where the attack ran
    return new


def migrate(results: str | Path, config: Mapping) -> bool:
    """Rewrites an earlier version's ``config.json`` in ``results`` as ``config`` when it
    describes the same run (see :func:`upgrade`), so the run resumes instead of being refused
    as another configuration. Returns whether it rewrote the file.
    """
    path = Path(results) / CONFIG
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return False  # the attack's own check reports the corrupt file
    wanted = json.loads(json.dumps(dict(config)))
    if isinstance(stored, dict) and DATA_FINGERPRINT in stored:
        # the fingerprint is added by the attack itself; keep the one of the data attacked
        wanted.setdefault(DATA_FINGERPRINT, stored[DATA_FINGERPRINT])
    if not isinstance(stored, dict) or stored == wanted:
        return False
    try:
        upgraded = upgrade(stored, results)
    except PixeljaxError:
        return False
    if upgraded != wanted:
        return False
    tmp = path.with_name(f".{CONFIG}.{os.getpid()}.upgrade")
    tmp.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return True
