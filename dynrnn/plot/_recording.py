"""Figures of a recording: the activity of every neuron over time."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError
from ._common import axis_label, new_figure


def raster(
    recording,
    *,
    var: str | None = None,
    trial: int = 0,
    order=None,
    cmap: str = "viridis",
    robust: bool = True,
    title: str | None = None,
    ax=None,
    fig=None,
):
    """Activity of every neuron over time as an image (rows: neurons, columns: time in seconds),
    with a colour bar in the recording's units.

    **Arguments:**
    - `recording`: an `xr.Dataset` recording (`dr.io`), or an `xr.DataArray` on
      `("time", "neuron")`.
    - `var`: the variable to show (default: the first, `"activity"`).
    - `trial`: the trial shown for `("trial", "time", "neuron")` recordings.
    - `order`: neuron order (indices), e.g. `np.argsort(peak_times)`; default as stored.
    - `cmap`: colour map; `robust`: colour limits at the 1st and 99th percentile rather than
      the extremes (one bright neuron does not wash out the rest).
    - `title`, `ax` (an axis to draw into) or `fig` (a figure to add one to).

    **Returns:** the matplotlib figure.

    **Raises:** `DynrnnValueError` when the variable is not on `time` and `neuron`.
    """
    attrs = dict(recording.attrs) if isinstance(recording, xr.Dataset | xr.DataArray) else {}
    da = recording
    if isinstance(recording, xr.Dataset):
        var = var if var is not None else next(iter(recording.data_vars))
        da = recording[var]
    if "trial" in da.dims:
        da = da.isel(trial=trial)
    if set(da.dims) != {"time", "neuron"}:
        raise DynrnnValueError(
            f"`raster` needs a variable on ('time', 'neuron'), got dims {da.dims}."
        )
    da = da.transpose("neuron", "time")
    x = np.asarray(da.values, dtype=np.float64)
    if order is not None:
        x = x[np.asarray(order)]
    if "time" in da.coords and da.sizes["time"] > 1:
        t = np.asarray(da["time"].values, dtype=np.float64)
        extent = (t[0], t[-1] + (t[-1] - t[0]) / (len(t) - 1), x.shape[0] - 0.5, -0.5)
        xlabel = "time (s)"
    else:
        extent, xlabel = None, "time step"
    lo, hi = (np.nanpercentile(x, [1, 99]) if robust else (np.nanmin(x), np.nanmax(x)))
    if ax is None:
        fig = new_figure(fig, figsize=(9, 4))
        ax = fig.add_subplot(1, 1, 1)
    fig = ax.figure
    im = ax.imshow(x, aspect="auto", interpolation="nearest", cmap=cmap, vmin=lo, vmax=hi,
                   extent=extent)
    ax.set(xlabel=xlabel, ylabel="neuron" + (" (reordered)" if order is not None else ""))
    units = da.attrs.get("units", attrs.get("units"))
    fig.colorbar(im, ax=ax, label=axis_label(str(da.name or "activity"), units))
    if title:
        ax.set_title(title)
    return fig
