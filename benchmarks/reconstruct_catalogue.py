"""`dr.reconstruct` (the automatic mode of `dynrnn reconstruct`) on systems nobody tuned it for.

The flows of the dysts catalogue (Gilpin 2021; `../shared/data/dysts/chaotic_attractors.json`)
that `dr.systems` implements, simulated with `dr.tasks.Reconstruction.from_catalogue`: a noisy
training trajectory (5 % observation noise) and a clean test trajectory after a gap, sampled at
the catalogue's period / 40, plus the ECG pair of the GTF paper and the shipped-by-the-papers
Lorenz-96 pair (`../shared/data`; the Lorenz-96 training file is sampled at Δt = 0.01 and the
test file at 0.04, so the training file is sub-sampled by 4 first). Every system gets the same
budget. Prints and writes (`--out`) a Markdown table: test D_stsp, D_H, the training series'
own D_stsp against the test series (the level of the data), the model's λ_max
against the catalogue's, the verdict, the kept setting and the wall time, and how many systems
reach D_stsp ≤ 0.5 and D_H ≤ 0.15.

    python benchmarks/reconstruct_catalogue.py                        # every system, default budget
    python benchmarks/reconstruct_catalogue.py --systems 5 --budget 2min
    python benchmarks/reconstruct_catalogue.py --names Rossler,Thomas --no-extra
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import time

import jax
import jax.random as jr
import numpy as np


ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("DYNRNN_SHARED_DATA", ROOT.parent / "shared" / "data"))
CATALOGUE = SHARED / "dysts" / "chaotic_attractors.json"


def catalogue_systems(path: pathlib.Path) -> list[str]:
    """The catalogue's flows that `dr.systems` implements, in the catalogue's order."""
    import dynrnn as dr

    facts = json.loads(path.read_text())
    known = set(dr.systems.names())
    return [name for name in facts if name in known]


def extra_pairs() -> dict:
    """The ECG pair (per step) and Lorenz-96 (Δt 0.04), where the shared data holds them."""
    out = {}
    ecg = SHARED / "ecg_gtf"
    if (ecg / "ECG_pecuzal_5d_train.npy").exists():
        out["ECG (GTF paper)"] = dict(train=np.load(ecg / "ECG_pecuzal_5d_train.npy"),
                                      test=np.load(ecg / "ECG_pecuzal_5d_test.npy"),
                                      dt=None, lyapunov=None)
    l96 = SHARED / "lorenz96_10d"
    if (l96 / "lorenz96_train.npy").exists():
        out["Lorenz-96 (10-d, shared)"] = dict(
            train=np.load(l96 / "lorenz96_train.npy")[::4],
            test=np.load(l96 / "lorenz96_test.npy"), dt=0.04, lyapunov=None)
    return out


GRIDS: list[str] = []


def kept_setting(r) -> str:
    """The kept member's setting and the grid's size, in one table cell."""
    if r.model is None:
        return "–"
    s = r.settings
    if s.get("family") == "EchoStateNetwork":
        return (f"ESN {s['latent']}, ρ {s['spectral_radius']:g}, leak {s['leak']:g}, every "
                f"{r.subsample}; PLRNNs T {r.plan.seq_len}, {r.plan.n_members}×{r.plan.n_steps}")
    return (f"H {s['hidden']}, M {s['latent']}, "
            + ("aGTF" if s["forcing"] == "adaptive" else f"α {s['alpha']:g}")
            + f", lr {s['learning_rate']:g}, every {r.subsample}, T {r.plan.seq_len}, "
            f"{r.plan.n_members}×{r.plan.n_steps}")


def run_one(name, train, test, dt, lyapunov, budget, seed, seq_len=None, workers="auto"):
    import dynrnn as dr

    t0 = time.perf_counter()
    r = dr.reconstruct(train, test=test, dt=dt, budget=budget, key=jr.PRNGKey(seed),
                       lyapunov=lyapunov, seq_len=seq_len, workers=workers)
    if r.model is not None:
        GRIDS.append(f"### {name}\n\n{r.grid_markdown()}\n")
    wall = time.perf_counter() - t0
    m = r.measures
    setting = kept_setting(r)
    return dict(system=name, D_stsp=m.get("D_stsp", math.nan), D_H=m.get("D_H", math.nan),
                D_stsp_data=m.get("D_stsp_data", math.nan),
                lambda_model=m.get("lambda_max", math.nan),
                lambda_data=math.nan if lyapunov is None else float(lyapunov),
                verdict=r.verdict, setting=setting, wall=wall)


def fmt(v, digits=3):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def table(rows) -> str:
    head = ["system", "D_stsp", "D_H", "D_stsp train vs test", "λ_max model", "λ_max data",
            "verdict",
            "kept setting", "wall (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["system"], fmt(r["D_stsp"]), fmt(r["D_H"]), fmt(r["D_stsp_data"]),
            fmt(r["lambda_model"]),
            fmt(r["lambda_data"]), r["verdict"], r["setting"], f"{r['wall']:.0f}"]) + " |")
    good = [r for r in rows if r["D_stsp"] <= 0.5 and r["D_H"] <= 0.15]
    lines.append("")
    lines.append(f"{len(good)} of {len(rows)} systems reach D_stsp ≤ 0.5 and D_H ≤ 0.15 "
                 f"({', '.join(r['system'] for r in good) or 'none'}); median wall "
                 f"{np.median([r['wall'] for r in rows]):.0f} s.")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", type=int, default=None,
                   help="the first N catalogue flows (default: all that dr.systems has)")
    p.add_argument("--names", default=None, help="comma-separated catalogue flows instead")
    p.add_argument("--budget", default=None, help="budget per system (default: "
                   "`dr.reconstruct`'s, 3.5min)")
    p.add_argument("--no-extra", action="store_true", help="skip the ECG and Lorenz-96 pairs")
    p.add_argument("--n-train", type=int, default=50_000, help="training points per flow")
    p.add_argument("--n-test", type=int, default=100_000, help="test points per flow")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seq-len", type=int, default=None,
                   help="fix the training window instead of choosing it from the data")
    p.add_argument("--workers", default="auto", help="processes per system ('auto': as "
                   "many as cores and ensembles); the measures do not depend on it")
    p.add_argument("--catalogue", default=str(CATALOGUE))
    p.add_argument("--out", default=None, help="write the table (Markdown) here, and every "
                   "system's grid next to it (NAME_grids.md)")
    args = p.parse_args()

    import dynrnn as dr

    workers = args.workers if args.workers == "auto" else int(args.workers)
    from dynrnn.training._reconstruct import DEFAULT_BUDGET

    budget = DEFAULT_BUDGET if args.budget is None else dr.training.parse_budget(args.budget)
    names = (args.names.split(",") if args.names else catalogue_systems(
        pathlib.Path(args.catalogue)))
    if args.systems is not None:
        names = names[: args.systems]
    print(f"{len(names)} flows{'' if args.no_extra else ' + ECG + Lorenz-96'}, budget "
          f"{budget:.0f} s each; {platform.node()}, {os.cpu_count()} CPUs, JAX "
          f"{jax.__version__}, {jax.default_backend()}; load {os.getloadavg()[0]:.1f}",
          flush=True)
    rows = []
    for name in names:
        task = dr.tasks.Reconstruction.from_catalogue(
            name, catalogue=args.catalogue, n_train=args.n_train, n_test=args.n_test,
            key=jr.PRNGKey(args.seed))
        row = run_one(name, task.train, task.test, task.dt, task.lyapunov, budget, args.seed,
                      args.seq_len, workers)
        rows.append(row)
        if args.out:  # the table so far, in case the run is stopped
            pathlib.Path(args.out).write_text(table(rows) + "\n")
        print(f"{name}: D_stsp {fmt(row['D_stsp'])} (data {fmt(row['D_stsp_data'])}) D_H "
              f"{fmt(row['D_H'])} λ "
              f"{fmt(row['lambda_model'])} (data {fmt(row['lambda_data'])}) {row['verdict']} "
              f"[{row['setting']}] {row['wall']:.0f} s; load {os.getloadavg()[0]:.1f}",
              flush=True)
    if not args.no_extra:
        for name, pair in extra_pairs().items():
            row = run_one(name, pair["train"], pair["test"], pair["dt"], pair["lyapunov"],
                          budget, args.seed, args.seq_len, workers)
            rows.append(row)
            print(f"{name}: D_stsp {fmt(row['D_stsp'])} D_H {fmt(row['D_H'])} "
                  f"{row['verdict']} [{row['setting']}] {row['wall']:.0f} s", flush=True)
    text = table(rows)
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    print()
    print(text)
    if args.out:
        out = pathlib.Path(args.out)
        out.write_text(text + "\n")
        out.with_name(out.stem + "_grids.md").write_text("\n".join(GRIDS))


if __name__ == "__main__":
    main()
