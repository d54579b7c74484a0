"""Shared machinery of the differential-equation models: a Diffrax solve that also reports the
adaptive solver's own heuristics (local error estimates, stiffness estimates, evaluation counts).

The statistics are accumulated by a wrapper solver, as recommended by Diffrax's author
(patrick-kidger/diffrax#196): `_StatsSolver` wraps an adaptive solver, runs its step and adds
the step's contribution to an accumulator kept in the solver state. Diffrax keeps the solver
state only on accepted steps, so the accumulator sums over accepted steps exactly. The wrapper
subclasses `diffrax.AbstractAdaptiveSolver` only: inheriting `AbstractWrappedSolver` would
forward `isinstance` checks to the inner solver and make `DirectAdjoint` fail
(`AttributeError ... scan_kind`).

Pal, Ma, Shah, Rackauckas, "Opening the Blackbox: Accelerating Neural Differential Equations
by Regularizing Internal Solver Heuristics", ICML 2021, Sec. 3.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError


# Size of the stability region of Tsit5 along the negative real axis (Pal et al. 2021, Sec. 3.2;
# Hairer & Wanner use 3.3 for DOPRI5): a step is stable while dt·|λ| stays below it.
TSIT5_STABILITY_SIZE = 3.5068

STAT_NAMES = (
    "error_integral",
    "stiffness_integral",
    "stiffness_max",
    "stiffness_sum",
    "local_error",
    "nfe",
    "nfe_diffusion",
    "num_steps",
    "num_accepted_steps",
    "num_rejected_steps",
)
_WRAPPER_STATS = ("error_integral", "stiffness_integral", "stiffness_max", "stiffness_sum")
_DISCRETE_ADJOINTS = (dfx.RecursiveCheckpointAdjoint, dfx.DirectAdjoint)


def _rms(x):
    # sqrt has an infinite derivative at 0: zero errors occur (masked steps under `vmap`, exact
    # steps), and 0·inf would turn the whole gradient into NaN.
    ms = jnp.mean(x**2)
    pos = ms > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, ms, 1.0)), 0.0)


def scaled_error(y0, y1, y_error, rtol, atol):
    """`EEst = rms(ỹ / (atol + rtol·max(|y0|, |y1|)))`, as `diffrax.PIDController` computes it."""
    y1 = jnp.where(jnp.isnan(y1).any(), y0, y1)
    scale = atol + rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1))
    return _rms(y_error / scale)


def _stage_stiffness_row(solver) -> np.ndarray | None:
    """`a_6j` of an explicit RK method whose last two stages sit at c = 1 (Tsit5, Dopri5)."""
    if not isinstance(solver, dfx.AbstractERK):
        return None
    tab = solver.tableau
    if len(tab.c) < 2 or tab.c[-1] != 1 or tab.c[-2] != 1 or not tab.fsal:
        return None
    return np.asarray(tab.a_lower[-2], dtype=np.float64)


def _drift(terms, t, y, args):
    if isinstance(terms, dfx.MultiTerm):
        return terms.terms[0].vf(t, y, args)
    return terms.vf(t, y, args)


class _StatsSolver(dfx.AbstractAdaptiveSolver):
    """Runs `solver` and accumulates, over accepted steps `j`,
    `Σ EEst_j |dt_j|`, `Σ S_j |dt_j|`, `max S_j` and `Σ S_j` in its state.

    `S_j` is Shampine's stiffness estimate divided by the stability size 3.5068. For explicit RK
    methods whose stages 6 and 7 are both at `c = 1` (Tsit5, Dopri5) it comes from the stages,
    `S = rms(k_7 − k_6) / (dt · rms(y_1 − g_6))` with `k = dt·f` and `g_6 = y_0 + Σ_{i≤5} a_6i k_i`
    (no extra evaluations); for other solvers (and SDEs) from the drift at the step's end,
    `S = rms(f(t_1, y_1) − f(t_1, y_0)) / rms(y_1 − y_0)` (two extra drift evaluations).
    """

    solver: dfx.AbstractAdaptiveSolver
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    stiffness: bool = eqx.field(static=True)

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        zero = jnp.zeros((), jnp.result_type(y0))
        acc = dict(
            error_integral=zero, stiffness_integral=zero, stiffness_max=zero, stiffness_sum=zero
        )
        return self.solver.init(terms, t0, t1, y0, args), acc

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        inner, acc = solver_state
        y1, y_error, dense_info, inner, result = self.solver.step(
            terms, t0, t1, y0, args, inner, made_jump
        )
        dt = t1 - t0
        eest = scaled_error(y0, y1, y_error, self.rtol, self.atol)
        acc = dict(acc)
        acc["error_integral"] = acc["error_integral"] + eest * jnp.abs(dt)
        if self.stiffness:
            s = self._stiffness(terms, t1, y0, y1, dense_info, args, dt) / TSIT5_STABILITY_SIZE
            acc["stiffness_integral"] = acc["stiffness_integral"] + s * jnp.abs(dt)
            acc["stiffness_max"] = jnp.maximum(acc["stiffness_max"], s)
            acc["stiffness_sum"] = acc["stiffness_sum"] + s
        return y1, y_error, dense_info, (inner, acc), result

    def _stiffness(self, terms, t1, y0, y1, dense_info, args, dt):
        row = _stage_stiffness_row(self.solver)
        if row is not None:
            k = dense_info["k"]
            g6 = y0 + jnp.tensordot(jnp.asarray(row, k.dtype), k[: len(row)], axes=1)
            num, den = _rms(k[-1] - k[-2]), jnp.abs(dt) * _rms(y1 - g6)
        else:
            f1 = _drift(terms, t1, y1, args)
            f0 = _drift(terms, t1, y0, args)
            num, den = _rms(f1 - f0), _rms(y1 - y0)
        safe = den > 0
        return jnp.where(safe, num / jnp.where(safe, den, 1.0), 0.0)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)


def evaluation_counts(solver, *, sde: bool, stiffness: bool = False) -> tuple[int, int, int, int]:
    """`(init, per_step, init_diffusion, per_step_diffusion)` vector-field evaluations.

    With the first-same-as-last stage evaluated before the solve (see `initial_solver_state`),
    an explicit RK method costs `s − 1` evaluations per attempted step (`s` stages) plus one at
    the start, or `s` per step without FSAL; a stochastic RK method evaluates the drift once per
    stage and the diffusion once per stage and Brownian quantity (increment, space-time Lévy
    area), skipping the stages its tableau marks as unused. The drift-based stiffness estimate
    adds two drift evaluations per step. `-1` means unknown (implicit solvers).
    """
    extra = 2 if stiffness and _stage_stiffness_row(solver) is None else 0
    if isinstance(solver, dfx.AbstractERK):
        s = len(solver.tableau.b_sol)
        if solver.tableau.fsal and not sde:
            return 1, s - 1 + extra, 0, 0
        return 0, s + extra, 0, (s if sde else 0)
    if isinstance(solver, dfx.AbstractSRK):
        tab = solver.tableau
        s = len(tab.b_sol)
        nf = s - (0 if tab.ignore_stage_f is None else int(np.sum(tab.ignore_stage_f)))
        ng = s - (0 if tab.ignore_stage_g is None else int(np.sum(tab.ignore_stage_g)))
        n_controls = 1 + (tab.coeffs_hh is not None) + (tab.coeffs_kk is not None)
        # The SRK `init` evaluates the diffusion once to check for additive noise.
        return 0, nf + extra, 0, ng * n_controls
    return -1, -1, -1, -1


def initial_solver_state(solver, terms, t0, t1, y0, args):
    """The solver's initial state, with the first FSAL stage already evaluated.

    Diffrax evaluates `f(t0, y0)` inside the first step, again for every rejected first
    attempt; evaluating it here makes the evaluation count independent of those rejections.
    """
    state = solver.init(terms, t0, t1, y0, args)
    if (
        isinstance(solver, dfx.AbstractERK)
        and isinstance(state, tuple)
        and len(state) == 2
        and jnp.ndim(state[0]) == 0
        and jnp.result_type(state[0]) == jnp.dtype(bool)
    ):
        state = (jnp.array(False), solver.func(terms, t0, y0, args))
    return state


def check_adjoint_for(needs: Sequence[str], adjoint, model_name: str) -> None:
    """`SolverError`/`Stiffness` need discrete sensitivities: differentiate through the solver."""
    wanted = [n for n in needs if n in _WRAPPER_STATS]
    if wanted and not isinstance(adjoint, _DISCRETE_ADJOINTS):
        raise DynrnnValueError(
            f"`{model_name}` with adjoint={type(adjoint).__name__}() cannot provide {wanted}: "
            "the accumulated error and stiffness estimates need the solver's stages, so they "
            "require differentiating through the solver (adjoint=RecursiveCheckpointAdjoint() "
            "or DirectAdjoint()). Use `dr.regularizers.LocalSolverError`, which works with any "
            "adjoint."
        )
    unknown = [n for n in needs if n not in STAT_NAMES]
    if unknown:
        raise DynrnnValueError(
            f"`needs` must contain names from {STAT_NAMES}, got unknown {unknown}."
        )


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_start(y0, name: str, model_name: str):
    """Non-finite initial states raise at once when concrete, inside JIT via `eqx.error_if`."""
    msg = (
        f"`{model_name}`: the initial state `{name}` contains NaN or Inf; the solver cannot "
        "start from a non-finite state."
    )
    if _is_concrete(y0):
        if not np.all(np.isfinite(np.asarray(y0))):
            raise DynrnnValueError(msg)
        return y0
    return eqx.error_if(y0, ~jnp.all(jnp.isfinite(y0)), msg)


def check_times(ts, name: str):
    """`ts` must be 1-D and strictly increasing (checked when concrete)."""
    if jnp.ndim(ts) != 1 or jnp.shape(ts)[0] < 2:
        raise DynrnnValueError(
            f"`{name}` must be a 1-D array of at least two increasing times, got shape "
            f"{tuple(jnp.shape(ts))}."
        )
    if _is_concrete(ts):
        d = np.diff(np.asarray(ts, dtype=np.float64))
        if not np.all(np.isfinite(np.asarray(ts, dtype=np.float64))) or np.any(d <= 0):
            bad = int(np.argmax(~(d > 0))) if np.any(~(d > 0)) else 0
            raise DynrnnValueError(
                f"`{name}` must be finite and strictly increasing (t1 > t0), got "
                f"{name}[{bad}]={float(ts[bad])!r} followed by {name}[{bad + 1}]="
                f"{float(ts[bad + 1])!r}."
            )
    return ts


def solve(
    terms,
    solver,
    ts: Float[Array, " time"],
    y0: Float[Array, " state"],
    args: Any,
    *,
    rtol: float,
    atol: float,
    max_steps: int,
    adjoint,
    needs: Sequence[str] = (),
    sde: bool = False,
    t_reg: Float[Array, ""] | None = None,
    model_name: str = "model",
) -> tuple[Float[Array, "time state"], dict[str, Array], Any]:
    """Solve from `ts[0]`; return the states at `ts` (first row `y0`), the statistics and
    Diffrax's result code (for `check_result`).

    `needs` names the statistics to compute beyond the always-present counts (`nfe`,
    `num_steps`, ...): any of `error_integral`, `stiffness_integral`, `stiffness_max`,
    `stiffness_sum` (through the wrapper solver) and `local_error` (one fresh step at `t_reg`).
    """
    check_adjoint_for(needs, adjoint, model_name)
    wrapped = any(n in _WRAPPER_STATS for n in needs)
    stiffness = any(n.startswith("stiffness") for n in needs)
    local = "local_error" in needs
    t0, t1 = ts[0], ts[-1]
    if wrapped:
        used = _StatsSolver(solver, float(rtol), float(atol), stiffness)
    else:
        used = solver
    if local:
        t_reg = (t0 + t1) / 2 if t_reg is None else jnp.clip(t_reg, t0, t1)
        save_ts = jnp.concatenate([ts, t_reg[None]])
        order = jnp.argsort(save_ts, stable=True)
        save_ts = save_ts[order]
    else:
        save_ts = ts
    kwargs = {}
    if not sde:
        # SRK solvers have no first-same-as-last stage to evaluate beforehand.
        inner_state = initial_solver_state(solver, terms, t0, t1, y0, args)
        if not isinstance(adjoint, _DISCRETE_ADJOINTS):
            # Continuous adjoints solve their own backward ODE and never differentiate the
            # solver state (BacksolveAdjoint refuses a tangent on it).
            inner_state = jax.lax.stop_gradient(inner_state)
        if wrapped:
            inner_state = (inner_state, used.init(terms, t0, t1, y0, args)[1])
        kwargs = dict(solver_state=inner_state, made_jump=False)
    with warnings.catch_warnings():
        # The wrapper is deliberately not an `AbstractWrappedSolver` (see the module docstring),
        # so Diffrax cannot see that the wrapped SDE solver is marked Stratonovich or Itô.
        warnings.filterwarnings("ignore", message="`_StatsSolver` is not marked")
        sol = dfx.diffeqsolve(
            terms,
            used,
            t0,
            t1,
            # Diffrax has no initial-step heuristic for SDEs and its ODE heuristic is bypassed for
            # wrapped terms (0.7.2); the mean observation interval is a scale the user chose.
            (t1 - t0) / (ts.shape[0] - 1),
            y0,
            args=args,
            saveat=dfx.SaveAt(ts=save_ts, solver_state=wrapped),
            stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
            adjoint=adjoint,
            max_steps=max_steps,
            throw=False,
            **kwargs,
        )
    ys = sol.ys
    stats: dict[str, Array] = {}
    n_steps = sol.stats["num_steps"]
    init, per, init_g, per_g = evaluation_counts(solver, sde=sde, stiffness=stiffness)
    stats["nfe"] = jnp.asarray(init + per * n_steps) if per >= 0 else jnp.asarray(-1)
    stats["nfe_diffusion"] = (
        jnp.asarray(init_g + per_g * n_steps) if per_g >= 0 else jnp.asarray(-1)
    )
    stats["num_steps"] = n_steps
    stats["num_accepted_steps"] = sol.stats["num_accepted_steps"]
    stats["num_rejected_steps"] = sol.stats["num_rejected_steps"]
    if wrapped:
        stats.update({k: v for k, v in sol.solver_state[1].items() if k in needs})
    if local:
        inv = jnp.argsort(order, stable=True)
        ys_sorted = ys
        ys = ys_sorted[inv[: ts.shape[0]]]
        y_reg = ys_sorted[inv[-1]]
        n_acc = jnp.maximum(sol.stats["num_accepted_steps"], 1)
        # The initial-step heuristic picks tiny steps (R ≈ 1e-11 on test problems, REFERENCES
        # 5.2); the solve's mean accepted step is the step size the solver found sensible here.
        dt_reg = jax.lax.stop_gradient((t1 - t0) / n_acc)
        stats["local_error"] = local_error(terms, t_reg, y_reg, dt_reg, args, rtol, atol, sde)
        stats["nfe"] = stats["nfe"] + 7
    return ys, stats, sol.result


def check_result(ys, result, max_steps: int, model_name: str):
    """Turn Diffrax's result code into an error that names the cause and the argument."""
    max_msg = (
        f"`{model_name}`: the solver needed more than max_steps={max_steps} steps; increase "
        "`max_steps`, loosen `rtol`/`atol`, or check whether the vector field blows up, is "
        "stiff, or returns NaN (for example from non-finite parameters: every step is then "
        "rejected)."
    )
    other_msg = (
        f"`{model_name}`: the differential equation solve failed (non-finite values or a "
        "solver failure)."
    )
    is_max = result == dfx.RESULTS.max_steps_reached
    failed = result != dfx.RESULTS.successful
    if _is_concrete(ys) and _is_concrete(result._value):
        if bool(is_max):
            raise DynrnnValueError(max_msg)
        if bool(failed):
            raise DynrnnValueError(other_msg)
        return ys
    ys = eqx.error_if(ys, is_max, max_msg)
    return eqx.error_if(ys, failed & ~is_max, other_msg)


def local_error(terms, t, y, dt, args, rtol, atol, sde: bool = False):
    """`EEst·|dt|` of one fresh Tsit5 step of the drift from `(t, y)` (Pal, Edelman, Rackauckas,
    ICML 2023, "Locally Regularized Neural Differential Equations"). For SDEs the step uses the
    drift only: the regulariser targets the deterministic part's solver cost."""
    drift = terms.terms[0] if isinstance(terms, dfx.MultiTerm) else terms
    term = dfx.ODETerm(lambda tt, yy, aa: drift.vf(tt, yy, aa))
    tsit5 = dfx.Tsit5()
    state = tsit5.init(term, t, t + dt, y, args)
    y1, y_error, _, _, _ = tsit5.step(term, t, t + dt, y, args, state, False)
    return scaled_error(y, y1, y_error, rtol, atol) * jnp.abs(dt)


def brownian_tree(t0, t1, shape, key: PRNGKeyArray, tol_fraction: float = 1e-3):
    """A `VirtualBrownianTree` on `[t0, t1]` with space-time Lévy area (needed by SPaRK)."""
    tol = tol_fraction * (t1 - t0)
    return dfx.VirtualBrownianTree(
        t0, t1, tol=tol, shape=shape, key=key, levy_area=dfx.SpaceTimeLevyArea
    )


def mlp(in_size: int, out_size: int, width: int, depth: int, *, key, activation=jnp.tanh,
        final_activation=None):
    """An `eqx.nn.MLP` with `depth` hidden layers of `width` units."""
    kw = {} if final_activation is None else {"final_activation": final_activation}
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=activation, key=key, **kw)


def xavier_scale(n: int) -> float:
    return 1.0 / math.sqrt(n)
