"""Warnings for the user: one ``warning: ...`` line on stderr, for things pixeljax repaired or
worked around (a cut-off file line, a damaged checkpoint passed over) and the run goes on."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """A ``note: ...`` line on stderr: the run does something other than asked, as it must
    (e.g. fewer images than asked for, because the data hold no more)."""
    if not _QUIET[0]:
        print(f"note: {message}", file=sys.stderr, flush=True)


_QUIET = [0]


def quiet_notes():
    """A context in which :func:`note` prints nothing (for a step that redoes a run's checks)."""
    import contextlib

    @contextlib.contextmanager
    def quiet():
        _QUIET[0] += 1
        try:
            yield
        finally:
            _QUIET[0] -= 1

    return quiet()
