"""What the neural differential equations share: one latent model over Diffrax terms.

A family supplies its terms (`terms(t0, t1, shape, key)`: an `ODETerm` for an ODE, a
`MultiTerm` of drift and diffusion over a Brownian motion for an SDE); stepping over `dt`,
solving over arbitrary times, the solver statistics of `dynrnn.regularizers`, input handling
and error reporting are written once here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from ..._errors import DynrnnTypeError, DynrnnValueError, check_positive
from .._base import AbstractDiffraxModel, AbstractSolverStatsModel, AbstractStochasticModel
from . import solve as _solve


DEFAULT_NEEDS = ("error_integral", "stiffness_integral", "stiffness_max", "stiffness_sum")


class MLPVectorField(eqx.Module):
    """`f(t, z, u) = MLP([z; u])`: an autonomous MLP vector field, optionally driven by a
    constant input `u` (passed as Diffrax's `args`)."""

    mlp: eqx.nn.MLP
    n_input: int = eqx.field(static=True)

    def __init__(self, latent: int, width: int, depth: int, *, n_input: int = 0, key,
                 activation: Callable = jnp.tanh):
        self.n_input = n_input
        self.mlp = eqx.nn.MLP(latent + n_input, latent, width, depth, activation=activation,
                              key=key)

    def __call__(self, t, z, args):
        if self.n_input:
            z = jnp.concatenate([z, jnp.asarray(args, z.dtype)], axis=-1)
        return self.mlp(z)


def check_solver_options(*, obs, latent, dt, rtol, atol, max_steps, inputs, solver):
    for name, v in (("obs", obs), ("latent", latent), ("max_steps", max_steps)):
        check_positive(v, name, integer=True)
    for name, v in (("dt", dt), ("rtol", rtol), ("atol", atol)):
        check_positive(v, name)
    check_positive(inputs, "inputs", integer=True, strict=False)
    check_adaptive_solver(solver)


def check_adaptive_solver(solver):
    if not isinstance(solver, dfx.AbstractAdaptiveSolver):
        raise DynrnnTypeError(
            "`solver` must be an adaptive Diffrax solver (one with an error estimate, e.g. "
            f"diffrax.Tsit5()), got {type(solver).__name__}; wrap fixed-step solvers in "
            "diffrax.HalfSolver."
        )


def check_needs(needs) -> tuple[str, ...]:
    if isinstance(needs, str):
        needs = (needs,)
    return tuple(needs)


class AbstractNeuralDE(AbstractDiffraxModel, AbstractSolverStatsModel):
    """A latent model `dz = f(t, z, u) dt (+ g(t, z, u) ∘ dW)` with an observation `x̂ = O(z)`,
    stepped over `dt` by an adaptive Diffrax solver with PID step-size control.

    Subclasses hold the fields below and implement `terms`; `step`, `step_with_stats`,
    `solve` and `jacobian` (reverse mode) are implemented here once.
    """

    observation: eqx.AbstractVar[object]
    dt: eqx.AbstractVar[float]
    solver: eqx.AbstractVar[dfx.AbstractAdaptiveSolver]
    rtol: eqx.AbstractVar[float]
    atol: eqx.AbstractVar[float]
    max_steps: eqx.AbstractVar[int]
    adjoint: eqx.AbstractVar[dfx.AbstractAdjoint]
    n_input: eqx.AbstractVar[int]

    @abc.abstractmethod
    def terms(self, t0, t1, shape: tuple[int, ...], key: PRNGKeyArray | None):
        """The Diffrax terms of a solve over `[t0, t1]` (`key`: the noise, SDEs only)."""

    def noise(self, z, key: PRNGKeyArray | None, *, solve: bool = False):
        """`(noise key, regularisation-time key)` of one step or solve (ODE: no noise)."""
        return None, key

    @property
    def n_inputs(self) -> int:
        return self.n_input

    def _args(self, u, z):
        name, n = type(self).__name__, self.n_input
        if u is None:
            if n:
                raise DynrnnValueError(
                    f"`{name}` was built with inputs={n}; `u` of shape ({n},) is required."
                )
            return None
        if not n:
            raise DynrnnValueError(
                f"`{name}` was built without inputs (inputs=0) but got `u` of shape "
                f"{tuple(jnp.shape(u))}; build it with inputs=<size>."
            )
        if jnp.shape(u) != (n,):
            raise DynrnnValueError(f"`u` must have shape ({n},), got {tuple(jnp.shape(u))}.")
        return jnp.asarray(u, jnp.result_type(z))

    def _solve(self, z0, ts, u, needs, noise_key, t_reg):
        return _solve.solve(
            self.terms(ts[0], ts[-1], z0.shape, noise_key), self.solver, ts, z0,
            self._args(u, z0), rtol=self.rtol, atol=self.atol, max_steps=self.max_steps,
            adjoint=self.adjoint, needs=needs, sde=isinstance(self, AbstractStochasticModel),
            t_reg=t_reg,
            model_name=type(self).__name__,
        )

    def _check_finite_start(self, z):
        # Concrete states only: inside a traced training step a non-finite state is the NaN
        # guard's business (it keeps the last good model), not an exception.
        if not isinstance(z, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(z))):
            raise DynrnnValueError(
                f"`z` passed to {type(self).__name__}.step contains NaN or Inf; the solver "
                "cannot start from a non-finite state."
            )

    def _finish(self, ys, result):
        return _solve.check_result(ys, result, self.max_steps, type(self).__name__)

    def step(self, z, u=None, *, key=None):
        """Integrate over `[0, dt]` (an SDE along the Brownian path drawn from `key`)."""
        self._check_step(z, u)
        self._check_finite_start(z)
        ts = jnp.array([0.0, self.dt], jnp.result_type(z))
        noise_key, _ = self.noise(z, key)
        ys, _, result = self._solve(z, ts, u, (), noise_key, None)
        return self._finish(ys, result)[-1]

    def step_with_stats(self, z, u=None, *, needs: Sequence[str] = DEFAULT_NEEDS, key=None):
        """`step` plus the solver statistics of this step.

        **Arguments:**
        - `z`, `u`: as `step`.
        - `needs`: statistics to compute besides the counts, from `error_integral`
          (`Σ_j EEst_j |dt_j|` over accepted steps), `stiffness_integral` (`Σ_j S_j |dt_j|`),
          `stiffness_max` (`max_j S_j`), `stiffness_sum` (`Σ_j S_j`) and `local_error`
          (`EEst·|dt|` of one fresh Tsit5 step at a time `t_reg` in `[0, dt]`); a regulariser's
          `needs` attribute says which it uses.
        - `key`: the noise of the step (SDEs: the same path as `step(z, u, key=key)`) and the
          draw `t_reg ~ U[0, dt]` for `local_error` (`None`: the midpoint for ODEs).

        **Returns:** `(z_new, stats)`; `stats` always holds `nfe` (vector-field evaluations of
        the forward solve; `nfe_diffusion` for the diffusion of an SDE), `num_steps`,
        `num_accepted_steps`, `num_rejected_steps`.

        **Raises:** `ValueError` if a statistic needs discrete sensitivities and the adjoint is
        not `RecursiveCheckpointAdjoint`/`DirectAdjoint`.
        """
        needs = check_needs(needs)
        self._check_step(z, u)
        self._check_finite_start(z)
        ts = jnp.array([0.0, self.dt], jnp.result_type(z))
        noise_key, t_key = self.noise(z, key)
        t_reg = None if t_key is None else jr.uniform(t_key, (), ts.dtype, 0.0, self.dt)
        ys, stats, result = self._solve(z, ts, u, needs, noise_key, t_reg)
        return self._finish(ys, result)[-1], stats

    def check_statistics(self, needs: Sequence[str]) -> None:
        _solve.check_adjoint_for(check_needs(needs), self.adjoint, type(self).__name__)

    def solve(self, z0, ts, u=None, *, needs: Sequence[str] = (), key=None):
        """Integrate from `z0` at `ts[0]` and return the states at `ts` and the statistics.

        **Arguments:**
        - `z0`: initial latent state `(latent,)`.
        - `ts`: strictly increasing times `(time,)`; the first row of the result is `z0`.
        - `u`: a constant input over the whole solve (models built with `inputs > 0`).
        - `needs`: as `step_with_stats`.
        - `key`: the noise (SDEs; default the model's `noise_key`) and the draw of
          `t_reg ~ U[ts[0], ts[-1]]` for `local_error` (ODE default: the midpoint).

        **Returns:** `(states, stats)` with `states` of shape `(time, latent)`.

        **Raises:** `ValueError` for non-finite `z0`, times that do not increase, or a solve
        that needs more than `max_steps` steps (inside `jax.jit` these surface as Equinox
        runtime errors with the same message).
        """
        needs = check_needs(needs)
        ts = jnp.asarray(ts, jnp.result_type(z0, float))
        _solve.check_times(ts, "ts")
        z0 = _solve.check_start(jnp.asarray(z0), "z0", type(self).__name__)
        self.check_statistics(needs)
        ys, stats, result = _solve_jit(self, z0, ts, u, needs, key)
        return self._finish(ys, result), stats


@eqx.filter_jit
def _solve_jit(model, z0, ts, u, needs, key):
    noise_key, t_key = model.noise(z0, key, solve=True)
    t_reg = None if t_key is None else jr.uniform(t_key, (), ts.dtype, ts[0], ts[-1])
    return model._solve(z0, ts, u, needs, noise_key, t_reg)
