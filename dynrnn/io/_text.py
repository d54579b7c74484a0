"""Plain arrays: CSV (optional header row) and `.npy`, with the rate given by the user."""

from __future__ import annotations

import pathlib

import numpy as np
import xarray as xr

from .._errors import DynrnnValueError
from ._recording import check_rate, from_array


LAYOUTS = ("time-major", "neuron-major")


def _layout_dims(layout: str, ndim: int, name: str):
    if layout not in LAYOUTS:
        raise DynrnnValueError(f"`layout` must be one of {LAYOUTS}, got {layout!r}.")
    if ndim == 1:
        return ("time",)
    if ndim == 2:
        return ("time", "neuron") if layout == "time-major" else ("neuron", "time")
    if ndim == 3:
        return ("trial", "time", "neuron") if layout == "time-major" else (
            "trial", "neuron", "time")
    raise DynrnnValueError(f"{name} must hold a 1-D, 2-D or 3-D array, got {ndim} dimensions.")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip() == ""
    return True


def _header(path: pathlib.Path, header, delimiter: str):
    with open(path) as f:
        first = f.readline()
    if not first.strip():
        raise DynrnnValueError(f"`path` {str(path)!r} is an empty CSV file.")
    cells = [c.strip().strip('"').strip("'") for c in first.rstrip("\n").split(delimiter)]
    if header is None or header == "auto":
        quoted = first.lstrip().startswith(('"', "'"))
        named = not all(_is_number(c) for c in cells)
        # spikefinder's header is "0,1,...,8": an integer run from 0 (or 1) is a header too.
        ints = [c for c in cells if c.lstrip("-").isdigit()]
        counting = len(ints) == len(cells) > 1 and (
            [int(c) for c in cells] in (list(range(len(cells))), list(range(1, len(cells) + 1))))
        header = quoted or named or counting
    return cells if header else None


def _refuse_text_cells(path, data, delimiter: str, skip: int) -> None:
    """NumPy reads a cell it cannot parse as NaN; only empty cells may be NaN (padding)."""
    if not np.isnan(data).any():
        return
    with open(path) as f:
        lines = f.read().splitlines()[skip:]
    for row, line in enumerate(lines):
        for col, cell in enumerate(line.split(delimiter)):
            text = cell.strip().strip('"').strip("'")
            if text and not _is_number(text) and text.lower() not in ("nan", "na"):
                raise DynrnnValueError(
                    f"`path` {str(path)!r}: the cell in row {row + 1 + skip}, column {col + 1} "
                    f"holds {text!r}, which is not a number (only empty cells or NaN may mark "
                    "missing values)."
                )


def read_csv(
    path: pathlib.Path, *, rate, layout: str = "time-major", header=None, delimiter: str = ",",
) -> xr.Dataset:
    """Read a CSV of activity.

    **Arguments:**
    - `rate`: sampling rate in Hz (required).
    - `layout`: `"time-major"` (rows are frames, columns neurons: spikefinder) or
      `"neuron-major"` (rows are neurons: the zebrafish tectum matrix).
    - `header`: `True`/`False`, or `None` (auto): the first row is a header when it is quoted,
      has a non-number, or is the run `0..n−1` / `1..n` (spikefinder writes `0,1,...,8`).
      Header names become the `neuron` coordinate (time-major only).
    - `delimiter`: field separator.

    Empty cells (spikefinder pads shorter neurons at the end) are read as NaN.
    """
    rate = check_rate(rate)
    names = _header(path, header, delimiter)
    try:
        data = np.genfromtxt(path, delimiter=delimiter, skip_header=1 if names else 0,
                             dtype=np.float64)
    except ValueError as e:
        raise DynrnnValueError(f"`path` {str(path)!r}: rows of unequal length or bad cells: {e}")
    if data.ndim == 0 or data.size == 0:
        raise DynrnnValueError(f"`path` {str(path)!r} holds no numeric rows.")
    _refuse_text_cells(path, data, delimiter, skip=1 if names else 0)
    if data.ndim == 1:
        data = data[:, None] if layout == "time-major" else data[None, :]
    dims = _layout_dims(layout, data.ndim, f"`path` {str(path)!r}")
    neurons = None
    if names is not None and layout == "time-major":
        if len(names) != data.shape[1]:
            raise DynrnnValueError(
                f"`path` {str(path)!r}: header has {len(names)} names but rows have "
                f"{data.shape[1]} columns."
            )
        neurons = np.asarray(names)
    return from_array(data, rate=rate, dims=dims, neurons=neurons, source=str(path),
                      layout_in_file=layout)


def read_npy(
    path: pathlib.Path, *, rate, layout: str = "time-major", allow_pickle: bool = False,
) -> xr.Dataset:
    """Read a `.npy` array `(time, neuron)` (or `(trial, time, neuron)`; `layout` as `read_csv`)."""
    rate = check_rate(rate)
    try:
        arr = np.load(path, allow_pickle=allow_pickle)
    except (EOFError, OSError) as e:
        raise DynrnnValueError(
            f"`path` {str(path)!r} is not a readable .npy file (empty or truncated): {e}"
        ) from e
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DynrnnValueError(
                f"`path` {str(path)!r} holds pickled objects; loading a pickle can execute "
                "arbitrary code, so it is refused by default. Pass allow_pickle=True if you "
                "trust the file."
            ) from e
        raise DynrnnValueError(f"`path` {str(path)!r} is not a readable .npy file: {e}") from e
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise DynrnnValueError(
            f"`path` {str(path)!r} must hold a numeric array, got "
            f"{arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__}."
        )
    dims = _layout_dims(layout, arr.ndim, f"`path` {str(path)!r}")
    if arr.ndim == 1:
        arr, dims = arr[:, None], ("time", "neuron")
    return from_array(arr, rate=rate, dims=dims, source=str(path), layout_in_file=layout)
