"""Reconstruction benchmark (issue: PLRNN/GTF).

1. Lorenz-63: clipped shPLRNN with adaptive GTF trained on the shared noisy training file,
   evaluated on the shared clean test file (D_stsp, D_H, PE(20), λ_max), with wall time.
   The model is selected on a held-out piece of the training series (last 10 %), never on
   the test set; both the final and the selected model are reported.
2. ECG (GTF paper Table 1 settings, Affine, M = 5, H = 250): GTF (α = 0.3) vs "STF" (α = 0,
   windows of 221), D_stsp and D_H on the test continuation. These runs are the recipes
   `recipe:ecg_gtf` and `recipe:ecg_stf` (`dynrnn/recipes/ecg_*.toml`) themselves (same code path as
   `dynrnn fit`), 250 000 updates each unless `--ecg-steps` is given; `--ecg-method` runs one.

Usage: python benchmarks/reconstruct.py [--lorenz-steps N] [--ecg-steps N]
       [--ecg-method gtf|stf] [--only lorenz|ecg]
Prints Markdown tables; the numbers in benchmarks/log/RESULTS.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import tempfile
import time

import jax
import jax.random as jr
import numpy as np

import dynrnn as dr


SHARED = pathlib.Path(
    os.environ.get("DYNRNN_SHARED_DATA",
                   pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
)


def run(model, x_train, x_test, tf, *, n_steps, seq_len, lr, final_lr, seed, dt=None,
        select=False):
    """Train on the first 90 % of the training series; with `select`, the model with the best
    D_stsp on the held-out last 10 % (checked every 5 000 updates) is evaluated, never the
    test set."""
    n_val = x_train.shape[0] // 10
    fit_x, val_x = x_train[:-n_val], x_train[-n_val:]
    t0 = time.perf_counter()
    res = dr.fit(model, fit_x, teacher_forcing=tf, n_steps=n_steps, batch_size=16,
                 seq_len=seq_len, key=jr.PRNGKey(seed),
                 optimizer=dr.training.default_optimizer(n_steps, lr, final_lr),
                 steps_per_call=250, progress=False,
                 callbacks=[dr.training.Evaluation(val_x, every=5000)] if select else [])
    train_s = time.perf_counter() - t0
    out = {}
    for name, m in [("final", res.model)] + ([("selected", res.best_model)] if select else []):
        ev = dr.evaluate(m, x_test)
        lam = ev["max_lyapunov"] / dt if dt else ev["max_lyapunov"]
        out[name] = dict(D_stsp=ev["D_stsp"], D_H=ev["D_H"], PE=ev["PE"], lam=lam,
                         train_s=train_s, alpha=res.alpha, steps_per_s=n_steps / train_s)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lorenz-steps", type=int, default=80_000)
    p.add_argument("--ecg-steps", type=int, default=None,
                   help="override the recipes' 250 000 updates")
    p.add_argument("--ecg-method", choices=["gtf", "stf"])
    p.add_argument("--only", choices=["lorenz", "ecg"])
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args()
    print(f"# reconstruct benchmark — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, JAX {jax.__version__}, backend {jax.default_backend()}\n")
    if args.only in (None, "lorenz"):
        x = np.load(SHARED / "lorenz63_gtf" / "lorenz63_on0.05_train.npy").astype(np.float32)
        xt = np.load(SHARED / "lorenz63_gtf" / "lorenz63_test.npy").astype(np.float32)
        print("## Lorenz-63 (shared GTF data), clipped shPLRNN M=3 H=100, aGTF "
              f"(product_upper_bound, γ=0.99), {args.lorenz_steps} updates, lr 5e-3 → 1e-5\n")
        print("| seed | model | D_stsp | D_H | PE(20) | λ_max (per time unit; true 0.906) | "
              "final α | train time (s) | updates/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for seed in range(args.seeds):
            m = dr.models.ShallowPLRNN(latent=3, hidden=100, obs=3, key=jr.PRNGKey(100 + seed))
            rs = run(m, x, xt, dr.GTF("adaptive", gamma=0.99), n_steps=args.lorenz_steps,
                     seq_len=200, lr=5e-3, final_lr=1e-5, seed=seed, dt=0.01, select=True)
            for name, r in rs.items():
                print(f"| {seed} | {name} | {r['D_stsp']:.3f} | {r['D_H']:.3f} | "
                      f"{r['PE']:.2e} | {r['lam']:.3f} | {r['alpha']:.3f} | "
                      f"{r['train_s']:.0f} | {r['steps_per_s']:.0f} |", flush=True)
        print()
    if args.only in (None, "ecg"):
        from dynrnn.cli._config import read_config
        from dynrnn.cli._run import run_reconstruction
        from dynrnn.datasets import resolve_recipe

        methods = [args.ecg_method] if args.ecg_method else ["gtf", "stf"]
        print("## ECG (shared GTF data), recipes recipe:ecg_<method> (clipped shPLRNN M=5 "
              "H=250 Affine, RAdam 1e-3 → 1e-6)\n")
        print("| method | α | T̃ | updates | D_stsp | D_H | PE(20) | λ_max (per step) | "
              "train time (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for method in methods:
            cfg = read_config(resolve_recipe(f"recipe:ecg_{method}"))
            for key in ("train", "test"):  # recipe paths are relative to the repository
                cfg["data"][key] = str(SHARED / "ecg_gtf" / pathlib.Path(cfg["data"][key]).name)
            if args.ecg_steps:
                cfg["training"]["n_steps"] = args.ecg_steps
            with tempfile.TemporaryDirectory() as out:
                m = run_reconstruction(cfg, out=out, progress=False, echo=lambda *a: None)
            r = m["model"]
            print(f"| {method.upper()} | {cfg['teacher_forcing']['alpha']} | "
                  f"{cfg['training']['seq_len']} | {m['n_steps']} | {r['D_stsp']:.3f} | "
                  f"{r['D_H']:.3f} | {r['PE']:.2e} | {r['max_lyapunov']:.4f} | "
                  f"{m['train_time_s']:.0f} |", flush=True)

if __name__ == "__main__":
    main()
