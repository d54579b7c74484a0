"""Every member of `dr.reconstruct`'s grid scored on the test series: does a catalogue flow fail
because no member learnt it (training) or because the kept one was not the best (selection)?

For each flow (simulated as in `reconstruct_catalogue.py`: noisy training, clean test), runs
the automatic mode, then scores every member of its grid on the test series exactly as the kept
one is scored (`dr.tasks.Reconstruction.score`: D_stsp, D_H, λ_max), next to the member's
validation figures. The test figures are diagnostics only: `dr.reconstruct` never sees them.

    python benchmarks/catalogue_members.py --names Thomas,Rossler
    python benchmarks/catalogue_members.py --names Rossler --noise 0      # noise-free training
    python benchmarks/catalogue_members.py --names Thomas --hidden 200 --no-denoise
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import time

import jax.random as jr


ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("DYNRNN_SHARED_DATA", ROOT.parent / "shared" / "data"))
CATALOGUE = SHARED / "dysts" / "chaotic_attractors.json"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", required=True, help="comma-separated catalogue flows")
    p.add_argument("--budget", default="3min")
    p.add_argument("--noise", type=float, default=0.05, help="training noise (sd units)")
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--latent", type=int, default=None)
    p.add_argument("--no-denoise", action="store_true")
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-test", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--catalogue", default=str(CATALOGUE))
    args = p.parse_args()

    import dynrnn as dr
    from dynrnn.tasks._reconstruction import Reconstruction

    for name in args.names.split(","):
        task = dr.tasks.Reconstruction.from_catalogue(
            name, catalogue=args.catalogue, n_train=args.n_train, n_test=args.n_test,
            key=jr.PRNGKey(args.seed), noise=args.noise)
        t0 = time.perf_counter()
        r = dr.reconstruct(task.train, test=task.test, dt=task.dt, budget=args.budget,
                           key=jr.PRNGKey(args.seed), lyapunov=task.lyapunov,
                           hidden=args.hidden, latent=args.latent,
                           denoise=not args.no_denoise)
        wall = time.perf_counter() - t0
        s, ch = r.subsample, r.channels
        test = (task.test[::s, ch] - r.mean) / r.scale
        train = (task.train[::s, ch] - r.mean) / r.scale
        scorer = Reconstruction(train=train, test=test, dt=r.dt, lyapunov=task.lyapunov,
                                standardize=False, seq_len=r.plan.seq_len,
                                n_generate=min(len(test), 100_000))
        m = r.measures
        print(f"== {name}: kept D_stsp {m['D_stsp']:.3g} D_H {m['D_H']:.3g} (data "
              f"{m['D_stsp_data']:.3g}), noise {[round(v, 4) for v in r.analysis.noise]}, "
              f"T {r.plan.seq_len}, {r.plan.n_members}×{r.plan.n_steps}, {wall:.0f} s",
              flush=True)
        print("  member | H | forcing | lr | seed | series D_stsp / D_H | val D_stsp / D_H | "
              "collapsed | TEST D_stsp / D_H | λ_max (data "
              f"{task.lyapunov if task.lyapunov is not None else math.nan:.3g})")
        for row, model in zip(r.grid, r.members):
            sc = scorer.score(model)
            if row.get("family") == "EchoStateNetwork":
                forcing, lr = f"ESN ρ {row['spectral_radius']:g} leak {row['leak']:g}", "–"
            else:
                forcing = "aGTF" if row["forcing"] == "adaptive" else f"α {row['alpha']:g}"
                lr = f"{row['learning_rate']:g}"
            print(f"  {row['member']:2d} | {row['hidden']} | {forcing} | "
                  f"{lr} | {row['seed']} | {row['series_D_stsp']:.3g} / "
                  f"{row['series_D_H']:.3g} | {row['val_D_stsp']:.3g} / {row['val_D_H']:.3g} | "
                  f"{row['collapsed_runs']} | "
                  f"{sc['D_stsp']:.3g} / {sc['D_H']:.3g} | {sc['lambda_max']:.3g}"
                  f"{'  KEPT' if row['kept'] else ''}", flush=True)


if __name__ == "__main__":
    main()
