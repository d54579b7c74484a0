"""Long-memory fidelity of a LegS DeepLSSL against a GRU of (about) equal parameter count.

Tasks:
(a) recall: input channel 0 carries a value v ~ U(−1, 1) at t = 0 and zeros after it; channel
    1 carries N(0, 1) distractor noise at every step. After `--delay` further steps the model
    must output v from its last step (MSE; predicting 0 scores 1/3). The value has its own
    channel, so a linear memory can hold it exactly; the noise must be kept out of it.
(b) sequential digits: scikit-learn's 8×8 digits read pixel by pixel (64 steps, one pixel per
    step, scaled to [0, 1]), 10 classes, 80/20 split.

Both models are trained by `dr.fit` (supervised mode: Adam with cosine decay from the learning
rate to 1/100 of it, batches drawn with replacement, the same number of updates, batch size and
data key) for every learning rate of `--lrs`; the validation set picks each model's learning
rate and the test set is scored once per run. All runs are printed.

The recall task's LSSL time steps: a LegS layer with a fixed step Δ forgets on a scale of ~1/Δ
steps (the slowest mode of `Ā` decays like `e^{−Δ l}`), so the default Δ range of the layer,
`[1e-3, 1e-1]`, covers memories of 10 to 1000 steps and leaves almost nothing of an input 1000
steps back. `--recall-dt` sets the log-uniform initial range for task (a) (default
`[1e-4, 1e-2]`, i.e. ~1/(10 L) to ~10/L); Δ stays trainable. Task (b) uses the default range.

Timing: per update, from the second `dr.fit` host call on (compilation excluded), as process
CPU time and as wall-clock time; "ratio" is DeepLSSL / GRU within the same run.

    python benchmarks/lssl_memory.py [--delay 1024] [--steps 1000] [--digits-steps 1000]
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import dynrnn as dr
from dynrnn.models import DeepLSSL


class GRUModel(eqx.Module):
    """`equinox.nn.GRUCell` over the sequence, linear read-out of the last hidden state."""

    cell: eqx.nn.GRUCell
    head: eqx.nn.Linear

    def __init__(self, in_features, hidden, out_features, *, key):
        k1, k2 = jr.split(key)
        self.cell = eqx.nn.GRUCell(in_features, hidden, key=k1)
        self.head = eqx.nn.Linear(hidden, out_features, key=k2)

    def __call__(self, u, *, key=None):
        h0 = jnp.zeros(self.cell.hidden_size, u.dtype)
        h, _ = jax.lax.scan(lambda h, x: (self.cell(x, h), None), h0, u)
        return self.head(h)


def n_trainable(model) -> int:
    """Trainable parameters (the fixed HiPPO A and B of an LSSL are not trained)."""
    fixed = set()
    if isinstance(model, DeepLSSL):
        for layer in model.layers:
            if not layer.train_A:
                fixed |= {id(layer.A), id(layer.B)}
    return sum(
        x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
        if id(x) not in fixed
    )


def gru_matching(n_params, in_features, out_features, *, key):
    """The GRU hidden size whose parameter count is closest to `n_params`."""
    def count(h):
        return 3 * h * in_features + 3 * h * h + 4 * h + h * out_features + out_features

    h = min(range(1, 512), key=lambda h: abs(count(h) - n_params))
    return GRUModel(in_features, h, out_features, key=key)


def train(model, data, *, loss, n_steps, batch_size, lr, key, steps_per_call):
    """`dr.fit`; returns the model and the per-update CPU/wall time after the first call."""
    marks = []

    def clock(step, m, logs):
        marks.append((step, time.process_time(), time.perf_counter()))

    res = dr.fit(model, data, loss=loss, n_steps=n_steps, batch_size=batch_size, key=key,
                 progress=False, optimizer=dr.training.cosine_adam(n_steps, lr, lr / 100),
                 steps_per_call=steps_per_call, callbacks=[clock])
    (s0, c0, w0), (s1, c1, w1) = marks[0], marks[-1]
    n = max(s1 - s0, 1)
    return res.model, (c1 - c0) / n, (w1 - w0) / n


def predict(model, inputs, chunk=256):
    f = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
    return jnp.concatenate(
        [f(model, inputs[i : i + chunk]) for i in range(0, inputs.shape[0], chunk)]
    )


def recall_data(n, delay, key):
    """Channel 0: v ~ U(−1, 1) at t = 0, then zeros; channel 1: N(0, 1) distractor noise at
    every step. Target: v, after `delay` further steps."""
    k1, k2 = jr.split(key)
    v = jr.uniform(k1, (n,), minval=-1.0, maxval=1.0)
    u = jnp.zeros((n, delay + 1, 2)).at[:, 0, 0].set(v)
    u = u.at[:, :, 1].set(jr.normal(k2, (n, delay + 1)))
    return u, v[:, None]


def digits_data(key):
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # scikit-learn is optional
        raise SystemExit("the digits task needs scikit-learn (pip install scikit-learn)") from e
    d = load_digits()
    x = jnp.asarray(d.images.reshape(-1, 64, 1) / 16.0, jnp.float32)
    y = jnp.asarray(d.target, jnp.int32)
    perm = jr.permutation(key, x.shape[0])
    n_train, n_val = int(0.7 * x.shape[0]), int(0.1 * x.shape[0])
    parts = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    return [(x[i], y[i]) for i in parts]


def compare(models, train_data, val_data, test_data, *, score, loss, lrs, n_steps, batch_size,
            key, steps_per_call, lower_is_better):
    """Train every (model, lr); print one row per run and return the per-model best rows."""
    rows = []
    for name, model in models:
        for lr in lrs:
            trained, cpu, wall = train(model, train_data, loss=loss, n_steps=n_steps,
                                       batch_size=batch_size, lr=lr, key=key,
                                       steps_per_call=steps_per_call)
            rows.append(dict(name=name, n=n_trainable(model), lr=lr,
                             val=score(trained, *val_data), test=score(trained, *test_data),
                             cpu=cpu, wall=wall))
    gru_cpu = min(r["cpu"] for r in rows if r["name"] == "GRU")
    gru_wall = min(r["wall"] for r in rows if r["name"] == "GRU")
    print("| model | parameters | learning rate | validation | test | CPU ms / update "
          "| wall ms / update | CPU ratio to GRU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['n']} | {r['lr']:g} | {r['val']:.4f} | {r['test']:.4f} "
              f"| {1e3 * r['cpu']:.1f} | {1e3 * r['wall']:.1f} | {r['cpu'] / gru_cpu:.2f} |")
    print(f"\n(GRU per update: {1e3 * gru_cpu:.1f} ms CPU, {1e3 * gru_wall:.1f} ms wall.)")
    best = {}
    for r in rows:
        b = best.get(r["name"])
        better = b is None or (r["val"] < b["val"] if lower_is_better else r["val"] > b["val"])
        if better:
            best[r["name"]] = r
    print("\nSelected by validation: " + "; ".join(
        f"{name} (lr {r['lr']:g}): test {r['test']:.4f}" for name, r in best.items()) + "\n")
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delay", type=int, default=1024)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--digits-steps", type=int, default=1000)
    p.add_argument("--lrs", type=str, default="3e-3,1e-2")
    p.add_argument("--d-model", type=int, default=16)
    p.add_argument("--state-size", type=int, default=64)
    p.add_argument("--recall-dt", type=str, default="1e-4,1e-2",
                   help="dt_min,dt_max of the LSSL layers for the recall task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-recall", action="store_true")
    p.add_argument("--skip-digits", action="store_true")
    args = p.parse_args()
    lrs = [float(x) for x in args.lrs.split(",")]
    key = jr.PRNGKey(args.seed)
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, dr.fit, "
          f"learning rates {lrs}\n")

    if not args.skip_recall:
        k_tr, k_val, k_te, k_l, k_g, k_fit = jr.split(jr.fold_in(key, 1), 6)
        dt_min, dt_max = (float(x) for x in args.recall_dt.split(","))
        lssl = DeepLSSL(2, args.d_model, 2, 1, state_size=args.state_size, task="regression",
                        pooling="last", dt_min=dt_min, dt_max=dt_max, key=k_l)
        gru = gru_matching(n_trainable(lssl), 2, 1, key=k_g)
        print(f"### (a) recall after {args.delay} steps of distractor noise "
              f"(MSE; predicting 0 gives 0.333; {args.steps} updates of batch 32; "
              f"LSSL Δ ∈ [{dt_min:g}, {dt_max:g}])\n")

        def mse(m, u, v):
            return float(jnp.mean((predict(m, u) - v) ** 2))

        compare([("LegS DeepLSSL", lssl), ("GRU", gru)], recall_data(1024, args.delay, k_tr),
                recall_data(256, args.delay, k_val), recall_data(512, args.delay, k_te),
                score=mse, loss="mse", lrs=lrs, n_steps=args.steps, batch_size=32, key=k_fit,
                steps_per_call=100, lower_is_better=True)

    if not args.skip_digits:
        k_data, k_l, k_g, k_fit = jr.split(jr.fold_in(key, 2), 4)
        train_d, val_d, test_d = digits_data(k_data)
        lssl = DeepLSSL(1, args.d_model, 2, 10, state_size=args.state_size, pooling="mean",
                        key=k_l)
        gru = gru_matching(n_trainable(lssl), 1, 10, key=k_g)
        print(f"### (b) sequential digits, pixel by pixel (64 steps; {train_d[0].shape[0]} "
              f"train, {val_d[0].shape[0]} validation, {test_d[0].shape[0]} test; "
              f"{args.digits_steps} updates of batch 64; accuracy)\n")

        def accuracy(m, x, y):
            return float(jnp.mean(jnp.argmax(predict(m, x), -1) == y))

        compare([("LegS DeepLSSL", lssl), ("GRU", gru)], train_d, val_d, test_d,
                score=accuracy, loss="cross_entropy", lrs=lrs, n_steps=args.digits_steps,
                batch_size=64, key=k_fit, steps_per_call=100, lower_is_better=False)


if __name__ == "__main__":
    main()
