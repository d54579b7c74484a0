"""Shared pieces of the figures: where to draw, which dimensions to show, one scale for data and
model, and the frequency axis of a spectrum.

The library never selects a matplotlib backend: a figure is drawn into the `ax`/`fig` the caller
passes, or into a new `pyplot` figure of whatever backend the session has.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError


def new_figure(fig=None, **kw):
    """`fig` itself, or a new figure of the session's backend (`pyplot.figure(**kw)`)."""
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(**kw)


def as_series(x, name: str) -> tuple[np.ndarray, dict]:
    """A `(time, dims)` float array and the sampling attrs (`rate`, `dt`, `units`) of an array,
    `xr.DataArray` or `xr.Dataset` (its `state` or first variable)."""
    attrs: dict = {}
    labels = None
    if isinstance(x, xr.Dataset):
        attrs.update(x.attrs)
        var = "state" if "state" in x.data_vars else next(iter(x.data_vars))
        x = x[var]
    if isinstance(x, xr.DataArray):
        attrs = {**x.attrs, **attrs}
        if "time" in x.dims:
            x = x.transpose("time", ...)
        last = x.dims[-1] if x.ndim == 2 else None
        if last is not None and last in x.coords:
            labels = [str(v) for v in np.asarray(x.coords[last].values)]
            labels = [f"{last} {v}" for v in labels]
        x = x.values
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DynrnnValueError(f"`{name}` must be a (time, dims) series, got shape {arr.shape}.")
    info = {k: attrs[k] for k in ("rate", "dt", "units") if k in attrs}
    if labels is not None:
        info["labels"] = labels
    return arr, info


class Projection:
    """The dimensions a figure shows: chosen coordinates, or the leading principal components of
    the data (fitted on the data, applied to data and model alike)."""

    def __init__(self, x_true: np.ndarray, n_show: int, dims=None, labels=None):
        n = x_true.shape[1]
        if labels is not None and len(labels) != n:
            raise DynrnnValueError(
                f"`labels` must name all {n} dimensions, got {len(labels)} labels."
            )
        names = list(labels) if labels is not None else [f"dim {i}" for i in range(n)]
        if dims is None and n > n_show:
            mean = x_true.mean(axis=0)
            _, s, vt = np.linalg.svd(x_true - mean, full_matrices=False)
            var = s**2 / np.sum(s**2)
            self.mean, self.components = mean, vt[:n_show]
            self.names = [f"PC{i + 1} ({100 * var[i]:.0f}% var.)"
                          for i in range(n_show)]
            self.is_pca = True
        else:
            dims = list(range(min(n, n_show))) if dims is None else [int(d) for d in dims]
            bad = [d for d in dims if not 0 <= d < n]
            if bad:
                raise DynrnnValueError(
                    f"`dims` must index the {n} dimensions of the data, got {bad}."
                )
            self.dims = dims
            self.names = [names[d] for d in dims]
            self.is_pca = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.is_pca:
            return (x - self.mean) @ self.components.T
        return x[:, self.dims]


def shared_limits(data: np.ndarray, model: np.ndarray, *, margin: float = 0.05):
    """Per-column `(low, high)` limits that hold both series, and whether the model leaves the
    range shown. A model that diverges (exceeding the data's span by more than 3x, or not
    finite) would shrink the data to a point: then the limits are the data's, widened by half
    its span, and the flag says so."""
    lims, clipped = [], False
    for j in range(data.shape[1]):
        d = data[:, j][np.isfinite(data[:, j])]
        m = model[:, j][np.isfinite(model[:, j])] if model.size else d
        d_lo, d_hi = (float(d.min()), float(d.max())) if d.size else (-1.0, 1.0)
        span = max(d_hi - d_lo, 1e-12)
        lo, hi = d_lo, d_hi
        if m.size:
            lo, hi = min(lo, float(m.min())), max(hi, float(m.max()))
        if hi - lo > 3 * span or m.size < model[:, j].size:
            lo, hi, clipped = d_lo - 0.5 * span, d_hi + 0.5 * span, True
        pad = margin * (hi - lo)
        lims.append((lo - pad, hi + pad))
    return lims, clipped


def frequency_axis(n: int, *, dt=None, rate=None) -> tuple[np.ndarray, str]:
    """Frequencies of the `rfft` of `n` samples and the axis label: Hz with a sampling `rate`
    (Hz), cycles per time unit with a step `dt`, cycles per sample otherwise."""
    if rate is not None and dt is not None:
        raise DynrnnValueError("give either `rate` (Hz) or `dt` (time units), not both.")
    if rate is not None:
        return np.fft.rfftfreq(n, d=1.0 / _positive(rate, "rate")), "frequency (Hz)"
    if dt is not None:
        return np.fft.rfftfreq(n, d=_positive(dt, "dt")), "frequency (cycles per time unit)"
    return np.fft.rfftfreq(n), "frequency (cycles per sample)"


def _positive(v, name: str) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError) as e:
        raise DynrnnTypeError(f"`{name}` must be a number, got {type(v).__name__}.") from e
    if not np.isfinite(v) or v <= 0:
        raise DynrnnValueError(f"`{name}` must be a finite number > 0, got {v!r}.")
    return v


def axis_label(name: str, units: str | None) -> str:
    return f"{name} ({units})" if units else name
