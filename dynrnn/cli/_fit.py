"""`dynrnn fit CONFIG.toml`: run any recipe."""

from __future__ import annotations

import argparse

from ._config import add_reader_options, apply_reader_options, read_config
from ._run import run_reconstruction


def register(sub):
    p = sub.add_parser("fit", help="run a TOML recipe (recipe:NAME or a file)")
    p.add_argument("config", help="TOML recipe: recipe:NAME (see `dynrnn datasets list`) or a "
                   "path")
    p.add_argument("--data", help="training series, replacing [data] train (any format "
                   "`dynrnn reconstruct --data` reads)")
    p.add_argument("--test", help="test series, replacing [data] test")
    add_reader_options(p)
    p.add_argument("--out", help="run folder (an existing one resumes its checkpoint)")
    p.add_argument("--steps", type=int, help="override [training] n_steps")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run folder that holds another run (its checkpoints "
                   "are replaced); without it such a folder is refused")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (default: on)")
    p.add_argument("--distributed", action="store_true",
                   help="train across several processes (hosts): run the same command in "
                   "every process; JAX finds them under SLURM/Open MPI, elsewhere set "
                   "JAX_COORDINATOR_ADDRESS, DYNRNN_NUM_PROCESSES and DYNRNN_PROCESS_ID. The "
                   "batch is split over the devices of all processes (batch_size divisible by "
                   "their number); process 0 writes the run folder")
    p.set_defaults(func=main)


def main(args) -> int:
    mesh = None
    if args.distributed:  # before anything else runs JAX
        from ..training._distributed import initialize

        mesh = initialize()
    cfg = read_config(args.config)
    if args.data:
        cfg["data"] = {**cfg.get("data", {}), "train": args.data, "test": args.test}
    elif args.test:
        cfg["data"]["test"] = args.test
    apply_reader_options(cfg, args)
    if args.steps is not None:
        cfg["training"]["n_steps"] = args.steps
    run_reconstruction(cfg, out=args.out, progress=args.progress, overwrite=args.overwrite,
                       mesh=mesh)
    return 0
