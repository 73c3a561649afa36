"""One writer per folder: an exclusive ``fcntl.flock`` on a lock file inside it.

The operating system releases the lock when its process ends, however it ends, so a killed run
leaves no stale lock behind. The lock file holds the holder's pid and host, so a refused writer
can say who holds the folder. Readers never lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from pixeljax._plumbing.notices import warn
from pixeljax.errors import PixeljaxError

LOCK = ".pixeljax.lock"


def lock_name(process: int = 0, num_processes: int = 1) -> str:
    """The lock file of one writer: the folder's, or process ``process``'s shard's."""
    return LOCK if num_processes == 1 else f".pixeljax-{process}-of-{num_processes}.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text().split()
    except OSError:
        text = []
    pid = next((w.split("=", 1)[1] for w in text if w.startswith("pid=")), "unknown")
    host = next((w.split("=", 1)[1] for w in text if w.startswith("host=")), "unknown")
    return f"pid {pid} on host {host}"


@contextlib.contextmanager
def exclusive(directory: str | Path, what: str, *, name: str = LOCK) -> Iterator[Path]:
    """Holds ``directory`` (created if missing) for this process while the block runs.

    Args:
      directory: the folder written.
      what: how errors name it (``"results folder"``, ``"training work dir"``, ...).
      name: the lock file (see :func:`lock_name`).

    Raises:
      PixeljaxError: another process holds the lock.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PixeljaxError(f"{what} {directory} is in use by another pixeljax process "
                                f"({_holder(path)}); wait for it to finish or use another "
                                f"folder") from None
        except OSError as e:  # a file system without locks (some FUSE mounts)
            warn(f"cannot lock {what} {directory} ({e.strerror}); make sure no other process "
                 f"writes it")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid={os.getpid()} host={socket.gethostname()}\n".encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # no holder now; the lock goes with the descriptor
    finally:
        os.close(fd)
