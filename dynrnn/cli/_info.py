"""`dynrnn info PATH`: what a dataset or recording holds (see `_inspect.py`)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="print what a dataset or recording holds",
        description=(
            "Print the dims, length, sampling rate, variables, value ranges and attributes of "
            "a dataset or recording: .nc/.h5 (NetCDF4 via h5py), .npy/.npz, .csv, a shipped "
            "dataset (NAME or dataset:NAME, see `dynrnn datasets list`), or any format "
            "dynrnn.io reads."
        ),
    )
    p.add_argument("path", help="file, folder, or name of a shipped dataset")
    p.add_argument("--rate", type=float, default=None, help="sampling rate in Hz (arrays, CSV)")
    p.add_argument("--layout", choices=("time-major", "neuron-major"), default=None,
                   help="axis order of a CSV/NPY recording (neuron-major: rows are neurons)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ._inspect import format_summary, open_any, summarize

    obj, kind = open_any(args.path, rate=args.rate, layout=args.layout)
    summary = summarize(obj, source=str(args.path), kind=kind, rate=args.rate)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0
