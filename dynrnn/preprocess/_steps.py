"""Preprocessing steps on recordings; each returns a new recording and appends one entry,
`name(arg=value, ...)`, to `attrs["history"]`.

Conventions (REFERENCES.md §9): suite2p's neuropil correction `Fc = F − 0.7 Fneu`; the common
dF/F recipe `(Fc − F0) / F0` with `F0` a running 8th percentile over 60 s, then z-scoring per
neuron.
"""

from __future__ import annotations

import fractions
import json

import numpy as np
import scipy.ndimage
import scipy.signal
import xarray as xr

from .._errors import DynrnnValueError
from ..io._recording import MAIN, append_history, check_rate, validate


def _entry(name: str, **kwargs) -> str:
    args = ", ".join(f"{k}={json.dumps(v)}" for k, v in kwargs.items())
    return f"{name}({args})"


def _time_axis(da: xr.DataArray) -> int:
    return da.dims.index("time")


def _timed(ds: xr.Dataset) -> list[str]:
    return [k for k, v in ds.data_vars.items() if "time" in v.dims]


def neuropil_correct(ds: xr.Dataset, fneu=None, coefficient: float = 0.7) -> xr.Dataset:
    """Neuropil correction `F − c · Fneu` (suite2p, `c = 0.7`).

    **Arguments:**
    - `ds`: a recording whose `"activity"` is the raw ROI fluorescence `F`.
    - `fneu`: the neuropil traces, same layout as the activity (array or `DataArray`); default
      the recording's `"neuropil"` variable (suite2p's `Fneu`).
    - `coefficient`: `c`, in `[0, 1]`.

    **Returns:** the recording with corrected `"activity"` (the `"neuropil"` variable is kept).

    **Raises:** `DynrnnValueError` if there is no neuropil, its shape differs, or `c` is outside
    `[0, 1]`.
    """
    validate(ds)
    if not (isinstance(coefficient, int | float) and 0.0 <= coefficient <= 1.0):
        raise DynrnnValueError(f"`coefficient` must be a number in [0, 1], got {coefficient!r}.")
    if fneu is None:
        if "neuropil" not in ds.data_vars:
            raise DynrnnValueError(
                "`fneu` is None and the recording has no 'neuropil' variable; pass the neuropil "
                "traces (suite2p Fneu) as `fneu=`."
            )
        fneu = ds["neuropil"]
    act = ds[MAIN]
    if isinstance(fneu, xr.DataArray):
        fneu = fneu.transpose(*act.dims).values
    fneu = np.asarray(fneu)
    if fneu.shape != act.shape:
        raise DynrnnValueError(
            f"`fneu` has shape {fneu.shape} but the activity has {act.shape} on {act.dims}; "
            "they must match frame for frame."
        )
    out = ds.copy()
    out[MAIN] = act.copy(data=act.values - coefficient * fneu)
    return append_history(out, _entry("neuropil_correct", coefficient=coefficient))


def dff(ds: xr.Dataset, *, window_s: float = 60.0, percentile: float = 8.0) -> xr.Dataset:
    """dF/F with a running-percentile baseline: `(F − F0) / F0`,
    `F0 = percentile_filter(F, percentile, window)` along time per neuron (and trial).

    The window is `round(window_s · rate)` frames (at most the recording length), centred,
    edges extended with the nearest value (`scipy.ndimage.percentile_filter`,
    `mode="nearest"`).

    **Raises:** `DynrnnValueError` for a non-positive window, a percentile outside (0, 100),
    non-finite activity, or a baseline ≤ 0 (dF/F is undefined for detrended or
    background-subtracted traces that cross zero; add an offset first).
    """
    validate(ds)
    if not (isinstance(window_s, int | float) and np.isfinite(window_s) and window_s > 0):
        raise DynrnnValueError(f"`window_s` must be > 0 seconds, got {window_s!r}.")
    if not (isinstance(percentile, int | float) and 0 < percentile < 100):
        raise DynrnnValueError(f"`percentile` must be in (0, 100), got {percentile!r}.")
    act = ds[MAIN]
    x = np.asarray(act.values, np.float64)
    if not np.all(np.isfinite(x)):
        raise DynrnnValueError(
            "dF/F needs finite activity; the recording has NaN/Inf (trim NaN-padded frames "
            "first, e.g. ds.isel(time=slice(0, n)))."
        )
    ax = _time_axis(act)
    frames = int(min(max(round(window_s * ds.attrs["rate"]), 1), x.shape[ax]))
    size = [1] * x.ndim
    size[ax] = frames
    f0 = scipy.ndimage.percentile_filter(x, percentile, size=tuple(size), mode="nearest")
    if np.any(f0 <= 0):
        bad = np.unique(np.argwhere(f0 <= 0)[:, -1])
        raise DynrnnValueError(
            f"the running {percentile}th-percentile baseline is <= 0 for neuron index "
            f"{bad[:10].tolist()}; dF/F is undefined there (add an offset to the raw "
            "fluorescence or use zscore)."
        )
    out = ds.copy()
    out[MAIN] = act.copy(data=(x - f0) / f0)
    out = append_history(out, _entry("dff", window_s=window_s, percentile=percentile,
                                     window_frames=frames))
    out.attrs["units"] = "dF/F"
    return out


def zscore(ds: xr.Dataset, *, ddof: int = 0) -> xr.Dataset:
    """Z-score each neuron over time (and trials): `(x − mean) / sd`, NaNs ignored.

    **Raises:** `DynrnnValueError` for a neuron with zero variance.
    """
    validate(ds)
    act = ds[MAIN]
    x = np.asarray(act.values, np.float64)
    axes = tuple(i for i, d in enumerate(act.dims) if d != "neuron")
    mean = np.nanmean(x, axis=axes, keepdims=True)
    sd = np.nanstd(x, axis=axes, ddof=ddof, keepdims=True)
    if np.any(~(sd > 0)):
        bad = np.flatnonzero(~(sd.reshape(-1) > 0))
        raise DynrnnValueError(
            f"neuron index {bad[:10].tolist()} has zero variance; z-scoring is undefined "
            "(drop constant neurons first)."
        )
    out = ds.copy()
    out[MAIN] = act.copy(data=(x - mean) / sd)
    out = append_history(out, _entry("zscore", ddof=ddof))
    out.attrs["units"] = "z"
    return out


def resample(ds: xr.Dataset, rate, *, method: str = "poly") -> xr.Dataset:
    """Resample every variable on `time` to `rate` Hz.

    - `method="poly"`: `scipy.signal.resample_poly` with `up/down` the rate ratio as a
      fraction (denominator ≤ 1000), i.e. an anti-aliasing FIR filter (Kaiser window);
    - `method="linear"`: linear interpolation (`np.interp`) at the new frame times (no
      anti-aliasing; keeps values within the data range, e.g. for spike counts use neither and
      sum bins instead).

    The new time coordinate is `t0 + arange(n) / rate`.

    **Raises:** `DynrnnValueError` for a non-positive rate, unknown method, or NaN activity.
    """
    validate(ds)
    new_rate = check_rate(rate)
    if method not in ("poly", "linear"):
        raise DynrnnValueError(f"`method` must be 'poly' or 'linear', got {method!r}.")
    old_rate = float(ds.attrs["rate"])
    t0 = float(ds["time"].values[0])
    n_old = ds.sizes["time"]
    ratio = fractions.Fraction(new_rate / old_rate).limit_denominator(1000)
    n_new = int(np.ceil(n_old * ratio.numerator / ratio.denominator))
    if method == "linear":
        n_new = int(np.floor((n_old - 1) * new_rate / old_rate)) + 1
    if n_new < 1:
        raise DynrnnValueError(f"resampling {n_old} frames to {new_rate} Hz leaves no frame.")
    t_old = t0 + np.arange(n_old) / old_rate
    t_new = t0 + np.arange(n_new) / new_rate
    data_vars = {}
    for name, v in ds.data_vars.items():
        if "time" not in v.dims:
            data_vars[name] = v
            continue
        x = np.asarray(v.values, np.float64)
        if not np.all(np.isfinite(x)):
            raise DynrnnValueError(
                f"cannot resample variable {name!r}: it has NaN/Inf (trim padded frames first)."
            )
        ax = _time_axis(v)
        if method == "poly":
            y = scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=ax)
            y = np.take(y, np.arange(n_new), axis=ax)
        else:
            y = np.apply_along_axis(lambda c: np.interp(t_new, t_old, c), ax, x)
        data_vars[name] = (v.dims, y, v.attrs)
    coords = {k: c for k, c in ds.coords.items() if "time" not in c.dims}
    coords["time"] = ("time", t_new, {"units": "s"})
    out = xr.Dataset(data_vars, coords=coords, attrs=dict(ds.attrs))
    out.attrs["rate"] = new_rate
    return append_history(out, _entry("resample", rate=new_rate, method=method))


def delay_embed(ds: xr.Dataset, lags) -> xr.Dataset:
    """Delay embedding `y_t = [s(t + d_1), …, s(t + d_k)]` per neuron (as the ECG data).

    Columns are lag-major: for lag `d_j`, all neurons in order; the new `neuron` dimension has
    coordinates `source_neuron` and `lag` (frames). The output has `T − max(d)` frames whose
    times are those of `s(t)`. Other variables on `time` are dropped (their neuron axis no
    longer matches).

    **Raises:** `DynrnnValueError` for an empty list, negative or non-integer lags, or lags as
    long as the recording.
    """
    validate(ds)
    lags = list(lags) if not isinstance(lags, int | np.integer) else [lags]
    if not lags or not all(isinstance(d, int | np.integer) and not isinstance(d, bool)
                            and d >= 0 for d in lags):
        raise DynrnnValueError(f"`lags` must be a non-empty list of integers >= 0, got {lags!r}.")
    act = ds[MAIN]
    n_time = ds.sizes["time"]
    dmax = int(max(lags))
    if dmax >= n_time:
        raise DynrnnValueError(
            f"`lags` go up to {dmax} frames but the recording has only {n_time} frames."
        )
    keep = n_time - dmax
    parts = [act.isel(time=slice(int(d), int(d) + keep)).values for d in lags]
    data = np.concatenate(parts, axis=-1)
    neurons = act["neuron"].values
    dims = act.dims
    coords = {
        "time": ("time", ds["time"].values[:keep], ds["time"].attrs),
        "neuron": ("neuron", np.arange(data.shape[-1])),
        "source_neuron": ("neuron", np.tile(neurons, len(lags))),
        "lag": ("neuron", np.repeat(np.asarray(lags, np.int64), neurons.size)),
    }
    for name, c in ds.coords.items():
        if name not in coords and "time" not in c.dims and "neuron" not in c.dims:
            coords[name] = c
    out = xr.Dataset({MAIN: (dims, data, act.attrs)}, coords=coords, attrs=dict(ds.attrs))
    return append_history(out, _entry("delay_embed", lags=[int(d) for d in lags]))


def split_time(ds: xr.Dataset, fraction: float) -> tuple[xr.Dataset, xr.Dataset]:
    """Split a recording in time: the first `round(fraction · T)` frames and the rest.

    **Returns:** `(first, second)`, each with a history entry saying which part it is.

    **Raises:** `DynrnnValueError` unless `0 < fraction < 1` and both parts have ≥ 2 frames.
    """
    validate(ds)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not (
        0 < fraction < 1
    ):
        raise DynrnnValueError(f"`fraction` must be a number in (0, 1), got {fraction!r}.")
    n = ds.sizes["time"]
    cut = int(round(fraction * n))
    if cut < 2 or n - cut < 2:
        raise DynrnnValueError(
            f"`fraction`={fraction} splits {n} frames into {cut} and {n - cut}; both parts "
            "need at least 2 frames."
        )
    first = append_history(ds.isel(time=slice(0, cut)),
                           _entry("split_time", fraction=fraction, part="first", frames=cut))
    second = append_history(ds.isel(time=slice(cut, n)),
                            _entry("split_time", fraction=fraction, part="second",
                                   frames=n - cut))
    return first, second


def pca(ds: xr.Dataset, n_components: int) -> xr.Dataset:
    """Project the activity onto its first `n_components` principal components.

    With the activity `X` `(time, neuron)` centred per neuron, `X − μ = U S Vᵀ` (SVD); the new
    activity is `(X − μ) V_k`, `(time, k)`, whose columns have decreasing variance `S_i² / T`.
    The `neuron` coordinate becomes the component index and `component_of` names what it is;
    `attrs["explained_variance_ratio"]` holds each component's share of the total variance and
    the variable `loadings` `(component, source_neuron)` holds `V_kᵀ` (the weights of each
    neuron). Other variables on `time` are dropped (their neuron axis no longer matches).
    Trials, if any, are stacked along time to fit the components.

    **Raises:** `DynrnnValueError` if `n_components` is not an integer in
    `[1, min(neurons, frames)]` or the activity is not finite.
    """
    validate(ds)
    act = ds[MAIN]
    n_neuron = ds.sizes["neuron"]
    n_time = int(np.prod([n for d, n in act.sizes.items() if d != "neuron"]))
    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer) or (
        n_components < 1
    ):
        raise DynrnnValueError(
            f"`n_components` must be an integer >= 1, got {n_components!r}."
        )
    if n_components > min(n_neuron, n_time):
        raise DynrnnValueError(
            f"`n_components`={n_components} is more than the recording has "
            f"{'neurons' if n_neuron <= n_time else 'frames'} ({min(n_neuron, n_time)}); PCA "
            "gives at most min(neurons, frames) components."
        )
    x = np.asarray(act.values, np.float64)
    if not np.all(np.isfinite(x)):
        raise DynrnnValueError("PCA needs finite activity; the recording has NaN/Inf.")
    flat = x.reshape(-1, n_neuron)
    centred = flat - flat.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    k = int(n_components)
    scores = (centred @ vt[:k].T).reshape(x.shape[:-1] + (k,))
    ratio = (sv**2 / np.sum(sv**2))[:k]
    coords = {name: c for name, c in ds.coords.items()
              if "neuron" not in c.dims and name != "neuron"}
    coords["neuron"] = ("neuron", np.arange(k))
    coords["source_neuron"] = ("source_neuron", act["neuron"].values)
    out = xr.Dataset(
        {MAIN: (act.dims, scores, act.attrs),
         "loadings": (("neuron", "source_neuron"), vt[:k])},
        coords=coords, attrs=dict(ds.attrs),
    )
    out.attrs["explained_variance_ratio"] = [float(r) for r in ratio]
    out.attrs["component_of"] = "principal components of the activity (neuron = component)"
    return append_history(out, _entry("pca", n_components=k,
                                      explained_variance=round(float(ratio.sum()), 6)))
