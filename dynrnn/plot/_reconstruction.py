"""Figures of a reconstruction: the attractor and the power spectra of data and model."""

from __future__ import annotations

import numpy as np

from .._errors import DynrnnValueError
from ._common import (
    Projection,
    as_series,
    axis_label,
    frequency_axis,
    new_figure,
    shared_limits,
)


def attractor(
    x_true,
    x_gen,
    *,
    dims=None,
    labels=None,
    units: str | None = None,
    dt: float | None = None,
    max_points: int = 20_000,
    title: str | None = None,
    fig=None,
    axes=None,
):
    """Data and generated trajectories side by side, on one shared scale.

    Three or more dimensions are drawn in 3-D, two in 2-D, one against time. Data with more
    than three dimensions (and no `dims`) are shown on their three leading principal components,
    fitted on the data and applied to both series; the axes name the components and the share
    of the data's variance each explains (`PC1 (41% var.)`). Both panels use the same limits
    (those of the data when the model leaves them far behind, with a note in the model panel).
    A model whose run, over its last half, moves less than 1 % of the data's range is marked
    at its end point (×) and its panel titled as settling on a fixed point.

    **Arguments:**
    - `x_true`, `x_gen`: `(time, dims)` arrays (or `xr.DataArray`/`xr.Dataset`, whose `state`
      or first variable is used and whose last coordinate names the dimensions).
    - `dims`: the coordinates to show (default: the first three, or principal components).
    - `labels`: names of all the data's dimensions (default `dim 0`, `dim 1`, ...).
    - `units`: units of the values, appended to the axis labels (for example `"z-score"`).
    - `dt`: sampling interval, for the time axis of a one-dimensional series.
    - `max_points`: points drawn per series.
    - `title`: figure title.
    - `fig`: a figure to draw into (two subplots are added); `axes`: two axes to draw into
      instead (3-D axes for three or more dimensions).

    **Returns:** the matplotlib figure.

    **Raises:** `DynrnnValueError` for series of different dimension or a bad `dims`.
    """
    x_true, info = as_series(x_true, "x_true")
    x_gen, _ = as_series(x_gen, "x_gen")
    if x_true.shape[1] != x_gen.shape[1]:
        raise DynrnnValueError(
            f"`x_true` and `x_gen` must have the same number of dimensions, got "
            f"{x_true.shape[1]} and {x_gen.shape[1]}."
        )
    units = units if units is not None else info.get("units")
    proj = Projection(x_true, 3, dims, labels if labels is not None else info.get("labels"))
    data, model = proj(x_true[:max_points]), proj(x_gen[:max_points])
    n_show = data.shape[1]
    lims, clipped = shared_limits(data, model)
    if axes is None:
        fig = new_figure(fig, figsize=(10, 4.5) if n_show >= 2 else (10, 3.2))
        kw = {"projection": "3d"} if n_show >= 3 else {}
        if n_show >= 2:
            axes = [fig.add_subplot(1, 2, i + 1, **kw) for i in range(2)]
        else:
            axes = [fig.add_subplot(2, 1, i + 1) for i in range(2)]
    else:
        axes = list(axes)
        if len(axes) != 2:
            raise DynrnnValueError(f"`axes` must be two axes (data, model), got {len(axes)}.")
        fig = axes[0].figure
    names = [axis_label(n, units) for n in proj.names]
    # A model that settles on a fixed point draws a line too short to see: mark where it
    # ends and say so, so that an empty-looking panel is not mistaken for a plotting error.
    settled = _settles(data, model)
    for ax, x, name in zip(axes, (data, model), ("data", "model"), strict=True):
        if n_show >= 3:
            ax.plot(x[:, 0], x[:, 1], x[:, 2], lw=0.3)
            ax.set(xlim=lims[0], ylim=lims[1], zlim=lims[2])
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            ax.set_zlabel(names[2])
        elif n_show == 2:
            ax.plot(x[:, 0], x[:, 1], lw=0.3)
            ax.set(xlim=lims[0], ylim=lims[1], xlabel=names[0], ylabel=names[1])
        else:
            t = np.arange(len(x)) * (dt if dt is not None else 1.0)
            ax.plot(t, x[:, 0], lw=0.6)
            ax.set(ylim=lims[0], ylabel=names[0],
                   xlabel="time" if dt is not None else "time step")
        if name == "model" and settled:
            # the run's end point: (time, value) for one dimension, the state otherwise
            end = [t[-1], x[-1, 0]] if n_show == 1 else x[-1, :n_show]
            ax.scatter(*[[v] for v in end], color="C3", marker="x", s=60)
        ax.set_title(name)
    if clipped:
        axes[1].set_title("model (leaves the data range; limits are the data's)")
    elif settled:
        axes[1].set_title("model (settles on a fixed point, marked ×)")
    if title:
        fig.suptitle(title)
    return fig


def _settles(data: np.ndarray, model: np.ndarray) -> bool:
    """Whether the model's free run, over its last half, moves less than 1 % of the data's
    range in every shown dimension."""
    tail = model[len(model) // 2:]
    if len(tail) == 0 or not np.all(np.isfinite(tail)):
        return False
    reach = np.ptp(data, axis=0)
    return bool(np.all(np.ptp(tail, axis=0) <= 0.01 * np.where(reach > 0, reach, 1.0)))


def _spectrum(x: np.ndarray, smoothing: float) -> np.ndarray:
    """Smoothed, normalised power spectrum of one standardised series, as in D_H."""
    from scipy.ndimage import gaussian_filter1d

    s = (x - x.mean()) / (x.std() + 1e-12)
    p = np.abs(np.fft.rfft(s)) ** 2
    if smoothing > 0:
        p = gaussian_filter1d(p, smoothing, mode="mirror", truncate=4.0)
    total = p.sum()
    return p / total if total > 0 else np.full_like(p, np.nan)


def power_spectra(
    x_true,
    x_gen,
    *,
    smoothing: float = 20.0,
    max_freq_bins: int = 2000,
    dt: float | None = None,
    rate: float | None = None,
    dims=None,
    labels=None,
    max_dims: int = 6,
    fig=None,
    axes=None,
):
    """Smoothed, normalised power spectra of data and model (the spectra that D_H compares),
    one panel per shown dimension, data and model on the same axes and every panel on one
    power scale.

    The frequency axis is in Hz when the sampling `rate` is known, in cycles per time unit when
    the step `dt` is, and in cycles per sample otherwise; both are read from the attrs of an
    `xr.Dataset`/`xr.DataArray` input when not given. Data with more than `max_dims` dimensions
    (and no `dims`) are shown on their leading principal components.

    **Arguments:**
    - `x_true`, `x_gen`: `(time, dims)` series (arrays, `xr.DataArray` or `xr.Dataset`).
    - `smoothing`: width (in frequency bins) of the Gaussian kernel, as in D_H; 0 for none.
    - `max_freq_bins`: frequency bins of the data's spectrum shown (from zero).
    - `dt`, `rate`: sampling interval (time units) or rate (Hz); at most one.
    - `dims`, `labels`: dimensions to show and names of all dimensions.
    - `max_dims`: panels at most (principal components beyond it).
    - `fig`: a figure to draw into; `axes`: one axis per shown dimension instead.

    **Returns:** the matplotlib figure.
    """
    x_true, info = as_series(x_true, "x_true")
    x_gen, _ = as_series(x_gen, "x_gen")
    if x_true.shape[1] != x_gen.shape[1]:
        raise DynrnnValueError(
            f"`x_true` and `x_gen` must have the same number of dimensions, got "
            f"{x_true.shape[1]} and {x_gen.shape[1]}."
        )
    if dt is None and rate is None:
        rate, dt = info.get("rate"), None if "rate" in info else info.get("dt")
    proj = Projection(x_true, max_dims, dims, labels if labels is not None else info.get("labels"))
    data, model = proj(x_true), proj(x_gen)
    n_show = data.shape[1]
    if axes is None:
        fig = new_figure(fig, figsize=(3.6 * n_show + 0.8, 3.2))
        first = fig.add_subplot(1, n_show, 1)
        axes = [first] + [fig.add_subplot(1, n_show, j + 1, sharey=first)
                          for j in range(1, n_show)]
    else:
        axes = list(np.ravel(axes))
        if len(axes) != n_show:
            raise DynrnnValueError(f"`axes` must hold {n_show} axes (one per shown dimension), "
                                   f"got {len(axes)}.")
        fig = axes[0].figure
    f_data, xlabel = frequency_axis(len(data), dt=dt, rate=rate)
    f_model, _ = frequency_axis(len(model), dt=dt, rate=rate)
    f_max = f_data[min(max_freq_bins, len(f_data)) - 1]
    for j, ax in enumerate(axes):
        for x, f, name in ((data, f_data, "data"), (model, f_model, "model")):
            p = _spectrum(x[:, j], smoothing)
            keep = f <= f_max
            ax.semilogy(f[keep], p[keep], label=name, lw=1)
        ax.set_title(proj.names[j])
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("normalised power (smoothed)")
    axes[0].legend()
    fig.tight_layout()
    return fig
