"""Benchmark of the `dr.scan` engines; prints Markdown tables (timings as ratios).

1. `dr.scan.linear` with diagonal coefficients (float32): `"sequential"`, `"associative"` and
   `"auto"` over T in {1k, 4k, 16k, 65k, 262k} and D in {1, 16, 64}, forward and gradient;
   ratios are against the sequential scan of the same size, measured in the same run.
2. `dr.scan.deer` (float32) for a PLRNN and a GRU cell: sequential `lax.scan` vs DEER vs
   quasi-DEER, with the number of Newton iterations and the maximal deviation from the
   sequential trajectory.

Usage: `python benchmarks/scan.py [--quick] [--max-t 262144] [--deer-t 1000,10000]`.
Benchmarks never assert; on CPU DEER is expected to be slower than `lax.scan`.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import dynrnn as dr
from dynrnn.scan._linear import _choose_method


_CLOCK = time.process_time


def _time(fn, *args, repeats: int = 5, budget: float = 2.0) -> float:
    """Best time of `fn(*args)` (compiled before timing), in seconds."""
    return _time_interleaved({"fn": fn}, *args, repeats=repeats, budget=budget)["fn"]


def _time_interleaved(fns: dict, *args, repeats: int = 15, budget: float = 3.0) -> dict:
    """Best time of each function, timed in interleaved rounds.

    The clock is the CPU time of this process (all its threads), not wall time: on a shared
    machine wall time is dominated by other processes (we measured load averages of 15 on
    2 cores). With `--wall` the wall clock is used instead (for an idle machine or a GPU).
    """
    calls = {}
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args))  # compile
        t0 = _CLOCK()
        jax.block_until_ready(fn(*args))
        # Short calls are repeated back to back so that one measurement lasts >= ~5 ms.
        calls[name] = max(1, min(1000, int(5e-3 / max(_CLOCK() - t0, 1e-7))))
    best = dict.fromkeys(fns, np.inf)
    start = time.perf_counter()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = _CLOCK()
            for _ in range(calls[name]):
                out = fn(*args)
            jax.block_until_ready(out)
            best[name] = min(best[name], (_CLOCK() - t0) / calls[name])
        if time.perf_counter() - start > budget:
            break
    return best


def linear_table(lengths, dims, *, grad: bool) -> str:
    rows = [
        "| T | D | sequential (ms) | associative / seq | auto / seq | auto picks | "
        "picked / faster | auto / faster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    worst = worst_pick = 0.0
    for T in lengths:
        for D in dims:
            ka, kb = jr.split(jr.PRNGKey(T + D))
            a = jr.uniform(ka, (T, D), jnp.float32, 0.5, 1.0)
            b = jr.normal(kb, (T, D), jnp.float32)
            fns = {}
            for method in ("sequential", "associative", "auto"):
                if grad:
                    fns[method] = jax.jit(
                        jax.grad(
                            lambda a, b, m=method: jnp.sum(dr.scan.linear(a, b, method=m) ** 2),
                            argnums=(0, 1),
                        )
                    )
                else:
                    fns[method] = jax.jit(lambda a, b, m=method: dr.scan.linear(a, b, method=m))
            times = _time_interleaved(fns, a, b)
            seq, ass, auto = times["sequential"], times["associative"], times["auto"]
            ratio = auto / min(seq, ass)
            picked = _choose_method("auto", T)
            pick_ratio = times[picked] / min(seq, ass)
            worst, worst_pick = max(worst, ratio), max(worst_pick, pick_ratio)
            rows.append(
                f"| {T} | {D} | {seq * 1e3:.3g} | {ass / seq:.2f} | {auto / seq:.2f} | "
                f"{picked} | {pick_ratio:.2f} | {ratio:.2f} |"
            )
    rows.append(
        f"\nWorst ratio of the method `auto` picks to the faster method: {worst_pick:.2f}x; "
        f"of `auto` timed separately (the same compiled computation, so the difference is "
        f"timing noise): {worst:.2f}x."
    )
    return "\n".join(rows)


def _plrnn_step(params):
    A, W, h = params

    def step(z, x):
        return A * z + W @ jax.nn.relu(z) + h + x

    return step


def _gru_step(params):
    Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh = params

    def step(h, x):
        z = jax.nn.sigmoid(Wz @ x + Uz @ h + bz)
        r = jax.nn.sigmoid(Wr @ x + Ur @ h + br)
        n = jnp.tanh(Wh @ x + Uh @ (r * h) + bh)
        return (1 - z) * n + z * h

    return step


def _make(model: str, D: int, key):
    keys = jr.split(key, 10)
    if model == "PLRNN":
        A = jr.uniform(keys[0], (D,), jnp.float32, 0.3, 0.7)
        W = jr.normal(keys[1], (D, D), jnp.float32) * 0.2 / np.sqrt(D)
        h = jr.normal(keys[2], (D,), jnp.float32) * 0.1
        return _plrnn_step((A, W, h))
    mats = [jr.normal(k, (D, D), jnp.float32) * 0.5 / np.sqrt(D) for k in keys[:6]]
    biases = [jr.normal(k, (D,), jnp.float32) * 0.1 for k in keys[6:9]]
    Wz, Uz, Wr, Ur, Wh, Uh = mats
    bz, br, bh = biases
    return _gru_step((Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh))


def deer_table(lengths, dims) -> str:
    rows = [
        "| cell | T | D | sequential (ms) | DEER / seq | DEER iters | DEER max err | "
        "quasi / seq | quasi iters | quasi max err |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in ("PLRNN", "GRU"):
        for T in lengths:
            for D in dims:
                key = jr.PRNGKey(T * 7 + D)
                step = _make(model, D, key)
                h0 = jnp.zeros((D,), jnp.float32)
                xs = 0.5 * jr.normal(jr.fold_in(key, 1), (T, D), jnp.float32)

                def seq(h0, xs, step=step):
                    return jax.lax.scan(lambda h, x: (step(h, x),) * 2, h0, xs)[1]

                seq_fn = jax.jit(seq)
                t_seq = _time(seq_fn, h0, xs)
                ref = np.asarray(seq_fn(h0, xs))
                cells = []
                for jac in ("full", "diagonal"):
                    fn = jax.jit(
                        lambda h0, xs, step=step, jac=jac: dr.scan.deer(
                            step, h0, xs, jacobian=jac, fallback=False
                        )
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t = _time(fn, h0, xs, repeats=3)
                        states, info = fn(h0, xs)
                    err = float(np.max(np.abs(np.asarray(states) - ref)))
                    cells.append(f"{t / t_seq:.1f} | {int(info.iterations)} | {err:.1e}")
                rows.append(
                    f"| {model} | {T} | {D} | {t_seq * 1e3:.3g} | " + " | ".join(cells) + " |"
                )
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-t", type=int, default=262144)
    parser.add_argument("--deer-t", default="1000,10000")
    parser.add_argument("--deer-d", default="2,8")
    parser.add_argument("--no-grad", action="store_true")
    parser.add_argument("--no-deer", action="store_true")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock")
    args = parser.parse_args()
    global _CLOCK
    if args.wall or jax.default_backend() != "cpu":
        _CLOCK = time.perf_counter
    lengths = [t for t in (1024, 4096, 16384, 65536, 262144) if t <= args.max_t]
    dims = (1, 16, 64)
    print(
        f"Hardware: {platform.processor() or platform.machine()}, "
        f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"JAX {jax.__version__}; clock: "
        f"{'wall' if _CLOCK is time.perf_counter else 'process CPU time'}"
    )
    print("\n### Diagonal linear scan, forward (float32)\n")
    print(linear_table(lengths, dims, grad=False))
    if not args.no_grad:
        print("\n### Diagonal linear scan, gradient of sum(h^2) w.r.t. (a, b) (float32)\n")
        print(linear_table(lengths, dims, grad=True))
    if not args.no_deer:
        print("\n### DEER vs sequential (float32; errors are max |h - h_seq|)\n")
        deer_lengths = [int(t) for t in args.deer_t.split(",")]
        deer_dims = [int(d) for d in args.deer_d.split(",")]
        print(deer_table(deer_lengths, deer_dims))


if __name__ == "__main__":
    main()
