"""Infer spikes from calcium on the spikefinder set 5 (GCaMP6s, mouse V1, 100 Hz) and score
them as the spikefinder challenge does.

**Needs data that does not ship with dynrnn:** the spikefinder training set 5
(`5.train.calcium.csv`, `5.train.spikes.csv`, from the spikefinder challenge, Berens et al.
2018) in `$DYNRNN_SHARED_DATA/spikefinder/` (default `../shared/data/spikefinder/` beside a
checkout), or in the folder given with `--data DIR`.

For every neuron the AR kernel of the calcium is estimated from the trace's autocovariance
(`dr.calcium.estimate_gamma`, AR(1)) or fixed to a GCaMP6s-like AR(2) kernel with a rise time
(`dr.calcium.gamma_from_tau`), and the spikes are inferred by the non-negative, L1-penalised
deconvolution `dr.calcium.deconvolve` (the inverse problem of `dr.models.CalciumObservation`;
windowed `scipy.optimize.nnls`). Protocol (Berens et al. 2018): inferred and true spike counts
are both summed into 40 ms bins (4 frames of 10 ms, i.e. resampled to 25 Hz) and compared
with the Pearson correlation per neuron. Baseline: the plain AR(1) inverse filter
`max(y_t − γ y_{t−1}, 0)` with `γ` the lag-1 autocorrelation (`dr.calcium.naive_deconvolve`).

    python examples/spikefinder.py [--frames 16919] [--sparsity 1.0]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numpy as np

import dynrnn as dr


SHARED = pathlib.Path(os.environ.get(
    "DYNRNN_SHARED_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DATA = SHARED / "spikefinder"


def load(frames: int | None = None, path: pathlib.Path = DATA):
    if not (path / "5.train.calcium.csv").is_file():
        raise FileNotFoundError(
            f"spikefinder set 5 not found in {path}: this example needs 5.train.calcium.csv and "
            "5.train.spikes.csv there (set DYNRNN_SHARED_DATA to the folder holding "
            "spikefinder/); they do not ship with dynrnn."
        )
    calcium = dr.io.open_recording(path / "5.train.calcium.csv", rate=100.0)
    spikes = dr.io.open_recording(path / "5.train.spikes.csv", rate=100.0)
    if frames is not None:
        calcium = calcium.isel(time=slice(0, frames))
        spikes = spikes.isel(time=slice(0, frames))
    return calcium, spikes


def bin40(x: np.ndarray) -> np.ndarray:
    """Sum 10 ms frames into 40 ms bins (drops a last incomplete bin)."""
    n = x.shape[0] // 4 * 4
    return x[:n].reshape(-1, 4, *x.shape[1:]).sum(1)


def correlation(inferred: np.ndarray, truth: np.ndarray) -> float:
    a, b = bin40(inferred), bin40(truth)
    keep = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


# A fixed GCaMP6s-like kernel: decay 1 s, rise 0.1 s (not fitted to these spikes).
TAU_DECAY, TAU_RISE = 1.0, 0.1
AR1 = "AR(1) deconvolution, γ from autocovariance"
AR2 = f"AR(2) deconvolution, kernel τ_d {TAU_DECAY} s, τ_r {TAU_RISE} s"
NAIVE = "naive AR(1): max(y_t − γ y_(t−1), 0)"


def run(*, frames: int | None = None, sparsity: float = 1.0) -> dict:
    calcium, spikes = load(frames)
    y_all = calcium["activity"].values
    s_all = spikes["activity"].values
    rate = calcium.attrs["rate"]
    rows = {AR1: [], AR2: [], NAIVE: []}
    seconds = {AR1: 0.0, AR2: 0.0, NAIVE: 0.0}
    kernel = dr.calcium.gamma_from_tau(TAU_DECAY, rate, rise=TAU_RISE)
    for i in range(y_all.shape[1]):
        ok = np.isfinite(y_all[:, i])  # set 5 has no padding; other sets pad with NaN
        y, s = y_all[ok, i], s_all[ok, i]
        for name, solve in (
            (AR1, lambda: dr.calcium.deconvolve(y, order=1, sparsity=sparsity)[0]),
            (AR2, lambda: dr.calcium.deconvolve(y, kernel, sparsity=sparsity)[0]),
            (NAIVE, lambda: dr.calcium.naive_deconvolve(y)),
        ):
            t0 = time.perf_counter()
            s_hat = solve()
            seconds[name] += time.perf_counter() - t0
            rows[name].append(correlation(s_hat, s))
    return dict(rows=rows, seconds=seconds, frames=y_all.shape[0], neurons=y_all.shape[1])


def table(out: dict) -> str:
    n = out["neurons"]
    head = ("| method | mean r | " + " | ".join(f"n{i}" for i in range(n))
            + " | time (× naive) |")
    lines = [head, "|---|---|" + "---|" * n + "---|"]
    naive = max(out["seconds"][NAIVE], 1e-9)
    for name, r in out["rows"].items():
        lines.append(f"| {name} | {np.mean(r):.3f} | " + " | ".join(f"{v:.2f}" for v in r)
                     + f" | {out['seconds'][name] / naive:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="first N frames (default all)")
    parser.add_argument("--sparsity", type=float, default=1.0)
    args = parser.parse_args(argv)
    out = run(frames=args.frames, sparsity=args.sparsity)
    print(f"spikefinder set 5: {out['neurons']} neurons × {out['frames']} frames at 100 Hz, "
          f"Pearson r at 40 ms bins ({sum(out['seconds'].values()):.0f} s)")
    print(table(out))


if __name__ == "__main__":
    main()
