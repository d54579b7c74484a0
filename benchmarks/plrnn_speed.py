"""Training updates per second: dynrnn vs a straightforward PyTorch implementation.

Same model (clipped shPLRNN, Identity observations, M = 3, H = 50), same GTF forcing (α = 0.3
on the observed units), same batch shape (16 windows of 201 steps), RAdam. Three contenders:

- PyTorch (eager, a Python loop over time, `torch.set_num_threads(2)`), optional: skipped if
  torch is not installed;
- a plain jitted JAX update (one `lax.scan` over time, one update per host call);
- `dr.fit` (the whole update jitted, `steps_per_call` updates per host call).

Ratios are against PyTorch measured in the same run. Usage: python benchmarks/plrnn_speed.py
"""

from __future__ import annotations

import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import dynrnn as dr


M, H, S, T, ALPHA = 3, 50, 16, 200, 0.3


def data():
    rng = np.random.default_rng(0)
    return np.cumsum(rng.normal(size=(50_000, M)) * 0.05, axis=0).astype(np.float32)


def bench_torch(x, n_updates=100):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    A = torch.nn.Parameter(torch.rand(M, generator=g) * 0.9)
    W1 = torch.nn.Parameter((torch.rand(M, H, generator=g) * 2 - 1) / H**0.5)
    W2 = torch.nn.Parameter((torch.rand(H, M, generator=g) * 2 - 1) / M**0.5)
    h1 = torch.nn.Parameter(torch.zeros(M))
    h2 = torch.nn.Parameter((torch.rand(H, generator=g) * 2 - 1) / H**0.5)
    opt = torch.optim.RAdam([A, W1, W2, h1, h2], lr=1e-3)
    xt = torch.from_numpy(x)

    def step(z):
        a = z @ W2.T
        return A * z + (torch.relu(a + h2) - torch.relu(a)) @ W1.T + h1

    def update():
        idx = torch.randint(0, xt.shape[0] - T - 1, (S,))
        xb = torch.stack([xt[i : i + T + 1] for i in idx.tolist()], 1)  # (T+1, S, M)
        z = xb[0]
        loss = 0.0
        for t in range(1, T + 1):
            z_new = step(z)
            loss = loss + ((z_new - xb[t]) ** 2).mean()
            z = (1 - ALPHA) * z_new + ALPHA * xb[t]
        loss = loss / T
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        update()
    t0 = time.perf_counter()
    for _ in range(n_updates):
        update()
    return n_updates / (time.perf_counter() - t0)


def bench_plain_jax(x, n_updates=300):
    model = dr.models.ShallowPLRNN(latent=M, hidden=H, obs=M, key=jr.PRNGKey(0))
    tf = dr.GTF(ALPHA)
    opt = optax.radam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(params)
    xj = jnp.asarray(x)

    @jax.jit
    def update(params, state, key):
        starts = jr.randint(key, (S,), 0, xj.shape[0] - T - 1)
        xb = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(xj, s, T + 1))(starts)

        def loss(p):
            m = eqx.combine(p, static)
            return jnp.mean(jax.vmap(lambda w: dr.forcing.forced_loss(m, w, tf, ALPHA)[0])(xb))

        v, g = jax.value_and_grad(loss)(params)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, v

    params, state, v = update(params, state, jr.PRNGKey(0))
    v.block_until_ready()
    t0 = time.perf_counter()
    for i in range(n_updates):
        params, state, v = update(params, state, jr.PRNGKey(i))
    v.block_until_ready()
    return n_updates / (time.perf_counter() - t0)


def bench_fit(x, n1=500, n2=3000):
    def timed(n):
        model = dr.models.ShallowPLRNN(latent=M, hidden=H, obs=M, key=jr.PRNGKey(0))
        t0 = time.perf_counter()
        dr.fit(model, x, teacher_forcing=dr.GTF(ALPHA), n_steps=n, batch_size=S, seq_len=T,
               key=jr.PRNGKey(1), progress=False, steps_per_call=250)
        return time.perf_counter() - t0

    t1, t2 = timed(n1), timed(n2)
    return (n2 - n1) / (t2 - t1)


def main():
    x = data()
    print(f"# shPLRNN training speed — {platform.machine()}, {os.cpu_count()} cores, "
          f"JAX {jax.__version__}\n")
    torch_rate = bench_torch(x)
    plain = bench_plain_jax(x)
    fit_rate = bench_fit(x)
    print("| implementation | updates/s | × PyTorch |")
    print("|---|---|---|")
    if torch_rate:
        print(f"| PyTorch eager (2 threads) | {torch_rate:.1f} | 1.0 |")
    for name, r in [("JAX, plain jitted update", plain), ("dr.fit (250 updates/call)", fit_rate)]:
        ratio = f"{r / torch_rate:.1f}" if torch_rate else "n/a"
        print(f"| {name} | {r:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
