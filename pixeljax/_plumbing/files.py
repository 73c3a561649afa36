"""Files written whole or not at all: through a temporary file of their own beside the target,
moved into place in one step, so a kill never leaves half a file and processes writing the same
folder never share a temporary file."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, exclusive: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write; once the block ends without an error,
    the file there replaces ``path`` (``exclusive``: is linked to ``path``, which must not
    exist yet: :class:`FileExistsError` otherwise). The temporary file never stays."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}."
                         f"{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            if path.exists():
                raise FileExistsError(path) from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, content: str | bytes, *,
                 exclusive: bool = False) -> bool:
    """Writes ``content`` to ``path`` whole (see :func:`atomic_path`). ``exclusive``: only if
    ``path`` does not exist yet; returns False when it did."""
    try:
        with atomic_path(path, exclusive=exclusive) as tmp:
            if isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                with open(tmp, "w") as f:
                    f.write(content)
    except FileExistsError:
        return False
    return True
