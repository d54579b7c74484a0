"""`python -m dynrnn.datasets build [--check] [--out DIR] [--only NAME ...]`: regenerate the
shipped datasets (see `data/README.md`)."""

from __future__ import annotations

import argparse
import sys

from ._registry import build, check, data_dir, names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynrnn.datasets",
        description="Regenerate the datasets that dynrnn ships in data/ (bit for bit).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    b = sub.add_parser("build", help="generate the datasets, manifest.json and README.md")
    b.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary folder and compare SHA-256 hashes with data/",
    )
    b.add_argument("--out", default=None, help=f"output folder (default {data_dir()})")
    b.add_argument("--only", nargs="+", choices=names(), help="build only these sets")
    args = parser.parse_args(argv)

    if args.check:
        problems = check(args.out)
        for p in problems:
            print(f"MISMATCH {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"all {len(names())} datasets reproduce bit for bit")
        return 0
    manifest = build(args.out, only=args.only)
    for name, entry in manifest.items():
        print(f"{name}: {tuple(entry['shape'])} {entry['dtype']}, sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
