"""Neural ODE training: dynrnn (Diffrax) vs torchdiffeq, same network, solver, tolerances,
initial weights and data, at equal accuracy.

Task: a batch of 256 states in R^16 is carried from t = 0 to t = 5 by an MLP vector field
(16 → 64 → 64 → 16, tanh) and regressed onto fixed targets (MSE); the whole batch is one ODE
state (as torchdiffeq solves batches), gradients by differentiating through the solver
(torchdiffeq `odeint`, Diffrax `RecursiveCheckpointAdjoint`; torchdiffeq also backpropagates
through its step-size choice, Diffrax's controller stops that gradient, so the loss curves
differ slightly). Adam, learning rate 1e-3, `UPDATES` updates for every row.

Rows: torchdiffeq dopri5 (optional: skipped without torch/torchdiffeq; 1 and 2 torch threads),
dynrnn with Dopri5 and Tsit5, and Tsit5 with the `SolverError(λ)` penalty. λ is chosen by the
script, not by hand: the largest of `LAMBDAS` whose final MSE (mean of the last 5 updates) is
within `TOL` (5 %) of the plain Tsit5 model's; all λ share one compiled step (λ is traced).

Measures per row: wall and process CPU time per update (`time.perf_counter`,
`time.process_time`; the CPU time counts every thread of the process), forward NFE per update
(torch: a counter in the module; dynrnn: `stats["nfe"]`, exact), the final MSE, and the
time-to-loss: wall time until the MSE first falls below a target, 1.05 × the largest final
MSE of the compared rows (so every row reaches it). Speed-ups are ratios to the first torch
row measured in the same run; the regularised model's speed-up includes the evaluations it
saves. Also the forward solve with and without the statistics wrapper (its overhead).

Usage: python benchmarks/node_speed.py [--updates=100] [--torch-threads=1,2]
(about 1–2 minutes on an idle 2-core CPU).
"""

from __future__ import annotations

import os
import platform
import sys
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import dynrnn as dr


def _arg(name, default):
    for a in sys.argv[1:]:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return default


B, D, W = 256, 16, 64
RTOL, ATOL = 1e-5, 1e-6
T1 = 5.0
LR = 1e-3
UPDATES = int(_arg("updates", 100))
TORCH_THREADS = tuple(int(t) for t in _arg("torch-threads", "1,2").split(","))
LAMBDAS = (0.0003, 0.001, 0.003, 0.01, 0.03)
TOL = 0.05
TARGET_FACTOR = 1.05


class BatchField(eqx.Module):
    """The MLP applied to every row of a `(batch, dim)` state."""

    mlp: eqx.nn.MLP

    def __call__(self, t, z, args):
        return jax.vmap(self.mlp)(z)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(D, D)).astype(np.float32) / 4) + 0.5 * x
    return x, y.astype(np.float32)


def make_model(solver):
    mlp = eqx.nn.MLP(D, D, W, 2, activation=jnp.tanh, key=jr.PRNGKey(0))
    return dr.models.NeuralODE(D, D, vector_field=BatchField(mlp), dt=1.0, solver=solver,
                               rtol=RTOL, atol=ATOL, key=jr.PRNGKey(1))


class Run:
    """Per-update cumulative wall times, total CPU time, MSEs and NFEs of one training run."""

    def __init__(self, wall, cpu, mse, nfe):
        self.wall = np.asarray(wall)  # cumulative, seconds after each update
        self.cpu = cpu
        self.mse = np.asarray(mse)
        self.nfe = np.asarray(nfe)

    @property
    def ms_per_step(self):
        return self.wall[-1] / len(self.wall) * 1e3

    @property
    def cpu_ms_per_step(self):
        return self.cpu / len(self.wall) * 1e3

    @property
    def final_mse(self):
        return float(np.mean(self.mse[-5:]))

    def time_to(self, target):
        hit = np.nonzero(self.mse <= target)[0]
        return (float(self.wall[hit[0]]), int(hit[0]) + 1) if hit.size else (np.nan, -1)


def jax_update(solver, regularised):
    opt = optax.adam(LR)
    ts = jnp.array([0.0, T1])
    needs = dr.regularizers.SolverError(1.0).needs if regularised else ()

    @eqx.filter_jit
    def update(model, state, x, y, lam):
        def loss(m):
            zs, stats = m.solve(x, ts, needs=needs)
            mse = jnp.mean((zs[-1] - y) ** 2)
            value = mse + dr.regularizers.SolverError(lam)(m, stats) if regularised else mse
            return value, (stats["nfe"], mse)

        (_, (nfe, mse)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, mse, nfe

    return opt, update


def bench_jax(solver, opt, update, x, y, lam=0.0):
    model = make_model(solver)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))
    x, y, lam = jnp.asarray(x), jnp.asarray(y), jnp.asarray(lam, jnp.float32)
    jax.block_until_ready(update(model, state, x, y, lam))  # compile outside the timing
    wall, mses, nfes = [], [], []
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(UPDATES):
        model, state, mse, nfe = update(model, state, x, y, lam)
        jax.block_until_ready(mse)
        wall.append(time.perf_counter() - t0)
        mses.append(mse)
        nfes.append(nfe)
    cpu = time.process_time() - c0
    return Run(wall, cpu, [float(m) for m in mses], [int(n) for n in nfes])


def bench_torch(x, y, threads):
    try:
        import torch
        from torchdiffeq import odeint
    except ImportError:
        return None
    torch.set_num_threads(threads)
    lin = list(make_model(dfx.Tsit5()).func.mlp.layers)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList()
            for lyr in lin:
                t = torch.nn.Linear(lyr.in_features, lyr.out_features)
                with torch.no_grad():
                    t.weight.copy_(torch.from_numpy(np.array(lyr.weight)))
                    t.bias.copy_(torch.from_numpy(np.array(lyr.bias)))
                self.layers.append(t)
            self.nfe = 0

        def forward(self, t, z):
            self.nfe += 1
            for i, layer in enumerate(self.layers):
                z = layer(z)
                if i < len(self.layers) - 1:
                    z = torch.tanh(z)
            return z

    f = Field()
    opt = torch.optim.Adam(f.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ts = torch.tensor([0.0, T1])

    def update():
        opt.zero_grad()
        zs = odeint(f, xt, ts, rtol=RTOL, atol=ATOL, method="dopri5")
        loss = torch.mean((zs[-1] - yt) ** 2)
        loss.backward()
        opt.step()
        return float(loss.detach())

    # Warm up on a throwaway copy so that the timed run starts from the shared weights.
    f_warm = Field()
    torch.mean((odeint(f_warm, xt, ts, rtol=RTOL, atol=ATOL, method="dopri5")[-1] - yt) ** 2
               ).backward()
    del f_warm
    wall, mses, nfes = [], [], []
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(UPDATES):
        f.nfe = 0
        mses.append(update())
        nfes.append(f.nfe)
        wall.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    return Run(wall, cpu, mses, nfes)


def bench_overhead(x):
    model = make_model(dfx.Tsit5())
    ts = jnp.array([0.0, T1])
    plain = eqx.filter_jit(lambda m, z: m.solve(z, ts)[0])
    stats = eqx.filter_jit(lambda m, z: m.solve(z, ts, needs=("error_integral",
                                                                 "stiffness_integral"))[0])
    out = {}
    for f in (plain, stats):
        jax.block_until_ready(f(model, x))
    for _ in range(3):  # interleave to spread out load from other processes
        for name, f in (("plain", plain), ("stats", stats)):
            c0 = time.process_time()
            for _ in range(20):
                jax.block_until_ready(f(model, x))
            out.setdefault(name, []).append((time.process_time() - c0) / 20)
    return min(out["plain"]), min(out["stats"])


def main():
    flags = os.environ.get("XLA_FLAGS", "")
    print(f"Hardware: {os.cpu_count()}-core CPU ({platform.machine()}), JAX {jax.__version__}, "
          f"no GPU; XLA_FLAGS={flags!r}; float32; batch {B}, dim {D}, MLP width {W}, t1={T1}, "
          f"rtol={RTOL}, atol={ATOL}, Adam lr {LR}, {UPDATES} updates per row.\n")
    x, y = data()
    rows: list[tuple[str, Run]] = []
    for threads in TORCH_THREADS:
        run = bench_torch(x, y, threads)
        if run is not None:
            import torch
            import torchdiffeq

            rows.append((f"torchdiffeq {torchdiffeq.__version__} dopri5 (torch "
                         f"{torch.__version__}, {threads} thread{'s' * (threads > 1)})", run))
    opt, upd = jax_update(dfx.Dopri5(), False)
    rows.append(("dynrnn NeuralODE, Dopri5", bench_jax(dfx.Dopri5(), opt, upd, x, y)))
    opt, upd = jax_update(dfx.Tsit5(), False)
    plain = bench_jax(dfx.Tsit5(), opt, upd, x, y)
    rows.append(("dynrnn NeuralODE, Tsit5", plain))
    opt, upd = jax_update(dfx.Tsit5(), True)
    sweep = [(lam, bench_jax(dfx.Tsit5(), opt, upd, x, y, lam)) for lam in LAMBDAS]
    ok = [(lam, r) for lam, r in sweep if r.final_mse <= (1 + TOL) * plain.final_mse]

    print(f"λ sweep (Tsit5 + SolverError(λ); plain Tsit5 final MSE {plain.final_mse:.4f}, "
          f"tolerance {TOL:.0%}):\n")
    print("| λ | final MSE | ratio to plain | NFE / update (mean, last) | within tolerance |")
    print("|---|---|---|---|---|")
    for lam, r in sweep:
        print(f"| {lam} | {r.final_mse:.4f} | {r.final_mse / plain.final_mse:.3f} | "
              f"{r.nfe.mean():.1f}, {r.nfe[-1]} | "
              f"{'yes' if r.final_mse <= (1 + TOL) * plain.final_mse else 'no'} |")
    if ok:
        lam, r = ok[-1]
        rows.append((f"dynrnn NeuralODE, Tsit5 + SolverError({lam}) (largest λ within "
                     f"{TOL:.0%})", r))
    else:
        print("\nNo λ of the sweep stays within the tolerance; no regularised row.")

    target = TARGET_FACTOR * max(r.final_mse for _, r in rows)
    base = rows[0][1]
    base_tt = base.time_to(target)[0]
    print(f"\nTraining ({UPDATES} updates; time-to-loss target MSE ≤ {target:.4f} = "
          f"{TARGET_FACTOR} × the largest final MSE below; speed-ups vs the first row):\n")
    print("| implementation | ms / update (wall) | CPU ms / update | speed-up wall | "
          "speed-up CPU | NFE / update (mean, last) | final MSE | updates to target | "
          "wall s to target | speed-up to target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        tt, n_tt = r.time_to(target)
        print(f"| {name} | {r.ms_per_step:.1f} | {r.cpu_ms_per_step:.1f} | "
              f"{base.ms_per_step / r.ms_per_step:.2f}x | "
              f"{base.cpu_ms_per_step / r.cpu_ms_per_step:.2f}x | "
              f"{r.nfe.mean():.1f}, {r.nfe[-1]} | {r.final_mse:.4f} | {n_tt} | {tt:.2f} | "
              f"{base_tt / tt:.2f}x |")
    p, s = bench_overhead(jnp.asarray(x))
    print(f"\nForward solve (Tsit5, batch {B}), process CPU time: plain {p * 1e3:.2f} ms, with "
          f"the statistics wrapper (error + stiffness) {s * 1e3:.2f} ms: overhead "
          f"{(s / p - 1) * 100:+.1f} % (best of 3 interleaved rounds of 20).")


if __name__ == "__main__":
    main()
