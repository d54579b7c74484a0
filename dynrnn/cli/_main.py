"""Entry point of the `dynrnn` command: one sub-command per module in this package.

Each sub-command module defines `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed arguments, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .._errors import DynrnnError


# Sub-command modules, in the order `dynrnn --help` lists them. A module that is missing
# (feature not installed) is skipped rather than breaking the whole command line.
_COMMANDS = ["_reconstruct", "_fit", "_evaluate", "_compare", "_info", "_datasets"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynrnn")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynrnn",
        description="Learn dynamical systems from time series (dynrnn).",
    )
    parser.add_argument("--version", action="version", version=f"dynrnn {_version()}",
                        help="print the installed version of dynrnn and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when a command fails")
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`dynrnn info x | head`): stop quietly, and keep Python from
        # complaining about the closed stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"dynrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        known = isinstance(e, DynrnnError | ValueError | TypeError | FileNotFoundError)
        what = "error" if known else f"error ({type(e).__name__})"
        print(f"dynrnn {args.command}: {what}: {e}\n(run `dynrnn --debug {args.command} ...` "
              "for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
