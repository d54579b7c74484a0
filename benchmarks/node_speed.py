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

Task `digits` (where Pal et al. measured their speed-ups: a neural ODE classifier, their MNIST,
here scikit-learn's 8x8 digits): 64 pixels → z(0) ∈ R^16 by a linear map, a 16 → 32 → 16 tanh
MLP field solved on [0, 1] with dopri5 (torchdiffeq has no Tsit5), rtol = atol = 1e-5, the
whole minibatch of 128 as one ODE state, a linear read-out to 10 logits, cross-entropy, Adam
3e-3, 400 updates on the same minibatch sequence from the same initial weights. λ of
`SolverError` chosen by the script on a validation split (the largest of `DIG_LAMBDAS` within 1
accuracy point of the plain model); test accuracy, training time, prediction time and NFE.
dynrnn rows are timed both with one jitted call per update and with 50 updates per jitted call
(a `lax.scan` over the minibatches, as `dr.fit` runs `steps_per_call` updates); torch runs its
usual Python loop.

Usage: python benchmarks/node_speed.py [--task=all|regression|digits] [--updates=100]
[--digits-updates=400] [--torch-threads=1,2]
(about 1.5 minutes for both tasks on an idle 2-core CPU).
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
    return dr.models.NeuralODE(obs=D, latent=D, vector_field=BatchField(mlp), dt=1.0, solver=solver,
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


def _torch_linear(lyr):
    """A `torch.nn.Linear` holding the weights of an `eqx.nn.Linear` (same initial weights)."""
    import torch

    t = torch.nn.Linear(lyr.in_features, lyr.out_features)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(np.array(lyr.weight)))
        t.bias.copy_(torch.from_numpy(np.array(lyr.bias)))
    return t


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
            self.layers = torch.nn.ModuleList(_torch_linear(lyr) for lyr in lin)
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


# --------------------------------------------------------------------------------- digits task
# The speed goal counts the evaluations a regulariser saves, so it is also measured where
# Pal et al. measured it: a neural ODE classifier (their MNIST; here scikit-learn's digits).
DIG_B, DIG_LATENT, DIG_WIDTH = 128, 16, 32
DIG_RTOL = DIG_ATOL = 1e-5
DIG_LR = 3e-3
DIG_UPDATES = int(_arg("digits-updates", 400))
DIG_LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0)
DIG_TOL = 1.0  # accuracy points
DIG_PER_CALL = 50


def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    xfit, xval, yfit, yval = train_test_split(xtr, ytr, test_size=0.2, random_state=0)
    rng = np.random.default_rng(1)
    batches = np.stack([rng.choice(len(xfit), DIG_B, replace=False)
                        for _ in range(DIG_UPDATES)])
    return (xfit, yfit), (xval, yval), (xte, yte), batches


class DigitsODE(eqx.Module):
    """Linear map 64 → z(0), MLP field solved on [0, 1] for the whole batch as one state,
    linear read-out to 10 logits."""

    lin_in: eqx.nn.Linear
    node: dr.models.NeuralODE
    lin_out: eqx.nn.Linear

    def __init__(self, solver):
        k1, k2, k3 = jr.split(jr.PRNGKey(0), 3)
        self.lin_in = eqx.nn.Linear(64, DIG_LATENT, key=k1)
        mlp = eqx.nn.MLP(DIG_LATENT, DIG_LATENT, DIG_WIDTH, 1, activation=jnp.tanh, key=k2)
        self.node = dr.models.NeuralODE(obs=DIG_LATENT, latent=DIG_LATENT,
                                        vector_field=BatchField(mlp),
                                        dt=1.0, solver=solver, rtol=DIG_RTOL, atol=DIG_ATOL,
                                        key=jr.PRNGKey(1))
        self.lin_out = eqx.nn.Linear(DIG_LATENT, 10, key=k3)

    def __call__(self, x, needs=()):
        zs, stats = self.node.solve(jax.vmap(self.lin_in)(x), jnp.array([0.0, 1.0]), needs=needs)
        return jax.vmap(self.lin_out)(zs[-1]), stats


class DigitsRun:
    def __init__(self, wall, cpu, nfe, val_acc, test_acc, pred_ms, pred_nfe):
        self.wall, self.cpu, self.nfe = wall, cpu, np.asarray(nfe)
        self.val_acc, self.test_acc = val_acc, test_acc
        self.pred_ms, self.pred_nfe = pred_ms, pred_nfe


def _best_of(fn, repeats=5):
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_digits_jax(data, solver, regularised, lams, per_call=1):
    """Train one model per λ; `per_call` updates run inside one jitted call (a `lax.scan` over
    the minibatches, as `dr.fit` runs `steps_per_call` updates per host call)."""
    (xfit, yfit), (xval, yval), (xte, yte), batches = data
    opt = optax.adam(DIG_LR)
    needs = dr.regularizers.SolverError(1.0).needs if regularised else ()
    xfit, yfit = jnp.asarray(xfit), jnp.asarray(yfit)
    chunks = jnp.asarray(batches).reshape(-1, per_call, DIG_B)
    static = eqx.partition(DigitsODE(solver), eqx.is_inexact_array)[1]

    def update(carry, idx, lam):
        params, state = carry

        def loss(p):
            logits, stats = eqx.combine(p, static)(xfit[idx], needs)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, yfit[idx]).mean()
            value = ce + dr.regularizers.SolverError(lam)(None, stats) if regularised else ce
            return value, stats["nfe"]

        (_, nfe), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), nfe

    @jax.jit
    def train_chunk(params, state, idx, lam):
        return jax.lax.scan(lambda c, i: update(c, i, lam), (params, state), idx)

    @eqx.filter_jit
    def predict(model, x):
        logits, stats = model(x)
        return jnp.argmax(logits, -1), stats["nfe"]

    runs = []
    for lam in lams:
        params = eqx.filter(DigitsODE(solver), eqx.is_inexact_array)
        state = opt.init(params)
        lam = jnp.asarray(lam, jnp.float32)
        jax.block_until_ready(train_chunk(params, state, chunks[0], lam))  # compile
        nfes = []
        c0, t0 = time.process_time(), time.perf_counter()
        for idx in chunks:
            (params, state), nfe = train_chunk(params, state, idx, lam)
            nfes.append(nfe)
        jax.block_until_ready(nfes[-1])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        model = eqx.combine(params, static)
        val = float(jnp.mean(predict(model, jnp.asarray(xval))[0] == yval)) * 100
        t_pred, (pred, nfe_pred) = _best_of(
            lambda: jax.block_until_ready(predict(model, jnp.asarray(xte))))
        runs.append(DigitsRun(wall, cpu, np.concatenate([np.ravel(n) for n in nfes]), val,
                              float(jnp.mean(pred == yte)) * 100, t_pred * 1e3, int(nfe_pred)))
    return runs


def bench_digits_torch(data, threads):
    try:
        import torch
        from torchdiffeq import odeint
    except ImportError:
        return None
    torch.set_num_threads(threads)
    (xfit, yfit), (xval, yval), (xte, yte), batches = data
    ref = DigitsODE(dfx.Dopri5())

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = (_torch_linear(lyr) for lyr in ref.node.func.mlp.layers)
            self.nfe = 0

        def forward(self, t, z):
            self.nfe += 1
            return self.l2(torch.tanh(self.l1(z)))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin_in, self.field, self.lin_out = (_torch_linear(ref.lin_in), Field(),
                                                      _torch_linear(ref.lin_out))
            self.ts = torch.tensor([0.0, 1.0])

        def forward(self, x):
            zs = odeint(self.field, self.lin_in(x), self.ts, rtol=DIG_RTOL, atol=DIG_ATOL,
                        method="dopri5")
            return self.lin_out(zs[-1])

    xfit_t, yfit_t = torch.from_numpy(xfit), torch.from_numpy(np.asarray(yfit))
    warm = Net()  # warm-up on a throwaway copy
    torch.nn.functional.cross_entropy(warm(xfit_t[:DIG_B]), yfit_t[:DIG_B]).backward()
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=DIG_LR)
    nfes = []
    c0, t0 = time.process_time(), time.perf_counter()
    for idx in batches:
        idx = torch.from_numpy(idx)
        net.field.nfe = 0
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xfit_t[idx]), yfit_t[idx]).backward()
        opt.step()
        nfes.append(net.field.nfe)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    def predict(x):
        with torch.no_grad():
            net.field.nfe = 0
            return net(torch.from_numpy(x)).argmax(-1).numpy(), net.field.nfe

    val = float(np.mean(predict(xval)[0] == yval)) * 100
    t_pred, (pred, nfe_pred) = _best_of(lambda: predict(xte))
    return DigitsRun(wall, cpu, nfes, val, float(np.mean(pred == yte)) * 100, t_pred * 1e3,
                     nfe_pred)


def digits_main():
    print(f"\n## Digits neural ODE classifier: batch {DIG_B}, 64 → {DIG_LATENT} → ODE (MLP "
          f"{DIG_LATENT} → {DIG_WIDTH} → {DIG_LATENT}, tanh, t ∈ [0, 1], whole batch one state) "
          f"→ 10, dopri5 rtol = atol = {DIG_RTOL}, Adam {DIG_LR}, {DIG_UPDATES} updates on the "
          "same minibatches, same initial weights.\n")
    data = digits_data()
    rows = []
    for threads in TORCH_THREADS:
        run = bench_digits_torch(data, threads)
        if run is not None:
            rows.append((f"torchdiffeq dopri5 ({threads} thread{'s' * (threads > 1)})", run))
    plain = bench_digits_jax(data, dfx.Dopri5(), False, [0.0])[0]
    rows.append(("dynrnn NeuralODE, Dopri5 (one jitted call per update)", plain))
    rows.append((f"dynrnn NeuralODE, Dopri5 ({DIG_PER_CALL} updates per call, as dr.fit)",
                 bench_digits_jax(data, dfx.Dopri5(), False, [0.0], DIG_PER_CALL)[0]))
    sweep = bench_digits_jax(data, dfx.Dopri5(), True, DIG_LAMBDAS, DIG_PER_CALL)
    print(f"λ sweep (Dopri5 + SolverError(λ); chosen: the largest λ whose validation accuracy "
          f"is within {DIG_TOL:g} point of plain Dopri5's {plain.val_acc:.1f} %):\n")
    print("| λ | validation accuracy % | NFE / update (mean, last) | train s | within |")
    print("|---|---|---|---|---|")
    ok = []
    for lam, r in zip(DIG_LAMBDAS, sweep):
        good = r.val_acc >= plain.val_acc - DIG_TOL
        ok += [(lam, r)] if good else []
        print(f"| {lam} | {r.val_acc:.1f} | {r.nfe.mean():.1f}, {r.nfe[-1]} | {r.wall:.2f} | "
              f"{'yes' if good else 'no'} |")
    if ok:
        lam, r = ok[-1]
        rows.append((f"dynrnn NeuralODE, Dopri5 + SolverError({lam}) (one call per update)",
                     bench_digits_jax(data, dfx.Dopri5(), True, [lam])[0]))
        rows.append((f"dynrnn NeuralODE, Dopri5 + SolverError({lam}) ({DIG_PER_CALL} updates "
                     "per call)", r))
    base = rows[0][1]
    print(f"\nTraining ({DIG_UPDATES} updates) and prediction (the {len(data[2][1])} test "
          "digits as one batch, best of 5); speed-ups against the first row:\n")
    print("| implementation | train wall s | train CPU s | speed-up wall | speed-up CPU | "
          "NFE / update (mean, last) | test accuracy % | prediction ms | NFE at prediction |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r.wall:.2f} | {r.cpu:.2f} | {base.wall / r.wall:.2f}x | "
              f"{base.cpu / r.cpu:.2f}x | {r.nfe.mean():.1f}, {r.nfe[-1]} | {r.test_acc:.1f} | "
              f"{r.pred_ms:.1f} | {r.pred_nfe} |")


def main():
    task = _arg("task", "all")
    if task not in ("all", "regression", "digits"):
        raise SystemExit(f"--task must be all, regression or digits, got {task!r}")
    print(f"Hardware: {os.cpu_count()}-core CPU ({platform.machine()}), JAX {jax.__version__}, "
          f"no GPU; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; float32.")
    if task in ("all", "regression"):
        regression_main()
    if task in ("all", "digits"):
        digits_main()


def regression_main():
    print(f"\n## Regression: batch {B}, dim {D}, MLP width {W}, t1={T1}, "
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
