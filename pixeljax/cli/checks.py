"""Checks of command-line input made before any work: option values (as argparse types, so a
bad value is a one-line usage error) and the folders a command will write."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from pixeljax.errors import PixeljaxError


def integer(least: int, most: int | None = None):
    """An argparse type: an integer in [least, most]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least or (most is not None and value > most):
            bounds = f">= {least}" if most is None else f"in [{least}, {most}]"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
        return value
    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


positive_int = integer(1)
count = integer(0)
seed = integer(0, 2**63 - 1)


def number(low: float, high: float = math.inf, *, low_open: bool = False):
    """An argparse type: a finite float in [low, high] (``low_open``: (low, high])."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            upper = "" if math.isinf(high) else f", {high:g}]"
            bounds = (f"in {'(' if low_open else '['}{low:g}{upper}" if upper else
                      f"{'>' if low_open else '>='} {low:g}")
            raise argparse.ArgumentTypeError(f"expected a finite number {bounds}, got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


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


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The engine's sizes and scoring, the same for every command that attacks: they change
    speed and memory, never results (unset: the defaults of ``AttackSpec``)."""
    from pixeljax.attack.spec import DEFAULTS
    from pixeljax.attack.sizes import ACCELERATOR_BATCH_SIZE, CPU_BATCH_SIZE

    p.add_argument("--slots", type=positive_int,
                   help=f"attacks in flight (default {DEFAULTS.slots})")
    p.add_argument("--batch-size", type=positive_int,
                   help=f"images per model call (default: {CPU_BATCH_SIZE} on a CPU, "
                        f"{ACCELERATOR_BATCH_SIZE} on a GPU or TPU; at most slots x popsize per "
                        f"device are used)")
    p.add_argument("--segment", type=positive_int,
                   help=f"generations between refills (default {DEFAULTS.segment})")
    p.add_argument("--dense", action="store_true",
                   help="score every candidate by a full forward pass (default: one-pixel "
                        "attacks on AllConv, NiN, VGG16 and tiny recompute only the "
                        "activations the pixel reaches, behind any --defence too; residual "
                        "networks such as resnet20, other networks and multi-pixel attacks "
                        "are scored densely)")


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """``--precision``: how candidates are scored (results re-checked in float32)."""
    from pixeljax.models.precision import FLOAT32, PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS,
                   help=f"scoring precision (default {FLOAT32}, the exact reference, on every "
                        f"platform). bfloat16: weights and activations in bfloat16, float32 "
                        f"accumulation, about 1.5x faster on a CPU and the precision GPU/TPU "
                        f"matrix units run at full rate; every reported class and success is "
                        f"re-checked in float32 and flips are counted (precision_flips)")
