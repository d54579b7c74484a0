"""NetCDF4 (HDF5) recordings through h5netcdf, with attrs restored exactly."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError
from ._recording import MAIN, check_rate, validate


def _plain(value):
    """NetCDF attrs come back as NumPy scalars/arrays; give back the Python values written."""
    if isinstance(value, np.ndarray):
        return [v.item() if isinstance(v, np.generic) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_netcdf(path: pathlib.Path, *, rate=None) -> xr.Dataset:
    """Read a recording written by `save_recording` (or any NetCDF4 file that follows the schema).

    Times are not decoded (the `time` coordinate stays in seconds). A missing `rate` attr is
    taken from `rate=` or, failing that, from a uniformly spaced `time` coordinate.
    """
    try:
        ds = xr.load_dataset(path, engine="h5netcdf", decode_times=False, decode_timedelta=False)
    except Exception as e:
        raise DynrnnValueError(
            f"`path` {str(path)!r} could not be read as NetCDF4/HDF5 by h5netcdf: {e}"
        ) from e
    ds.attrs = {k: _plain(v) for k, v in ds.attrs.items()}
    for name in list(ds.variables):
        ds[name].attrs = {k: _plain(v) for k, v in ds[name].attrs.items()}
    if MAIN not in ds.data_vars and "state" in ds.data_vars:
        ds = from_state(ds, str(path))
    if MAIN not in ds.data_vars:
        raise DynrnnValueError(
            f"`path` {str(path)!r} is NetCDF but holds no {MAIN!r} variable (variables: "
            f"{list(ds.data_vars)}); it is not a dynrnn recording. Open it with "
            "xr.open_dataset(path, engine='h5netcdf') and build one with dr.io.from_array."
        )
    if rate is not None:
        ds.attrs["rate"] = check_rate(rate)
    elif "rate" not in ds.attrs and _positive_number(ds.attrs.get("dt")):
        ds.attrs["rate"] = 1.0 / float(ds.attrs["dt"])
    elif "rate" not in ds.attrs:
        t = np.asarray(ds["time"].values, np.float64) if "time" in ds.coords else None
        if t is None or t.size < 2 or not np.allclose(np.diff(t), np.diff(t)[0], rtol=1e-6):
            raise DynrnnValueError(
                f"`path` {str(path)!r} has no 'rate' attr and no uniform time coordinate; "
                "pass `rate=` (Hz)."
            )
        ds.attrs["rate"] = float(1.0 / np.diff(t)[0])
    return validate(ds, "recording")


def _positive_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def from_state(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """A simulated or shipped dataset (`state` on `("time", "dim")`, `dt` attr, as
    `dr.systems.simulate` writes it) in the recording schema: `activity` on
    `("time", "neuron")`, `rate = 1 / dt`, the time coordinate in seconds (one time unit of
    the system taken as one second) and a history entry saying so. Other attrs are kept.

    **Raises:** `DynrnnValueError` if `state` is not on `("time", "dim")`.
    """
    state = ds["state"]
    if state.dims != ("time", "dim"):
        raise DynrnnValueError(
            f"{source!r}: the variable 'state' must be on dims ('time', 'dim') (as "
            f"dr.systems.simulate writes it), got {state.dims}."
        )
    out = ds.rename({"state": MAIN, "dim": "neuron"})
    attrs = dict(ds.attrs)
    if "rate" not in attrs and _positive_number(attrs.get("dt")):
        attrs["rate"] = 1.0 / float(attrs["dt"])
    attrs.setdefault("units", "a.u.")
    attrs.setdefault("source", source)
    entries = json.loads(attrs["history"]) if isinstance(attrs.get("history"), str) else []
    attrs["history"] = json.dumps(
        list(entries) + ['from_state(renamed="state(time, dim) -> activity(time, neuron)")'])
    out.attrs = attrs
    if "time" in out.coords:
        out["time"].attrs.setdefault("units", "s")
    return out


def write_netcdf(ds: xr.Dataset, path: pathlib.Path) -> None:
    ds.to_netcdf(path, engine="h5netcdf")
