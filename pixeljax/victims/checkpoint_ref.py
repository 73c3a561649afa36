"""How a results folder names the victim it attacked, so that an analysis can load it again.

Every results folder's ``config.json`` records ``architecture`` (the registry name) and
``checkpoint``, a reference that :func:`resolve` turns back into a checkpoint folder:

  * ``"shipped:NAME"`` or null: the shipped victim ``checkpoints/NAME`` (of the checkout, or
    inside an installed wheel);
  * an absolute path;
  * a relative path, from the results folder (a suite's own trained victim is
    ``../checkpoint``, beside the victim's cell folders);
  * for a plain predict function (``predict:module:function``, its weights its own), a note
    that there is none, resolved to None.

Human-readable descriptions ("checkpoints/allconv (shipped)") belong in reports, not here. A
folder of an earlier development version (no ``architecture``, or a description where the
reference belongs) is refused with one error: run it again into a new folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pixeljax.errors import PixeljaxError
from pixeljax.models import user
from pixeljax.victims.checkpoint import shipped_checkpoint

SHIPPED = "shipped:"
CONFIG = "config.json"
EARLIER = "a results folder of an earlier development version of pixeljax; attack again into a " \
    "new folder"


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
    """The architecture a results folder attacked."""
    name = config.get("architecture")
    if not isinstance(name, str) or not name:
        raise PixeljaxError(f"{CONFIG} names no architecture: {EARLIER}")
    return name


def resolve(config: Mapping, results: str | Path) -> Path | None:
    """The checkpoint folder a results folder's ``config.json`` refers to; None for the
    shipped victim of its architecture (``load_victim(architecture, None)`` loads it).

    >>> resolve({"architecture": "allconv", "checkpoint": "shipped:allconv"}, "runs/a")
    >>> resolve({"architecture": "nin", "checkpoint": "../checkpoint"},
    ...         "runs/q/nin/1px-non-targeted")
    PosixPath('runs/q/nin/checkpoint')

    Raises:
      PixeljaxError: a reference of another kind than a path, 'shipped:NAME' or null.
    """
    ref = config.get("checkpoint")
    if ref is None or (ref == user.NO_CHECKPOINT and user.is_predict(architecture_of(config))):
        return None
    if not isinstance(ref, str) or not ref:
        raise PixeljaxError(f"{CONFIG}: checkpoint must be a path or 'shipped:NAME', got {ref!r}")
    if ref.endswith(")") and " (" in ref:  # "checkpoints/allconv (shipped)": a description
        raise PixeljaxError(f"{CONFIG}: checkpoint {ref!r} is a description, not a reference: "
                            f"{EARLIER}")
    if ref.startswith(SHIPPED):
        name = ref[len(SHIPPED):]
        # "shipped:vgg16" in a folder of an allconv attack: that victim's folder
        return None if name == architecture_of(config) else shipped_checkpoint(name)
    path = Path(ref).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(Path(results) / path))
