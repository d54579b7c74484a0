"""LSSL speed: convolution-mode vs recurrent-mode training step, and the Krylov kernel's cost.

(1) One Adam training step (forward, backward, update; jitted, float32) of one `LSSL` layer on
    a single sequence of length `L` (default 16384), in convolution mode (Krylov kernel + FFT)
    and in recurrent mode (`dynrnn.scan.linear` with the dense `Ā`); ratio recurrent/convolution.
(2) The kernel `K̄_l = C Ā^l B̄`, `l < L`, by Krylov doubling (`dynrnn.models.krylov`,
    ⌈log₂ L⌉ matrix products) against `L` sequential matrix-vector products (`lax.scan`), over L;
    times are relative to the doubling at the smallest L.
(3) One Adam update (forward, backward, update; jitted, float32) of the `lssl_memory.py`
    models: a 2-layer LegS DeepLSSL (d_model 16, N = 64) against a GRU of equal parameter
    count, batch 64 at L = 64 and batch 32 at L = 1025; and the bilinear discretisation of
    16 LegS channels (N = 64, value and gradient in Δ) by forward substitution (what the layer
    uses for its lower-triangular fixed A) against an LU solve (`jnp.linalg.solve`, the path of
    a trained A).

Timings: median of `--reps` runs after one warm-up (compilation excluded).

    python benchmarks/lssl_speed.py [--length 16384] [--channels 4] [--state 16] [--reps 3]
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from dynrnn.models import LSSL, DeepLSSL, discretize, hippo, krylov
from dynrnn.models._lssl.hippo_matrices import _discretize


def median_time(f, *args, reps):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def train_step_time(layer, u, mode, reps):
    opt = optax.adam(1e-3)
    params, static = eqx.partition(layer, eqx.is_inexact_array)
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        loss = lambda p: jnp.mean(eqx.combine(p, static)(u, mode=mode) ** 2)
        g = jax.grad(loss)(p)
        up, s = opt.update(g, s, p)
        return optax.apply_updates(p, up), s

    return median_time(step, params, state, reps=reps)


def update_time(model, x, y, loss, reps):
    """Median time of one jitted Adam update of `model` on the batch `(x, y)`."""
    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(params)

    def batch_loss(p):
        out = jax.vmap(eqx.combine(p, static))(x)
        if loss == "mse":
            return jnp.mean((out - y) ** 2)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

    @jax.jit
    def step(p, s):
        g = jax.grad(batch_loss)(p)
        up, s = opt.update(g, s, p)
        return optax.apply_updates(p, up), s

    return median_time(step, params, state, reps=reps)


def deep_updates(reps):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from lssl_memory import gru_matching, n_trainable

    print("### One training update, DeepLSSL (2 layers, d_model 16, N = 64, LegS) vs GRU of "
          "equal parameter count\n")
    print("| task shape | DeepLSSL (ms) | GRU (ms) | ratio DeepLSSL / GRU |")
    print("|---|---|---|---|")
    for (batch, L, fin, fout, loss) in [(64, 64, 1, 10, "ce"), (32, 1025, 2, 1, "mse")]:
        k = jr.split(jr.PRNGKey(L), 4)
        lssl = DeepLSSL(fin, 16, 2, fout, state_size=64, pooling="last",
                        task="classification" if loss == "ce" else "regression", key=k[0])
        gru = gru_matching(n_trainable(lssl), fin, fout, key=k[1])
        x = jr.normal(k[2], (batch, L, fin))
        y = (jr.randint(k[3], (batch,), 0, fout) if loss == "ce"
             else jr.normal(k[3], (batch, fout)))
        t_l = update_time(lssl, x, y, loss, reps)
        t_g = update_time(gru, x, y, loss, reps)
        print(f"| batch {batch}, L = {L} | {1e3 * t_l:.1f} | {1e3 * t_g:.1f} "
              f"| {t_l / t_g:.1f} |")
    print()

    A, B = hippo("legs", 64)
    A, B = jnp.asarray(A, jnp.float32), jnp.asarray(B, jnp.float32)
    dts = jnp.exp(jr.uniform(jr.PRNGKey(4), (16,), minval=np.log(1e-3), maxval=np.log(1e-1)))

    def disc(lower):
        def total(d):
            Ab, Bb = jax.vmap(lambda d: _discretize(A, B, d, "bilinear", 0.5, lower))(d)
            return Ab.sum() + Bb.sum()

        return jax.jit(jax.value_and_grad(total))

    t_sub = median_time(disc(True), dts, reps=max(reps, 10))
    t_lu = median_time(disc(False), dts, reps=max(reps, 10))
    print("### Bilinear discretisation of 16 LegS channels (N = 64), value and gradient\n")
    print("| solve | time (ms) | ratio to substitution |")
    print("|---|---|---|")
    print(f"| forward substitution (XLA) | {1e3 * t_sub:.2f} | 1.00 |")
    print(f"| LU (`jnp.linalg.solve`, LAPACK on CPU) | {1e3 * t_lu:.2f} | {t_lu / t_sub:.2f} |")
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length", type=int, default=16384)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--state", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--kernel-lengths", type=str, default="256,1024,4096,16384,65536")
    p.add_argument("--kernel-state", type=int, default=64)
    p.add_argument("--kernel-channels", type=int, default=8)
    p.add_argument("--skip-deep", action="store_true", help="skip table (3)")
    args = p.parse_args()
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, float32\n")

    key = jr.PRNGKey(0)
    H, N, L = args.channels, args.state, args.length
    layer = LSSL(H, N, key=key)
    u = jr.normal(jr.PRNGKey(1), (L, H))
    print(f"### Training step, one LSSL layer (H = {H}, N = {N}), L = {L}\n")
    print("| mode | time per step (ms) | ratio to convolution |")
    print("|---|---|---|")
    t_conv = train_step_time(layer, u, "convolution", args.reps)
    t_rec = train_step_time(layer, u, "recurrent", args.reps)
    print(f"| convolution (Krylov + FFT) | {1e3 * t_conv:.1f} | 1.00 |")
    print(f"| recurrent (`scan.linear`, dense Ā) | {1e3 * t_rec:.1f} | {t_rec / t_conv:.2f} |")
    print()

    Hk, Nk = args.kernel_channels, args.kernel_state
    A, B = hippo("legs", Nk)
    dts = jnp.exp(jr.uniform(jr.PRNGKey(2), (Hk,), minval=np.log(1e-3), maxval=np.log(1e-1)))
    Ab, Bb = jax.vmap(lambda d: discretize(A, B, d))(dts)
    Ab, Bb = Ab.astype(jnp.float32), Bb.astype(jnp.float32)
    C = jr.normal(jr.PRNGKey(3), (Hk, Nk))

    def doubling(L):
        return jax.jit(lambda a, b, c: jax.vmap(lambda a, b, c: krylov(L, a, b) @ c)(a, b, c))

    def sequential(L):
        def one(a, b, c):
            def body(x, _):
                return a @ x, c @ x

            return jax.lax.scan(body, b, None, length=L)[1]

        return jax.jit(jax.vmap(one))

    lengths = [int(x) for x in args.kernel_lengths.split(",")]
    print(f"### Kernel K̄ (H = {Hk}, N = {Nk}, LegS, bilinear) over L\n")
    print("| L | matrix products (doubling) | doubling (ms) | relative to smallest L "
          "| sequential (ms) | sequential / doubling |")
    print("|---|---|---|---|---|---|")
    base = None
    for L in lengths:
        td = median_time(doubling(L), Ab, Bb, C, reps=args.reps)
        ts = median_time(sequential(L), Ab, Bb, C, reps=args.reps)
        base = base or td
        rounds = int(np.ceil(np.log2(L)))
        print(f"| {L} | {2 * rounds - 1} | {1e3 * td:.2f} | {td / base:.1f} | {1e3 * ts:.2f} "
              f"| {ts / td:.1f} |")
    print()
    if not args.skip_deep:
        deep_updates(args.reps)


if __name__ == "__main__":
    main()
