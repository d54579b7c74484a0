"""`dr.reconstruct` (the automatic mode) on a series whose time scales lie ~100x apart.

Issue 22, item 3: the classical Hindmarsh-Rose neuron (Hindmarsh & Rose 1984) in its chaotic
bursting regime: a fast membrane potential `x` that spikes within a few time units, and a slow
adaptation current `z` (rate `r = 0.006`) that switches bursts on and off over hundreds:

    x' = y - a x^3 + b x^2 - z + I,   y' = c - d x^2 - y,   z' = r (s (x - x_R) - z)

with a = 1, b = 3, c = 1, d = 5, s = 4, x_R = -1.6, I = 3.25. This is the system the issue
found the old defaults collapsing to a fixed point on. It is written here as a user would
write their own system (an `AbstractSystem` subclass), not shipped: the shipped
`dr.systems.HindmarshRose` is the dysts catalogue's rescaled variant, which is in
`reconstruct_catalogue.py`.

A noisy training trajectory (5 % observation noise, like the catalogue benchmark) and a clean
test trajectory after a gap, both sampled at `--dt`; the automatic mode with the default
budget; prints the analysis (periods, sub-sampling, window), the result and the grid.

    python benchmarks/reconstruct_multiscale.py                  # default budget (3 min)
    python benchmarks/reconstruct_multiscale.py --budget 10min --dt 0.05
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np


def bursting_neuron():
    import dynrnn as dr

    class HindmarshRoseBursting(dr.systems.AbstractSystem):
        a: float = 1.0
        b: float = 3.0
        c: float = 1.0
        d: float = 5.0
        r: float = 0.006
        s: float = 4.0
        x_r: float = -1.6
        current: float = 3.25

        default_y0 = (-1.3, -7.3, 3.0)

        def vector_field(self, t, y, args):
            x, yy, z = y[0], y[1], y[2]
            return jnp.stack([yy - self.a * x**3 + self.b * x**2 - z + self.current,
                              self.c - self.d * x**2 - yy,
                              self.r * (self.s * (x - self.x_r) - z)])

    return HindmarshRoseBursting()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", default="3min")
    p.add_argument("--dt", type=float, default=0.1, help="sampling interval (time units)")
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-test", type=int, default=50_000)
    p.add_argument("--noise", type=float, default=0.05, help="observation noise (sd units)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from reconstruct_catalogue import kept_setting  # this folder is on sys.path when run

    import dynrnn as dr
    from dynrnn.training._reconstruct import analyse

    system = bursting_neuron()
    n = args.n_train + args.n_test + 5_000
    ds = dr.systems.simulate(system, n_steps=n, dt=args.dt, transient=2_000.0)
    x = np.asarray(ds["state"].values, np.float64)
    train, test = x[: args.n_train], x[args.n_train + 5_000:]
    rng = np.random.default_rng(args.seed)
    train = train + args.noise * train.std(0) * rng.standard_normal(train.shape)
    a = analyse(train)
    print(f"Hindmarsh-Rose bursting neuron, dt {args.dt}, {args.n_train} noisy training / "
          f"{args.n_test} clean test points; {platform.node()}, {os.cpu_count()} CPUs, JAX "
          f"{jax.__version__}; load {os.getloadavg()[0]:.1f}")
    print(f"analysis: characteristic period {a.period:.0f} steps, fastest strong component "
          f"{a.fast_period:.1f} steps, decorrelation {a.decorrelation:.0f} steps -> sub-sample "
          f"every {a.subsample}, window {a.seq_len}", flush=True)
    t0 = time.perf_counter()
    r = dr.reconstruct(train, test=test, dt=args.dt, budget=args.budget,
                       key=jr.PRNGKey(args.seed))
    wall = time.perf_counter() - t0
    m = r.measures
    print()
    print("| D_stsp | D_H | D_stsp train vs test | D_H of a constant | verdict | kept | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    kept = kept_setting(r)
    print(f"| {m.get('D_stsp', float('nan')):.3g} | {m.get('D_H', float('nan')):.3g} | "
          f"{m.get('D_stsp_data', float('nan')):.3g} | {m.get('D_H_constant', float('nan')):.3g}"
          f" | {r.verdict} | {kept} | {wall:.0f} |")
    print()
    print(r.message)
    for line in r.suggestions:
        print(f"  - {line}")
    if r.model is not None:
        print()
        print(r.grid_markdown())


if __name__ == "__main__":
    main()
