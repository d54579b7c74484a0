"""Liquid networks: training speed against ncps (PyTorch), fidelity on an irregularly sampled
classification task, and reconstruction of Lorenz-63 with generalized teacher forcing.

1. Speed (`--speed`, about 2 minutes on an idle 2-core CPU, 3.5 with `--host-devices=2`). One
   training step (forward, MSE loss, backward, Adam) at batch 32, T = 100, for the same model
   sizes and weights in dynrnn (float32) and ncps (PyTorch with 2 and with 1 thread); median
   wall time and median process CPU time of repeated steps, ratios from the same run. dynrnn
   is timed as one jitted call per update and as `dr.fit` itself (supervised mode,
   `steps_per_call=--updates-per-call`, time per update between its callbacks).
2. Fidelity (`--fidelity`). scikit-learn's 8×8 digits read as a sequence of 32 steps of two
   pixels; each sample keeps a random sorted subset of `keep` steps, and the elapsed times
   between the kept steps are passed as time spans (the GRU gets them as an extra input). CfC,
   LTC and a GRU (`equinox.nn.GRUCell`) with the same hidden size; each model's learning rate is
   chosen on a validation split from the same grid, then test accuracy and training time.
3. Lorenz-63 (`--lorenz`). CfC and LTC trained with `dr.fit` + `dr.GTF` on the shipped data;
   D_stsp and D_H (`dr.evaluate`) before and after training.

Run: `python benchmarks/liquid.py --speed` (or `--fidelity`, `--lorenz`; none of them: all
three), `--quick` for a smoke test. `--speed --host-devices=2` adds data-parallel dynrnn
columns: XLA splits the CPU into 2 devices, each computes the loss and gradient of half the
batch (`dr.training.data_parallel`, what `dr.fit(mesh=...)` uses), gradients are averaged in
one buffer and every device applies the same Adam update.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _host_devices():
    """`--host-devices=N` must reach XLA before JAX starts: N CPU devices for data parallel."""
    for a in sys.argv[1:]:
        if a.startswith("--host-devices="):
            n = int(a.split("=", 1)[1])
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                       + f" --xla_force_host_platform_device_count={n}")


_host_devices()

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
    """Train (70 %) and test (30 %) sets of `(inputs, time spans, labels)`."""
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


def _split(data, fraction):
    """The first `1 − fraction` and the last `fraction` of a (shuffled) set."""
    n = int(round(len(data[0]) * (1 - fraction)))
    return tuple(a[:n] for a in data), tuple(a[n:] for a in data)


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
    """Adam with a cosine decay from `lr` to `lr / 100`; returns test accuracy, training wall
    time and training CPU time (compilation excluded)."""
    schedule = optax.cosine_decay_schedule(lr, steps, alpha=0.01)
    opt = optax.adam(schedule)
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
    # Compile outside the timed loop (on a copy of the state: the compiled step is reused).
    idx = jr.randint(key, (batch,), 0, n)
    jax.block_until_ready(step(model, state, u[idx], ts[idx], y[idx]))
    t0, c0 = time.perf_counter(), time.process_time()
    for k in jr.split(key, steps):
        idx = jr.randint(k, (batch,), 0, n)
        model, state, value = step(model, state, u[idx], ts[idx], y[idx])
    jax.block_until_ready(value)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pred = jnp.argmax(eqx.filter_jit(logits_fn)(model, *(jnp.asarray(a) for a in test[:2])), -1)
    return float(jnp.mean(pred == jnp.asarray(test[2]))), wall, cpu


def fidelity(args):
    """Each model's learning rate is the best of `args.lrs` by validation accuracy after
    `args.search_steps` steps (trained on 80 % of the training set, validated on the other
    20 %); the chosen rate is then used for `args.steps` steps on the whole training set, and
    the test accuracy is reported. The same grid, budget and seeds for all three models."""
    train, test = digits_task(args.keep)
    fit, val = _split(train, 0.2)
    h = args.hidden

    def make(name, key):
        if name == "CfC":
            return dr.models.CfC(2, h, 10, backbone_units=args.backbone, dtype=jnp.float32,
                                 key=key)
        if name == "LTC":
            return dr.models.LTC(2, h, 10, dtype=jnp.float32, key=key)
        return GRUClassifier(2, h, 10, key=key)

    rows = {}
    for name in ("CfC", "LTC", "GRU"):
        search = {}
        for lr in args.lrs:
            acc, _, _ = train_classifier(make(name, jr.PRNGKey(0)), fit, val,
                                         steps=args.search_steps, batch=64, lr=lr,
                                         key=jr.PRNGKey(2))
            search[lr] = acc
        best = max(search, key=search.get)
        acc, wall, cpu = train_classifier(make(name, jr.PRNGKey(0)), train, test,
                                          steps=args.steps, batch=64, lr=best, key=jr.PRNGKey(1))
        n = dr.dsf.layers.n_parameters(make(name, jr.PRNGKey(0)))
        rows[name] = (acc, wall, cpu, best, search, n)
        print(f"{name}: validation {search}, chosen lr {best:g}, test accuracy {acc:.3f}, "
              f"{wall:.0f} s", flush=True)
    grid = ", ".join(f"{lr:g}" for lr in args.lrs)
    print(f"\n### Irregularly sampled digits ({args.keep} of 32 steps kept, hidden {h}, "
          f"learning rate from {{{grid}}} by validation accuracy after {args.search_steps} "
          f"steps, then {args.steps} Adam steps with cosine decay, batch 64)\n")
    print("| model | parameters | chosen lr | validation accuracy (search) | test accuracy "
          "| training wall (s) | training CPU (s) | CPU time / GRU |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (acc, wall, cpu, best, search, n) in rows.items():
        vals = " / ".join(f"{search[lr]:.3f}" for lr in args.lrs)
        print(f"| {name} | {n} | {best:g} | {vals} | {acc:.3f} | {wall:.1f} | {cpu:.1f} | "
              f"{cpu / rows['GRU'][2]:.2f} |")


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


def jax_step_time(model, u, ts, y, repeats, devices=1):
    """Median time of one training update (loss, gradient, Adam) as one jitted host call.

    With `devices > 1`, data parallel: each device computes the loss and gradient of its slice
    of the batch, the gradients are averaged across devices in one buffer
    (`dr.training.data_parallel`, as `dr.fit(mesh=...)` does), and every device applies the
    same Adam update to its replica of the parameters."""
    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(params)

    def loss(p, u, y):
        return jnp.mean((eqx.combine(p, static).batch(u, ts) - y) ** 2)

    value_and_grad = jax.value_and_grad(loss)
    if devices > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

        mesh = Mesh(np.array(jax.devices()[:devices]), ("batch",))
        value_and_grad = dr.training.data_parallel(value_and_grad, mesh, n_sharded=2)
        u, y = (jax.device_put(a, NamedSharding(mesh, P("batch"))) for a in (u, y))
        params, state = jax.device_put((params, state), NamedSharding(mesh, P()))

    @jax.jit
    def step(params, state, u, y):
        value, grads = value_and_grad(params, u, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    carry = [params, state]

    def run():
        carry[0], carry[1], value = step(carry[0], carry[1], u, y)
        jax.block_until_ready(value)

    return _median_time(run, repeats)


def fit_step_time(model, inputs, ts, targets, batch, steps_per_call, calls, devices=1):
    """Time per update of `dr.fit` itself in its supervised mode (minibatches of `batch`
    sequences drawn from `inputs`, Adam, `steps_per_call` updates per jitted host call, with
    `mesh` when `devices > 1`): the median interval between the callbacks that `dr.fit` calls
    after each host call (the first, which compiles, left out), divided by `steps_per_call`."""
    mesh = None
    if devices > 1:
        from jax.sharding import Mesh

        mesh = Mesh(np.array(jax.devices()[:devices]), ("batch",))

    def loss(m, u, y, *, key):
        return jnp.mean((m.batch(u, ts) - y) ** 2)

    stamps = []

    def stamp(step, model, logs):
        stamps.append(time.perf_counter())

    dr.fit(model, (inputs, targets), loss=loss, optimizer=optax.adam(1e-3),
           n_steps=steps_per_call * (calls + 1), batch_size=batch, key=jr.PRNGKey(0),
           steps_per_call=steps_per_call, progress=False, callbacks=[stamp], mesh=mesh)
    return statistics.median(np.diff(stamps)) / steps_per_call


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
    k = args.updates_per_call
    n_dev = len(jax.devices())
    print(f"\n### Training step, batch {b}, T = {length}, {n_in} inputs, float32 "
          "(forward + MSE + backward + Adam)\n")
    print("ncps is timed with 2 and with 1 PyTorch thread; speed-ups are against the faster "
          "of the two (wall time) and against the smaller CPU time (process time, all "
          "threads). dynrnn: one jitted host call per update, and `dr.fit` itself (supervised "
          f"mode, batches of {b} drawn from {k * b} sequences, Adam, `steps_per_call={k}`; "
          "time per update from the intervals between its callbacks)"
          + (f"; on 1 device and data parallel on {n_dev} CPU devices "
             "(`dr.training.data_parallel`, `dr.fit(mesh=...)`)" if n_dev > 1 else "")
          + ".\n")
    cols = ["1 device", "dr.fit, 1 device"]
    if n_dev > 1:
        cols += [f"{n_dev} devices", f"dr.fit, {n_dev} devices"]
    print("| model | ncps 2 threads (ms) | ncps 1 thread (ms) | ncps CPU (ms) | dynrnn CPU, "
          "1 device (ms) | " + " | ".join(f"dynrnn {c} (ms)" for c in cols) + " |")
    print("|---|---|---|---|---|" + "---|" * len(cols))
    for name, make_ref, n_out in configs:
        torch.manual_seed(0)
        ref = make_ref()
        # Same weights on both sides (so both do the same arithmetic).
        ours = dr.interop.from_ncps(ref, dtype=jnp.float32)
        y = rng.normal(size=(b, length, n_out)).astype(np.float32)
        many_u = jnp.asarray(rng.normal(size=(k * b, length, n_in)).astype(np.float32))
        many_y = jnp.asarray(rng.normal(size=(k * b, length, n_out)).astype(np.float32))
        ref_times = {}
        for threads in (2, 1):
            torch.set_num_threads(threads)
            ref_times[threads] = torch_step_time(ref, u, ts_ncps, y, args.repeats)
        best_wall = min(t[0] for t in ref_times.values())
        best_cpu = min(t[1] for t in ref_times.values())
        ts_j = jnp.asarray(ts_shared)
        times = []
        for devices in (1, n_dev) if n_dev > 1 else (1,):
            times.append(jax_step_time(ours, jnp.asarray(u), ts_j, jnp.asarray(y),
                                       args.repeats, devices))
            times.append((fit_step_time(ours, many_u, ts_j, many_y, b, k, args.fit_calls,
                                        devices), None))
        cells = " | ".join(f"{1e3 * w:.1f} ({best_wall / w:.1f}x)" for w, _ in times)
        print(f"| {name} | {1e3 * ref_times[2][0]:.1f} | {1e3 * ref_times[1][0]:.1f} | "
              f"{1e3 * best_cpu:.1f} | {1e3 * times[0][1]:.1f} ({best_cpu / times[0][1]:.1f}x)"
              f" | {cells} |", flush=True)


# ---------------------------------------------------------------------------------------------
# 3. Reconstruction of Lorenz-63 with generalized teacher forcing


def lorenz(args):
    """CfC and LTC trained with `dr.fit` + `dr.GTF` on the shipped Lorenz-63 data; the
    reconstruction measures of `dr.evaluate` on the test set before and after training."""
    # Every `stride`-th point (the files are sampled at dt = 0.01).
    k = args.lorenz_stride
    train = dr.datasets.load("lorenz63_train")["state"].values[::k][: args.lorenz_train]
    test = dr.datasets.load("lorenz63_test")["state"].values[::k][: args.lorenz_test]
    train, test = jnp.asarray(train, jnp.float32), jnp.asarray(test, jnp.float32)
    key = jr.PRNGKey(0)
    # Both models' states are bounded (CfC heads in (-1, 1), LTC potentials in the hull of the
    # reversal potentials ±1 and v_leak), so the read-out scales the first three units
    # elementwise (initial scale 3 for standardised data) and GTF forces only those three
    # (partial forcing); a dense affine read-out forced through its pseudo-inverse trained
    # much worse in trial runs (D_stsp 13.7 vs 7.4 for CfC after 1000 updates).
    from dynrnn.models import LiquidReadout

    def readout(n):
        return LiquidReadout(3, n, scale=jnp.full((3,), 3.0, jnp.float32),
                             bias=jnp.zeros((3,), jnp.float32))

    models = {
        "CfC": dr.models.CfC(0, 24, 3, observation=readout(24), backbone_units=32,
                             dtype=jnp.float32, key=key),
        "LTC": dr.models.LTC(0, 16, 3, observation=readout(16), dtype=jnp.float32, key=key),
    }
    # Learning rates from short trial runs (LTC learns slowly at 3e-3).
    rates = {"CfC": 3e-3, "LTC": 1e-2}
    rows = []
    for name, model in models.items():
        before = dr.evaluate(model, test, lyapunov=False)
        t0 = time.perf_counter()
        c0 = time.process_time()
        result = dr.fit(model, train, teacher_forcing=dr.GTF(args.lorenz_alpha),
                        n_steps=args.lorenz_steps, batch_size=16, seq_len=args.lorenz_seq,
                        key=jr.PRNGKey(1), progress=False,
                        optimizer=dr.training.default_optimizer(
                            args.lorenz_steps, rates[name], rates[name] / 10))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = dr.evaluate(result.model, test, lyapunov=False)
        rows.append((name, before, after, wall, cpu))
        print(f"{name}: D_stsp {before['D_stsp']:.3f} -> {after['D_stsp']:.3f}, "
              f"D_H {before['D_H']:.3f} -> {after['D_H']:.3f} ({wall:.0f} s)", flush=True)
    print(f"\n### Lorenz-63 reconstruction with GTF (alpha = {args.lorenz_alpha}), "
          f"{args.lorenz_steps} updates of 16 windows x {args.lorenz_seq} steps, data "
          f"sampled at dt = {0.01 * k:g}, {train.shape[0]} training points, {test.shape[0]} "
          "test points\n")
    print("| model | learning rate | D_stsp before | D_stsp after | D_H before | D_H after "
          "| PE(20) after | train wall (s) | train CPU (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, b, a, wall, cpu in rows:
        print(f"| {name} | {rates[name]:g} | {b['D_stsp']:.3f} | {a['D_stsp']:.3f} | "
              f"{b['D_H']:.3f} | "
              f"{a['D_H']:.3f} | {a['PE']:.2e} | {wall:.0f} | {cpu:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true", help="run the speed comparison")
    parser.add_argument("--fidelity", action="store_true", help="run the digits benchmark")
    parser.add_argument("--lorenz", action="store_true", help="run the Lorenz-63 GTF benchmark")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--search-steps", type=int, default=300)
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2, 3e-2])
    parser.add_argument("--backbone", type=int, default=32)
    parser.add_argument("--keep", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--updates-per-call", type=int, default=50,
                        help="`steps_per_call` of the speed table's dr.fit columns")
    parser.add_argument("--fit-calls", type=int, default=5,
                        help="timed host calls of dr.fit per speed-table cell")
    parser.add_argument("--lorenz-steps", type=int, default=3000)
    parser.add_argument("--lorenz-seq", type=int, default=50)
    parser.add_argument("--lorenz-alpha", type=float, default=0.3)
    parser.add_argument("--lorenz-stride", type=int, default=5)
    parser.add_argument("--lorenz-train", type=int, default=20_000)
    parser.add_argument("--lorenz-test", type=int, default=20_000)
    parser.add_argument("--host-devices", type=int, default=1,
                        help="CPU devices for a data-parallel speed row (set before JAX starts)")
    args = parser.parse_args()
    if not (args.speed or args.fidelity or args.lorenz):
        args.speed = args.fidelity = args.lorenz = True
    if args.quick:
        args.steps, args.search_steps, args.repeats, args.lorenz_steps = 100, 20, 3, 50
        args.updates_per_call, args.fit_calls = 3, 2
    print(f"JAX {jax.__version__}, devices {jax.devices()}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    if args.speed:
        speed(args)
    if args.fidelity:
        fidelity(args)
    if args.lorenz:
        lorenz(args)


if __name__ == "__main__":
    main()
