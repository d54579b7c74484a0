"""Linear (affine) recurrences `h_t = a_t h_{t-1} + b_t`, sequentially or as a parallel scan."""

from __future__ import annotations

import functools
from typing import Literal

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact

from .._errors import DynrnnTypeError, DynrnnValueError, is_array


_METHODS = ("auto", "sequential", "associative")

# Where `method="auto"` switches from `lax.scan` to `lax.associative_scan`: the smallest number
# of time steps from which the associative scan is used, per backend.
# CPU: never. Measured by `benchmarks/scan.py` on a 2-core CPU with JAX 0.10.2 (see
# `benchmarks/RESULTS.md`, section `## scan`): for diagonal `a` the sequential scan was faster at
# every T in 1k..262k and D in {1, 16, 64} (the associative scan 2.3-7x slower forward, 2.4-5.5x
# for the gradient); for dense `a` the associative scan also does O(D^3) products per step.
# Accelerators (GPU/TPU): not measured here (no GPU was available); the sequential loop costs a
# kernel launch per step there while the associative scan has depth O(log T), so it is used from
# T = 256 on, below the lengths at which DEER/S5 report GPU speed-ups (REFERENCES.md section 8).
_CPU_ASSOCIATIVE_MIN_T = None
_ACCELERATOR_ASSOCIATIVE_MIN_T = 256


def _choose_method(method: str, length: int) -> str:
    """The method `"auto"` stands for, for a sequence of `length` steps on this backend."""
    if method != "auto":
        return method
    if jax.default_backend() == "cpu":
        threshold = _CPU_ASSOCIATIVE_MIN_T
    else:
        threshold = _ACCELERATOR_ASSOCIATIVE_MIN_T
    return "associative" if threshold is not None and length >= threshold else "sequential"


def _apply(a, h, dense: bool):
    return a @ h if dense else a * h


def _solve(a, b, method: str, reverse: bool, dense: bool):
    """`h_t = a_t h_{t-1} + b_t` from `h_0 = 0` (the initial state is already folded into b)."""
    if method == "sequential":

        def body(h, ab):
            a_t, b_t = ab
            h = _apply(a_t, h, dense) + b_t
            return h, h

        _, h = lax.scan(body, jnp.zeros_like(b[0]), (a, b), reverse=reverse)
        return h

    # Affine maps h -> A h + c compose as (A_j, c_j) o (A_i, c_i) = (A_j A_i, A_j c_i + c_j),
    # an associative operation (S5, Smith et al. 2023; DEER, Lim et al. 2024). With
    # `reverse=True` `associative_scan` flips the sequence, so `earlier` is still applied first.
    def combine(earlier, later):
        a_i, c_i = earlier
        a_j, c_j = later
        if dense:
            return a_j @ a_i, (a_j @ c_i[..., None])[..., 0] + c_j
        return a_j * a_i, a_j * c_i + c_j

    _, h = lax.associative_scan(combine, (a, b), reverse=reverse)
    return h


def _fold_h0(a, b, h0, reverse: bool, dense: bool):
    first = -1 if reverse else 0
    return b.at[first].add(_apply(a[first], h0, dense))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _linear_core(a, b, h0, method: str, reverse: bool, dense: bool):
    return _solve(a, _fold_h0(a, b, h0, reverse, dense), method, reverse, dense)


def _linear_fwd(a, b, h0, method, reverse, dense):
    h = _solve(a, _fold_h0(a, b, h0, reverse, dense), method, reverse, dense)
    return h, (a, h, h0)


def _linear_bwd(method, reverse, dense, residuals, g):
    # The adjoint of the recursion is the same recursion run the other way with transposed
    # coefficients: lambda_t = g_t + a_{t+1}^T lambda_{t+1} (with "t+1" the next step in the
    # direction of the forward pass). Then db_t = lambda_t, da_t = lambda_t h_{t-1}^T and
    # dh0 = a_1^T lambda_1. Only `a` and `h` are stored: O(T D) memory for diagonal `a`,
    # instead of every level of the associative tree.
    a, h, h0 = residuals
    at = jnp.swapaxes(a, -1, -2) if dense else a
    zero = jnp.zeros_like(at[:1])
    if reverse:
        a_next = jnp.concatenate([zero, at[:-1]])
        h_prev = jnp.concatenate([h[1:], h0[None]])
        first = -1
    else:
        a_next = jnp.concatenate([at[1:], zero])
        h_prev = jnp.concatenate([h0[None], h[:-1]])
        first = 0
    lam = _solve(a_next, g, method, not reverse, dense)
    if dense:
        da = lam[:, :, None] * h_prev[:, None, :]
        dh0 = at[first] @ lam[first]
    else:
        da = lam * h_prev
        dh0 = a[first] * lam[first]
    return da, lam, dh0


_linear_core.defvjp(_linear_fwd, _linear_bwd)


@eqx.filter_jit
def _linear_jit(a, b, h0, method: str, reverse: bool, dense: bool):
    return _linear_core(a, b, h0, method, reverse, dense)


def _is_inexact(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def linear(
    a: (
        Inexact[Array, "time dim dim"] | Inexact[Array, "time dim"] | Inexact[Array, " time"]
        | float
    ),
    b: Inexact[Array, "time dim"],
    h0: Inexact[Array, " dim"] | None = None,
    *,
    method: Literal["auto", "sequential", "associative"] = "auto",
    reverse: bool = False,
) -> Inexact[Array, "time dim"]:
    r"""Evaluate the linear recurrence

    $$h_t = a_t h_{t-1} + b_t, \qquad t = 1, \dots, T,$$

    from `h_0 = h0`, where `a_t` is a scalar, a diagonal (elementwise product) or a dense matrix
    (matrix-vector product). With `reverse=True` the recurrence runs from the end,
    `h_t = a_t h_{t+1} + b_t` from `h_{T+1} = h0`.

    `"sequential"` is a `lax.scan`; `"associative"` is a `lax.associative_scan` over the affine
    maps `h -> a_t h + b_t`, which compose as `(A_j, b_j) o (A_i, b_i) = (A_j A_i, A_j b_i + b_j)`
    (depth O(log T); Smith, Warrington & Linderman 2023, S5; Lim et al. 2024, DEER). `"auto"`
    picks by backend and length from the measurements in `benchmarks/RESULTS.md`
    (on CPU mostly the sequential scan; on accelerators the associative scan for long
    sequences).

    Gradients use a custom VJP whose backward pass is one reverse linear recurrence (the adjoint
    `λ_t = g_t + a_{t+1}^T λ_{t+1}`), so reverse mode stores only `a`, `h` and `h0`: O(T D)
    memory for scalar or diagonal `a`. Forward-mode differentiation (`jax.jvp`, `jax.jacfwd`) of
    `linear` is therefore not available.

    Shapes are fixed per call: `a` must carry the time axis. A time-invariant coefficient is
    accepted only as a scalar (a Python number or 0-d array); broadcast a time-invariant
    diagonal or matrix explicitly (`jnp.broadcast_to(a, (T, D))`), because `(D,)` and `(T,)`
    (or `(D, D)` and `(T, D)`) cannot be told apart when `T == D`. For several sequences use
    `jax.vmap`.

    **Arguments:**
    - `a`: coefficients, of shape `()` (one scalar for all steps), `(T,)` (a scalar per step),
        `(T, D)` (diagonal) or `(T, D, D)` (dense).
    - `b`: inputs `(T, D)`.
    - `h0`: initial state `(D,)`; zeros if `None`.
    - `method`: `"auto"`, `"sequential"` or `"associative"`.
    - `reverse`: run the recurrence from the last step to the first.

    **Returns:** the states `h_1, ..., h_T` (in time order also when `reverse=True`), shape
    `(T, D)`, in the common dtype of the inputs.

    **Raises:** `DynrnnTypeError` if an input is not a floating-point (or complex) array;
    `DynrnnValueError` for shapes that do not fit together or an unknown `method`.
    """
    if method not in _METHODS:
        raise DynrnnValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    if not isinstance(reverse, bool | np.bool_):
        raise DynrnnTypeError(f"`reverse` must be a bool, got {reverse!r}.")
    b = jnp.asarray(b) if not is_array(b) else b
    a = jnp.asarray(a) if not is_array(a) else a
    for name, x in (("a", a), ("b", b)) + ((("h0", h0),) if h0 is not None else ()):
        if not _is_inexact(x):
            raise DynrnnTypeError(
                f"`{name}` must have a floating-point or complex dtype, got dtype "
                f"{jnp.result_type(x)}."
            )
    if b.ndim != 2:
        raise DynrnnValueError(
            f"`b` must have shape (time, dim), got shape {tuple(b.shape)}; for several "
            "sequences use jax.vmap."
        )
    T, D = b.shape
    if T == 0:
        raise DynrnnValueError(f"`b` has no time steps (shape {tuple(b.shape)}).")
    expected = {0: (), 1: (T,), 2: (T, D), 3: (T, D, D)}
    if a.ndim not in expected or tuple(a.shape) != expected[a.ndim]:
        raise DynrnnValueError(
            f"`a` of shape {tuple(a.shape)} does not fit `b` of shape {tuple(b.shape)}: "
            f"expected () (one scalar), {(T,)} (scalar per step), {(T, D)} (diagonal) or "
            f"{(T, D, D)} (dense)."
        )
    dtype = jnp.result_type(a, b) if h0 is None else jnp.result_type(a, b, h0)
    if h0 is None:
        h0 = jnp.zeros((D,), dtype)
    else:
        h0 = jnp.asarray(h0) if not is_array(h0) else h0
        if tuple(h0.shape) != (D,):
            raise DynrnnValueError(
                f"`h0` must have shape {(D,)} (the last axis of `b`, shape {tuple(b.shape)}), "
                f"got shape {tuple(h0.shape)}."
            )
    dense = a.ndim == 3
    if a.ndim < 2:
        # A scalar per step is broadcast to a diagonal; its gradient is summed back by autodiff.
        a = jnp.broadcast_to(a.reshape((-1, 1)) if a.ndim == 1 else a, (T, D))
    a, b, h0 = a.astype(dtype), b.astype(dtype), h0.astype(dtype)
    chosen = _choose_method(method, T)
    return _linear_jit(a, b, h0, chosen, bool(reverse), dense)
