"""The ``pixeljax`` command line: parses arguments and calls the library.

Each module here registers one group of subcommands. Every problem a user can cause is reported
as one ``error: ...`` line, never a traceback (``--verbose`` adds it): exit status 2 for input
refused before any work (bad options, files, folders), 1 for a failure of the file system (a
full disk, a folder that became read-only) and for a run that attacked nothing.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from pixeljax.cli import analysis, attack, evaluate, foundation, sweep
from pixeljax.errors import PixeljaxError

COMMAND_GROUPS = [foundation, attack, sweep, analysis, evaluate]


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line, like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


_VERBOSE_HELP = "on an error, print the traceback too"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pixeljax", description="A JAX-accelerated evaluator of the one-pixel attack.")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    for command in sub.choices.values():  # --verbose also after the command's name
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help=_VERBOSE_HELP)
    return parser


def _describe(error: OSError) -> str:
    """``PATH: reason`` of a failed file operation."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename is None:
        return reason
    both = f" -> {error.filename2}" if error.filename2 is not None else ""
    return f"{error.filename}{both}: {reason}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pixeljax.runtime import compile_cache

    compile_cache.enable()
    try:
        return args.func(args)
    except PixeljaxError as e:
        if args.verbose:
            traceback.print_exception(e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system failed: no permission, full disk, ...
        if args.verbose:
            traceback.print_exception(e)
        print(f"error: {_describe(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume",
              file=sys.stderr)
        return 130
