"""Generated tables inside a README: the text between ``<!-- published:NAME -->`` and
``<!-- /published:NAME -->`` is written only by a command, from stored results, so a test can
recompute it and compare (no published number is typed by hand)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pixeljax._plumbing.files import write_atomic
from pixeljax.errors import PixeljaxError


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- published:{name} -->", f"<!-- /published:{name} -->"


def block(name: str, table: list[str]) -> str:
    """``table`` (markdown lines) between the markers of ``name``."""
    start, end = _markers(name)
    return "\n".join([start, *table, end])


def _pattern(name: str) -> str:
    start, end = (re.escape(m) for m in _markers(name))
    return rf"^{start}\n(.*?)^{end}$"


def readme_block(text: str, name: str) -> str | None:
    """The published table of ``name`` inside a README's text (None: there is none)."""
    found = re.search(_pattern(name), text, re.S | re.M)
    return found.group(1).rstrip("\n") if found else None


def check_blocks(readme: str | Path, names) -> str:
    """The text of ``readme``; raises PixeljaxError naming the first block it lacks or holds
    more than once (before anything is written). Each marker must stand alone on its line."""
    try:
        text = Path(readme).read_text()
    except OSError as err:
        raise PixeljaxError(f"cannot read {readme}: {err.strerror or err}") from None
    for name in names:
        counts = [len(re.findall(rf"^{re.escape(m)}$", text, re.M)) for m in _markers(name)]
        if counts != [1, 1] or readme_block(text, name) is None:
            what = "no" if counts == [0, 0] else "not exactly one"
            raise PixeljaxError(f"{readme} has {what} block <!-- published:{name} --> ... "
                                f"<!-- /published:{name} --> (each marker alone on its line) "
                                f"to write the table into")
    return text


def write_blocks(readme: str | Path, tables: dict[str, list[str]]) -> None:
    """Replaces each named block of ``readme`` with its table, in one atomic write (through a
    symbolic link to its target, keeping the file's mode)."""
    text = check_blocks(readme, tables)
    for name, table in tables.items():
        text = re.sub(_pattern(name), lambda _, n=name, t=table: block(n, t), text,
                      flags=re.S | re.M)
    target = Path(readme).resolve()
    mode = target.stat().st_mode
    write_atomic(target, text)
    os.chmod(target, mode & 0o7777)
