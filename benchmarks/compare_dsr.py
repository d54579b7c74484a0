"""Every model family on dynamical-systems reconstruction, with seeds, at an equal update budget.

The models of `dynrnn/recipes/compare_dsr.toml` (the PLRNN family with adaptive GTF, GRU, LTC,
CfC, neural ODE/SDE, LSSL, the echo state network and linear AR baselines, S6 and softmax
attention as sequence models) on Lorenz-63 and Rössler (shipped), Lorenz-96 with 10 variables
(shipped) and the ECG pair of the GTF paper (`../shared/data/ecg_gtf`, when present), each
trained for the same number of updates with the learning rate chosen on validation and its
seeds as one vmapped ensemble (`dr.compare`). Prints the Markdown table (median [IQR] over
seeds on held-out test data) and writes the NetCDF, Markdown and figure into `--out`.

Each (task, model) cell is kept in `--out/cells/` as it finishes: run the same command again to
resume after an interruption, or split the tasks over two processes that share `--out` and
run once more with every task to gather the table.

    python benchmarks/compare_dsr.py                          # 3 000 updates, 5 seeds (hours)
    python benchmarks/compare_dsr.py --steps 1000 --seeds 3   # a shorter run
    python benchmarks/compare_dsr.py --tasks lorenz63 --models ShallowPLRNN,GRU,ESN,AR
    python benchmarks/compare_dsr.py --tasks lorenz63,lorenz96 &   # two processes,
    python benchmarks/compare_dsr.py --tasks rossler,ecg; wait     # then gather:
    python benchmarks/compare_dsr.py
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import time
import tomllib

import jax
import jax.random as jr
import matplotlib
import xarray as xr


matplotlib.use("Agg")

import dynrnn as dr  # noqa: E402


ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("DYNRNN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def tasks(names: list[str], seq_len: int) -> dict:
    out = {}
    for name in names:
        if name == "lorenz63":
            out[name] = dr.tasks.Lorenz63Reconstruction(seq_len=seq_len)
        elif name == "rossler":
            out[name] = dr.tasks.Reconstruction.from_dataset("rossler", seq_len=seq_len)
        elif name == "lorenz96":
            out[name] = dr.tasks.Reconstruction.from_dataset("lorenz96_10d", seq_len=seq_len)
        elif name == "ecg":
            folder = SHARED / "ecg_gtf"
            if not folder.is_dir():
                print(f"skipping the ECG pair: {folder} not found")
                continue
            out[name] = dr.tasks.Reconstruction.from_files(
                folder / "ECG_pecuzal_5d_train.npy", folder / "ECG_pecuzal_5d_test.npy",
                seq_len=seq_len)
        else:
            raise SystemExit(f"unknown task {name!r}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--tasks", default="lorenz63,rossler,lorenz96,ecg")
    p.add_argument("--models", default=None, help="comma-separated names of the recipe's "
                   "model tables (default: all)")
    p.add_argument("--lrs", default="1e-3,5e-3")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--measures", default="D_stsp,D_H,PE20,lambda_max")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/compare_dsr"))
    args = p.parse_args(argv)

    recipe = tomllib.loads(dr.datasets.resolve_recipe("recipe:compare_dsr").read_text())
    models = recipe["models"]
    if args.models:
        models = {k: models[k] for k in args.models.split(",")}
    task_objs = tasks(args.tasks.split(","), args.seq_len)
    from dynrnn.cli._compare import _fill_latent

    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]

    def report(model, task, row):
        cells = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in row.items())
        print(f"  [{(time.perf_counter() - t0) / 60:.1f} min] {task} / {model}: {cells}",
              flush=True)

    # One (task, model) cell at a time, each kept as its own NetCDF under `--out/cells`: an
    # interrupted run resumes at the first missing cell, and several processes can share the
    # work (`--tasks lorenz63,lorenz96` in one, `--tasks rossler,ecg` in another). A cell is
    # reused only when it was made with the same updates, seeds and learning rates.
    cells_dir = args.out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    stamp = dict(n_steps=args.steps, seeds=args.seeds, learning_rates=args.lrs,
                 seq_len=args.seq_len, measures=args.measures)
    lrs = [float(x) for x in args.lrs.split(",")]
    parts = []
    for tname, task in task_objs.items():
        # Families without a `latent` get this task's dimension.
        filled = _fill_latent(models, {tname: task})
        for mname, spec in filled.items():
            path = cells_dir / f"{tname}__{mname}.nc"
            if path.exists():
                cell = xr.load_dataset(path, engine="h5netcdf")
                if all(str(cell.attrs.get(f"bench_{k}")) == str(v) for k, v in stamp.items()):
                    print(f"  {tname} / {mname}: kept from {path}", flush=True)
                    parts.append(cell)
                    continue
                print(f"  {tname} / {mname}: {path} has other settings, trained again",
                      flush=True)
            cell = dr.compare({mname: spec}, {tname: task}, n_steps=args.steps,
                              seeds=args.seeds,
                              learning_rates=lrs,
                              measures=args.measures.split(","), key=jr.PRNGKey(0),
                              baselines=False, callback=report)
            cell.attrs.update({f"bench_{k}": str(v) for k, v in stamp.items()})
            cell.attrs["bench_load_average"] = f"{os.getloadavg()[0]:.1f}"
            tmp = path.with_suffix(".nc.tmp")
            cell.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
            parts.append(cell)
    ds = xr.combine_by_coords(parts, combine_attrs="drop_conflicts")
    total = time.perf_counter() - t0
    ds.to_netcdf(args.out / "compare.nc", engine="h5netcdf")
    table = dr.training.to_markdown(ds)
    head = (f"compare_dsr: {args.steps} updates per model, {args.seeds} seeds, learning rates "
            f"{args.lrs} (best median validation D_stsp kept), seq_len {args.seq_len}; "
            f"{platform.processor() or platform.machine()}, {jax.default_backend()}, JAX "
            f"{jax.__version__}; total {total / 60:.1f} min; load average {load0:.1f} at the "
            f"start, {os.getloadavg()[0]:.1f} at the end")
    (args.out / "compare.md").write_text(head + "\n\n" + table + "\n")
    fig = dr.plot.compare(ds)
    fig.savefig(args.out / "compare.png", dpi=110, bbox_inches="tight")
    print()
    print(head)
    print()
    print(table)


if __name__ == "__main__":
    main()
