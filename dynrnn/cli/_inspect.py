"""What a dataset or recording holds (the implementation of `dynrnn info`).

Reads NetCDF4/HDF5 (`.nc`, `.h5`, `.hdf5`, through xarray's h5netcdf engine; plain HDF5 files
are listed with h5py), `.npy`/`.npz`, `.csv`, the datasets shipped with the package (`NAME` or
`dataset:NAME`, see `dynrnn datasets list`), and whatever `dynrnn.io.open_recording`
recognises (NWB, suite2p folders, CaImAn) when that reader is installed. Prints dims and sizes,
length, sampling rate or step, variables with their value ranges, and attributes.
"""

from __future__ import annotations

import pathlib

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError


_NETCDF = {".nc", ".nc4", ".netcdf", ".h5", ".hdf5", ".he5"}
# Per-dimension ranges are printed when the last axis is at most this long.
_MAX_PER_DIM = 12


def open_any(target: str, *, rate: float | None = None, layout: str | None = None):
    """Open `target` as an `xr.Dataset` (or, for plain HDF5, an `h5py.File` listing).

    **Returns:** `(object, kind)` with `kind` a short description of the reader used.

    **Raises:** `FileNotFoundError` if `target` is neither a path nor a shipped dataset name;
    `ValueError` for a format no reader understands or a file that cannot be read (naming the
    file).
    """
    try:
        return _open_any(target, rate=rate, layout=layout)
    except (OSError, EOFError, KeyError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DynrnnValueError(
            f"`PATH` {str(target)!r} could not be read: {type(e).__name__}: {e}"
        ) from e


def _open_any(target: str, *, rate: float | None, layout: str | None):
    path = pathlib.Path(target)
    if not path.exists():
        from .. import datasets

        name = str(target).lower().removeprefix("dataset:")
        if name in datasets.names():
            return datasets.load(name), "shipped dataset"
        raise FileNotFoundError(
            f"`PATH` {target!r}: no such file or folder, and not a shipped dataset "
            f"({', '.join(datasets.names())})."
        )
    opener = _open_recording()
    if opener is not None:
        kwargs = {} if rate is None else {"rate": rate}
        if layout is not None:
            kwargs["layout"] = layout
        try:
            return opener(path, **kwargs), "dynrnn.io.open_recording"
        except Exception:
            # Not a recording that reader recognises (or it needs a rate we do not have):
            # fall back to the generic readers below, and to its error if none applies.
            if not _generic_reader_for(path):
                raise
    suffix = path.suffix.lower()
    if suffix in _NETCDF:
        try:
            ds = xr.load_dataset(path, engine="h5netcdf")
        except Exception:
            ds = None
        if ds is not None and ds.data_vars:
            return ds, "NetCDF4 (h5netcdf)"
        # Plain HDF5 (no dimension scales) or data only in sub-groups: list every dataset.
        import h5py

        return h5py.File(path, "r"), "HDF5 (h5py)"
    if suffix in (".npy", ".npz"):
        try:
            if suffix == ".npy":
                return _array_dataset({"data": np.load(path, mmap_mode="r",
                                                       allow_pickle=False)}), "npy"
            with np.load(path, allow_pickle=False) as z:
                return _array_dataset({k: z[k] for k in z.files}), "npz"
        except (ValueError, EOFError) as e:
            raise DynrnnValueError(
                f"`PATH` {target!r} is not a readable {suffix} file (empty, truncated or "
                f"pickled): {e}"
            ) from e
    if suffix == ".csv":
        return _read_csv(path), "csv"
    raise ValueError(
        f"`PATH` {target!r}: unknown format {suffix or '(folder)'}; dynrnn info reads .nc, .h5, "
        ".npy, .npz, .csv and shipped dataset names"
        + ("" if opener is not None else " (recording readers in dynrnn.io are not available)")
        + "."
    )


def _open_recording():
    from .. import io

    return io.open_recording


def _generic_reader_for(path: pathlib.Path) -> bool:
    return path.is_file() and path.suffix.lower() in _NETCDF | {".npy", ".npz", ".csv"}


def _array_dataset(arrays: dict) -> xr.Dataset:
    data_vars = {}
    for name, a in arrays.items():
        if a.ndim == 2:
            dims = ("time", "dim")
        else:
            dims = tuple(f"{name}_axis{i}" for i in range(a.ndim))
        data_vars[name] = (dims, a)
    return xr.Dataset(data_vars)


def _read_csv(path: pathlib.Path) -> xr.Dataset:
    with open(path) as f:
        first, second = f.readline(), f.readline()
    cells = [c.strip().strip('"') for c in first.split(",")]
    header = cells if _is_header(cells, [c.strip() for c in second.split(",")]) else None
    data = np.genfromtxt(path, delimiter=",", skip_header=0 if header is None else 1)
    if data.ndim == 1:
        # One column (many rows) or one row (many columns).
        data = data[:, None] if len(cells) == 1 else data[None, :]
    coords = {"column": header} if header is not None and len(header) == data.shape[1] else {}
    return xr.Dataset({"data": (("time", "column"), data)}, coords=coords)


def _is_header(cells: list[str], next_cells: list[str]) -> bool:
    """A first CSV row is a header if a cell is not a number, or if it is exactly the column
    numbers 0..n-1 or 1..n (as pandas writes them, e.g. spikefinder) above non-integer data."""
    try:
        values = [float(c) for c in cells if c]
    except ValueError:
        return True
    if len(values) < 2 or not all(c.lstrip("-").isdigit() for c in cells if c):
        return False
    ints = [int(v) for v in values]
    is_index = ints in (list(range(len(ints))), list(range(1, len(ints) + 1)))
    return is_index and any(not c.lstrip("-").isdigit() for c in next_cells if c)


def _json_value(v):
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 20 else f"array{tuple(v.shape)} {v.dtype}"
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v] if len(v) <= 20 else f"list of {len(v)}"
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return str(v)


def _ranges(values: np.ndarray) -> dict:
    x = np.asarray(values)
    out: dict = {"shape": list(x.shape), "dtype": str(x.dtype)}
    if x.dtype.kind not in "biuf" or x.size == 0:
        return out
    x = x.astype(np.float64)
    finite = np.isfinite(x)
    out["non_finite"] = int(x.size - finite.sum())
    if finite.any():
        xf = x[finite]
        out.update(min=float(xf.min()), max=float(xf.max()), mean=float(xf.mean()))
        out["sd"] = float(xf.std())
    if x.ndim >= 2 and x.shape[-1] <= _MAX_PER_DIM:
        flat = x.reshape(-1, x.shape[-1])
        with np.errstate(all="ignore"):
            out["per_dim_min"] = np.nanmin(np.where(np.isfinite(flat), flat, np.nan), 0).tolist()
            out["per_dim_max"] = np.nanmax(np.where(np.isfinite(flat), flat, np.nan), 0).tolist()
    return out


def _sampling(ds: xr.Dataset, rate: float | None) -> dict:
    attrs = ds.attrs
    out: dict = {}
    if rate is not None:
        out["rate_hz"] = float(rate)
    elif "rate" in attrs:
        out["rate_hz"] = float(np.asarray(attrs["rate"]).ravel()[0])
    elif "fs" in attrs:
        out["rate_hz"] = float(np.asarray(attrs["fs"]).ravel()[0])
    if "dt" in attrs:
        out["dt"] = float(np.asarray(attrs["dt"]).ravel()[0])
    elif "time" in ds.coords and ds["time"].size > 1:
        t = np.asarray(ds["time"].values)
        if t.dtype.kind in "iuf":
            steps = np.diff(t.astype(np.float64))
            if np.allclose(steps, steps[0], rtol=1e-6, atol=0):
                out["dt"] = float(steps[0])
            else:
                out["dt_range"] = [float(steps.min()), float(steps.max())]
    if "rate_hz" in out and "dt" not in out:
        out["dt"] = 1.0 / out["rate_hz"]
    return out


def summarize(obj, *, source: str, kind: str, rate: float | None = None) -> dict:
    """A JSON-safe summary of an opened dataset (see `open_any`)."""
    if not isinstance(obj, xr.Dataset):
        return _summarize_hdf5(obj, source=source, kind=kind)
    dims = {str(k): int(v) for k, v in obj.sizes.items()}
    time_dim = "time" if "time" in dims else (next(iter(dims)) if dims else None)
    summary = {
        "source": source,
        "reader": kind,
        "dims": dims,
        "length": dims.get(time_dim) if time_dim else None,
        "time_dim": time_dim,
        "sampling": _sampling(obj, rate),
        "variables": {
            str(name): {"dims": list(var.dims), **_ranges(var.values)}
            for name, var in obj.data_vars.items()
        },
        "coords": {},
        "attrs": {str(k): _json_value(v) for k, v in obj.attrs.items()},
    }
    for name, c in obj.coords.items():
        v = np.asarray(c.values)
        entry = {"dims": list(c.dims), "size": int(v.size), "dtype": str(v.dtype)}
        if v.size and v.dtype.kind in "iuf":
            entry.update(first=_json_value(v.ravel()[0]), last=_json_value(v.ravel()[-1]))
        elif v.size:
            entry["values"] = _json_value(v.ravel()[:8])
        summary["coords"][str(name)] = entry
    return summary


def _summarize_hdf5(f, *, source: str, kind: str) -> dict:
    import h5py

    items = {}

    def visit(name, node):
        if isinstance(node, h5py.Dataset):
            entry = {"shape": list(node.shape), "dtype": str(node.dtype)}
            if node.dtype.kind in "biuf" and 0 < node.size <= 50_000_000:
                entry = {**_ranges(node[()]), **entry}
            items[name] = entry

    with f:
        f.visititems(visit)
        attrs = {str(k): _json_value(v) for k, v in f.attrs.items()}
    return {"source": source, "reader": kind, "datasets": items, "attrs": attrs}


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)


def format_summary(s: dict) -> str:
    """The human-readable text `dynrnn info` prints."""
    lines = [f"{s['source']}  ({s['reader']})"]
    if "datasets" in s:
        lines.append("datasets:")
        for name, d in s["datasets"].items():
            lines.append(f"  /{name}  {tuple(d['shape'])} {d['dtype']}{_range_text(d)}")
    else:
        dims = ", ".join(f"{k}={v}" for k, v in s["dims"].items())
        lines.append(f"dims: {dims}")
        if s["length"] is not None:
            lines.append(f"length: {s['length']} samples along `{s['time_dim']}`")
        samp = s["sampling"]
        parts = []
        if "rate_hz" in samp:
            parts.append(f"rate {_fmt(samp['rate_hz'])} Hz")
        if "dt" in samp:
            parts.append(f"dt {_fmt(samp['dt'])}")
        if "dt_range" in samp:
            parts.append(f"irregular steps {_fmt(samp['dt_range'])}")
        if s["length"] and "dt" in samp:
            parts.append(f"duration {_fmt(s['length'] * samp['dt'])}")
        lines.append("sampling: " + (", ".join(parts) if parts else "unknown (pass --rate)"))
        lines.append("variables:")
        for name, v in s["variables"].items():
            lines.append(f"  {name}  ({', '.join(v['dims'])})  {v['dtype']}{_range_text(v)}")
            if "per_dim_min" in v:
                lines.append(f"    per-dim min {_fmt(v['per_dim_min'])}")
                lines.append(f"    per-dim max {_fmt(v['per_dim_max'])}")
        if s["coords"]:
            lines.append("coords:")
            for name, c in s["coords"].items():
                span = (
                    f" {_fmt(c['first'])} .. {_fmt(c['last'])}"
                    if "first" in c
                    else f" {_fmt(c.get('values', []))}"
                )
                lines.append(f"  {name}  ({', '.join(c['dims'])})  {c['size']} {c['dtype']}{span}")
    if s["attrs"]:
        lines.append("attrs:")
        for k, v in s["attrs"].items():
            lines.append(f"  {k}: {_fmt(v)}")
    return "\n".join(lines)


def _range_text(v: dict) -> str:
    if "min" not in v:
        return ""
    text = (
        f"  min {_fmt(v['min'])}  max {_fmt(v['max'])}  mean {_fmt(v['mean'])}  sd {_fmt(v['sd'])}"
    )
    if v.get("non_finite"):
        text += f"  non-finite {v['non_finite']}"
    return text
