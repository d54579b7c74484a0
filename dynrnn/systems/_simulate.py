"""Integrating a system into an `xr.Dataset`: `simulate`."""

from __future__ import annotations

import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from ._base import AbstractSystem


# Solver steps allowed per unit of integrated time, on top of a fixed allowance. The most
# demanding default system (Chen) takes about 90 Dopri8 steps per time unit at rtol = atol =
# 1e-10 (Lorenz-63 about 50); twenty times that leaves room for faster parameter settings while a
# diverging run still stops in bounded time.
_STEPS_PER_TIME = 2_000
_MIN_STEPS = 16_384

#: Beyond this time a failed float32 solve is explained by the clock's resolution (float32
#: spacing 0.0005 at t = 4 096; Lorenz-63 at Δt 0.0375 failed between t = 15 000 and 26 000).
FLOAT32_TIME = 4096.0


def default_tolerances(dtype) -> tuple[float, float]:
    """`(rtol, atol)` used by `simulate`: 1e-10 in float64, 1e-6 in float32 (about ten machine
    epsilons, the tightest an error estimate in float32 can honour)."""
    return (1e-10, 1e-10) if np.dtype(dtype) == np.float64 else (1e-6, 1e-6)


@eqx.filter_jit
def _integrate(system, y0, ts, t1, dt0, *, rtol, atol, max_steps):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(system.vector_field),
        diffrax.Dopri8(),
        t0=jnp.zeros_like(t1),
        t1=t1,
        dt0=dt0,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, dtmax=dt0),
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys, sol.result, sol.stats["num_steps"]


def integrate(
    system: AbstractSystem,
    y0: Float[Array, " dim"],
    ts: Float[Array, " time"],
    *,
    rtol: float,
    atol: float,
    max_steps: int,
) -> Float[Array, "time dim"]:
    """Solve from `t = 0` and return the states at the (increasing, non-negative) times `ts`.

    Adaptive Dopri8 (8th-order Dormand–Prince) with a PID step-size controller whose steps are
    at most the sampling interval `h = ts[1] - ts[0]`, and the solve runs on to `ts[-1] + 2h`.
    Hence no step that contains a requested time is clipped at the end of the interval, and
    runs whose `ts` share a prefix return bit-identical states on that prefix (which is what
    lets `dynrnn.datasets` check a short rebuild against the shipped files).

    **Raises:** `DynrnnValueError` if the solver fails (too many steps, step size collapse) or
    the trajectory becomes non-finite.
    """
    dtype = y0.dtype
    t_last = float(ts[-1])
    if t_last == 0.0:
        # Nothing to integrate: every requested time is t = 0.
        return jnp.broadcast_to(y0, (ts.shape[0], y0.shape[0]))
    h = float(ts[1] - ts[0]) if ts.shape[0] > 1 else t_last
    h = h if h > 0 else t_last
    t1 = jnp.asarray(t_last + 2 * h, dtype=dtype)
    ys, result, n = _integrate(
        system,
        y0,
        ts,
        t1,
        jnp.asarray(h, dtype=dtype),
        rtol=rtol,
        atol=atol,
        max_steps=int(max_steps),
    )
    if result != diffrax.RESULTS.successful:
        hint = ""
        if dtype == jnp.float32 and t_last > FLOAT32_TIME:
            # the solver's clock: float32 resolves t only to ~t / 8e6 (0.002 at t = 16 384)
            hint = (
                f" In float32 the solver's clock loses resolution over long runs (here t "
                f"reaches {t_last:.6g}, where float32 resolves only "
                f"{float(np.spacing(np.float32(t_last))):.2g}): enable float64 with "
                "`jax.config.update('jax_enable_x64', True)` before using JAX, or simulate "
                "shorter pieces, each from the last state of the one before."
            )
        raise DynrnnValueError(
            f"integrating {type(system).__name__} failed after {int(n)} solver steps "
            f"({diffrax.RESULTS[result]}); the trajectory may diverge from this `y0`, or "
            f"`max_steps` (got {max_steps}) is too small.{hint}"
        )
    if not bool(jnp.all(jnp.isfinite(ys))):
        raise DynrnnValueError(
            f"integrating {type(system).__name__} produced non-finite states; the trajectory "
            "diverges from this `y0` with these parameters."
        )
    return ys


def observation_noise(key: PRNGKeyArray, n_steps: int, dim: int, dtype) -> Float[Array, "time dim"]:
    """Standard-normal noise whose row `t` depends only on `key` and `t` (`fold_in(key, t)`), so
    a shorter series gets exactly the first rows of a longer one."""
    keys = jax.vmap(lambda t: jr.fold_in(key, t))(jnp.arange(n_steps, dtype=jnp.uint32))
    return jax.vmap(lambda k: jr.normal(k, (dim,), dtype=dtype))(keys)


def standardize_array(x: np.ndarray, mean=None, std=None):
    """Per-dimension z-score `(x - mean) / std` with the sample standard deviation (`ddof=1`,
    the convention of the GTF reference data). Statistics are computed in float64 unless given.
    Returns `(z, mean, std)` with `mean`, `std` as float64 arrays."""
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    if std is None:
        if x64.shape[0] < 2:
            raise DynrnnValueError(
                f"`standardize` needs at least 2 time points, got {x64.shape[0]} (`n_steps`)."
            )
        std = x64.std(axis=0, ddof=1)
    std = np.asarray(std, dtype=np.float64)
    if np.any(std == 0):
        raise DynrnnValueError(
            f"cannot standardize: dimension(s) {np.flatnonzero(std == 0).tolist()} are constant."
        )
    return ((x64 - mean) / std).astype(np.asarray(x).dtype), mean, std


def _as_system(system) -> AbstractSystem:
    if isinstance(system, str):
        from . import get

        return get(system)
    if not isinstance(system, AbstractSystem):
        raise DynrnnTypeError(
            "`system` must be a dynrnn.systems system (e.g. dr.systems.Lorenz63()) or a system "
            f"name, got {type(system).__name__}."
        )
    return system


def _finite_number(value, name: str, *, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DynrnnTypeError(f"`{name}` must be a number, got {value!r}.")
    check_positive(float(value), name, strict=strict)
    return float(value)


def simulate(
    system: AbstractSystem | str,
    *,
    n_steps: int,
    dt: float,
    y0: Float[Array, " dim"] | None = None,
    transient: float = 0.0,
    noise: float = 0.0,
    standardize: bool = False,
    key: PRNGKeyArray | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int | None = None,
) -> xr.Dataset:
    r"""Integrate `system` and sample it every `dt` time units.

    The flow $\dot y = f(y)$ is solved from `y0` at $t = 0$ with Diffrax's adaptive Dopri8 and a
    PID step-size controller (steps at most `dt`, so a shorter run reproduces a prefix of a
    longer one bit for bit); the states at $t = \tau + k\,\Delta t$, $k = 0..n-1$ are returned,
    where τ is the transient (integrated and dropped). Then, in this order, each dimension is
    optionally z-scored (sample standard deviation, `ddof=1`) and iid Gaussian observation noise
    of standard deviation `noise` is added:
    $$x_k = (y(\tau + k\Delta t) - \mu) / s + \text{noise}\cdot\varepsilon_k,\quad
    \varepsilon_k \sim \mathcal N(0, I).$$

    **Dtype.** The computation runs in float64 when JAX's x64 mode is on
    (`jax.config.update("jax_enable_x64", True)`), with rtol = atol = 1e-10 by default, and in
    float32 otherwise, with rtol = atol = 1e-6 (float32 cannot resolve tighter tolerances). A
    chaotic trajectory separates from the exact one at the rate of its largest Lyapunov
    exponent, so only the float64 run is accurate over long horizons; the statistics of the
    attractor are right in both.

    **Arguments:**
    - `system`: a system instance (`dr.systems.Lorenz63()`) or a name for `dr.systems.get`.
    - `n_steps`: number of returned time points (>= 1).
    - `dt`: sampling interval in the system's time units (> 0).
    - `y0`: initial condition `(dim,)`; the system's default (on its attractor) if `None`.
    - `transient`: time (not steps) integrated and dropped before the first returned point; with
      0 the first returned point is `y0`.
    - `noise`: standard deviation of the observation noise (in the units of the returned data,
      i.e. after standardisation).
    - `standardize`: z-score each dimension; the mean and standard deviation are stored in the
      attributes `mean` and `std`.
    - `key`: PRNG key for the noise; required when `noise > 0`. Noise row `t` is drawn from
      `fold_in(key, t)`, so shorter runs with the same key get a prefix of the same noise.
    - `rtol`, `atol`, `max_steps`: solver tolerances and step budget (defaults above; the budget
      grows with the integrated time).

    **Returns:** an `xr.Dataset` with variable `state` on dims `("time", "dim")`, a `time`
    coordinate (time units, starting at 0 at the first returned point) and attributes `system`,
    `parameters` (a JSON string), `dt`, `transient`, `noise`, `standardize`, `y0`, `solver`,
    `rtol`, `atol`, `dtype`, (`mean`, `std` when standardised), and `lyapunov_spectrum` and
    `lyapunov_source` when a reference spectrum is known for these parameters.

    **Raises:** `DynrnnValueError` for an unknown system name, `n_steps < 1`, `dt <= 0`, a
    negative `transient` or `noise`, a `y0` of the wrong shape or with NaN/Inf, `noise > 0`
    without `key`, or a failed/diverging integration; `DynrnnTypeError` for arguments of the
    wrong type.
    """
    system = _as_system(system)
    for name, value in system.parameters().items():
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise DynrnnValueError(
                f"parameter `{name}` of {system.name} must be finite, got {value!r}."
            )
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer):
        raise DynrnnTypeError(f"`n_steps` must be an integer >= 1, got {n_steps!r}.")
    if n_steps < 1:
        raise DynrnnValueError(f"`n_steps` must be >= 1, got {n_steps}.")
    n_steps = int(n_steps)
    dt = _finite_number(dt, "dt", strict=True)
    transient = _finite_number(transient, "transient", strict=False)
    noise = _finite_number(noise, "noise", strict=False)
    if noise > 0 and key is None:
        raise DynrnnValueError(
            f"`key` is required when `noise` > 0 (got noise={noise} and key=None); pass e.g. "
            "key=jax.random.key(0)."
        )
    dtype = jnp.zeros(()).dtype  # float64 under x64, else float32
    dim = system.dim
    if y0 is None:
        y0 = system.y0
    else:
        y0 = np.asarray(y0)
        if y0.dtype.kind not in "fiu" or y0.dtype.kind == "b":
            raise DynrnnTypeError(f"`y0` must be a real numeric array, got dtype {y0.dtype}.")
        if y0.shape != (dim,):
            raise DynrnnValueError(
                f"`y0` must have shape ({dim},) for {system.name}, got shape {y0.shape}."
            )
        if not np.all(np.isfinite(y0)):
            raise DynrnnValueError(f"`y0` contains NaN or Inf: {y0.tolist()}.")
    y0 = jnp.asarray(y0, dtype=dtype)
    default_rtol, default_atol = default_tolerances(dtype)
    rtol = default_rtol if rtol is None else _finite_number(rtol, "rtol", strict=True)
    atol = default_atol if atol is None else _finite_number(atol, "atol", strict=True)

    # Times in float64 on the host, so the grid does not drift over long runs in float32.
    t_rel = dt * np.arange(n_steps, dtype=np.float64)
    ts = jnp.asarray(transient + t_rel, dtype=dtype)
    t_total = transient + t_rel[-1]
    if max_steps is None:
        # Rounded up to a power of two so that nearby run lengths share one compilation.
        # Steps are at most `dt` long, so at least (t_total + 2 dt) / dt of them are needed.
        budget = _MIN_STEPS + int(np.ceil(_STEPS_PER_TIME * t_total + t_total / dt)) + 2
        max_steps = 1 << (budget - 1).bit_length()
    elif isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise DynrnnValueError(f"`max_steps` must be a positive integer, got {max_steps!r}.")

    states = np.asarray(integrate(system, y0, ts, rtol=rtol, atol=atol, max_steps=max_steps))
    attrs: dict = {}
    if standardize:
        states, mean, std = standardize_array(states)
        attrs["mean"] = mean.tolist()
        attrs["std"] = std.tolist()
    if noise > 0:
        eps = np.asarray(observation_noise(key, n_steps, dim, dtype))
        states = (states + noise * eps).astype(states.dtype)

    attrs = {
        "system": system.name,
        "parameters": json.dumps(system.parameters(), sort_keys=True),
        "dt": dt,
        "transient": transient,
        "noise": noise,
        "standardize": int(bool(standardize)),
        "y0": np.asarray(y0, dtype=np.float64).tolist(),
        "solver": "diffrax.Dopri8 + PIDController",
        "rtol": rtol,
        "atol": atol,
        "dtype": str(np.dtype(dtype)),
        **attrs,
    }
    spectrum = system.lyapunov_spectrum()
    if spectrum is not None:
        attrs["lyapunov_spectrum"] = list(spectrum)
        attrs["lyapunov_source"] = system.reference_source
    return xr.Dataset(
        {"state": (("time", "dim"), states)},
        coords={"time": t_rel, "dim": np.arange(dim)},
        attrs=attrs,
    )
