"""`open_recording` / `save_recording`: one entry point for every format."""

from __future__ import annotations

import inspect
import pathlib

import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError
from ._caiman import is_caiman, read_caiman
from ._netcdf import read_netcdf, write_netcdf
from ._nwb import read_nwb, write_nwb
from ._recording import _check_attr, validate
from ._suite2p import is_suite2p, read_suite2p
from ._text import read_csv, read_npy


FORMATS = ("netcdf", "nwb", "suite2p", "caiman", "csv", "npy")
_HDF5 = {".nc", ".h5", ".hdf5", ".nc4", ".cdf"}


def _is_nwb(path: pathlib.Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "nwb_version" in f.attrs or ("acquisition" in f and "general" in f)
    except OSError:
        return False


def detect_format(path: pathlib.Path) -> str:
    """The format of `path` from its suffix and, for HDF5 files, its content."""
    if path.is_dir():
        if is_suite2p(path):
            return "suite2p"
        raise DynrnnValueError(
            f"`path` {str(path)!r} is a folder but not a suite2p output (no F.npy in it or in "
            "a plane*/ subfolder)."
        )
    suffix = path.suffix.lower()
    if suffix == ".nwb":
        return "nwb"
    if suffix in _HDF5:
        if is_caiman(path):
            return "caiman"
        if _is_nwb(path):
            return "nwb"
        return "netcdf"
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix == ".npy":
        return "npy"
    raise DynrnnValueError(
        f"`path` {str(path)!r}: unknown recording format {suffix or '(no suffix)'!r}; known: "
        ".nc/.h5 (NetCDF4), .nwb, .hdf5 (CaImAn), suite2p folders, .csv, .npy "
        f"(or pass format= one of {FORMATS})."
    )


def open_recording(
    path, *, allow_pickle: bool = False, rate=None, format: str | None = None, **kwargs,
) -> xr.Dataset:
    """Open a neural recording as an `xr.Dataset` on `("time", "neuron")` (see `dr.io`).

    **Arguments:**
    - `path`: a `.nc`/`.h5` NetCDF4 file (written by `save_recording`), a `.nwb` file, a
      suite2p plane folder (or its `suite2p/` parent), a CaImAn `.hdf5`, a `.csv` or `.npy`.
    - `allow_pickle`: allow reading pickled files (suite2p `ops.npy`, `settings.npy`,
      `stat.npy`); loading a pickle can execute arbitrary code.
    - `rate`: sampling rate in Hz; required for CSV/NPY and for suite2p without (or without
      permission to read) its settings; overrides the file's rate otherwise.
    - `format`: force a reader: one of `"netcdf"`, `"nwb"`, `"suite2p"`, `"caiman"`, `"csv"`,
      `"npy"` (default: from the suffix and the HDF5 content).
    - `**kwargs`: reader options: `layout="time-major" | "neuron-major"` and `header` (CSV,
      NPY), `plane`, `cells_only` (suite2p), `trace="C" | "F_dff" | "raw"` (CaImAn),
      `series` (NWB).

    **Returns:** the recording, main variable `"activity"` `(time, neuron)`, time in seconds.

    **Raises:** `FileNotFoundError` for a missing path; `DynrnnValueError` for an unknown
    format, a missing or non-positive rate, refused pickles, mismatched axis lengths,
    NaN-only neurons; `DynrnnTypeError` for unexpected options.
    """
    if not isinstance(path, str | pathlib.Path):
        raise DynrnnTypeError(f"`path` must be a str or pathlib.Path, got {type(path).__name__}.")
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"`path` {str(path)!r}: no such file or folder.")
    if format is None:
        format = detect_format(path)
    elif format not in FORMATS:
        raise DynrnnValueError(f"`format` must be one of {FORMATS}, got {format!r}.")
    reader = {
        "netcdf": read_netcdf, "nwb": read_nwb, "suite2p": read_suite2p,
        "caiman": read_caiman, "csv": read_csv, "npy": read_npy,
    }[format]
    params = inspect.signature(reader).parameters
    options = dict(kwargs)
    if "allow_pickle" in params:
        options["allow_pickle"] = allow_pickle
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise DynrnnTypeError(
            f"the {format} reader does not take {unknown}; its options are "
            f"{[p for p in params if p not in ('path',)]}."
        )
    if format in ("csv", "npy") and rate is None:
        raise DynrnnValueError(
            f"`rate` (Hz) is required to read {format.upper()} file {str(path)!r}: the file "
            "holds no sampling rate."
        )
    try:
        return reader(path, rate=rate, **options)
    except (OSError, EOFError, KeyError) as e:
        # A truncated or corrupt file: the library underneath (h5py, pynwb, NumPy) names the
        # problem but often not the file.
        raise DynrnnValueError(
            f"`path` {str(path)!r} could not be read as {format}: {type(e).__name__}: {e}"
        ) from e


def save_recording(ds: xr.Dataset, path, *, format: str | None = None) -> pathlib.Path:
    """Write a recording to `.nc`/`.h5` (NetCDF4 via h5netcdf) or `.nwb` (pynwb).

    Both round-trip values, dtypes, coordinates and attrs exactly through `open_recording`.

    **Raises:** `DynrnnTypeError`/`DynrnnValueError` if `ds` is not a recording or has attrs
    NetCDF cannot store; `DynrnnValueError` for another suffix.
    """
    validate(ds, "ds")
    for k, v in ds.attrs.items():
        _check_attr(k, v)
    path = pathlib.Path(path)
    fmt = format or {".nwb": "nwb"}.get(path.suffix.lower(),
                                       "netcdf" if path.suffix.lower() in _HDF5 else None)
    if fmt == "netcdf":
        write_netcdf(ds, path)
    elif fmt == "nwb":
        write_nwb(ds, path)
    else:
        raise DynrnnValueError(
            f"`path` {str(path)!r}: recordings are saved as .nc/.h5 (NetCDF4) or .nwb, got "
            f"suffix {path.suffix!r} (format={format!r})."
        )
    return path
