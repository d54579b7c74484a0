"""Benchmark of `dr.metrics` against plain NumPy/SciPy implementations; prints a Markdown table.

Each measure runs on a `(time, dims)` series of 100k x 3 and 10k x 64 (an AR(1) process, the
generated series a perturbed copy): D_stsp by binning (NumPy: `np.histogramdd` on the dense
grid; not defined for 64 dimensions, where 30^64 cells are out of reach for both), D_stsp by
Gaussian mixture (NumPy: float64 distance matrix and `scipy.special.logsumexp`), D_H (NumPy:
`np.fft.rfft` and `scipy.ndimage.gaussian_filter1d`), PE(20) of a linear model (NumPy:
vectorised over windows, a loop over the 20 steps), and the Lyapunov spectrum of a tanh RNN map
over as many steps as the series has (NumPy: a Python loop with `np.linalg.qr` every step).

The dynrnn column is the best of several calls after compilation (compilation is reported
separately); ratio = NumPy / dynrnn, so > 1 means dynrnn is faster. Calls are interleaved so
that load from other processes affects both alike. Float32 (JAX's default).

Usage: `python benchmarks/metrics.py [--quick]`. Benchmarks never assert.
"""

from __future__ import annotations

import argparse
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import logsumexp

import dynrnn as dr
from dynrnn.models import AbstractLatentModel, Identity


# ---------------------------------------------------------------- plain NumPy implementations


def numpy_stsp_bins(x_true, x_gen, n_bins=30, alpha=1e-5):
    sd = x_true.std(axis=0, ddof=1)
    lo, hi = x_true.min(axis=0) - 0.1 * sd, x_true.max(axis=0) + 0.1 * sd
    edges = [np.linspace(a, b, n_bins + 1) for a, b in zip(lo, hi)]
    p = np.histogramdd(x_true, bins=edges)[0].ravel()
    q = np.histogramdd(x_gen, bins=edges)[0].ravel()
    p = (p + alpha) / (p.sum() + alpha * p.size)
    q = (q + alpha) / (q.sum() + alpha * q.size)
    return np.sum(p * np.log(p / q))


def numpy_stsp_gmm(x_true, x_gen, n_samples=1000, max_points=10_000, seed=0):
    rng = np.random.default_rng(seed)
    x_true, x_gen = x_true[:max_points], x_gen[:max_points]
    samples = x_true[rng.integers(0, len(x_true), n_samples)]
    samples = samples + rng.standard_normal(samples.shape)

    def log_density(centres):
        d2 = (samples**2).sum(1)[:, None] + (centres**2).sum(1)[None] - 2 * samples @ centres.T
        return logsumexp(-np.maximum(d2, 0) / 2, axis=1) - np.log(len(centres))

    return np.mean(log_density(x_true) - log_density(x_gen))


def numpy_hellinger(x_true, x_gen, sigma=20.0):
    out = []
    for a, b in zip(x_true.T, x_gen.T):
        ps = []
        for x in (a, b):
            power = np.abs(np.fft.rfft((x - x.mean()) / x.std())) ** 2
            power = np.maximum(gaussian_filter1d(power, sigma, mode="mirror"), 0)
            ps.append(power / power.sum())
        out.append(np.sqrt(max(1 - np.sum(np.sqrt(ps[0] * ps[1])), 0)))
    return np.mean(out)


def numpy_prediction_error(A, b, x, n=20):
    z = x[:-n].copy()
    for _ in range(n):
        z = z @ A.T + b
    return np.mean((z - x[n:]) ** 2)


def numpy_lyapunov(W, c, z, n_steps):
    q = np.eye(len(z))
    total = np.zeros(len(z))
    for _ in range(n_steps):
        h = np.tanh(W @ z + c)
        jac = (1 - h**2)[:, None] * W
        q, r = np.linalg.qr(jac @ q)
        total += np.log(np.abs(np.diag(r)))
        z = h
    return np.sort(total / n_steps)[::-1]


# ---------------------------------------------------------------- models for PE and Lyapunov


class Linear(AbstractLatentModel):
    A: jax.Array
    b: jax.Array
    observation: Identity

    def step(self, z, u=None):
        return self.A @ z + self.b


class TanhRNN(eqx.Module):
    W: jax.Array
    c: jax.Array

    def step(self, z, u=None):
        return jnp.tanh(self.W @ z + self.c)

    def jacobian(self, z, u=None):
        h = jnp.tanh(self.W @ z + self.c)
        return (1 - h**2)[:, None] * self.W


# ---------------------------------------------------------------- timing


def _best(fns: dict, repeats: int, budget: float) -> dict:
    best = dict.fromkeys(fns, np.inf)
    start = time.perf_counter()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return best


def _first(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def ar_series(rng, n, dims, coef=0.98):
    noise = rng.standard_normal((n, dims))
    x = np.empty((n, dims))
    x[0] = noise[0]
    for t in range(1, n):
        x[t] = coef * x[t - 1] + noise[t]
    return x


def cases(n, dims, rng):
    x = ar_series(rng, n, dims)
    y = 1.05 * x + 0.2 * rng.standard_normal(x.shape)
    x32, y32 = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    A = 0.95 * np.linalg.qr(rng.standard_normal((dims, dims)))[0]
    b = 0.05 * rng.standard_normal(dims)
    linear = Linear(
        A=jnp.asarray(A, jnp.float32),
        b=jnp.asarray(b, jnp.float32),
        observation=Identity(dims, dims),
    )
    W = 1.5 * rng.standard_normal((dims, dims)) / np.sqrt(dims)
    c = 0.1 * rng.standard_normal(dims)
    rnn = TanhRNN(jnp.asarray(W, jnp.float32), jnp.asarray(c, jnp.float32))
    z0 = 0.1 * rng.standard_normal(dims)
    out = []
    if dims < 6:
        out.append(
            (
                "D_stsp bins (30/dim)",
                lambda: dr.metrics.state_space_divergence(x32, y32),
                lambda: numpy_stsp_bins(x, y),
            )
        )
    out += [
        (
            "D_stsp GMM (1000 draws, 10k pts)",
            lambda: dr.metrics.state_space_divergence(x32, y32, method="gmm"),
            lambda: numpy_stsp_gmm(x, y),
        ),
        (
            "D_H (sigma 20)",
            lambda: dr.metrics.power_spectrum_distance(x32, y32),
            lambda: numpy_hellinger(x, y),
        ),
        (
            "PE(20), linear model",
            lambda: dr.metrics.prediction_error(linear, x32, n=20),
            lambda: numpy_prediction_error(A, b, x),
        ),
        (
            f"Lyapunov spectrum, tanh RNN map ({n} steps)",
            lambda: dr.metrics.lyapunov_spectrum(rnn, jnp.asarray(z0, jnp.float32), n_steps=n),
            lambda: numpy_lyapunov(W, c, z0, n),
        ),
    ]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10x shorter series")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    rng = np.random.default_rng(0)
    print(
        f"`dr.metrics` vs NumPy/SciPy; {platform.processor() or platform.machine()}, "
        f"JAX {jax.__version__} ({jax.default_backend()}), float32\n"
    )
    print(
        "| measure | series | dynrnn (ms) | first call incl. compile (ms) | NumPy (ms) | ratio "
        "| value dynrnn / NumPy |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, dims in ((100_000 // scale, 3), (10_000 // scale, 64)):
        for name, ours, numpy_fn in cases(n, dims, rng):
            first = _first(ours)
            value_ours = float(np.ravel(ours())[0])
            value_numpy = float(np.ravel(numpy_fn())[0])
            best = _best({"ours": ours, "numpy": numpy_fn}, repeats=5, budget=20.0)
            print(
                f"| {name} | {n} x {dims} | {1e3 * best['ours']:.1f} | {1e3 * first:.0f} | "
                f"{1e3 * best['numpy']:.1f} | {best['numpy'] / best['ours']:.1f} | "
                f"{value_ours:.4f} / {value_numpy:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
