"""`dynrnn reconstruct`: the main job."""

from __future__ import annotations

import argparse

from ._config import (
    DEFAULT_RECONSTRUCT,
    add_reader_options,
    merge,
    read_config,
    set_data,
)
from ._run import run_reconstruction


def register(sub):
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct a series' dynamics (settings chosen automatically) and report the "
             "measures",
        description=(
            "Without --data: train a clipped shallow PLRNN with adaptive generalized teacher "
            "forcing on the shipped Lorenz-63 data (fixed settings, about a minute on two CPU "
            "cores). With --data (or --budget): choose the settings automatically: standardise, "
            "hold out the end of the series, train a grid of settings as vmapped ensembles "
            "within the time budget, keep the best on the held-out part and say plainly "
            "whether it reconstructs the dynamics (a constant or white-noise series is "
            "reported as having none). --config, --steps, --hidden or --latent without "
            "--budget train those fixed settings instead. Prints D_stsp, D_H, PE(20) and the "
            "largest Lyapunov exponent of model and data, and writes model, config, history, "
            "the grid and figures to a run folder."
        ),
    )
    p.add_argument("--data", help="training series: .npy (time, dims), .nc/.h5 (a recording "
                   "or what dr.systems.simulate writes), a suite2p folder, .nwb, CaImAn .hdf5, "
                   ".csv, or dataset:NAME")
    p.add_argument("--test", help="test series (default: the shipped test set, or the last "
                   "20 %% of --data)")
    add_reader_options(p)
    p.add_argument("--config", help="TOML recipe to start from: recipe:NAME (see `dynrnn "
                   "datasets list`) or a path")
    p.add_argument("--budget", help="time budget of the automatic mode: '90s', '10min', '1h' "
                   "(a number alone is seconds; default 4min); it sizes the grid and the "
                   "number of updates, in seconds on two CPU cores")
    p.add_argument("--steps", type=int, help="number of updates")
    p.add_argument("--hidden", type=int, help="hidden width H")
    p.add_argument("--latent", type=int, help="latent dimension M")
    p.add_argument("--members", type=int, help="fixed settings: train this many runs from "
                   "different initialisations (in parallel processes on CPU) and keep the one "
                   "whose free run best matches the training series (default 2; 1: one run)")
    p.add_argument("--workers", help="processes that train at once on CPU: 'auto' (default: "
                   "as many as there are cores and ensembles of the grid, or members) or a "
                   "number; the result does not depend on it")
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None,
                   help="remove white observation noise found in the training series "
                   "before training (automatic mode: on unless --no-denoise; fixed settings: "
                   "[preprocess] denoise, off unless set)")
    p.add_argument("--seed", type=int, help="seed of the initialisation and the batches "
                   "(default 0)")
    p.add_argument("--out", help="run folder (default runs/<time>-<name>); an existing one "
                   "resumes its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run folder that holds another run (its checkpoints "
                   "are replaced); without it such a folder is refused")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (default: on)")
    p.set_defaults(func=main)


def automatic(args) -> bool:
    """Whether the settings are chosen automatically: with `--budget`, or with `--data` and
    none of `--config`, `--steps`, `--hidden`, `--latent`."""
    if args.budget is not None:
        return True
    fixed = (args.config, args.steps, args.hidden, args.latent)
    return bool(args.data) and all(v is None for v in fixed)


def main(args) -> int:
    if args.budget is not None and args.config:
        from .._errors import DynrnnValueError

        raise DynrnnValueError("--budget chooses the settings automatically; --config gives "
                               "them: use one of the two.")
    if automatic(args):
        if args.members is not None:
            from .._errors import DynrnnValueError

            raise DynrnnValueError("--members applies to fixed settings (--config, --steps, "
                                   "--hidden or --latent, or no --data); the automatic mode "
                                   "trains its own grid of seeds.")
        from ._auto import run_automatic

        return run_automatic(args)
    cfg = read_config(args.config) if args.config else merge(DEFAULT_RECONSTRUCT, {})
    set_data(cfg, args)
    if args.denoise is not None:
        # fixed settings: [preprocess] denoise (off unless set)
        cfg.setdefault("preprocess", {})["denoise"] = bool(args.denoise)
    if args.steps is not None:
        cfg["training"]["n_steps"] = args.steps
    if args.hidden is not None:
        cfg["model"]["hidden"] = args.hidden
    if args.latent is not None:
        cfg["model"]["latent"] = args.latent
    if args.seed is not None:
        cfg["training"]["seed"] = args.seed
    if args.members is not None:
        cfg["training"]["members"] = args.members
    if args.workers is not None:
        from ._auto import _workers

        cfg["training"]["workers"] = _workers(args)
    if args.data and cfg["model"].get("observation") == "identity":
        cfg["model"].pop("observation")  # let the model pick from the data's dimension
    run_reconstruction(cfg, out=args.out, progress=args.progress, overwrite=args.overwrite)
    return 0

