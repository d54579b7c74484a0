"""CaImAn results saved with `cnm.save(...)` (HDF5): `estimates/C`, `S`, `YrA`, `F_dff`
(components, frames), frame rate `params/data/fr`; `None` is stored as the string
`'NoneType'` (REFERENCES.md §9). Read with h5py, transposed to time-major."""

from __future__ import annotations

import pathlib

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError
from ._recording import check_rate, from_array


TRACES = ("C", "F_dff", "raw")
_EXTRA = (("S", "spikes"), ("YrA", "residual"), ("F_dff", "dff"), ("C", "denoised"))


def is_caiman(path: pathlib.Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "estimates" in f and isinstance(f["estimates"], h5py.Group)
    except OSError:
        return False


def _array(group, key: str):
    import h5py

    if key not in group or not isinstance(group[key], h5py.Dataset):
        return None
    value = group[key][()]
    if isinstance(value, bytes | str) or np.asarray(value).dtype.kind in "SUO":
        return None  # 'NoneType'
    return np.asarray(value)


def read_caiman(path: pathlib.Path, *, rate=None, trace: str = "C") -> xr.Dataset:
    """Read a CaImAn HDF5 file as a recording.

    **Arguments:**
    - `trace`: the main variable: `"C"` (denoised calcium, default), `"F_dff"` (CaImAn's
      dF/F, `detrend_df_f`) or `"raw"` (`C + YrA`, the raw-like trace). The other traces
      present become variables `denoised` (C), `spikes` (S), `residual` (YrA), `dff` (F_dff).
    - `rate`: overrides `params/data/fr`.

    **Raises:** `DynrnnValueError` if `estimates/C` is missing, the requested trace is absent,
    traces have different shapes, or no rate is known.
    """
    import h5py

    if trace not in TRACES:
        raise DynrnnValueError(f"`trace` must be one of {TRACES}, got {trace!r}.")
    with h5py.File(path, "r") as f:
        est = f["estimates"]
        arrays = {k: _array(est, k) for k in ("C", "S", "YrA", "F_dff")}
        fr = None
        if "params" in f and "data" in f["params"] and "fr" in f["params/data"]:
            fr = _array(f["params/data"], "fr")
    C = arrays["C"]
    if C is None:
        raise DynrnnValueError(
            f"`path` {str(path)!r}: CaImAn file without estimates/C (no traces were saved)."
        )
    if C.ndim != 2:
        raise DynrnnValueError(f"CaImAn estimates/C must be (components, frames), got {C.shape}.")
    for k, v in arrays.items():
        if v is not None and v.shape != C.shape:
            raise DynrnnValueError(
                f"CaImAn estimates/{k} has shape {v.shape} but estimates/C has {C.shape}; "
                "all traces are (components, frames)."
            )
    if trace == "F_dff" and arrays["F_dff"] is None:
        raise DynrnnValueError(
            "`trace='F_dff'` but estimates/F_dff is None in this file; run "
            "cnm.estimates.detrend_df_f() before saving, or use trace='C'."
        )
    if trace == "raw" and arrays["YrA"] is None:
        raise DynrnnValueError("`trace='raw'` (C + YrA) but estimates/YrA is None in this file.")
    if rate is not None:
        rate = check_rate(rate)
    elif fr is None:
        raise DynrnnValueError(
            f"`path` {str(path)!r}: no params/data/fr in the CaImAn file; pass `rate=` (Hz)."
        )
    else:
        rate = check_rate(float(np.asarray(fr).reshape(())), "params/data/fr")
    main = {"C": C, "F_dff": arrays["F_dff"], "raw": None}[trace]
    if trace == "raw":
        main = C + arrays["YrA"]
    extra = {var: arrays[k].T for k, var in _EXTRA
             if arrays[k] is not None and not (k == "C" and trace == "C")
             and not (k == "F_dff" and trace == "F_dff")}
    units = "dF/F" if trace == "F_dff" else "a.u."
    return from_array(main.T, rate=rate, units=units, source=str(path), extra=extra,
                      caiman_trace=trace, layout_in_file="CaImAn (components, frames)")
