"""Lyapunov spectra by the QR method, for maps (latent models) and flows (`dynrnn.systems`).

The tangent dynamics `Y_t = J_t Y_{t−1}` stretch and fold a set of `k` tangent vectors; factoring
`Y = Q R` at regular intervals keeps them orthonormal, and the average growth rates of the
diagonal of `R` are the `k` largest Lyapunov exponents (Benettin et al. 1980; Eckmann & Ruelle
1985, Sec. IV.D).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._errors import DynrnnTypeError, DynrnnValueError, check_array, check_positive
from ..models import AbstractLatentModel
from ..systems import AbstractSystem


def _orthonormalise(y: Float[Array, "dim k"]) -> tuple[Float[Array, "dim k"], Float[Array, " k"]]:
    """`Y = Q R` with `diag R > 0` (signs moved into `Q`); returns `Q` and `ln diag R`."""
    q, r = jnp.linalg.qr(y)
    diag = jnp.diagonal(r)
    sign = jnp.where(diag < 0, -1.0, 1.0).astype(y.dtype)
    return q * sign, jnp.log(jnp.abs(diag))


def _initial_frame(n_dim: int, k: int, dtype) -> Float[Array, "dim k"]:
    """A fixed, generic orthonormal frame: coordinate axes could lie in an invariant subspace
    (a diagonal map keeps span(e_1, e_2)) and then miss the largest exponents when `k < dim`."""
    return jnp.linalg.qr(jr.normal(jr.PRNGKey(0), (n_dim, k), dtype))[0]


def _map_tangent(system):
    return lambda z: system.jacobian(z)


@eqx.filter_jit
def _map_spectrum(
    system, z0: Float[Array, " dim"], n_blocks: int, transient: int, k: int, qr_every: int
) -> Float[Array, " k"]:
    jacobian = _map_tangent(system)

    def advance(carry, length):
        def one(c, _):
            z, y = c
            return (system.step(z), jacobian(z) @ y), None

        (z, y), _ = jax.lax.scan(one, carry, None, length=length)
        return z, y

    def block(carry, _):
        z, q, total = carry
        z, y = advance((z, q), qr_every)
        q, log_r = _orthonormalise(y)
        return (z, q, total + log_r), None

    def transient_step(carry, _):
        z, q = carry
        z, y = advance((z, q), 1)
        return (z, _orthonormalise(y)[0]), None

    q0 = _initial_frame(z0.shape[0], k, z0.dtype)
    (z, q), _ = jax.lax.scan(transient_step, (z0, q0), None, length=transient)
    total0 = jnp.zeros((k,), z0.dtype)
    (_, _, total), _ = jax.lax.scan(block, (z, q, total0), None, length=n_blocks)
    return total


@eqx.filter_jit
def _flow_spectrum(
    system,
    y0: Float[Array, " dim"],
    n_steps: int,
    dt: float,
    transient: int,
    k: int,
    solver,
    rtol: float,
    atol: float,
) -> Float[Array, " k"]:
    def augmented(t, state, args):
        y, q = state
        dy, tangent = jax.linearize(lambda yy: system.vector_field(t, yy, args), y)
        # The variational equation dQ/dt = J(y) Q, column by column with Jacobian-vector
        # products, so J is never formed.
        return dy, jax.vmap(tangent, in_axes=1, out_axes=1)(q)

    term = diffrax.ODETerm(augmented)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)

    def interval(carry, _):
        t, y, q, total = carry
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0=t,
            t1=t + dt,
            dt0=None,
            y0=(y, q),
            stepsize_controller=controller,
            max_steps=16_384,
        )
        y, y_tangent = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
        q, log_r = _orthonormalise(y_tangent)
        return (t + dt, y, q, total + log_r), None

    q0 = _initial_frame(y0.shape[0], k, y0.dtype)
    zeros = jnp.zeros((k,), y0.dtype)
    t0 = jnp.zeros((), y0.dtype)
    (t, y, q, _), _ = jax.lax.scan(interval, (t0, y0, q0, zeros), None, length=transient)
    (_, _, _, total), _ = jax.lax.scan(interval, (t, y, q, zeros), None, length=n_steps)
    return total


def lyapunov_spectrum(
    model_or_system,
    state0: Float[Array, " dim"],
    *,
    n_steps: int,
    dt: float | None = None,
    n_exponents: int | None = None,
    transient: int = 0,
    qr_every: int = 1,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Float[Array, " k"]:
    """Lyapunov exponents by the QR (Benettin) method, sorted in descending order.

    With `k` orthonormal tangent vectors `Q_0` (a fixed random frame) and Jacobians `J_t` along
    the orbit, `Y_t = J_t Q_{t−1}`, `Y_t = Q_t R_t` (`diag R_t > 0`), and

    `λ_i = (1/n) Σ_t ln R_t,ii` (divided by `dt` to give a rate per time unit).

    **Maps** (objects with `step`, such as every `dynrnn.models` latent model; `jacobian(z)` is
    used when present, forward-mode autodiff of `step` otherwise): `n_steps` iterations of the
    map, re-orthonormalising every `qr_every` iterations; the result is **per step**, or per
    time unit when `dt` (the time one step represents) is given.

    **Flows** (objects with `vector_field(t, y, args)`, such as `dynrnn.systems`): the state and
    the variational equation `dQ/dt = J(y) Q` (Jacobian-vector products) are integrated
    together with Diffrax over `n_steps` intervals of length `dt`, re-orthonormalising after
    each; the result is **per time unit** and `dt` is required (`qr_every` does not apply).

    For Lorenz-63 (σ=10, ρ=28, β=8/3) the spectrum is about (0.906, 0, −14.57) per time unit
    (REFERENCES 2.5), and it sums to the flow's divergence `−(σ + 1 + β)`.

    **Arguments:**
    - `model_or_system`: a map (latent model) or a flow.
    - `state0`: the initial state (a latent state for maps, the system's state for flows).
    - `n_steps`: map iterations, or intervals of length `dt` for flows, that are averaged over.
    - `dt`: time per map step (optional) or between re-orthonormalisations of a flow (required).
    - `n_exponents`: how many of the largest exponents to compute (default: all).
    - `transient`: iterations (maps) or intervals (flows) run first, without averaging, so that
      the orbit reaches the attractor and `Q` aligns with the Lyapunov vectors.
    - `qr_every`: map iterations between re-orthonormalisations (maps only).
    - `solver`, `rtol`, `atol`: the flow's Diffrax solver (default `Tsit5`) and tolerances
      (default `1e-9` in float64, `1e-6` in float32).

    **Returns:** the exponents, an array of shape `(n_exponents,)`, in descending order.

    **Raises:** `DynrnnTypeError` when `model_or_system` has neither `vector_field` nor `step`;
    `DynrnnValueError` for a bad `state0`, a flow without `dt`, non-positive `n_steps`/`dt`, or
    `n_steps` not a multiple of `qr_every`.
    """
    is_flow = isinstance(model_or_system, AbstractSystem)
    if not is_flow and not isinstance(model_or_system, AbstractLatentModel):
        raise DynrnnTypeError(
            "`model_or_system` must be a map (a latent model, dr.models.AbstractLatentModel) or "
            "a flow (a dr.systems system), got "
            f"{type(model_or_system).__name__}."
        )
    if not is_flow and state0 is not None and np.shape(state0) != (model_or_system.n_latent,):
        raise DynrnnValueError(
            f"`state0` must be a latent state of shape ({model_or_system.n_latent},) for this "
            f"{type(model_or_system).__name__}, got shape {tuple(np.shape(state0))}."
        )
    if is_flow and state0 is not None and np.shape(state0) != (model_or_system.dim,):
        raise DynrnnValueError(
            f"`state0` must be a state of shape ({model_or_system.dim},) for "
            f"{type(model_or_system).__name__}, got shape {tuple(np.shape(state0))}."
        )
    state0 = check_array(state0, "state0", ndim=1)
    state0 = jnp.asarray(state0, dtype=float) if np.dtype(state0.dtype).kind in "iu" else state0
    state0 = jnp.asarray(state0)
    n_dim = state0.shape[0]
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(transient, "transient", integer=True, strict=False)
    check_positive(qr_every, "qr_every", integer=True)
    k = n_dim if n_exponents is None else n_exponents
    check_positive(k, "n_exponents", integer=True)
    if k > n_dim:
        raise DynrnnValueError(
            f"`n_exponents` must be at most the state dimension {n_dim}, got {k}."
        )
    if dt is not None:
        check_positive(dt, "dt")
        dt = float(dt)

    if is_flow:
        if dt is None:
            raise DynrnnValueError(
                "`dt` (the time between re-orthonormalisations) is required for a flow "
                f"({type(model_or_system).__name__} has `vector_field`), got None."
            )
        double = state0.dtype == jnp.float64
        default_tol = 1e-9 if double else 1e-6
        rtol = default_tol if rtol is None else float(rtol)
        atol = default_tol if atol is None else float(atol)
        solver = diffrax.Tsit5() if solver is None else solver
        total = _flow_spectrum(
            model_or_system, state0, n_steps, dt, transient, k, solver, rtol, atol
        )
        exponents = total / (n_steps * dt)
    else:
        if n_steps % qr_every:
            raise DynrnnValueError(
                f"`n_steps` must be a multiple of `qr_every` ({qr_every}), got {n_steps}."
            )
        total = _map_spectrum(model_or_system, state0, n_steps // qr_every, transient, k, qr_every)
        exponents = total / n_steps
        if dt is not None:
            exponents = exponents / dt
    return jnp.sort(exponents)[::-1]


def max_lyapunov(
    model_or_system,
    state0: Float[Array, " dim"],
    *,
    n_steps: int,
    dt: float | None = None,
    n_exponents: int | None = None,
    transient: int = 0,
    qr_every: int = 1,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Float[Array, ""]:
    """The largest Lyapunov exponent; the arguments are those of `lyapunov_spectrum`.

    Only one tangent vector is evolved unless `n_exponents` asks for more (the largest
    exponent does not depend on it).

    **Returns:** a scalar, per step for maps (per time unit with `dt`), per time unit for flows.
    """
    spectrum = lyapunov_spectrum(
        model_or_system,
        state0,
        n_steps=n_steps,
        dt=dt,
        n_exponents=1 if n_exponents is None else n_exponents,
        transient=transient,
        qr_every=qr_every,
        solver=solver,
        rtol=rtol,
        atol=atol,
    )
    return spectrum[0]
