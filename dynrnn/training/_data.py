"""Turning user data (arrays, lists of arrays, recordings) into training arrays."""

from __future__ import annotations

import numpy as np

from .._errors import DynrnnTypeError, DynrnnValueError, check_array, is_array


def as_series_list(data, name: str = "data") -> list[np.ndarray]:
    """`data` as a list of float arrays `(time, dims)`.

    Accepts an array `(time, dims)`, a batch `(trials, time, dims)`, a list of arrays, an
    `xr.DataArray` or an `xr.Dataset` (its `state` variable, or its only/first variable on a
    `time` dimension; `("trial", "time", "neuron")` gives one series per trial).
    """
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        xr = None
    if xr is not None and isinstance(data, xr.Dataset):
        if "state" in data.data_vars:
            data = data["state"]
        else:
            cands = [v for v in data.data_vars.values() if "time" in v.dims]
            if not cands:
                raise DynrnnValueError(
                    f"`{name}` is an xarray Dataset without a variable on a 'time' dimension "
                    f"(variables: {list(data.data_vars)})."
                )
            data = cands[0]
    if xr is not None and isinstance(data, xr.DataArray):
        if "time" in data.dims:
            order = [d for d in ("trial", "time") if d in data.dims]
            rest = [d for d in data.dims if d not in order]
            data = data.transpose(*order, *rest).values
        else:
            data = data.values
    if isinstance(data, list | tuple):
        if len(data) == 0:
            raise DynrnnValueError(f"`{name}` is an empty list.")
        out = []
        for i, d in enumerate(data):
            out.extend(as_series_list(d, f"{name}[{i}]"))
        return out
    if not is_array(data):
        raise DynrnnTypeError(
            f"`{name}` must be an array (time, dims), a list of arrays or an xarray Dataset, "
            f"got {type(data).__name__}."
        )
    arr = check_array(data, name, ndim=(1, 2, 3))
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim == 3:
        return [a for a in arr]
    return [arr]
