"""The recording schema: an `xr.Dataset` of neural activity on `("time", "neuron")`.

A recording is an `xr.Dataset` with

- the main variable `"activity"`, first among the data variables, on dims `("time", "neuron")`
  or `("trial", "time", "neuron")` (time-major, whatever the file stored);
- optional further variables on the same dims (`"neuropil"`, `"spikes"`, `"residual"`, ...) or
  on `"neuron"` alone (`"iscell"`, `"cell_probability"`);
- a `time` coordinate in seconds (`t0 + arange(n) / rate` unless the file had timestamps) and a
  `neuron` coordinate (integers, or names from a CSV header);
- attrs `rate` (Hz, float), `units` (str), `source` (str) and `history`: a JSON-encoded list of
  strings, one entry per preprocessing step (`dr.io.history(ds)` decodes it). Every attr is a
  string, a number or a list of them, so the dataset can be written to NetCDF unchanged.

`dr.fit` trains on the first variable with a `time` dimension, so `"activity"` is always first.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError


MAIN = "activity"
_DIMS = (("time", "neuron"), ("trial", "time", "neuron"))


def check_rate(rate, name: str = "rate") -> float:
    """A finite, positive sampling rate in Hz."""
    if rate is None:
        raise DynrnnValueError(f"`{name}` (sampling rate in Hz) is required, got None.")
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.integer | np.floating):
        raise DynrnnTypeError(f"`{name}` must be a number (Hz), got {type(rate).__name__}.")
    if not np.isfinite(rate) or rate <= 0:
        raise DynrnnValueError(f"`{name}` must be a finite number > 0 (Hz), got {rate!r}.")
    return float(rate)


def _check_attr(key: str, value):
    ok_scalar = (str, int, float, np.integer, np.floating)
    if isinstance(value, bool | np.bool_):
        raise DynrnnTypeError(
            f"attr `{key}` is a bool ({value!r}); NetCDF has no bool attrs, store 0/1 or a string."
        )
    if isinstance(value, ok_scalar):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, list | tuple | np.ndarray):
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        kinds = {isinstance(v, str) for v in items}
        if all(isinstance(v, ok_scalar) and not isinstance(v, bool) for v in items) and (
            len(kinds) <= 1
        ):
            return [v.item() if isinstance(v, np.generic) else v for v in items]
    raise DynrnnTypeError(
        f"attr `{key}` must be a string, a number or a list of only strings or only numbers "
        f"(NetCDF-safe), got {type(value).__name__}: {value!r}."
    )


def history(ds: xr.Dataset) -> list[str]:
    """The preprocessing history of a recording, decoded from `attrs["history"]` (a JSON list)."""
    raw = ds.attrs.get("history", "[]")
    try:
        out = json.loads(raw) if isinstance(raw, str) else list(raw)
    except json.JSONDecodeError:
        # Histories written by other tools: newline-separated text.
        out = [line for line in str(raw).splitlines() if line]
    return [str(h) for h in out]


def append_history(ds: xr.Dataset, entry: str) -> xr.Dataset:
    """A shallow copy of `ds` with `entry` appended to its history."""
    out = ds.copy()
    out.attrs = dict(ds.attrs)
    out.attrs["history"] = json.dumps(history(ds) + [entry])
    return out


def from_array(
    array,
    *,
    rate,
    dims: tuple[str, ...] = ("time", "neuron"),
    t0: float = 0.0,
    neurons=None,
    units: str = "a.u.",
    source: str = "array",
    extra: dict | None = None,
    **attrs,
) -> xr.Dataset:
    """A recording from an array.

    **Arguments:**
    - `array`: activity, 2-D or 3-D, in the axis order named by `dims`.
    - `rate`: sampling rate in Hz; the time coordinate is `t0 + arange(n_time) / rate` seconds.
    - `dims`: the array's axis names, a permutation of `("time", "neuron")` or of
      `("trial", "time", "neuron")`; `("neuron", "time")` transposes a neurons-first array.
    - `t0`: time of the first frame in seconds.
    - `neurons`: neuron coordinate values (default `arange(n_neuron)`).
    - `units`, `source`: attrs.
    - `extra`: further variables `{name: array}` in the same layout as `array` (or 1-D on
      neurons), e.g. `{"neuropil": Fneu}`.
    - `**attrs`: further NetCDF-safe attrs (strings, numbers, lists of them).

    **Returns:** the recording (`"activity"` on `("time", "neuron")` or
    `("trial", "time", "neuron")`).

    **Raises:** `DynrnnValueError` for a bad rate, bad dims, a non-numeric or empty array, or a
    neuron whose trace is NaN everywhere; `DynrnnTypeError` for attrs NetCDF cannot store.
    """
    rate = check_rate(rate)
    arr = _as_numeric(array, "array")
    dims = tuple(dims)
    target = next((d for d in _DIMS if sorted(d) == sorted(dims) and len(dims) == len(d)), None)
    if target is None or len(set(dims)) != len(dims):
        raise DynrnnValueError(
            "`dims` must name the axes as a permutation of ('time', 'neuron') or "
            f"('trial', 'time', 'neuron'), got {dims}."
        )
    if arr.ndim != len(dims):
        raise DynrnnValueError(
            f"`array` has {arr.ndim} dimensions (shape {arr.shape}) but `dims` names {len(dims)}: "
            f"{dims}."
        )
    order = [dims.index(d) for d in target]
    arr = np.transpose(arr, order)
    n_time, n_neuron = arr.shape[-2], arr.shape[-1]
    if n_time < 1 or n_neuron < 1 or arr.size == 0:
        raise DynrnnValueError(f"`array` is empty (shape {arr.shape} as {target}).")
    _check_nan_neurons(arr, "array")
    if neurons is None:
        neurons = np.arange(n_neuron)
    neurons = np.asarray(neurons)
    if neurons.shape != (n_neuron,):
        raise DynrnnValueError(
            f"`neurons` must have one entry per neuron ({n_neuron}), got shape {neurons.shape}."
        )
    time = float(t0) + np.arange(n_time) / rate
    data_vars = {MAIN: (target, arr)}
    for name, value in (extra or {}).items():
        v = _as_numeric(value, f"extra[{name!r}]", allow_bool=True)
        if v.ndim == 1:
            if v.shape[0] != n_neuron:
                raise DynrnnValueError(
                    f"`extra[{name!r}]` has {v.shape[0]} entries but the recording has "
                    f"{n_neuron} neurons."
                )
            data_vars[name] = (("neuron",), v)
            continue
        if v.ndim != len(dims):
            raise DynrnnValueError(
                f"`extra[{name!r}]` must be laid out like `array` ({dims}), got shape {v.shape}."
            )
        v = np.transpose(v, order)
        if v.shape != arr.shape:
            raise DynrnnValueError(
                f"`extra[{name!r}]` has shape {v.shape} as {target} but the activity has "
                f"{arr.shape}; they must match frame for frame and neuron for neuron."
            )
        data_vars[name] = (target, v)
    ds = xr.Dataset(data_vars, coords={"time": ("time", time), "neuron": ("neuron", neurons)})
    ds["time"].attrs["units"] = "s"
    base = {"rate": rate, "units": str(units), "source": str(source), "history": "[]"}
    base.update(attrs)
    ds.attrs = {k: _check_attr(k, v) for k, v in base.items()}
    return ds


def _as_numeric(x, name: str, *, allow_bool: bool = False) -> np.ndarray:
    if isinstance(x, xr.DataArray):
        x = x.values
    try:
        arr = np.asarray(x)
    except Exception as e:  # pragma: no cover - defensive
        raise DynrnnTypeError(f"`{name}` must be an array, got {type(x).__name__}.") from e
    if arr.dtype.kind == "b" and allow_bool:
        return arr
    if arr.dtype.kind not in "fiu":
        raise DynrnnTypeError(
            f"`{name}` must hold real numbers, got dtype {arr.dtype} (shape {arr.shape})."
        )
    return arr


def _check_nan_neurons(arr: np.ndarray, name: str, where: str = "") -> None:
    """A channel (neuron) that is NaN at every time point carries no information and breaks
    every fit. The message speaks of channels: a recording's neurons, a trajectory's
    variables. `where`: said after the name (the file, e.g.)."""
    if arr.dtype.kind != "f":
        return
    axes = tuple(range(arr.ndim - 1))
    dead = np.all(np.isnan(arr), axis=axes)
    if dead.any():
        idx = np.flatnonzero(dead)
        raise DynrnnValueError(
            f"`{name}`{where} has {idx.size} channel(s) (neurons, variables) that are NaN at "
            f"every time point (index {idx[:10].tolist()}{' ...' if idx.size > 10 else ''}); "
            "drop them first (e.g. array[:, keep])."
        )


def validate(ds, name: str = "ds") -> xr.Dataset:
    """Check that `ds` follows the recording schema; returns it.

    **Raises:** `DynrnnTypeError` if `ds` is not an `xr.Dataset`; `DynrnnValueError` if the
    activity variable, its dims, the time coordinate or the rate are missing or invalid.
    """
    if not isinstance(ds, xr.Dataset):
        raise DynrnnTypeError(
            f"`{name}` must be a recording (xr.Dataset, see dr.io.from_array), got "
            f"{type(ds).__name__}."
        )
    if MAIN not in ds.data_vars:
        raise DynrnnValueError(
            f"`{name}` has no {MAIN!r} variable (variables: {list(ds.data_vars)}); build "
            "recordings with dr.io.from_array or dr.io.open_recording."
        )
    dims = ds[MAIN].dims
    if dims not in _DIMS:
        raise DynrnnValueError(
            f"`{name}[{MAIN!r}]` must be on dims ('time', 'neuron') or ('trial', 'time', "
            f"'neuron'), got {dims}."
        )
    check_rate(ds.attrs.get("rate"), f"{name}.attrs['rate']")
    if "time" not in ds.coords:
        raise DynrnnValueError(f"`{name}` has no 'time' coordinate (seconds).")
    return ds
