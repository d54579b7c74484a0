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


def _compilation_cache_dir() -> str | None:
    """Where the command keeps XLA's compiled programs between runs, or None for no cache.

    `$DYNRNN_COMPILE_CACHE` names the folder (`0`/`off` turns the cache off); without it,
    `$XDG_CACHE_HOME/dynrnn/jax` or `~/.cache/dynrnn/jax`. A folder per JAX version and
    processor (XLA's CPU programs use the host's instruction set, and a home folder may be
    shared by machines of another kind). A user who set JAX's own `JAX_COMPILATION_CACHE_DIR`
    keeps it.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    chosen = os.environ.get("DYNRNN_COMPILE_CACHE", "")
    if chosen.strip().lower() in ("0", "off", "false", "no"):
        return None
    if chosen:
        root = chosen
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "dynrnn", "jax")
    import hashlib
    import platform

    import jax

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        cpu = ""
    tag = hashlib.sha256(f"{platform.machine()} {platform.processor()} {cpu}".encode()).hexdigest()
    folder = os.path.join(root, f"jax-{jax.__version__}-{tag[:12]}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None  # a read-only home: run without the cache
    return folder


def _use_compilation_cache() -> None:
    """Keep compiled programs between runs of the command (issue 22: compilation is about a
    third of a short run's wall time, and each spawned member compiles the same programs).
    The environment variables reach the processes the command spawns."""
    folder = _compilation_cache_dir()
    if folder is None:
        return
    import jax

    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


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
    if args.command in ("reconstruct", "fit", "evaluate", "compare"):
        _use_compilation_cache()
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
