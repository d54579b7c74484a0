"""`dynrnn fit CONFIG.toml`: run any recipe."""

from __future__ import annotations

import argparse

from ._config import read_config
from ._run import run_reconstruction


def register(sub):
    p = sub.add_parser("fit", help="run a TOML recipe (recipe:NAME or a file)")
    p.add_argument("config", help="TOML recipe: recipe:NAME (see `dynrnn datasets list`) or a "
                   "path")
    p.add_argument("--out", help="run folder (an existing one resumes its checkpoint)")
    p.add_argument("--steps", type=int, help="override [training] n_steps")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run folder that holds another run (its checkpoints "
                   "are replaced); without it such a folder is refused")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (default: on)")
    p.set_defaults(func=main)


def main(args) -> int:
    cfg = read_config(args.config)
    if args.steps is not None:
        cfg["training"]["n_steps"] = args.steps
    run_reconstruction(cfg, out=args.out, progress=args.progress, overwrite=args.overwrite)
    return 0
