"""Neural ODE training step: dynrnn (Diffrax) vs torchdiffeq, same network, solver, tolerances,
initial weights and data, on the CPU cores of this machine.

Task: a batch of 256 states in R^16 is carried from t = 0 to t = 5 by an MLP vector field
(16 → 64 → 64 → 16, tanh) and regressed onto fixed targets (MSE); the whole batch is one ODE
state (as torchdiffeq solves batches), gradients by differentiating through the solver
(torchdiffeq `odeint`, Diffrax `RecursiveCheckpointAdjoint`; torchdiffeq also backpropagates
through its step-size choice, Diffrax's controller stops that gradient, so the loss curves
differ slightly). Rows: torchdiffeq dopri5
(optional: skipped without torch/torchdiffeq), dynrnn with Dopri5 and Tsit5, and with the
`SolverError` penalty (statistics wrapper on). NFE counts forward vector-field evaluations per
training step (torch: a counter in the module; dynrnn: `stats["nfe"]`, exact). Also the forward
solve with and without the statistics wrapper (its overhead). torch runs with 1 and with 2
threads: on a loaded machine its OpenMP threads can contend badly (seen: 0.1 ms vs 49 ms for
one small matmul), so both are reported.
Usage: python benchmarks/node_speed.py
"""

from __future__ import annotations

import os
import platform
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import dynrnn as dr


B, D, W = 256, 16, 64
RTOL, ATOL = 1e-5, 1e-6
T1 = 5.0
N_STEPS = 20


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


def bench_jax(solver, x, y, weight=None):
    model = make_model(solver)
    opt = optax.adam(1e-3)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))
    ts = jnp.array([0.0, T1])
    reg = None if weight is None else dr.regularizers.SolverError(weight)
    needs = () if reg is None else reg.needs

    @eqx.filter_jit
    def update(model, state):
        def loss(m):
            zs, stats = m.solve(x, ts, needs=needs)
            mse = jnp.mean((zs[-1] - y) ** 2)
            value = mse if reg is None else mse + reg(m, stats)
            return value, (stats["nfe"], mse)

        (_, (nfe, mse)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, mse, nfe

    jax.block_until_ready(update(model, state))
    nfes = []
    t0 = time.perf_counter()
    for _ in range(N_STEPS):
        model, state, value, nfe = update(model, state)
        nfes.append(nfe)
    jax.block_until_ready(value)
    dt = (time.perf_counter() - t0) / N_STEPS
    return dt, float(np.mean([int(n) for n in nfes])), float(value)


def bench_overhead(x):
    model = make_model(dfx.Tsit5())
    ts = jnp.array([0.0, T1])
    plain = eqx.filter_jit(lambda m, z: m.solve(z, ts)[0])
    stats = eqx.filter_jit(lambda m, z: m.solve(z, ts, needs=("error_integral",
                                                                 "stiffness_integral"))[0])
    out = {}
    for name, f in (("plain", plain), ("stats", stats)):
        jax.block_until_ready(f(model, x))
    for _ in range(3):  # interleave to spread out load from other processes
        for name, f in (("plain", plain), ("stats", stats)):
            t0 = time.perf_counter()
            for _ in range(20):
                jax.block_until_ready(f(model, x))
            out.setdefault(name, []).append((time.perf_counter() - t0) / 20)
    return min(out["plain"]), min(out["stats"])


def bench_torch(x, y, threads):
    try:
        import torch
        from torchdiffeq import odeint
    except ImportError:
        return None
    torch.set_num_threads(threads)
    model = make_model(dfx.Tsit5())
    lin = [lyr for lyr in model.func.mlp.layers]

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
    opt = torch.optim.Adam(f.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ts = torch.tensor([0.0, T1])

    def update():
        opt.zero_grad()
        zs = odeint(f, xt, ts, rtol=RTOL, atol=ATOL, method="dopri5")
        loss = torch.mean((zs[-1] - yt) ** 2)
        loss.backward()
        opt.step()
        return loss

    update()
    nfes = []
    t0 = time.perf_counter()
    for _ in range(N_STEPS):
        f.nfe = 0
        loss = update()
        nfes.append(f.nfe)
    dt = (time.perf_counter() - t0) / N_STEPS
    return dt, float(np.mean(nfes)), float(loss.detach())


def main():
    print(f"Hardware: {os.cpu_count()}-core CPU ({platform.machine()}), JAX {jax.__version__}, "
          f"no GPU; float32; batch {B}, dim {D}, MLP width {W}, t1={T1}, rtol={RTOL}, "
          f"atol={ATOL}.\n")
    x, y = data()
    rows = []
    for threads in (1, 2):
        torch_row = bench_torch(x, y, threads)
        if torch_row is not None:
            import torch
            import torchdiffeq

            rows.append((f"torchdiffeq {torchdiffeq.__version__} dopri5 (torch "
                         f"{torch.__version__}, {threads} thread{'s' * (threads > 1)})",
                         *torch_row))
    rows.append(("dynrnn NeuralODE, Dopri5", *bench_jax(dfx.Dopri5(), x, y)))
    rows.append(("dynrnn NeuralODE, Tsit5", *bench_jax(dfx.Tsit5(), x, y)))
    for weight in (0.1, 1.0):
        rows.append((f"dynrnn NeuralODE, Tsit5 + SolverError({weight})",
                     *bench_jax(dfx.Tsit5(), x, y, weight=weight)))
    base = rows[0][1]
    print("| implementation | ms / training step | speed-up vs first row | NFE / step (forward) "
          "| ms per 100 NFE | MSE after 21 steps |")
    print("|---|---|---|---|---|---|")
    for name, dt, nfe, loss in rows:
        print(f"| {name} | {dt * 1e3:.1f} | {base / dt:.2f}x | {nfe:.0f} | "
              f"{dt * 1e3 / nfe * 100:.2f} | {loss:.4f} |")
    plain, stats = bench_overhead(jnp.asarray(x))
    print(f"\nForward solve (Tsit5, batch {B}): plain {plain * 1e3:.2f} ms, with the statistics "
          f"wrapper (error + stiffness) {stats * 1e3:.2f} ms: overhead "
          f"{(stats / plain - 1) * 100:+.1f} % (best of 3 interleaved rounds of 20).")


if __name__ == "__main__":
    main()
