"""Errors and input checks shared by every layer of the package.

Every error a user can cause names the argument, what was expected and what was received.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class DynrnnError(Exception):
    """Base class of the errors dynrnn raises that are not plain `ValueError`/`TypeError`."""


class DynrnnValueError(DynrnnError, ValueError):
    """A value a user passed is not what the function expects."""


class DynrnnTypeError(DynrnnError, TypeError):
    """An argument has the wrong type or dtype."""


class CheckpointError(DynrnnError, ValueError):
    """A checkpoint file is missing, truncated or corrupt."""


class TrainingDivergedError(DynrnnError, FloatingPointError):
    """Training produced non-finite loss or parameters; the last good model is kept."""


def is_array(x) -> bool:
    """Whether `x` is a NumPy or JAX array (or a tracer of one)."""
    import jax

    return isinstance(x, np.ndarray | np.generic | jax.Array)


def check_array(
    x,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_len: int | None = None,
    dims: int | None = None,
    finite: bool = True,
    floating: bool = True,
) -> np.ndarray | object:
    """Validate an array argument and return it as a NumPy or JAX array (unchanged type).

    **Arguments:**
    - `x`: the array.
    - `name`: the argument's name, used in error messages.
    - `ndim`: allowed number(s) of dimensions.
    - `min_len`: minimum length of the first (time) axis.
    - `dims`: required size of the last axis.
    - `finite`: reject NaN/Inf.
    - `floating`: require a real floating (or integer, which is converted) dtype.

    **Raises:** `DynrnnTypeError` for non-numeric input, `DynrnnValueError` otherwise.

    Checks that need concrete values (finiteness) are skipped under `jax.jit` tracing.
    """
    import jax

    if x is None:
        raise DynrnnValueError(f"`{name}` is required, got None.")
    if not is_array(x):
        try:
            x = np.asarray(x)
        except Exception as e:  # pragma: no cover - defensive
            raise DynrnnTypeError(f"`{name}` must be an array, got {type(x).__name__}.") from e
    dtype = np.dtype(x.dtype)
    if floating:
        if dtype.kind == "b" or dtype.kind not in "fiu":
            raise DynrnnTypeError(
                f"`{name}` must have a real numeric (floating) dtype, got dtype {dtype}."
            )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            exp = " or ".join(str(a) for a in allowed)
            raise DynrnnValueError(
                f"`{name}` must have {exp} dimensions, got shape {tuple(x.shape)} "
                f"({x.ndim} dimensions)."
            )
    if x.size == 0:
        raise DynrnnValueError(f"`{name}` is empty (shape {tuple(x.shape)}).")
    if min_len is not None and x.shape[0] < min_len:
        raise DynrnnValueError(
            f"`{name}` is too short: needs at least {min_len} time steps, got {x.shape[0]} "
            f"(shape {tuple(x.shape)})."
        )
    if dims is not None and x.shape[-1] != dims:
        raise DynrnnValueError(
            f"`{name}` must have {dims} dimensions on its last axis, got shape {tuple(x.shape)}."
        )
    if finite and not isinstance(x, jax.core.Tracer):
        bad = ~np.isfinite(np.asarray(x, dtype=np.float64)) if dtype.kind == "f" else None
        if bad is not None and bad.any():
            first = np.argwhere(bad)[0]
            raise DynrnnValueError(
                f"`{name}` contains {int(bad.sum())} non-finite value(s) (NaN or Inf); "
                f"the first at index {tuple(int(i) for i in first)}."
            )
    return x


def check_same_dims(a, b, name_a: str, name_b: str) -> None:
    """Both arrays must have the same size on their last axis."""
    if a.shape[-1] != b.shape[-1]:
        raise DynrnnValueError(
            f"`{name_a}` and `{name_b}` must have the same number of dimensions, got "
            f"{a.shape[-1]} (shape {tuple(a.shape)}) and {b.shape[-1]} (shape {tuple(b.shape)})."
        )


def check_positive(value, name: str, *, integer: bool = False, strict: bool = True):
    """A positive number (or positive integer)."""
    if integer:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise DynrnnTypeError(f"`{name}` must be an integer, got {value!r}.")
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        rel = "> 0" if strict else ">= 0"
        raise DynrnnValueError(f"`{name}` must be {rel}, got {value!r}.")
    return value
