"""NetCDF4 (HDF5) recordings through h5netcdf, with attrs restored exactly."""

from __future__ import annotations

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
    if MAIN not in ds.data_vars:
        raise DynrnnValueError(
            f"`path` {str(path)!r} is NetCDF but holds no {MAIN!r} variable (variables: "
            f"{list(ds.data_vars)}); it is not a dynrnn recording. Open it with "
            "xr.open_dataset(path, engine='h5netcdf') and build one with dr.io.from_array."
        )
    if rate is not None:
        ds.attrs["rate"] = check_rate(rate)
    elif "rate" not in ds.attrs:
        t = np.asarray(ds["time"].values, np.float64) if "time" in ds.coords else None
        if t is None or t.size < 2 or not np.allclose(np.diff(t), np.diff(t)[0], rtol=1e-6):
            raise DynrnnValueError(
                f"`path` {str(path)!r} has no 'rate' attr and no uniform time coordinate; "
                "pass `rate=` (Hz)."
            )
        ds.attrs["rate"] = float(1.0 / np.diff(t)[0])
    return validate(ds, "recording")


def write_netcdf(ds: xr.Dataset, path: pathlib.Path) -> None:
    ds.to_netcdf(path, engine="h5netcdf")
