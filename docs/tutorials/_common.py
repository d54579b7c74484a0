"""Command-line options shared by the tutorial scripts: where the figures go and how big a run
is. Every tutorial accepts `--out DIR` (or `$DYNRNN_TUTORIAL_OUT`) and `--small` (or
`$DYNRNN_TUTORIAL_SMALL=1`), the size CI runs."""

from __future__ import annotations

import argparse
import os
import pathlib


def options(name: str, doc: str | None) -> argparse.Namespace:
    """Parse `--out` and `--small`; `args.out` is the tutorial's own figure folder (made)."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path,
                        default=os.environ.get("DYNRNN_TUTORIAL_OUT") or None,
                        help="folder for the figures (default: $DYNRNN_TUTORIAL_OUT, else "
                        "figures/ beside the script); each tutorial writes a sub-folder")
    parser.add_argument("--small", action="store_true",
                        default=os.environ.get("DYNRNN_TUTORIAL_SMALL", "") == "1",
                        help="small sizes (what CI runs)")
    args = parser.parse_args()
    base = pathlib.Path(args.out) if args.out else pathlib.Path(__file__).parent / "figures"
    args.out = base / name
    args.out.mkdir(parents=True, exist_ok=True)
    return args
