"""The ``pixeljax`` command line: parses arguments and calls the library.

Each module here registers one group of subcommands. Every problem a user can cause is reported
as one ``error: ...`` line (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from pixeljax.cli import analysis, attack, evaluate, foundation
from pixeljax.errors import PixeljaxError

COMMAND_GROUPS = [foundation, attack, analysis, evaluate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixeljax", description="A JAX-accelerated evaluator of the one-pixel attack.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PixeljaxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume",
              file=sys.stderr)
        return 130
