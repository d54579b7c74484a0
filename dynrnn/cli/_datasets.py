"""`dynrnn datasets list` (the shipped datasets and recipes) and `dynrnn datasets build`
(the same as `python -m dynrnn.datasets build`)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="list the shipped datasets and recipes, or rebuild the datasets",
        description=(
            "The datasets and TOML recipes that ship inside dynrnn. Name a dataset as "
            "`dataset:NAME` wherever a data path is accepted, a recipe as `recipe:NAME`."
        ),
    )
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    ls = sub.add_parser(
        "list",
        help="print the shipped datasets (shape, dt, system) and recipes",
        description="Print the shipped datasets (shape, dtype, dt, system) and recipes.",
    )
    ls.add_argument("--json", action="store_true", help="print the listing as JSON")
    ls.set_defaults(func=run_list)
    b = sub.add_parser(
        "build",
        help="regenerate the datasets bit for bit (python -m dynrnn.datasets build)",
        description=(
            "Regenerate the shipped datasets bit for bit into --out DIR, $DYNRNN_DATA_DIR, or "
            "the package's data folder when it is writable."
        ),
    )
    b.add_argument("--check", action="store_true",
                   help="regenerate into a temporary folder and compare SHA-256 hashes")
    b.add_argument("--out", default=None, help="output folder")
    b.add_argument("--only", nargs="+", metavar="NAME", help="build only these sets")
    b.set_defaults(func=run_build)


def listing() -> dict:
    """`{"data_dir": ..., "datasets": [...], "recipes": [...]}`: what `list` prints."""
    from .. import datasets
    from ..datasets import _registry

    directory = datasets.data_dir()
    try:
        manifest = _registry.read_manifest(directory)
    except FileNotFoundError:
        manifest = {}
    rows = []
    for name in datasets.names():
        s = _registry.spec(name)
        entry = manifest.get(name, {})
        present = (directory / _registry.file_name(name)).is_file()
        rows.append({
            "name": name,
            "spec": f"dataset:{name}",
            "shape": entry.get("shape", [s.n_steps, None]),
            "dtype": entry.get("dtype", s.dtype),
            "dt": s.dt,
            "system": s.system,
            "noise": s.noise,
            "present": present,
            "description": s.description,
        })
    recipes = [
        {"name": n, "spec": f"recipe:{n}", "path": str(datasets.resolve_recipe(f"recipe:{n}"))}
        for n in datasets.recipes()
    ]
    return {"data_dir": str(directory), "datasets": rows, "recipes": recipes}


def run_list(args: argparse.Namespace) -> int:
    info = listing()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"datasets (in {info['data_dir']}; load with dr.datasets.load(NAME)):")
    print(f"  {'name':<16}{'shape':<16}{'dtype':<9}{'dt':<7}{'system':<10}noise")
    for r in info["datasets"]:
        shape = "x".join(str(n) for n in r["shape"] if n is not None)
        missing = "" if r["present"] else "  (missing: run `dynrnn datasets build`)"
        print(f"  {r['name']:<16}{shape:<16}{r['dtype']:<9}{r['dt']:<7g}{r['system']:<10}"
              f"{r['noise']:g}{missing}")
    print("recipes (run with `dynrnn fit recipe:NAME`; compare_*: `dynrnn compare recipe:NAME`):")
    for r in info["recipes"]:
        print(f"  {r['name']}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from ..datasets.__main__ import main

    argv = ["build"]
    if args.check:
        argv.append("--check")
    if args.out is not None:
        argv += ["--out", args.out]
    if args.only:
        argv += ["--only", *args.only]
    return main(argv)
