"""dr.preprocess against independent NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnValueError


def _rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)


def test_neuropil_correct():
    rng = _rng()
    F, Fneu = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    ds = dr.io.from_array(F, rate=10.0, extra={"neuropil": Fneu})
    out = dr.preprocess.neuropil_correct(ds)
    np.testing.assert_allclose(out["activity"].values, F - 0.7 * Fneu, rtol=1e-15)
    np.testing.assert_array_equal(ds["activity"].values, F)  # input untouched
    c = float(rng.uniform(0.3, 1.0))
    other = dr.preprocess.neuropil_correct(dr.io.from_array(F, rate=10.0), fneu=Fneu,
                                           coefficient=c)
    np.testing.assert_allclose(other["activity"].values, F - c * Fneu, rtol=1e-15)
    assert dr.io.history(other) == [f"neuropil_correct(coefficient={c!r})"]
    with pytest.raises(DynrnnValueError, match="no 'neuropil'"):
        dr.preprocess.neuropil_correct(dr.io.from_array(F, rate=10.0))
    with pytest.raises(DynrnnValueError, match="must match"):
        dr.preprocess.neuropil_correct(ds, fneu=Fneu[:-1])
    with pytest.raises(DynrnnValueError, match=r"\[0, 1\]"):
        dr.preprocess.neuropil_correct(ds, coefficient=1.5)


def _running_percentile(x, q, w):
    """Sliding-window percentile with nearest-value edges: scipy's rank `int(w q / 100)` of
    the sorted centred window (independent loop)."""
    T = x.shape[0]
    half = w // 2
    pad = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], w, 0)])
    rank = min(int(w * q / 100.0), w - 1)
    out = np.empty_like(x)
    for t in range(T):
        window = pad[t: t + w]
        out[t] = np.sort(window, axis=0)[rank]
    return out


def test_dff_running_percentile_against_loop():
    rng = _rng()
    x = 5.0 + rng.random((80, 3))
    ds = dr.io.from_array(x, rate=2.0)
    out = dr.preprocess.dff(ds, window_s=5.5, percentile=8)  # 11 frames
    f0 = _running_percentile(x, 8, 11)
    np.testing.assert_allclose(out["activity"].values, (x - f0) / f0, rtol=1e-12)
    assert dr.io.history(out) == ["dff(window_s=5.5, percentile=8, window_frames=11)"]
    assert out.attrs["units"] == "dF/F"


def test_dff_recovers_known_baseline():
    rng = _rng()
    rate, T = 10.0, 3000
    t = np.arange(T) / rate
    baseline = 100.0 + 20.0 * np.sin(2 * np.pi * t / 2000.0)[:, None]  # period 2000 s
    # sparse calcium transients: exponentially decaying events in ~3 % of frames
    events = (rng.random((T, 2)) < 0.004).astype(float)
    kernel = np.exp(-np.arange(30) / 8.0)
    transients = np.stack([np.convolve(events[:, i], kernel)[:T] for i in range(2)], 1)
    F = baseline * (1.0 + transients)
    out = dr.preprocess.dff(dr.io.from_array(F, rate=rate), window_s=30, percentile=8)
    err = out["activity"].values - transients
    # the 8th percentile of a 30 s window sits on the baseline up to its drift within half a
    # window: |d baseline/dt| · 15 s / 80 <= 0.063 · 15 / 80 ≈ 0.012
    assert np.median(np.abs(err)) < 0.012
    assert np.max(np.abs(err)) < 0.05
    assert np.corrcoef(out["activity"].values[:, 0], transients[:, 0])[0, 1] > 0.98


def test_dff_errors():
    ds = dr.io.from_array(np.random.default_rng(0).normal(size=(50, 2)), rate=1.0)
    with pytest.raises(DynrnnValueError, match="baseline is <= 0"):
        dr.preprocess.dff(ds, window_s=10)
    with pytest.raises(DynrnnValueError, match="window_s"):
        dr.preprocess.dff(ds, window_s=0)
    with pytest.raises(DynrnnValueError, match="percentile"):
        dr.preprocess.dff(ds, percentile=100)


def test_zscore_per_neuron_and_trials():
    rng = _rng()
    x = rng.normal(3.0, 2.0, size=(4, 25, 3))
    ds = dr.io.from_array(x, rate=1.0, dims=("trial", "time", "neuron"))
    out = dr.preprocess.zscore(ds)
    flat = x.reshape(-1, 3)
    np.testing.assert_allclose(out["activity"].values,
                               (x - flat.mean(0)) / flat.std(0), rtol=1e-12)
    const = dr.io.from_array(np.ones((10, 2)), rate=1.0)
    with pytest.raises(DynrnnValueError, match="zero variance"):
        dr.preprocess.zscore(const)


def test_resample():
    rate, T = 100.0, 2000
    t = np.arange(T) / rate
    x = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], 1)
    ds = dr.io.from_array(x, rate=rate, extra={"neuropil": 2 * x})
    out = dr.preprocess.resample(ds, 25.0)
    assert out.sizes["time"] == 500 and out.attrs["rate"] == 25.0
    tn = np.arange(500) / 25.0
    np.testing.assert_array_equal(out["time"].values, tn)
    ref = np.stack([np.sin(2 * np.pi * 1.3 * tn), np.cos(2 * np.pi * 0.7 * tn)], 1)
    # band-limited signal: the FIR resampler is exact up to its edge transients
    np.testing.assert_allclose(out["activity"].values[20:-20], ref[20:-20], atol=2e-3)
    np.testing.assert_allclose(out["neuropil"].values, 2 * out["activity"].values, rtol=1e-12)
    ramp = dr.io.from_array(np.arange(30.0)[:, None] * 0.5, rate=3.0)
    lin = dr.preprocess.resample(ramp, 2.0, method="linear")
    np.testing.assert_allclose(lin["activity"].values[:, 0], 0.5 * 3.0 * lin["time"].values,
                               rtol=1e-12)
    assert dr.io.history(lin) == ['resample(rate=2.0, method="linear")']
    with pytest.raises(DynrnnValueError, match="rate"):
        dr.preprocess.resample(ds, -1.0)


def test_delay_embed_indices():
    rng = _rng()
    x = rng.normal(size=(200, 2))
    lags = (0, 20, 68, 55, 10)  # the ECG embedding's lags
    out = dr.preprocess.delay_embed(dr.io.from_array(x, rate=1.0), lags)
    T = 200 - 68
    assert out["activity"].shape == (T, 10)
    for j, d in enumerate(lags):
        for i in range(2):
            col = j * 2 + i
            np.testing.assert_array_equal(out["activity"].values[:, col], x[d: d + T, i])
            assert out["lag"].values[col] == d and out["source_neuron"].values[col] == i
    np.testing.assert_array_equal(out["time"].values, np.arange(T))
    with pytest.raises(DynrnnValueError, match="integers >= 0"):
        dr.preprocess.delay_embed(dr.io.from_array(x, rate=1.0), [0, -1])
    with pytest.raises(DynrnnValueError, match="only 200 frames"):
        dr.preprocess.delay_embed(dr.io.from_array(x, rate=1.0), [0, 200])


@pytest.mark.parametrize("fraction", [0.8, 0.5, 0.123])
def test_split_time(fraction):
    x = np.arange(103.0)[:, None]
    a, b = dr.preprocess.split_time(dr.io.from_array(x, rate=2.0), fraction)
    n = int(round(fraction * 103))
    assert a.sizes["time"] == n and b.sizes["time"] == 103 - n
    np.testing.assert_array_equal(np.concatenate([a["activity"], b["activity"]]), x)
    assert b["time"].values[0] == n / 2.0
    assert dr.io.history(b) == [
        f'split_time(fraction={fraction}, part="second", frames={103 - n})']
    with pytest.raises(DynrnnValueError, match=r"\(0, 1\)"):
        dr.preprocess.split_time(dr.io.from_array(x, rate=2.0), 1.0)


def test_history_accumulates_in_order():
    rng = _rng()
    F = 50.0 + rng.random((120, 3))
    ds = dr.io.from_array(F, rate=4.0, extra={"neuropil": rng.random((120, 3))})
    ds = dr.preprocess.neuropil_correct(ds)
    ds = dr.preprocess.dff(ds, window_s=10)
    ds = dr.preprocess.zscore(ds)
    ds = dr.preprocess.resample(ds, 2.0)
    train, _ = dr.preprocess.split_time(ds, 0.75)
    names = [h.split("(")[0] for h in dr.io.history(train)]
    assert names == ["neuropil_correct", "dff", "zscore", "resample", "split_time"]


def test_pca_against_covariance_eigenvectors():
    """Components are the projections on the eigenvectors of the sample covariance (NumPy
    `eigh`, independent of the SVD the step uses), ordered by variance; signs are free."""
    rng = _rng()
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 5.0
    ds = dr.io.from_array(x, rate=10.0)
    out = dr.preprocess.pca(ds, 3)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False, bias=True))
    order = np.argsort(evals)[::-1][:3]
    ref = (x - x.mean(0)) @ evecs[:, order]
    got = out["activity"].values
    assert got.shape == (500, 3) and out["activity"].dims == ("time", "neuron")
    np.testing.assert_allclose(np.abs(got), np.abs(ref), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(out.attrs["explained_variance_ratio"],
                               evals[order] / evals.sum(), rtol=1e-10)
    assert dr.io.history(out)[-1].startswith("pca(n_components=3")
    with pytest.raises(DynrnnValueError, match="n_components"):
        dr.preprocess.pca(ds, 7)
