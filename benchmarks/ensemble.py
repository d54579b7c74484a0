"""Ensemble speed-up: `dr.fit_ensemble` (members vmapped in one program) vs a Python loop of
single `dr.fit` calls, same members, updates and batch shape.

Usage: python benchmarks/ensemble.py [--members 8] [--steps 1000]
Reports wall time and process CPU time (the machine may be shared); compilation is included
in both, as a user would see it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.random as jr
import numpy as np

import dynrnn as dr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    args = p.parse_args()
    x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values, np.float32)
    models = [dr.models.ShallowPLRNN(latent=3, hidden=50, obs=3,
                                     key=jr.PRNGKey(i)) for i in range(args.members)]
    kw = dict(n_steps=args.steps, batch_size=16, seq_len=200, steps_per_call=250,
              progress=False)
    key = jr.PRNGKey(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, m in enumerate(models):
        dr.fit(m, x, key=jr.fold_in(key, i), 
               optimizer=dr.training.default_optimizer(args.steps, 1e-3, 1e-6), **kw)
    loop_wall, loop_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    dr.fit_ensemble(models, x, key=key, **kw)
    ens_wall, ens_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"# fit_ensemble vs a loop of fits — {platform.machine()}, {os.cpu_count()} cores, "
          f"JAX {jax.__version__}, {args.members} shPLRNN (M=3, H=50) members, "
          f"{args.steps} updates each, batch 16 × 201\n")
    print("| | loop of dr.fit | dr.fit_ensemble | speed-up |")
    print("|---|---|---|---|")
    print(f"| wall time (s) | {loop_wall:.1f} | {ens_wall:.1f} | {loop_wall / ens_wall:.2f} |")
    print(f"| CPU time (s) | {loop_cpu:.1f} | {ens_cpu:.1f} | {loop_cpu / ens_cpu:.2f} |")


if __name__ == "__main__":
    main()
