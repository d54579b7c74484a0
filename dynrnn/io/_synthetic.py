"""A small synthetic suite2p output folder, so that the recording pipeline (reading, neuropil
correction, dF/F, fitting) can be run and tested anywhere without real data.

Ground truth: a standardised Lorenz-63 trajectory `z(t)` (3 latents, one time unit of the
system per second) drives the firing rate of each cell through a random loading,
`r_i(t) = r0 · exp(w_i · z(t))`; spikes are Poisson counts per frame; the calcium of a cell
decays with time constant `tau`, `c_t = exp(−1 / (rate · tau)) · c_{t−1} + s_t`; the ROI
fluorescence is `F = F0 · (1 + a · c) + coefficient · Fneu + noise` (`F0` 1 500–3 000, as raw
suite2p traces are in the thousands), with a neuropil `Fneu` (500–800) that shares a slow drift
across ROIs. ROIs that are not cells see neuropil and noise only.
"""

from __future__ import annotations

import os
import pathlib

import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._errors import DynrnnValueError, check_positive


def _lorenz63(n: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    """Standardised Lorenz-63 states sampled every `dt` (RK4, 10 substeps, 20 time units of
    transient dropped)."""

    def f(y):
        return np.array([10.0 * (y[1] - y[0]), y[0] * (28.0 - y[2]) - y[1],
                         y[0] * y[1] - 8.0 / 3.0 * y[2]])

    h = dt / 10
    y = np.array([1.0, 1.0, 20.0]) + rng.standard_normal(3)
    n_transient = int(round(20.0 / dt))
    out = np.empty((n, 3))
    for i in range(n_transient + n):
        for _ in range(10):
            k1 = f(y)
            k2 = f(y + h / 2 * k1)
            k3 = f(y + h / 2 * k2)
            k4 = f(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= n_transient:
            out[i - n_transient] = y
    return (out - out.mean(0)) / out.std(0)


def synthetic_suite2p(
    path: str | os.PathLike,
    *,
    n_neurons: int = 60,
    n_frames: int = 3000,
    rate: float = 30.0,
    fraction_cells: float = 0.8,
    tau: float = 1.0,
    base_rate: float = 0.5,
    coefficient: float = 0.7,
    noise: float = 0.03,
    key: PRNGKeyArray,
) -> pathlib.Path:
    """Write a small synthetic suite2p plane folder and return the folder to open.

    The folder `path/plane0/` holds what suite2p writes: `F.npy`, `Fneu.npy`, `spks.npy`
    (rois, frames, float32), `iscell.npy` (rois, 2), and the pickled dicts `ops.npy` (with the
    frame rate `fs`) and `stat.npy` (ROI centres `med`). The ground truth is written beside it as
    `path/ground_truth.npz`: `latent` (frames, 3), `rates` and `spikes` (frames, rois) in Hz and
    counts, `calcium`, `is_cell`, `loadings`. The model is described in the module docstring.

    ```python
    folder = dr.io.synthetic_suite2p("demo", key=jr.key(0))
    ds = dr.io.open_recording(folder, allow_pickle=True)  # ops.npy is a pickle we wrote
    ```

    **Arguments:**
    - `path`: folder to create (may exist; its `plane0/` files are overwritten).
    - `n_neurons`: number of ROIs; `n_frames`: number of frames; `rate`: frame rate (Hz).
    - `fraction_cells`: share of ROIs that are cells (the rest are labelled non-cells).
    - `tau`: calcium decay time (s); `base_rate`: firing rate at `z = 0` (Hz).
    - `coefficient`: neuropil contamination (suite2p's correction uses 0.7).
    - `noise`: sd of the fluorescence noise relative to the baseline `F0`.
    - `key`: PRNG key.

    **Returns:** `pathlib.Path(path)`, a folder that `dr.io.open_recording` reads as suite2p.

    **Raises:** `DynrnnValueError` for non-positive sizes or rates, or `fraction_cells` outside
    `(0, 1]`.
    """
    check_positive(n_neurons, "n_neurons", integer=True)
    check_positive(n_frames, "n_frames", integer=True)
    for value, name in ((rate, "rate"), (tau, "tau"), (base_rate, "base_rate")):
        check_positive(value, name)
    if not 0.0 < fraction_cells <= 1.0:
        raise DynrnnValueError(f"`fraction_cells` must be in (0, 1], got {fraction_cells!r}.")
    if not 0.0 <= coefficient <= 1.0:
        raise DynrnnValueError(f"`coefficient` must be in [0, 1], got {coefficient!r}.")
    seed = np.asarray(jr.key_data(key)).ravel().astype(np.uint32)
    rng = np.random.default_rng(seed)

    latent = _lorenz63(n_frames, 1.0 / rate, rng)
    n_cells = max(1, int(round(fraction_cells * n_neurons)))
    is_cell = np.zeros(n_neurons, bool)
    is_cell[rng.permutation(n_neurons)[:n_cells]] = True
    loadings = rng.standard_normal((n_neurons, 3)) * 0.8
    rates = base_rate * np.exp(latent @ loadings.T) * is_cell
    spikes = rng.poisson(rates / rate).astype(np.float64)
    decay = np.exp(-1.0 / (rate * tau))
    calcium = np.empty_like(spikes)
    c = np.zeros(n_neurons)
    for t in range(n_frames):
        c = decay * c + spikes[t]
        calcium[t] = c

    # Raw suite2p fluorescence is in the thousands (uint16 pixel sums averaged over the ROI).
    f0 = rng.uniform(1500.0, 3000.0, n_neurons)
    t_s = np.arange(n_frames) / rate
    drift = 80.0 * np.sin(2 * np.pi * t_s / max(t_s[-1], 1.0) + rng.uniform(0, 2 * np.pi))
    fneu = (rng.uniform(500.0, 800.0, n_neurons)[None, :] + drift[:, None]
            + 20.0 * rng.standard_normal((n_frames, n_neurons)))
    amplitude = rng.uniform(0.3, 0.8, n_neurons)
    F = (f0 * (1.0 + amplitude * calcium) + coefficient * fneu
         + noise * f0 * rng.standard_normal((n_frames, n_neurons)))

    ly = lx = 128
    centres = rng.uniform(8, ly - 8, (n_neurons, 2)).round()
    probability = np.where(is_cell, rng.uniform(0.6, 1.0, n_neurons),
                           rng.uniform(0.0, 0.4, n_neurons))

    root = pathlib.Path(path)
    plane = root / "plane0"
    plane.mkdir(parents=True, exist_ok=True)
    np.save(plane / "F.npy", F.T.astype(np.float32))
    np.save(plane / "Fneu.npy", fneu.T.astype(np.float32))
    np.save(plane / "spks.npy", spikes.T.astype(np.float32))
    np.save(plane / "iscell.npy", np.stack([is_cell.astype(np.float64), probability], axis=1))
    ops = {"fs": float(rate), "nframes": int(n_frames), "Ly": ly, "Lx": lx, "tau": float(tau),
           "neucoeff": float(coefficient), "synthetic": "dynrnn.io.synthetic_suite2p"}
    np.save(plane / "ops.npy", np.array(ops, dtype=object), allow_pickle=True)
    stat = np.array([{"med": [int(y), int(x)], "npix": 40} for y, x in centres], dtype=object)
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    np.savez(root / "ground_truth.npz", latent=latent, rates=rates, spikes=spikes,
             calcium=calcium, is_cell=is_cell, loadings=loadings, rate=rate)
    return root
