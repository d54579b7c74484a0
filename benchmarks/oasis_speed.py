"""Spike inference against OASIS (oasis-deconv) on spikefinder set 5, side by side.

Both infer spikes from each of the 9 calcium traces of spikefinder set 5 (GCaMP6s, 100 Hz,
16 919 frames; `../shared/data/spikefinder`, or `$DYNRNN_SHARED_DATA`) with their defaults:
an AR(1) kernel estimated per neuron from the autocovariance (×0.98), the noise sd from the
power spectral density, a non-negative baseline and the noise-constrained L1 problem
(`oasis.functions.deconvolve(y)`; `dr.calcium.deconvolve(y)`). Accuracy is the spikefinder
measure: Pearson r between inferred and true spikes summed in 40 ms bins (25 Hz), per neuron
and averaged. Time: the whole set, best of `--repeats` passes, the two calls interleaved so that
load from other processes affects both alike; ratio = dynrnn / oasis-deconv (< 1: dynrnn is
faster).

Usage: `python benchmarks/oasis_speed.py [--repeats 5]` (needs `pip install oasis-deconv`).
Prints Markdown tables; benchmarks never assert.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import time
import warnings

import numpy as np

import dynrnn as dr


SHARED = pathlib.Path(os.environ.get(
    "DYNRNN_SHARED_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def corr_25hz(s, truth, frames=4):
    n = min(len(s), len(truth)) // frames * frames
    a = np.asarray(s[:n]).reshape(-1, frames).sum(1)
    b = np.asarray(truth[:n]).reshape(-1, frames).sum(1)
    return float(np.corrcoef(a, b)[0, 1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import oasis
    from oasis.functions import deconvolve as oasis_deconvolve

    folder = SHARED / "spikefinder"
    calcium = dr.io.open_recording(folder / "5.train.calcium.csv", rate=100.0)["activity"].values
    spikes = dr.io.open_recording(folder / "5.train.spikes.csv", rate=100.0)["activity"].values
    traces = [calcium[:, i][np.isfinite(calcium[:, i])] for i in range(calcium.shape[1])]
    truth = [spikes[: len(y), i] for i, y in enumerate(traces)]

    def ours():
        return [dr.calcium.deconvolve(y)[0] for y in traces]

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [oasis_deconvolve(y)[1] for y in traces]

    times = {"dynrnn": [], "oasis": []}
    out = {}
    for _ in range(args.repeats):
        for name, f in (("oasis", theirs), ("dynrnn", ours)):
            t0 = time.perf_counter()
            out[name] = f()
            times[name].append(time.perf_counter() - t0)
    r = {name: [corr_25hz(s, t) for s, t in zip(out[name], truth)] for name in out}
    print(f"oasis-deconv {getattr(oasis, '__version__', '0.3.2')}, NumPy {np.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs; spikefinder set 5, "
          f"{len(traces)} neurons x {calcium.shape[0]} frames, best of {args.repeats}\n")
    print("| method | mean r (25 Hz) | " + " | ".join(f"n{i}" for i in range(len(traces)))
          + " | time, whole set (ms) |")
    print("|---" * (len(traces) + 3) + "|")
    labels = {"dynrnn": "`dr.calcium.deconvolve(y)` (PAVA, NumPy/SciPy)",
              "oasis": "`oasis.functions.deconvolve(y)` (Cython)"}
    for name in ("dynrnn", "oasis"):
        print(f"| {labels[name]} | {np.mean(r[name]):.4f} | "
              + " | ".join(f"{v:.3f}" for v in r[name]) + f" | {1e3 * min(times[name]):.0f} |")
    diff = np.mean(r["dynrnn"]) - np.mean(r["oasis"])
    ratio = min(times["dynrnn"]) / min(times["oasis"])
    print(f"\nmean r difference (dynrnn - oasis): {diff:+.4f}; time ratio dynrnn / oasis: "
          f"{ratio:.2f}")


if __name__ == "__main__":
    main()
