"""`python -m dynrnn.datasets build [--check] [--out DIR] [--only NAME ...]`: regenerate the
shipped datasets (see `dynrnn/datasets/data/README.md`).

Without `--out` the files go to `$DYNRNN_DATA_DIR` if set, else into the package's own data
folder when it is writable; a read-only install asks for `--out` instead of writing elsewhere.
"""

from __future__ import annotations

import argparse
import sys

from ._registry import build, build_dir, check, names, package_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynrnn.datasets",
        description="Regenerate the datasets that dynrnn ships (bit for bit).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    b = sub.add_parser("build", help="generate the datasets, manifest.json and README.md")
    b.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary folder and compare SHA-256 hashes with the shipped "
        "manifest (of --out DIR, $DYNRNN_DATA_DIR or the package)",
    )
    b.add_argument(
        "--out",
        default=None,
        help="output folder (default: $DYNRNN_DATA_DIR if set, else the package's data folder "
        f"{package_data_dir()} when writable)",
    )
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
    try:
        out = build_dir(args.out)
    except PermissionError as e:
        print(f"python -m dynrnn.datasets build: error: {e}", file=sys.stderr)
        return 2
    manifest = build(out, only=args.only)
    for name, entry in manifest.items():
        print(f"{name}: {tuple(entry['shape'])} {entry['dtype']}, sha256 {entry['sha256']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
