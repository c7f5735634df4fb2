"""The ``discogs-toolkit`` command line: one sub-command per job, exit 0 / 1 (explained) / 2 (usage)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from toolkit import __version__
from toolkit.errors import ToolkitError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; sub-commands register themselves here."""
    parser = argparse.ArgumentParser(
        prog="discogs-toolkit",
        description="Pull a Discogs collection, cache it, load it into DuckDB and explore it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each sub-command is added by one small function below: _add_<name>(commands).
    del commands
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        handler = args.handler
        return int(handler(args))
    except ToolkitError as exc:
        if args.debug:
            raise
        print(f"discogs-toolkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("discogs-toolkit: interrupted", file=sys.stderr)
        return 130
