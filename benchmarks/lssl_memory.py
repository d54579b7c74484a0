"""Long-memory fidelity of a LegS DeepLSSL against a GRU of (about) equal parameter count.

Tasks:
(a) recall: the first input is a value v ~ U(−1, 1) on channel 0 (zeros after it), while
    channel 1 carries N(0, 1) distractor noise at every step; after `--delay` further steps
    the model must output v (MSE; predicting 0 scores 1/3);
(b) sequential digits: scikit-learn's 8×8 digits read pixel by pixel (64 steps, one pixel per
    step, scaled to [0, 1]), 10 classes, 80/20 split.

Both models are trained with the same optimiser (`dr.fit`, Adam with cosine decay; a plain
Optax loop if `dr.fit` is unavailable) for the same number of updates and batch size; training
times include compilation. Prints Markdown tables.

    python benchmarks/lssl_memory.py [--delay 1024] [--steps 600] [--digits-steps 1500]
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

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


def train(model, data, *, loss, n_steps, batch_size, lr, key, use_fit=True):
    t0 = time.perf_counter()
    if use_fit and hasattr(dr, "fit"):
        res = dr.fit(model, data, loss=loss, n_steps=n_steps, batch_size=batch_size, key=key,
                     progress=False, learning_rate=lr, final_learning_rate=lr / 100)
        model = res.model
    else:
        inputs, targets = data
        opt = optax.adam(optax.cosine_decay_schedule(lr, n_steps, 0.01))
        params, static = eqx.partition(model, eqx.is_inexact_array)
        state = opt.init(params)

        def batch_loss(p, ub, yb):
            out = jax.vmap(eqx.combine(p, static))(ub)
            if loss == "mse":
                return jnp.mean((out - yb) ** 2)
            return optax.softmax_cross_entropy_with_integer_labels(out, yb).mean()

        @jax.jit
        def update(p, s, k):
            idx = jr.randint(k, (batch_size,), 0, inputs.shape[0])
            g = jax.grad(batch_loss)(p, inputs[idx], targets[idx])
            up, s = opt.update(g, s, p)
            return optax.apply_updates(p, up), s

        for i in range(n_steps):
            params, state = update(params, state, jr.fold_in(key, i))
        model = eqx.combine(params, static)
    jax.block_until_ready(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
    return model, time.perf_counter() - t0


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
    n_train = int(0.8 * x.shape[0])
    tr, te = perm[:n_train], perm[n_train:]
    return (x[tr], y[tr]), (x[te], y[te])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delay", type=int, default=1024)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--digits-steps", type=int, default=1500)
    p.add_argument("--d-model", type=int, default=16)
    p.add_argument("--state-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-recall", action="store_true")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--optax-loop", action="store_true",
                   help="train with a plain per-step Optax loop instead of dr.fit")
    args = p.parse_args()
    key = jr.PRNGKey(args.seed)
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, "
          f"{'dr.fit' if hasattr(dr, 'fit') and not args.optax_loop else 'Optax loop'}\n")

    if not args.skip_recall:
        k_data, k_test, k_l, k_g, k_fit = jr.split(jr.fold_in(key, 1), 5)
        train_data = recall_data(1024, args.delay, k_data)
        test_u, test_v = recall_data(512, args.delay, k_test)
        lssl = DeepLSSL(2, args.d_model, 2, 1, state_size=args.state_size, task="regression",
                        pooling="last", key=k_l)
        gru = gru_matching(n_trainable(lssl), 2, 1, key=k_g)
        print(f"### (a) recall after {args.delay} steps of distractor noise "
              "(MSE; predicting 0 gives 0.333)\n")
        print("| model | parameters | test MSE | training time (s) | time ratio |")
        print("|---|---|---|---|---|")
        rows = []
        for name, model, lr in [("LegS DeepLSSL", lssl, 1e-2), ("GRU", gru, 1e-2)]:
            trained, secs = train(model, train_data, loss="mse", n_steps=args.steps,
                                  batch_size=32, lr=lr, key=k_fit,
                                  use_fit=not args.optax_loop)
            mse = float(jnp.mean((predict(trained, test_u) - test_v) ** 2))
            rows.append((name, n_trainable(model), mse, secs))
        for name, n, mse, secs in rows:
            print(f"| {name} | {n} | {mse:.4f} | {secs:.1f} | {secs / rows[1][3]:.2f} |")
        print()

    if not args.skip_digits:
        k_data, k_l, k_g, k_fit = jr.split(jr.fold_in(key, 2), 4)
        (xtr, ytr), (xte, yte) = digits_data(k_data)
        lssl = DeepLSSL(1, args.d_model, 2, 10, state_size=args.state_size, pooling="mean",
                        key=k_l)
        gru = gru_matching(n_trainable(lssl), 1, 10, key=k_g)
        print(f"### (b) sequential digits, pixel by pixel (64 steps; {xtr.shape[0]} train, "
              f"{xte.shape[0]} test)\n")
        print("| model | parameters | test accuracy | training time (s) | time ratio |")
        print("|---|---|---|---|---|")
        rows = []
        for name, model, lr in [("LegS DeepLSSL", lssl, 1e-2), ("GRU", gru, 1e-2)]:
            trained, secs = train(model, (xtr, ytr), loss="cross_entropy",
                                  n_steps=args.digits_steps, batch_size=64, lr=lr, key=k_fit,
                                  use_fit=not args.optax_loop)
            acc = float(jnp.mean(jnp.argmax(predict(trained, xte), -1) == yte))
            rows.append((name, n_trainable(model), acc, secs))
        for name, n, acc, secs in rows:
            print(f"| {name} | {n} | {100 * acc:.1f} % | {secs:.1f} | {secs / rows[1][3]:.2f} |")
        print()


if __name__ == "__main__":
    main()
