"""Liquid networks: fidelity on an irregularly sampled classification task, and training speed
against ncps (PyTorch).

1. Fidelity. scikit-learn's 8×8 digits read as a sequence of 32 steps of two pixels; each
   sample keeps a random sorted subset of `keep` steps, and the elapsed times between the kept
   steps are passed as time spans (the GRU gets them as an extra input). CfC, LTC and a GRU
   (`equinox.nn.GRUCell`) with the same hidden size are trained with Adam for the same number
   of steps; test accuracy and training time (ratio to the GRU) are printed.
2. Speed. One training step (forward, MSE loss, backward, Adam) at batch 32, T = 100, for the
   same model sizes in dynrnn (jitted, float32) and ncps (PyTorch, `torch.set_num_threads(2)`);
   the ratio is ncps time / dynrnn time (median of repeated steps, same run).

Run: `python benchmarks/liquid.py` (about 5 minutes on a 2-core CPU) or `--quick`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import dynrnn as dr


# ---------------------------------------------------------------------------------------------
# 1. Irregularly sampled digits


def digits_task(keep: int, seed: int = 0):
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    seq = images.reshape(len(images), 32, 2).astype(np.float32) / 16.0
    rng = np.random.default_rng(seed)
    idx = np.sort(np.stack([rng.choice(32, keep, replace=False) for _ in seq]), axis=1)
    u = np.take_along_axis(seq, idx[:, :, None], axis=1)
    ts = np.diff(np.concatenate([-np.ones((len(seq), 1)), idx], 1), axis=1).astype(np.float32)
    order = rng.permutation(len(seq))
    n_train = int(0.7 * len(seq))
    tr, te = order[:n_train], order[n_train:]
    return (u[tr], ts[tr], labels[tr]), (u[te], ts[te], labels[te])


class GRUClassifier(eqx.Module):
    cell: eqx.nn.GRUCell
    head: eqx.nn.Linear

    def __init__(self, inputs, hidden, classes, *, key):
        k1, k2 = jr.split(key)
        self.cell = eqx.nn.GRUCell(inputs + 1, hidden, key=k1)
        self.head = eqx.nn.Linear(hidden, classes, key=k2)

    def __call__(self, u, ts):
        def body(h, x):
            return self.cell(x, h), None

        h, _ = jax.lax.scan(body, jnp.zeros(self.cell.hidden_size), jnp.concatenate(
            [u, ts[:, None]], 1))
        return self.head(h)


def logits_fn(model, u, ts):
    if isinstance(model, GRUClassifier):
        return jax.vmap(model)(u, ts)
    return model.batch(u, ts)[:, -1]


def train_classifier(model, train, test, *, steps, batch, lr, key):
    opt = optax.adam(lr)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, state, u, ts, y):
        def loss(m):
            logits = logits_fn(m, u, ts)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, value

    u, ts, y = (jnp.asarray(a) for a in train)
    n = u.shape[0]
    # Compile outside the timed loop.
    idx = jr.randint(key, (batch,), 0, n)
    jax.block_until_ready(step(model, state, u[idx], ts[idx], y[idx]))
    t0 = time.perf_counter()
    for k in jr.split(key, steps):
        idx = jr.randint(k, (batch,), 0, n)
        model, state, value = step(model, state, u[idx], ts[idx], y[idx])
    jax.block_until_ready(value)
    elapsed = time.perf_counter() - t0
    pred = jnp.argmax(eqx.filter_jit(logits_fn)(model, *(jnp.asarray(a) for a in test[:2])), -1)
    return float(jnp.mean(pred == jnp.asarray(test[2]))), elapsed


def fidelity(args):
    train, test = digits_task(args.keep)
    key = jr.PRNGKey(0)
    h = args.hidden
    models = {
        "CfC": dr.models.CfC(2, h, 10, backbone_units=64, key=key),
        "LTC": dr.models.LTC(2, h, 10, key=key),
        "GRU": GRUClassifier(2, h, 10, key=key),
    }
    rows = {}
    for name, model in models.items():
        lr = 1e-2 if name == "LTC" else 5e-3
        acc, sec = train_classifier(model, train, test, steps=args.steps, batch=64, lr=lr,
                                    key=jr.PRNGKey(1))
        rows[name] = (acc, sec)
    print(f"\n### Irregularly sampled digits ({args.keep} of 32 steps kept, hidden {h}, "
          f"{args.steps} Adam steps, batch 64)\n")
    print("| model | test accuracy | training time (s) | time / GRU |")
    print("|---|---|---|---|")
    for name, (acc, sec) in rows.items():
        print(f"| {name} | {acc:.3f} | {sec:.1f} | {sec / rows['GRU'][1]:.2f} |")


# ---------------------------------------------------------------------------------------------
# 2. Training step against ncps


def _median_time(fn, repeats):
    """Median wall time and median process CPU time (all threads) of `fn()`.

    CPU time is the fairer measure on a shared machine: it does not count time spent waiting
    for a core."""
    fn()
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def jax_step_time(model, u, ts, y, repeats):
    opt = optax.adam(1e-3)
    params = eqx.filter(model, eqx.is_inexact_array)
    state = opt.init(params)

    @eqx.filter_jit
    def step(model, state):
        def loss(m):
            return jnp.mean((m.batch(u, ts) - y) ** 2)

        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, value

    carry = [model, state]

    def run():
        carry[0], carry[1], value = step(carry[0], carry[1])
        jax.block_until_ready(value)

    return _median_time(run, repeats)


def torch_step_time(module, u, ts, y, repeats):
    import torch

    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    u_t, ts_t, y_t = (torch.tensor(np.asarray(a)) for a in (u, ts, y))

    def run():
        opt.zero_grad()
        out, _ = module(u_t, timespans=ts_t)
        loss = ((out - y_t) ** 2).mean()
        loss.backward()
        opt.step()

    return _median_time(run, repeats)


def speed(args):
    try:
        import torch
        from ncps import torch as nt, wirings as nw
    except ImportError:
        print("\n(ncps/torch not installed: speed comparison skipped)")
        return
    b, length, n_in = 32, 100, 8
    rng = np.random.default_rng(0)
    u = rng.normal(size=(b, length, n_in)).astype(np.float32)
    # Irregular time spans shared by the batch: ncps broadcasts a (B,) vector of spans against
    # (B, units) wrongly (ncps#81), so both sides get one span per step ((1, T) for ncps).
    ts_shared = rng.uniform(0.5, 1.5, size=(length,)).astype(np.float32)
    ts_ncps = ts_shared[None, :]
    configs = [
        ("CfC, 64 units, backbone 128, proj 4", lambda: nt.CfC(n_in, 64, proj_size=4), 4),
        ("CfC wired AutoNCP(32, 4)", lambda: nt.CfC(n_in, nw.AutoNCP(32, 4)), 4),
        ("LTC, 32 units, 4 motor", lambda: nt.LTC(n_in, nw.FullyConnected(32, 4)), 4),
        ("LTC wired AutoNCP(32, 4)", lambda: nt.LTC(n_in, nw.AutoNCP(32, 4)), 4),
    ]
    print(f"\n### Training step, batch {b}, T = {length}, {n_in} inputs, float32 "
          "(forward + MSE + backward + Adam)\n")
    print("ncps is timed with 2 and with 1 PyTorch thread; the speed-up is against the faster "
          "of the two (wall time) and against the smaller CPU time (process time, all "
          "threads).\n")
    print("| model | ncps 2 threads (ms) | ncps 1 thread (ms) | dynrnn (ms) | speed-up (wall) "
          "| ncps CPU (ms) | dynrnn CPU (ms) | speed-up (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make_ref, n_out in configs:
        torch.manual_seed(0)
        ref = make_ref()
        # Same weights on both sides (so both do the same arithmetic).
        ours = dr.interop.from_ncps(ref, dtype=jnp.float32)
        y = rng.normal(size=(b, length, n_out)).astype(np.float32)
        ref_times = {}
        for threads in (2, 1):
            torch.set_num_threads(threads)
            ref_times[threads] = torch_step_time(ref, u, ts_ncps, y, args.repeats)
        t_ours = jax_step_time(ours, jnp.asarray(u), jnp.asarray(ts_shared), jnp.asarray(y),
                               args.repeats)
        best_wall = min(t[0] for t in ref_times.values())
        best_cpu = min(t[1] for t in ref_times.values())
        print(f"| {name} | {1e3 * ref_times[2][0]:.1f} | {1e3 * ref_times[1][0]:.1f} | "
              f"{1e3 * t_ours[0]:.1f} | {best_wall / t_ours[0]:.1f}x | {1e3 * best_cpu:.1f} | "
              f"{1e3 * t_ours[1]:.1f} | {best_cpu / t_ours[1]:.1f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--keep", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-fidelity", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 100, 3
    print(f"JAX {jax.__version__}, devices {jax.devices()}")
    if not args.skip_fidelity:
        fidelity(args)
    if not args.skip_speed:
        speed(args)


if __name__ == "__main__":
    main()
