"""NWB recordings through pynwb (optional dependency).

Reading: a `TimeSeries` (`data` first dimension time), e.g. a `RoiResponseSeries` inside a
`Fluorescence` or `DfOverF` interface of a processing module, or a series in `acquisition`.
Values are `data · conversion + offset`; times are `timestamps`, or
`starting_time + arange(n) / rate` (NWB 2.x schema; REFERENCES.md §9).

Writing: every `("time", "neuron")` variable of the recording becomes a `TimeSeries` in
`acquisition`, with `rate` + `starting_time` when the time coordinate is exactly
`t0 + arange(n) / rate` and `timestamps` otherwise. The recording's attrs, the neuron coordinate
and per-neuron variables travel as JSON in the series' `description`, so `open_recording` gives
back the same dataset.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import warnings

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError
from ._recording import MAIN, check_rate, from_array, validate


_MARK = "dynrnn-recording"


def _pynwb():
    try:
        import pynwb
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading or writing NWB files needs the optional dependency pynwb "
            "(pip install pynwb)."
        ) from e
    return pynwb


def _candidates(nwb):
    """`(path, series)` pairs in order of preference: DfOverF, Fluorescence, other processing
    interfaces, then acquisition."""
    pynwb = _pynwb()
    ranked = []
    for mod_name in sorted(nwb.processing):
        module = nwb.processing[mod_name]
        for if_name in sorted(module.data_interfaces):
            iface = module.data_interfaces[if_name]
            rank = 2
            if isinstance(iface, pynwb.ophys.DfOverF):
                rank = 0
            elif isinstance(iface, pynwb.ophys.Fluorescence):
                rank = 1
            if isinstance(iface, pynwb.ophys.DfOverF | pynwb.ophys.Fluorescence):
                for s_name in sorted(iface.roi_response_series):
                    ranked.append((rank, f"processing/{mod_name}/{if_name}/{s_name}",
                                   iface.roi_response_series[s_name]))
            elif isinstance(iface, pynwb.TimeSeries):
                ranked.append((rank, f"processing/{mod_name}/{if_name}", iface))
    for name in sorted(nwb.acquisition):
        obj = nwb.acquisition[name]
        if isinstance(obj, pynwb.TimeSeries):
            ranked.append((3, f"acquisition/{name}", obj))
    ranked = [r for r in ranked if np.ndim(r[2].data) in (1, 2)]
    ranked.sort(key=lambda r: r[0])
    return [(p, s) for _, p, s in ranked]


def _values(series) -> np.ndarray:
    data = np.asarray(series.data[:])
    conversion = float(series.conversion)
    offset = float(series.offset or 0.0)
    if conversion != 1.0 or offset != 0.0:
        data = data * conversion + offset
    return data[:, None] if data.ndim == 1 else data


def _times(series, n: int, path: str):
    if series.timestamps is not None:
        t = np.asarray(series.timestamps[:], np.float64)
        if t.shape != (n,):
            raise DynrnnValueError(
                f"NWB series {path!r} has {t.shape[0]} timestamps for {n} frames of data."
            )
        if n < 2:
            raise DynrnnValueError(f"NWB series {path!r} has one timestamp; the rate is unknown.")
        return t, float(1.0 / np.median(np.diff(t)))
    return None, series.rate


def read_nwb(path: pathlib.Path, *, rate=None, series: str | None = None) -> xr.Dataset:
    """Read one `TimeSeries` of an NWB file as a recording (see the module docstring).

    **Arguments:**
    - `rate`: overrides the file's rate.
    - `series`: name or path (`processing/ophys/Fluorescence/plane0`) of the series to read;
      default the first of DfOverF, Fluorescence, other processing series, acquisition.

    **Raises:** `DynrnnValueError` if the file has no suitable series, `series` names none, or
    times and data disagree.
    """
    pynwb = _pynwb()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            cands = _candidates(nwb)
            if not cands:
                raise DynrnnValueError(
                    f"`path` {str(path)!r}: the NWB file holds no 1-D or 2-D TimeSeries in "
                    "acquisition or processing (e.g. processing/ophys/Fluorescence/...)."
                )
            own = [(p, s) for p, s in cands if _meta(s) is not None]
            if series is None and own:
                return _read_own(own, rate)
            if series is not None:
                chosen = [(p, s) for p, s in cands if series in (p, s.name)]
                if not chosen:
                    raise DynrnnValueError(
                        f"`series`={series!r} is not in {str(path)!r}; available: "
                        f"{[p for p, _ in cands]}."
                    )
            else:
                chosen = cands
            p, s = chosen[0]
            data = _values(s)
            times, file_rate = _times(s, data.shape[0], p)
            use_rate = check_rate(rate) if rate is not None else file_rate
            if use_rate is None:
                raise DynrnnValueError(
                    f"NWB series {p!r} has neither rate nor timestamps; pass `rate=` (Hz)."
                )
            t0 = float(s.starting_time or 0.0) if times is None else float(times[0])
            ds = from_array(
                data, rate=use_rate, t0=t0, units=str(s.unit), source=str(path),
                nwb_series=p, nwb_other_series=[q for q, _ in cands if q != p] or "",
            )
            if times is not None:
                ds = ds.assign_coords(time=("time", times, {"units": "s"}))
            return ds


def _meta(series):
    try:
        meta = json.loads(series.description)
    except (TypeError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == _MARK else None


def _read_own(own, rate) -> xr.Dataset:
    metas = {p: (_meta(s), s) for p, s in own}
    main = next(((m, s) for m, s in metas.values() if m["variable"] == MAIN), None)
    if main is None:
        raise DynrnnValueError(f"NWB file written by dynrnn lacks the {MAIN!r} series.")
    meta, s = main
    data = {m["variable"]: _values(x) for m, x in metas.values()}
    times, file_rate = _times(s, data[MAIN].shape[0], s.name)
    attrs = dict(meta["attrs"])
    if rate is not None:
        attrs["rate"] = check_rate(rate)
    neuron_vars = {k: np.asarray(v["values"], dtype=v["dtype"])
                   for k, v in meta["neuron_vars"].items()}
    order = [m["variable"] for m, _ in sorted(metas.values(), key=lambda ms: ms[0]["order"])]
    coords = {"neuron": np.asarray(meta["neuron"], dtype=meta["neuron_dtype"])}
    t = times if times is not None else float(s.starting_time or 0.0) + np.arange(
        data[MAIN].shape[0]) / float(s.rate)
    ds = xr.Dataset(
        {name: (("time", "neuron"), data[name]) for name in order},
        coords={"time": ("time", t, {"units": "s"}), **coords},
    )
    for name, v in neuron_vars.items():
        ds[name] = ("neuron", v)
    for name in order:
        ds[name].attrs = dict(next(m for m, _ in metas.values() if m["variable"] == name)
                              ["var_attrs"])
    ds.attrs = attrs
    return validate(ds, "recording")


def write_nwb(ds: xr.Dataset, path: pathlib.Path) -> None:
    pynwb = _pynwb()
    if ds[MAIN].dims != ("time", "neuron"):
        raise DynrnnValueError(
            f"NWB TimeSeries are (time, rois); a recording on {ds[MAIN].dims} cannot be written "
            "to NWB (save trials separately or use .nc)."
        )
    rate = float(ds.attrs["rate"])
    t = np.asarray(ds["time"].values, np.float64)
    t0 = float(t[0])
    regular = np.array_equal(t, t0 + np.arange(t.size) / rate)
    neuron = ds["neuron"].values
    neuron_vars = {
        k: {"values": v.values.tolist(), "dtype": str(v.dtype)}
        for k, v in ds.data_vars.items() if v.dims == ("neuron",)
    }
    nwb = pynwb.NWBFile(
        session_description=str(ds.attrs.get("source", "dynrnn recording")),
        identifier=f"dynrnn-{pathlib.Path(path).stem}",
        session_start_time=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
    )
    timed = [k for k, v in ds.data_vars.items() if v.dims == ("time", "neuron")]
    other = [k for k, v in ds.data_vars.items()
             if v.dims not in (("time", "neuron"), ("neuron",))]
    if other:
        raise DynrnnValueError(
            f"variables {other} are neither on ('time', 'neuron') nor on ('neuron',); NWB "
            "cannot hold them."
        )
    for i, name in enumerate(timed):
        meta = dict(
            format=_MARK, variable=name, order=i, attrs=dict(ds.attrs),
            var_attrs=dict(ds[name].attrs), neuron=neuron.tolist(), neuron_dtype=str(neuron.dtype),
            neuron_vars=neuron_vars if name == MAIN else {},
        )
        kw = dict(rate=rate, starting_time=t0) if regular else dict(timestamps=t)
        nwb.add_acquisition(pynwb.TimeSeries(
            name=name, data=np.asarray(ds[name].values), unit=str(ds.attrs.get("units", "a.u.")),
            description=json.dumps(meta), **kw,
        ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
