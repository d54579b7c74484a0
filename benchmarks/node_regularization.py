"""Solver-heuristic regularisation of neural ODEs/SDEs (Pal et al., ICML 2021 and 2023) on data
we have: vanilla vs `SolverError` vs `Stiffness` vs `LocalSolverError`.

- digits: a neural ODE classifier on scikit-learn's 8x8 digits (input → z(0) by a linear map,
  an MLP vector field integrated to t = 1 with Tsit5, linear read-out), cross-entropy + penalty;
  test accuracy, training time, prediction time and NFE per sample at prediction.
- Lorenz-63: a neural ODE fitted to short windows of the shared GTF Lorenz-63 training series
  (one solve per window, observations saved along it); free-running prediction from a test
  state over 20 time units: D_stsp (`dr.metrics.state_space_divergence`) against the test series,
  prediction time and NFE.
- spiral SDE (REFERENCES 5.4): a neural SDE fitted to the ensemble mean and standard deviation
  of `du = (−αu₁³ + βu₂³, −βu₁³ − αu₂³) dt + γ u dW`; vanilla vs `SolverError`.

Every variant of a task shares one compiled training step (penalty weights are traced arrays,
zero when unused, so the regularised variants all pay for every statistic) and one compiled
prediction (no statistics). Times are ratios to the vanilla model of the same run.
Usage: python benchmarks/node_regularization.py [--quick]
"""

from __future__ import annotations

import os
import pathlib
import platform
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import dynrnn as dr


QUICK = "--quick" in sys.argv
ONLY = [a.split("=")[1] for a in sys.argv if a.startswith("--only=")]
DATA = pathlib.Path(os.environ.get("DYNRNN_SHARED_DATA", pathlib.Path(__file__).resolve()
                                   .parents[2] / "shared" / "data"))
NEEDS = ("error_integral", "stiffness_max", "local_error")


def weights(name, we, ws, wl):
    return {
        "vanilla": (0.0, 0.0, 0.0),
        "SolverError": (we, 0.0, 0.0),
        "Stiffness": (0.0, ws, 0.0),
        "Local": (0.0, 0.0, wl),
    }[name]


def penalty(stats, w):
    """The three regularisers of `dr.regularizers`, with traced weights."""
    regs = (dr.regularizers.SolverError(w[0]), dr.regularizers.Stiffness(w[1], reduce="max"),
            dr.regularizers.LocalSolverError(w[2]))
    return sum(r(None, stats) for r in regs)


# ----------------------------------------------------------------------------------- digits
class Classifier(eqx.Module):
    lin_in: eqx.nn.Linear
    node: dr.models.NeuralODE
    lin_out: eqx.nn.Linear

    def __init__(self, key, latent=16, width=32):
        k1, k2, k3 = jr.split(key, 3)
        self.lin_in = eqx.nn.Linear(64, latent, key=k1)
        self.node = dr.models.NeuralODE(latent, latent, width=width, depth=1, dt=1.0,
                                        rtol=1e-5, atol=1e-5, key=k2)
        self.lin_out = eqx.nn.Linear(latent, 10, key=k3)

    def __call__(self, x, needs=(), key=None):
        zs, stats = self.node.solve(self.lin_in(x), jnp.array([0.0, 1.0]), needs=needs, key=key)
        return self.lin_out(zs[-1]), stats


def digits_task(variants, n_steps):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    xtr, xte, ytr, yte = map(jnp.asarray, (xtr, xte, ytr, yte))
    opt = optax.adam(3e-3)
    batch = 128

    def loss_fn(model, xb, yb, w, key):
        keys = jr.split(key, xb.shape[0])
        logits, stats = jax.vmap(lambda x, k: model(x, NEEDS, k))(xb, keys)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return ce + jnp.mean(jax.vmap(lambda s: penalty(s, w))(stats))

    @eqx.filter_jit
    def update_reg(model, state, w, key):
        kb, kl = jr.split(key)
        idx = jr.choice(kb, xtr.shape[0], (batch,), replace=False)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, xtr[idx], ytr[idx], w, kl)
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, loss

    @eqx.filter_jit
    def update_plain(model, state, key):
        idx = jr.choice(key, xtr.shape[0], (batch,), replace=False)

        def ce(m):
            logits, _ = jax.vmap(lambda x: m(x))(xtr[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, ytr[idx]).mean()

        loss, grads = eqx.filter_value_and_grad(ce)(model)
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, loss

    @eqx.filter_jit
    def predict(model, x):
        logits, stats = jax.vmap(lambda xi: model(xi))(x)
        return jnp.argmax(logits, -1), stats["nfe"]

    rows = []
    for name in variants:
        w = jnp.asarray(weights(name, 0.1, 0.1, 1.0), jnp.float32)
        model = Classifier(jr.PRNGKey(0))
        state = opt.init(eqx.filter(model, eqx.is_inexact_array))
        key = jr.PRNGKey(1)
        # Compile outside the timing.
        if name == "vanilla":
            jax.block_until_ready(update_plain(model, state, key))
        else:
            jax.block_until_ready(update_reg(model, state, w, key))
        t0 = time.perf_counter()
        for s in range(n_steps):
            k = jr.fold_in(key, s)
            if name == "vanilla":
                model, state, loss = update_plain(model, state, k)
            else:
                model, state, loss = update_reg(model, state, w, k)
        jax.block_until_ready(loss)
        t_train = time.perf_counter() - t0
        jax.block_until_ready(predict(model, xte))
        t_pred = np.inf
        for _ in range(5):  # best of 5: the machine is shared
            t0 = time.perf_counter()
            pred, nfe = jax.block_until_ready(predict(model, xte))
            t_pred = min(t_pred, time.perf_counter() - t0)
        acc = float(jnp.mean(pred == yte)) * 100
        rows.append((name, acc, t_train, t_pred, float(jnp.mean(nfe)), float(jnp.max(nfe))))
    return rows


# --------------------------------------------------------------------------------- Lorenz-63
def lorenz_task(variants, n_steps):
    train = np.load(DATA / "lorenz63_gtf" / "lorenz63_on0.05_train.npy")[:20_000]
    test = np.load(DATA / "lorenz63_gtf" / "lorenz63_test.npy")
    dt, win, batch = 0.01, 20, 32
    train = jnp.asarray(train)
    ts = jnp.arange(win + 1, dtype=jnp.float32) * dt
    opt = optax.adam(5e-3)

    def make():
        return dr.models.NeuralODE(3, 3, width=64, depth=2, dt=dt, rtol=1e-4, atol=1e-4,
                                   max_steps=16384, key=jr.PRNGKey(0))

    def window_loss(model, xw, needs, w, key):
        zs, stats = model.solve(xw[0], ts, needs=needs, key=key)
        return jnp.mean((zs[1:] - xw[1:]) ** 2) + (penalty(stats, w) if needs else 0.0)

    def sample(key):
        starts = jr.randint(key, (batch,), 0, train.shape[0] - win - 1)
        return jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(train, s, win + 1))(starts)

    def make_update(needs):
        @eqx.filter_jit
        def update(model, state, w, key):
            kb, kl = jr.split(key)
            xb = sample(kb)
            keys = jr.split(kl, batch)

            def loss(m):
                return jnp.mean(jax.vmap(lambda x, k: window_loss(m, x, needs, w, k))(xb, keys))

            value, grads = eqx.filter_value_and_grad(loss)(model)
            updates, state = opt.update(grads, state, model)
            return eqx.apply_updates(model, updates), state, value

        return update

    update_plain, update_reg = make_update(()), make_update(NEEDS)
    horizon = 2000  # 20 time units

    @eqx.filter_jit
    def predict(model, z0):
        zs, stats = model.solve(z0, jnp.arange(horizon + 1, dtype=jnp.float32) * dt)
        return zs, stats["nfe"]

    starts = [0, 30_000, 60_000]
    rows = []
    for name in variants:
        w = jnp.asarray(weights(name, 0.1, 0.01, 1.0), jnp.float32)
        model = make()
        state = opt.init(eqx.filter(model, eqx.is_inexact_array))
        upd = update_plain if name == "vanilla" else update_reg
        key = jr.PRNGKey(1)
        jax.block_until_ready(upd(model, state, w, key))
        t0 = time.perf_counter()
        for s in range(n_steps):
            model, state, loss = upd(model, state, w, jr.fold_in(key, s))
        jax.block_until_ready(loss)
        t_train = time.perf_counter() - t0
        jax.block_until_ready(predict(model, jnp.asarray(test[0])))
        outs, t_pred = [], np.inf
        for s in starts:
            t0 = time.perf_counter()
            outs.append(jax.block_until_ready(predict(model, jnp.asarray(test[s]))))
            t_pred = min(t_pred, time.perf_counter() - t0)
        gen = np.concatenate([np.asarray(z[500:]) for z, _ in outs])
        dstsp = float(dr.metrics.state_space_divergence(test[:20_000], gen))
        nfe = np.mean([float(n) for _, n in outs])
        rows.append((name, dstsp, t_train, t_pred, nfe, nfe))
    return rows


# -------------------------------------------------------------------------------- spiral SDE
class Cubic(eqx.Module):
    def __call__(self, t, u, args):
        a, b = 0.1, 2.0
        return jnp.stack([-a * u[0] ** 3 + b * u[1] ** 3, -b * u[0] ** 3 - a * u[1] ** 3])


class Multiplicative(eqx.Module):
    def __call__(self, t, u, args):
        return 0.2 * u


def sde_task(variants, n_steps):
    ts = jnp.linspace(0.0, 2.0, 21, dtype=jnp.float32)
    u0 = jnp.array([2.0, 0.0], jnp.float32)
    truth = dr.models.NeuralSDE(2, 2, drift=Cubic(), diffusion=Multiplicative(), rtol=1e-2,
                                atol=1e-2, max_steps=65536, key=jr.PRNGKey(0))
    paths = jax.jit(jax.vmap(lambda k: truth.solve(u0, ts, key=k)[0]))(jr.split(jr.PRNGKey(9), 256))
    target_mean, target_std = paths.mean(0), paths.std(0)
    opt = optax.adam(3e-3)
    n_paths = 32

    def make():
        return dr.models.NeuralSDE(2, 2, width=32, depth=1, noise_scale=0.2, rtol=1e-2,
                                   atol=1e-2, max_steps=16384, key=jr.PRNGKey(1))

    def make_update(needs):
        @eqx.filter_jit
        def update(model, state, w, key):
            def loss(m):
                ys, stats = jax.vmap(lambda k: m.solve(u0, ts, needs=needs, key=k))(
                    jr.split(key, n_paths))
                # All paths start at u0: the sd at t = 0 is 0 and its gradient NaN.
                fit = jnp.mean((ys.mean(0) - target_mean) ** 2) + jnp.mean(
                    (ys[:, 1:].std(0) - target_std[1:]) ** 2)
                if needs:
                    reg = dr.regularizers.SolverError(w[0])
                    fit = fit + jnp.mean(jax.vmap(lambda s: reg(None, s))(stats))
                return fit

            value, grads = eqx.filter_value_and_grad(loss)(model)
            updates, state = opt.update(grads, state, model)
            return eqx.apply_updates(model, updates), state, value

        return update

    @eqx.filter_jit
    def predict(model, key):
        ys, stats = jax.vmap(lambda k: model.solve(u0, ts, key=k))(jr.split(key, 256))
        return jnp.mean((ys.mean(0) - target_mean) ** 2), stats["nfe"] + stats["nfe_diffusion"]

    update_plain, update_reg = make_update(()), make_update(("error_integral",))
    rows = []
    for name in variants:
        w = jnp.asarray(weights(name, 1.0, 0.0, 0.0), jnp.float32)
        model = make()
        state = opt.init(eqx.filter(model, eqx.is_inexact_array))
        upd = update_plain if name == "vanilla" else update_reg
        key = jr.PRNGKey(2)
        jax.block_until_ready(upd(model, state, w, key))
        t0 = time.perf_counter()
        for s in range(n_steps):
            model, state, loss = upd(model, state, w, jr.fold_in(key, s))
            if s % 10 == 0:
                print(f"  sde {name} {s} {float(loss):.4f}", file=sys.stderr, flush=True)
        jax.block_until_ready(loss)
        t_train = time.perf_counter() - t0
        jax.block_until_ready(predict(model, jr.PRNGKey(3)))
        t_pred = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            mse, nfe = jax.block_until_ready(predict(model, jr.PRNGKey(3)))
            t_pred = min(t_pred, time.perf_counter() - t0)
        rows.append((name, float(mse), t_train, t_pred, float(jnp.mean(nfe)), float(jnp.max(nfe))))
    return rows


def table(title, metric, rows, fmt):
    base_train, base_pred = rows[0][2], rows[0][3]
    base_nfe = rows[0][4]
    print(f"\n### {title}\n")
    print(f"| variant | {metric} | train time (× vanilla) | prediction time (× vanilla) | "
          "NFE at prediction (mean / max) | NFE × vanilla |")
    print("|---|---|---|---|---|---|")
    for name, m, tt, tp, nfe, nfe_max in rows:
        print(f"| {name} | {fmt.format(m)} | {tt:.1f} s ({tt / base_train:.2f}) | "
              f"{tp * 1e3:.0f} ms ({tp / base_pred:.2f}) | {nfe:.1f} / {nfe_max:.0f} | "
              f"{nfe / base_nfe:.2f} |")


def main():
    print(f"Hardware: {os.cpu_count()}-core CPU ({platform.machine()}), JAX {jax.__version__}, "
          f"device {jax.devices()[0].platform}; float32.")
    variants = ["vanilla", "SolverError", "Stiffness", "Local"]
    n = 60 if QUICK else 400
    if not ONLY or "digits" in ONLY:
        table(f"digits neural ODE classifier ({n} updates of 128, Tsit5 rtol=atol=1e-5; "
              "λ: SolverError 0.1, Stiffness(max) 0.1, Local 1.0)",
              "test accuracy %", digits_task(variants, n), "{:.1f}")
    n = 30 if QUICK else 1500
    if ONLY and "lorenz" not in ONLY:
        pass
    elif (DATA / "lorenz63_gtf").is_dir():
        table(f"Lorenz-63 neural ODE ({n} updates of 32 windows × 20 steps, rtol=atol=1e-4; "
              "λ: SolverError 0.1, Stiffness(max) 0.01, Local 1.0)",
              "D_stsp (20 time units)", lorenz_task(variants, n), "{:.3f}")
    else:
        print(f"\n(Lorenz-63 skipped: {DATA / 'lorenz63_gtf'} not found)")
    n = 30 if QUICK else 150
    if not ONLY or "sde" in ONLY:
        table(f"spiral SDE, neural SDE fitted to mean and sd ({n} updates of 32 paths, SPaRK, "
              "rtol=atol=1e-2; λ: SolverError 1.0)",
              "MSE of the mean (256 paths)", sde_task(["vanilla", "SolverError"], n), "{:.4f}")


if __name__ == "__main__":
    main()
