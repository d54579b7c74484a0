"""suite2p plane folders (`plane0/`): F, Fneu, spks (rois, frames) and iscell (rois, 2).

The rate comes from `ops.npy` (suite2p ≤ 0.14) or `settings.npy` (1.x), key `fs`. Both are
pickled Python dicts, as is `stat.npy`; `np.load` of a pickle can run arbitrary code, so they
are read only with `allow_pickle=True` (REFERENCES.md §9).
"""

from __future__ import annotations

import pathlib

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError
from ._recording import check_rate, from_array


def is_suite2p(path: pathlib.Path) -> bool:
    return path.is_dir() and ((path / "F.npy").exists() or any(path.glob("plane*/F.npy")))


def _plane_folder(path: pathlib.Path, plane) -> pathlib.Path:
    if (path / "F.npy").exists() and plane is None:
        return path
    planes = sorted(p for p in path.glob("plane*") if (p / "F.npy").exists())
    if plane is not None:
        folder = path / f"plane{int(plane)}"
        if not (folder / "F.npy").exists():
            raise DynrnnValueError(
                f"`plane`={plane!r}: {str(folder)!r} has no F.npy (planes with traces: "
                f"{[p.name for p in planes]})."
            )
        return folder
    if len(planes) == 1:
        return planes[0]
    raise DynrnnValueError(
        f"`path` {str(path)!r} holds several suite2p planes {[p.name for p in planes]}; pass "
        "`plane=` (an integer) or the plane folder itself."
    )


def _load(path: pathlib.Path, name: str, *, allow_pickle: bool = False):
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DynrnnValueError(
                f"{str(path)!r} ({name}) holds pickled Python objects; loading a pickle can "
                "execute arbitrary code, so it is refused by default. Pass allow_pickle=True "
                "if you trust the file."
            ) from e
        raise DynrnnValueError(f"{str(path)!r} ({name}) is not a readable .npy file: {e}") from e
    except (OSError, EOFError) as e:
        raise DynrnnValueError(
            f"{str(path)!r} ({name}) is not a readable .npy file (empty or truncated): {e}"
        ) from e


def _numeric(arr, path: pathlib.Path, name: str):
    """Some suite2p versions save traces and `iscell` as object arrays (read only with
    `allow_pickle=True`); their elements are numbers."""
    if isinstance(arr, np.ndarray) and arr.dtype == object:
        try:
            return np.asarray(arr.tolist(), np.float64)
        except (TypeError, ValueError) as e:
            raise DynrnnValueError(
                f"{str(path)!r} ({name}) is an object array whose entries are not numbers: {e}"
            ) from e
    return arr


def _traces(folder: pathlib.Path, name: str, n_rois: int | None, n_frames: int | None,
            allow_pickle: bool = False):
    path = folder / f"{name}.npy"
    arr = _numeric(_load(path, f"suite2p {name}", allow_pickle=allow_pickle), path,
                   f"suite2p {name}")
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise DynrnnValueError(
            f"suite2p {name}.npy must be a numeric (rois, frames) array, got shape {arr.shape} "
            f"dtype {arr.dtype}."
        )
    if n_rois is not None and arr.shape != (n_rois, n_frames):
        raise DynrnnValueError(
            f"suite2p {name}.npy has shape {arr.shape} but F.npy has (rois, frames) = "
            f"{(n_rois, n_frames)}; they must match."
        )
    return arr


def _settings_rate(folder: pathlib.Path, allow_pickle: bool):
    """`(fs, file name, settings dict)` from ops.npy or settings.npy, or `(None, None, None)`."""
    for fname in ("ops.npy", "settings.npy"):
        f = folder / fname
        if not f.exists():
            f = folder.parent / fname
        if not f.exists():
            continue
        if not allow_pickle:
            raise DynrnnValueError(
                f"the sampling rate of this suite2p folder is in {str(f)!r}, a pickled dict; "
                "loading a pickle can execute arbitrary code, so it is refused by default. "
                "Pass allow_pickle=True if you trust the folder, or give the rate yourself "
                "with rate=... (Hz)."
            )
        obj = _load(f, fname, allow_pickle=True)
        d = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0 \
            else obj
        if not isinstance(d, dict) or "fs" not in d:
            raise DynrnnValueError(f"{str(f)!r} is not a suite2p settings dict with key 'fs'.")
        return float(d["fs"]), fname, d
    return None, None, None


def read_suite2p(
    path: pathlib.Path, *, rate=None, allow_pickle: bool = False, plane=None,
    cells_only: bool = False,
) -> xr.Dataset:
    """Read a suite2p plane folder as a recording (time-major).

    `"activity"` is `F`; `Fneu` and `spks`, when present, become `"neuropil"` and `"spikes"`;
    `iscell.npy` gives `"iscell"` (bool) and `"cell_probability"` on `neuron`. With
    `allow_pickle=True`, `stat.npy`'s `med` gives coordinates `roi_y`, `roi_x`, and the rate is
    read from `ops.npy`/`settings.npy` (`fs`). An explicit `rate=` is used instead of the
    settings files (which are then not opened, so no pickle is needed).

    **Arguments:**
    - `plane`: plane number when `path` is the `suite2p/` folder with several planes.
    - `cells_only`: keep only ROIs with `iscell[:, 0] == 1`.

    **Raises:** `DynrnnValueError` for mismatched shapes, refused pickles, or a missing rate.
    """
    folder = _plane_folder(path, plane)
    F = _traces(folder, "F", None, None, allow_pickle)
    n_rois, n_frames = F.shape
    extra = {}
    for name, var in (("Fneu", "neuropil"), ("spks", "spikes")):
        if (folder / f"{name}.npy").exists():
            extra[var] = _traces(folder, name, n_rois, n_frames, allow_pickle).T
    attrs = {}
    if (folder / "iscell.npy").exists():
        iscell = _numeric(_load(folder / "iscell.npy", "suite2p iscell",
                                allow_pickle=allow_pickle), folder / "iscell.npy",
                          "suite2p iscell")
        if iscell.ndim == 1:
            iscell = np.stack([iscell, iscell], axis=1)
        if iscell.ndim != 2 or iscell.shape[0] != n_rois:
            raise DynrnnValueError(
                f"suite2p iscell.npy has shape {iscell.shape} but F.npy has {n_rois} ROIs; "
                "expected (rois, 2) = (label, probability)."
            )
        extra["iscell"] = iscell[:, 0].astype(bool)
        if iscell.shape[1] > 1:
            extra["cell_probability"] = iscell[:, 1].astype(np.float64)
    if rate is not None:
        rate = check_rate(rate)
        attrs["rate_source"] = "rate="
    else:
        fs, fname, _ = _settings_rate(folder, allow_pickle)
        if fs is None:
            raise DynrnnValueError(
                f"the suite2p folder {str(folder)!r} has neither ops.npy nor settings.npy; "
                "pass `rate=` (Hz)."
            )
        rate = check_rate(fs, f"{fname}['fs']")
        attrs["rate_source"] = fname
    ds = from_array(F.T, rate=rate, units="a.u.", source=str(folder), extra=extra,
                    layout_in_file="suite2p (rois, frames)", **attrs)
    if allow_pickle and (folder / "stat.npy").exists():
        stat = _load(folder / "stat.npy", "suite2p stat", allow_pickle=True)
        if len(stat) != n_rois:
            raise DynrnnValueError(
                f"suite2p stat.npy has {len(stat)} entries but F.npy has {n_rois} ROIs."
            )
        med = np.array([s["med"] for s in stat], np.float64)
        ds = ds.assign_coords(roi_y=("neuron", med[:, 0]), roi_x=("neuron", med[:, 1]))
    if cells_only:
        if "iscell" not in ds:
            raise DynrnnValueError("`cells_only=True` needs iscell.npy in the suite2p folder.")
        ds = ds.isel(neuron=np.flatnonzero(ds["iscell"].values))
    return ds
