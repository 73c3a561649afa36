"""Checks of command-line input made before any work: option values (as argparse types, so a
bad value is a one-line usage error) and the folders a command will write."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from pixeljax._plumbing import settings
from pixeljax.errors import PixeljaxError

integer = settings.count_type  # an argparse type: an integer in [least, most]
number = settings.number_type  # an argparse type: a finite float in [low, high]


positive_int = integer(1)
count = integer(0)
seed = integer(0, 2**63 - 1)


def path(text: str) -> Path:
    """An argparse type: a non-empty path (``Path("")`` would silently mean the current
    folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text).expanduser()


def _probe(folder: Path, option: str, target: Path) -> None:
    """Creates and removes a file in ``folder``: the one sure test that this process may write
    there (permissions, read-only mounts and ACLs alike)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".pixeljax-write-test-")
    except OSError as e:
        where = "" if folder == target else f" (in {folder})"
        raise PixeljaxError(f"{option} {target}: cannot write there{where}: "
                            f"{e.strerror or e}") from None
    os.close(fd)
    os.unlink(name)


def _existing(target: Path, option: str) -> Path:
    """The nearest existing folder at or above ``target``."""
    if target.is_symlink() and not target.exists():
        raise PixeljaxError(f"{option} {target} is a broken symbolic link")
    here = target
    while not here.exists():
        if here.is_symlink():
            raise PixeljaxError(f"{option} {target}: {here} is a broken symbolic link")
        here = here.parent
    if not here.is_dir():
        if here == target:
            raise PixeljaxError(f"{option} {target} is a file, not a folder")
        raise PixeljaxError(f"{option} {target}: {here} is a file, not a folder")
    return here


def writable_folder(target: Path, option: str) -> Path:
    """Checks that ``target`` is a folder this process can create (if new) and write in.

    Raises:
      PixeljaxError: naming ``option``, when ``target`` or a folder above it is a file, or
        where it is (or would be created) cannot be written.
    """
    target = Path(target)
    _probe(_existing(target, option), option, target)
    return target


def replaceable_folder(target: Path, option: str, *, may_replace) -> Path:
    """Checks that ``target`` can be written as a whole, new folder that replaces any old one
    (as a checkpoint is: built beside it, then renamed into place). ``may_replace(target)``
    raises unless what is there now may be replaced.

    Raises:
      PixeljaxError: naming ``option`` and the problem.
    """
    target = Path(target)
    here = _existing(target, option)
    may_replace(target)
    if here == target:
        _probe(target, option, target)  # its files are removed when it is replaced
        here = target.absolute().parent
    _probe(here, option, target)  # the new folder is built beside the old one
    return target


def outside_package(target: Path, option: str) -> None:
    """Refuses a folder inside the installed ``pixeljax`` package (where a wheel keeps the
    shipped victims): an installed package is never written to."""
    import pixeljax

    package = Path(pixeljax.__file__).resolve().parent
    where = Path(target).absolute().resolve()
    if where == package or package in where.parents:
        raise PixeljaxError(f"{option} {target} lies inside the installed pixeljax package "
                            f"({package}); export to a folder of your own and load it with "
                            f"--checkpoint")


def add_engine_options(p: argparse.ArgumentParser, sizes=None, *, shown=None) -> None:
    """The engine's sizes and scoring (the fields of ``sizes``: ``EngineSizes``, the default,
    or ``SweepSizes``), the same for every command that attacks: they change speed and memory,
    never results (unset: the defaults of the run)."""
    from pixeljax.attack.sizes import EngineSizes

    sizes = sizes or EngineSizes
    settings.add_options(p, sizes, sizes.fields(), shown=shown)
    p.set_defaults(sizes_class=sizes)


def engine_sizes(args):
    """The sizes (``EngineSizes`` or ``SweepSizes``) of the options that
    :func:`add_engine_options` added (unset ones None)."""
    sizes = args.sizes_class
    return sizes(**{k: getattr(args, k) for k in sizes.fields() if getattr(args, k, None)
                    is not None})


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """``--precision``: how candidates are scored (results re-checked in float32)."""
    from pixeljax.models.precision import FLOAT32, PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS,
                   help=f"scoring precision (default {FLOAT32}, the exact reference, on every "
                        f"platform). bfloat16: weights and activations in bfloat16, float32 "
                        f"accumulation, about 1.5x faster on a CPU and the precision GPU/TPU "
                        f"matrix units run at full rate; every reported class and success is "
                        f"re-checked in float32 and flips are counted (precision_flips)")
