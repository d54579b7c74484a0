"""Parallel Newton evaluation of nonlinear recurrences (DEER, quasi-DEER, damped DEER)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._errors import DynrnnTypeError, DynrnnValueError, is_array
from ._linear import _METHODS, linear


# Default stopping tolerances `(rtol, atol)` on the Newton update, per dtype. float32: the values
# of the reference implementation (machine-discovery/deer). float64: tighter than the reference
# (1e-4, 1e-6), so that a converged trajectory matches `lax.scan` to ~1e-8 also for the linearly
# converging quasi-DEER; full DEER converges quadratically and needs about one more iteration.
_DEFAULT_TOL = {np.dtype(np.float32): (1e-3, 1e-4), np.dtype(np.float64): (1e-8, 1e-10)}
_DEFAULT_MAX_ITER = 100
# Above this many elements of the (time, dim, dim) Jacobian the quasi-DEER diagonal is computed
# one basis vector at a time (O(T D) memory) instead of from the full Jacobian.
_DIAGONAL_FROM_FULL_MAX = 2**24


class DeerNotConvergedWarning(RuntimeWarning):
    """`dr.scan.deer` stopped without converging (or produced non-finite values)."""


class DeerInfo(eqx.Module):
    """What happened in `dr.scan.deer`.

    - `iterations`: Newton iterations performed.
    - `residual`: `max_t |h_t - f(h_{t-1}, x_t)|` of the Newton solution (before any fallback).
    - `converged`: whether the Newton iterations met the tolerance with finite values.
    - `fallback`: whether the returned states are those of the sequential scan instead.
    """

    iterations: Int[Array, ""]
    residual: Float[Array, ""]
    converged: Bool[Array, ""]
    fallback: Bool[Array, ""]


class _Config(NamedTuple):
    rtol: float
    atol: float
    max_iter: int
    jacobian: str  # "full", "diagonal", "callable_full" or "callable_diagonal"
    damping: float | None
    method: str
    length: int


def _shift(h0, states):
    """`h_{t-1}` for every t: the initial state followed by all states but the last."""
    return jnp.concatenate([h0[None], states[:-1]])


def _vmap_step(fn, xs):
    return jax.vmap(fn, in_axes=(0, None if xs is None else 0))


def _full_jacobians(fn, prev, xs):
    return _vmap_step(jax.jacfwd(fn), xs)(prev, xs)


def _diagonal_jacobians(fn, prev, xs):
    T, D = prev.shape
    if T * D * D <= _DIAGONAL_FROM_FULL_MAX:
        return jnp.diagonal(_full_jacobians(fn, prev, xs), axis1=-2, axis2=-1)
    # One forward-mode product per state dimension; only its own component is kept, so the
    # memory is O(T D) and the work the same D Jacobian-vector products as the full Jacobian.
    step = _vmap_step(fn, xs)

    def column(i):
        e = jnp.broadcast_to(jax.nn.one_hot(i, D, dtype=prev.dtype), prev.shape)
        _, tangent = jax.jvp(lambda p: step(p, xs), (prev,), (e,))
        return tangent[:, i]

    return lax.map(column, jnp.arange(D)).T


def _jacobians(fn, jac_fn, prev, xs, cfg: _Config):
    if cfg.jacobian.startswith("callable"):
        return _vmap_step(jac_fn, xs)(prev, xs)
    if cfg.jacobian == "full":
        return _full_jacobians(fn, prev, xs)
    return _diagonal_jacobians(fn, prev, xs)


def _newton_update(fn, jac_fn, h0, xs, states, k, cfg: _Config):
    """One Newton step on the whole trajectory, damped with gain `k` (0: plain Newton)."""
    prev = _shift(h0, states)
    f = _vmap_step(fn, xs)(prev, xs)
    J = _jacobians(fn, jac_fn, prev, xs, cfg)
    dense = J.ndim == 3
    # Linearising f around the current iterate gives the affine recurrence
    # h_t = J_t h_{t-1} + (f(h^(k)_{t-1}, x_t) - J_t h^(k)_{t-1}).
    r = f - (jnp.einsum("tij,tj->ti", J, prev) if dense else J * prev)
    if k is not None:
        # Constant-gain filter of the ELK objective (see `deer`): pull towards the current iterate.
        J, r = (1.0 - k) * J, (1.0 - k) * r + k * states
    return linear(J, r, h0, method=cfg.method)


def _newton(fn, jac_fn, h0, xs, init, cfg: _Config):
    damped = cfg.damping is not None
    gain = cfg.damping / (1.0 + cfg.damping) if damped else None

    def cond(carry):
        i, _, done, finite, _, _ = carry
        return (i < cfg.max_iter) & ~done & finite

    def body(carry):
        i, states, _, _, polishing, damped_solution = carry
        k = jnp.where(polishing, 0.0, gain) if damped else None
        new = _newton_update(fn, jac_fn, h0, xs, states, k, cfg)
        small = jnp.all(jnp.abs(new - states) <= cfg.atol + cfg.rtol * jnp.abs(new))
        finite = jnp.all(jnp.isfinite(new))
        if not damped:
            return i + 1, new, small, finite, polishing, damped_solution
        # Damped iterations converge only linearly; once they meet the tolerance, undamped
        # Newton steps finish (quadratically near a contracting solution). Should those blow
        # up, the damped solution, which met the tolerance, is kept.
        start_polishing = ~polishing & small & finite
        damped_solution = jnp.where(start_polishing, new, damped_solution)
        failed_polishing = polishing & ~finite
        new = jnp.where(failed_polishing, damped_solution, new)
        done = (polishing & small & finite) | failed_polishing
        return i + 1, new, done, finite | failed_polishing, polishing | start_polishing, (
            damped_solution
        )

    carry = (
        jnp.array(0),
        init,
        jnp.array(False),
        jnp.all(jnp.isfinite(init)),
        jnp.array(not damped),
        init if damped else None,
    )
    iterations, states, done, finite, _, _ = lax.while_loop(cond, body, carry)
    diff = states - _vmap_step(fn, xs)(_shift(h0, states), xs)
    residual = jnp.where(jnp.all(jnp.isfinite(diff)), jnp.max(jnp.abs(diff)), jnp.inf)
    converged = done & finite & jnp.isfinite(residual)
    return states, iterations, residual, converged


@eqx.filter_custom_vjp
def _deer_core(vjp_arg, init, cfg: _Config):
    fn, jac_fn, h0, xs = vjp_arg
    return _newton(fn, jac_fn, h0, xs, init, cfg)


@_deer_core.def_fwd
def _deer_core_fwd(perturbed, vjp_arg, init, cfg: _Config):
    fn, jac_fn, h0, xs = vjp_arg
    out = _newton(fn, jac_fn, h0, xs, init, cfg)
    return out, out[0]


def _next(v):
    """`v_{t+1}` for every t, zero after the last step."""
    return jnp.concatenate([v[1:], jnp.zeros_like(v[:1])])


def _adjoint_dense(fn, prev, xs, g, cfg: _Config):
    """Solve lambda_t = g_t + J_{t+1}^T lambda_{t+1} with the full Jacobians at the solution."""
    J = _full_jacobians(fn, prev, xs)
    return linear(_next(jnp.swapaxes(J, -1, -2)), g, method=cfg.method, reverse=True)


def _adjoint_quasi(fn, jac_fn, prev, xs, g, cfg: _Config):
    """The same adjoint in O(T D) memory, for the quasi-DEER variants: a fixed-point iteration
    whose linear solves use only diag(J_t), with the exact products J_t^T lambda_t from one
    vectorised VJP per iteration, so its fixed point is the exact adjoint. Should it not
    converge within `max_iter`, the adjoint is computed by a sequential reverse scan."""
    step = _vmap_step(fn, xs)
    _, vjp = jax.vjp(lambda p: step(p, xs), prev)
    if cfg.jacobian == "diagonal":
        d = _diagonal_jacobians(fn, prev, xs)
    else:
        d = _vmap_step(jac_fn, xs)(prev, xs)
    a = _next(d)

    def sweep(lam):
        return linear(a, g + _next(vjp(lam)[0] - d * lam), method=cfg.method, reverse=True)

    def cond(carry):
        i, _, done, finite = carry
        return (i < cfg.max_iter) & ~done & finite

    def body(carry):
        i, lam, _, _ = carry
        new = sweep(lam)
        scale = jnp.max(jnp.abs(new))
        done = jnp.all(jnp.abs(new - lam) <= cfg.atol * scale + cfg.rtol * jnp.abs(new))
        return i + 1, new, done, jnp.all(jnp.isfinite(new))

    first = linear(a, g, method=cfg.method, reverse=True)
    carry = (jnp.array(1), first, jnp.array(False), jnp.all(jnp.isfinite(first)))
    _, lam, done, finite = lax.while_loop(cond, body, carry)

    def sequential(_):
        def back(c, gpx):
            g_t, p_t, x_t = gpx
            lam_t = g_t + c
            return jax.vjp(lambda p: fn(p, x_t), p_t)[1](lam_t)[0], lam_t

        return lax.scan(back, jnp.zeros_like(g[0]), (g, prev, xs), reverse=True)[1]

    return lax.cond(done & finite, lambda _: lam, sequential, None)


@_deer_core.def_bwd
def _deer_core_bwd(states, grad_obj, perturbed, vjp_arg, init, cfg: _Config):
    # Implicit function theorem at the solution h = f(shift(h), x): the adjoint is a reverse
    # linear recurrence with the transposed Jacobians at the solution,
    # lambda_t = g_t + J_{t+1}^T lambda_{t+1}, and the cotangents of the parameters, the inputs
    # and h0 are one vectorised VJP of f at the solution. The Newton loop is not differentiated.
    fn, jac_fn, h0, xs = vjp_arg
    g = grad_obj[0]
    if g is None:
        g = jnp.zeros_like(states)
    prev = _shift(h0, states)
    if cfg.jacobian in ("full", "callable_full"):
        lam = _adjoint_dense(fn, prev, xs, g, cfg)
    else:
        lam = _adjoint_quasi(fn, jac_fn, prev, xs, g, cfg)
    _, vjp = eqx.filter_vjp(lambda fn, prev, xs: _vmap_step(fn, xs)(prev, xs), fn, prev, xs)
    dfn, dprev, dxs = vjp(lam)
    # A callable Jacobian only steers the Newton iterations and the adjoint's linear solves;
    # the solution and its gradient are those of `fn`, so its arrays get no cotangent.
    djac = None if jac_fn is None else jax.tree.map(
        jnp.zeros_like, eqx.filter(jac_fn, eqx.is_inexact_array))
    return dfn, djac, dprev[0], dxs


def _sequential(fn, h0, xs, length: int):
    def body(h, x):
        h = fn(h, x)
        return h, h

    return lax.scan(body, h0, xs, length=length)[1]


@eqx.filter_jit
def _deer_jit(step, jacobian, h0, xs, init, cfg: _Config):
    x0 = None if xs is None else jax.tree.map(lambda x: x[0], xs)
    fn = eqx.filter_closure_convert(step, h0, x0)
    jac_fn = None if jacobian is None else eqx.filter_closure_convert(jacobian, h0, x0)
    if init is None:
        init = jnp.broadcast_to(h0, (cfg.length,) + h0.shape)
    # The initial guess only affects how fast Newton converges, not the solution.
    init = lax.stop_gradient(init)
    states, iterations, residual, converged = _deer_core((fn, jac_fn, h0, xs), init, cfg)
    info = DeerInfo(iterations, residual, converged, jnp.array(False))
    return states, info


@eqx.filter_jit
def _sequential_jit(step, h0, xs, length: int):
    return _sequential(step, h0, xs, length)


def _warn_not_converged(iterations, residual, max_iter: int, fallback: bool) -> None:
    then = "returning the sequential scan instead" if fallback else "returning the last iterate"
    warnings.warn(
        f"dr.scan.deer did not converge: stopped after {int(np.max(iterations))} of at most "
        f"{max_iter} Newton iterations with residual max|h_t - f(h_t-1, x_t)| = "
        f"{float(np.max(residual)):.3g}; {then}. Damping (`damping=`), a larger `max_iter` or "
        "the sequential scan help for expanding (chaotic or unstable) recurrences.",
        DeerNotConvergedWarning,
        stacklevel=3,
    )


def _check_tol(tol, dtype) -> tuple[float, float]:
    if tol is None:
        return _DEFAULT_TOL.get(np.dtype(dtype), _DEFAULT_TOL[np.dtype(np.float32)])
    pair = (tol, tol) if np.ndim(tol) == 0 else tuple(tol)
    if len(pair) != 2 or not all(np.isfinite(t) and t >= 0 for t in pair) or max(pair) == 0:
        raise DynrnnValueError(
            f"`tol` must be a non-negative number or a pair (rtol, atol), not both zero; got "
            f"{tol!r}."
        )
    return float(pair[0]), float(pair[1])


def deer(
    step: Callable[[Float[Array, " dim"], Any], Float[Array, " dim"]],
    h0: Float[Array, " dim"],
    inputs: Any = None,
    *,
    length: int | None = None,
    tol: float | tuple[float, float] | None = None,
    max_iter: int | None = None,
    jacobian: Literal["full", "diagonal"] | Callable = "full",
    damping: float | None = None,
    fallback: bool = True,
    method: Literal["auto", "sequential", "associative"] = "auto",
    init: Float[Array, "time dim"] | None = None,
) -> tuple[Float[Array, "time dim"], DeerInfo]:
    r"""Evaluate the nonlinear recurrence `h_t = f(h_{t-1}, x_t)`, `t = 1..T`, by Newton's method
    on the whole trajectory at once (DEER: Lim, Zhu, Selfridge & Kasim, ICLR 2024).

    Starting from `h^{(0)}_t = h0`, every iteration linearises `f` around the current trajectory
    and solves the affine recurrence

    $$h^{(k+1)}_t = J_t h^{(k+1)}_{t-1} + f(h^{(k)}_{t-1}, x_t) - J_t h^{(k)}_{t-1},
    \qquad J_t = \partial f / \partial h\,(h^{(k)}_{t-1}, x_t),$$

    with `dr.scan.linear` (parallel in time where `method` chooses the associative scan). It
    stops when `|h^{(k+1)} - h^{(k)}| <= atol + rtol |h^{(k+1)}|` everywhere. In exact
    arithmetic the first `k` states are exact after `k` iterations; near the solution the
    convergence is quadratic. For contracting recurrences a handful of iterations suffice; for
    expanding (chaotic) ones the linearisation overflows.

    - `jacobian="full"`: `J_t` by `jax.jacfwd` (D forward-mode products per step), O(T D^2)
      memory and O(T D^3) work per associative solve.
    - `jacobian="diagonal"`: quasi-DEER (Gonzalez, Warrington, Smith & Linderman, NeurIPS 2024)
      keeps only `diag(J_t)`: the solve is O(T D) and the convergence linear (more
      iterations). The diagonal is taken from the full Jacobian while `T D^2 <= 2^24`, else one
      basis vector at a time (the same D products, O(T D) memory); pass an analytic diagonal as
      a callable for the full saving.
    - `jacobian=callable`: `jacobian(h, x)` returns `J` `(D, D)` or its diagonal `(D,)`. Any
      approximation only affects the speed of convergence, not the solution (a fixed point of
      the iteration is the exact trajectory).
    - `damping=λ` (ELK, Gonzalez et al. 2024, in a simplified form): each iteration solves
      `s_t = (1 - k)(J_t s_{t-1} + r_t) + k s^{(k)}_t` with `k = λ / (1 + λ)`, the Kalman filter
      of ELK's objective `Σ‖s_t − J_t s_{t−1} − r_t‖² + λ Σ‖s_t − s^{(k)}_t‖²` with its gain
      held at the constant `k` (the gain for unit prior variance) instead of the Riccati gain.
      It has the same fixed point as DEER, reduces to it for λ = 0, and damps the linearised
      propagation by `1 - k`, so an expanding linearisation with `‖J_t‖ < 1 / (1 - k)` no
      longer overflows; the price is linear convergence (roughly a factor `k` per iteration).
      Once the damped iterations meet the tolerance, undamped Newton steps finish the solve
      (the damped solution is kept should they blow up). Damping is no guarantee: for
      multistable maps the damped iteration can cycle; then the fallback applies.

    Gradients use the implicit function theorem at the solution, not differentiation of the
    Newton loop: the adjoint `λ_t = g_t + J_{t+1}^T λ_{t+1}` (Jacobians at the solution), then
    one vectorised VJP of `f` gives the cotangents of `h0`, `inputs` and any JAX arrays `step`
    closes over or holds (an Equinox module's bound method works). With a full Jacobian the
    adjoint is one reverse linear scan with the transposed Jacobians (O(T D^2) memory); with a
    diagonal one it is a quasi-Newton iteration of diagonal reverse scans plus exact VJPs
    (O(T D) memory, same tolerances and `max_iter`, with a sequential reverse scan as fallback).

    If the iteration does not converge within `max_iter` or produces non-finite values, a
    `DeerNotConvergedWarning` is emitted and, with `fallback=True`, the sequential `lax.scan`
    result is returned (`info.fallback` is then `True`). Outside `jax.jit`, `jax.vmap` this is
    decided on the host after the (jit-compiled) solve; inside a trace it is a `lax.cond` and
    the warning comes from a `jax.debug.callback`. Reuse the same `step` object between calls
    to reuse the compiled solve.

    **Arguments:**
    - `step`: `f(h, x) -> h_new`, mapping a state `(D,)` and one time slice of `inputs` to a
        state of the same shape and dtype (called as `step(h, None)` without inputs).
    - `h0`: initial state `(D,)`, floating point; its dtype sets the default tolerances.
    - `inputs`: an array (or pytree of arrays) with leading time axis `T`, or `None`.
    - `length`: number of steps `T`; required when `inputs` is `None`, else must match.
    - `tol`: `None` for the per-dtype defaults (float32: rtol 1e-3, atol 1e-4; float64:
        rtol 1e-8, atol 1e-10), a number used as both, or a pair `(rtol, atol)`.
    - `max_iter`: maximal number of Newton iterations (default 100).
    - `jacobian`: `"full"`, `"diagonal"` or a callable, see above.
    - `damping`: `None` (plain Newton) or λ >= 0, see above.
    - `fallback`: return the sequential result when the iteration fails.
    - `method`: method of the linear solves, as in `dr.scan.linear`.
    - `init`: initial guess `(T, D)` of the trajectory (e.g. the previous one during training);
        default `h0` at every step.

    **Returns:** `(states, info)`: the states `h_1..h_T`, shape `(T, D)`, and a `DeerInfo`.

    **Raises:** `DynrnnValueError` / `DynrnnTypeError` for a `step` that changes the shape or
    dtype of the state, inputs without a common leading axis, a missing or mismatched `length`,
    or invalid options.
    """
    if not callable(step):
        raise DynrnnTypeError(f"`step` must be callable, got {type(step).__name__}.")
    if not is_array(h0):
        h0 = jnp.asarray(h0)
    if not jnp.issubdtype(h0.dtype, jnp.floating):
        raise DynrnnTypeError(f"`h0` must have a floating-point dtype, got dtype {h0.dtype}.")
    if h0.ndim != 1:
        raise DynrnnValueError(
            f"`h0` must be a flat state of shape (dim,), got shape {tuple(h0.shape)}."
        )
    if inputs is None:
        if length is None:
            raise DynrnnValueError("`length` is required when `inputs` is None, got None.")
        T = length
    else:
        leaves = jax.tree.leaves(inputs)
        if not leaves or any(np.ndim(x) == 0 for x in leaves):
            raise DynrnnValueError(
                "`inputs` must be an array (or pytree of arrays) with a leading time axis, got "
                f"{jax.tree.map(lambda x: np.shape(x), inputs)}."
            )
        inputs = jax.tree.map(lambda x: x if is_array(x) else jnp.asarray(x), inputs)
        lengths = {x.shape[0] for x in leaves}
        if len(lengths) != 1:
            raise DynrnnValueError(
                f"all arrays in `inputs` must have the same leading (time) length, got shapes "
                f"{[tuple(np.shape(x)) for x in leaves]}."
            )
        T = lengths.pop()
        if length is not None and length != T:
            raise DynrnnValueError(
                f"`length`={length} does not match the time axis of `inputs` ({T} steps)."
            )
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise DynrnnValueError(f"`length` must be a positive integer, got {T!r}.")
    T = int(T)
    rtol, atol = _check_tol(tol, h0.dtype)
    max_iter = _DEFAULT_MAX_ITER if max_iter is None else max_iter
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise DynrnnValueError(f"`max_iter` must be a positive integer, got {max_iter!r}.")
    if damping is not None and not (np.isfinite(damping) and damping >= 0):
        raise DynrnnValueError(f"`damping` must be None or a number >= 0, got {damping!r}.")
    if method not in _METHODS:
        raise DynrnnValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    if init is not None and tuple(np.shape(init)) != (T,) + tuple(h0.shape):
        raise DynrnnValueError(
            f"`init` must have shape {(T,) + tuple(h0.shape)} (time, dim), got shape "
            f"{tuple(np.shape(init))}."
        )

    x0 = None if inputs is None else jax.tree.map(lambda x: x[0], inputs)
    out = jax.eval_shape(step, h0, x0)
    if not isinstance(out, jax.ShapeDtypeStruct) or tuple(out.shape) != tuple(h0.shape):
        got = (f"shape {tuple(out.shape)}" if isinstance(out, jax.ShapeDtypeStruct)
               else type(out).__name__)
        raise DynrnnValueError(
            f"`step` must return a state of the same shape as `h0` {tuple(h0.shape)}, got {got}."
        )
    if out.dtype != h0.dtype:
        raise DynrnnTypeError(
            f"`step` must return a state of the same dtype as `h0` ({h0.dtype}), got dtype "
            f"{out.dtype}; cast `h0` or the parameters of `step`."
        )
    jac_fn = None
    if callable(jacobian):
        jac_shape = jax.eval_shape(jacobian, h0, x0)
        D = h0.shape[0]
        is_struct = isinstance(jac_shape, jax.ShapeDtypeStruct)
        if not is_struct or tuple(jac_shape.shape) not in ((D, D), (D,)):
            got = jac_shape.shape if is_struct else type(jac_shape).__name__
            raise DynrnnValueError(
                f"a callable `jacobian` must return ({D}, {D}) or its diagonal ({D},), got {got}."
            )
        kind = "callable_full" if len(jac_shape.shape) == 2 else "callable_diagonal"
        jac_fn, jacobian = jacobian, kind
    elif jacobian not in ("full", "diagonal"):
        raise DynrnnValueError(
            f"`jacobian` must be 'full', 'diagonal' or a callable, got {jacobian!r}."
        )

    cfg = _Config(
        rtol, atol, int(max_iter), jacobian, None if damping is None else float(damping),
        method, T,
    )
    init = None if init is None else jnp.asarray(init, h0.dtype)
    states, info = _deer_jit(step, jac_fn, h0, inputs, init, cfg)

    try:
        converged = bool(info.converged)
    except jax.errors.ConcretizationTypeError:
        # Inside jit/vmap: decide on the device and warn from a callback.
        def on_host(converged, iterations, residual):
            if not np.all(converged):
                _warn_not_converged(iterations, residual, cfg.max_iter, fallback)

        jax.debug.callback(on_host, info.converged, info.iterations, info.residual)
        if fallback:
            states = lax.cond(
                info.converged,
                lambda s: s,
                lambda s: _sequential(step, h0, inputs, T).astype(s.dtype),
                states,
            )
            info = eqx.tree_at(lambda i: i.fallback, info, ~info.converged)
        return states, info

    if not converged:
        _warn_not_converged(info.iterations, info.residual, cfg.max_iter, fallback)
        if fallback:
            states = _sequential_jit(step, h0, inputs, T)
            info = eqx.tree_at(lambda i: i.fallback, info, jnp.array(True))
    return states, info
