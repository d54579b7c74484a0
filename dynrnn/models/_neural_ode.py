"""Neural ordinary differential equations solved with Diffrax, with the adaptive solver's own
heuristics (local error and stiffness estimates, evaluation counts) reported per solve.

Chen, Rubanova, Bettencourt, Duvenaud, "Neural Ordinary Differential Equations", NeurIPS 2018;
the statistics follow Pal, Ma, Shah, Rackauckas, ICML 2021 (see `dynrnn.regularizers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from . import _diffeq
from ._base import AbstractLatentModel, AbstractObservation
from ._observation import make_observation


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


def _check_solver(solver, name: str):
    if not isinstance(solver, dfx.AbstractAdaptiveSolver):
        raise DynrnnTypeError(
            f"`{name}` must be an adaptive Diffrax solver (one with an error estimate, e.g. "
            f"diffrax.Tsit5()), got {type(solver).__name__}; wrap fixed-step solvers in "
            "diffrax.HalfSolver."
        )


def _check_needs(needs) -> tuple[str, ...]:
    if isinstance(needs, str):
        needs = (needs,)
    return tuple(needs)


def _input_args(model_name: str, n_input: int, u, z):
    if u is None:
        if n_input:
            raise DynrnnValueError(
                f"`{model_name}` was built with inputs={n_input}; `u` of shape ({n_input},) is "
                "required."
            )
        return None
    if not n_input:
        raise DynrnnValueError(
            f"`{model_name}` was built without inputs (inputs=0) but got `u` of shape "
            f"{tuple(jnp.shape(u))}; build it with inputs=<size>."
        )
    if jnp.shape(u) != (n_input,):
        raise DynrnnValueError(
            f"`u` must have shape ({n_input},), got {tuple(jnp.shape(u))}."
        )
    return jnp.asarray(u, jnp.result_type(z))


class NeuralODE(AbstractLatentModel):
    """A latent neural ODE `dz/dt = f_θ(t, z, u)` with an observation model `x̂ = O(z)`.

    `step(z, u)` integrates over the time `dt` between observations with an adaptive solver
    (default `Tsit5`, PID step-size control), so the model has the interface of every latent
    model (`dr.fit` with teacher forcing, `dr.evaluate`). `solve(z0, ts)` integrates over
    arbitrary times and reports the solver statistics; `step_with_stats` is the step used by
    `dr.fit` when a solver regulariser (`dr.regularizers.SolverError`, `Stiffness`,
    `LocalSolverError`) is given.

    **Arguments:**
    - `obs`: observed dimensions `N`; `latent`: latent dimensions `M`.
    - `width`, `depth`: hidden width and number of hidden layers of the default MLP field
      (`tanh`).
    - `vector_field`: any Equinox module `f(t, z, args) -> dz/dt` on `(latent,)` states instead of
      the MLP (`args` is the input `u` or `None`); stored as `model.func`.
    - `inputs`: size of a constant-per-step input `u` fed to the MLP field (default 0: none).
    - `dt`: the time between observations (one `step`).
    - `solver`: an adaptive Diffrax solver.
    - `rtol`, `atol`: tolerances of the PID controller.
    - `max_steps`: most solver steps per solve.
    - `adjoint`: Diffrax adjoint. `RecursiveCheckpointAdjoint` (default) and `DirectAdjoint`
      differentiate through the solver and support every regulariser; `BacksolveAdjoint`
      supports only `LocalSolverError`.
    - `observation`: `"identity"`, `"affine"`, `None` or an observation model.
    - `key`: PRNG key.

    **Raises:** `DynrnnValueError`/`DynrnnTypeError` for invalid sizes, `dt`, tolerances or a
    non-adaptive solver.
    """

    # Stored as `func`, not `vector_field`: objects with a `vector_field` attribute are treated
    # as flows by `dr.metrics.lyapunov_spectrum`, while this model is a map over `dt` like every
    # latent model.
    func: Callable
    observation: AbstractObservation
    dt: float = eqx.field(static=True)
    solver: dfx.AbstractAdaptiveSolver = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: dfx.AbstractAdjoint = eqx.field(static=True)
    n_input: int = eqx.field(static=True)

    def __init__(
        self,
        obs: int,
        latent: int,
        *,
        width: int = 64,
        depth: int = 2,
        vector_field: Callable | None = None,
        inputs: int = 0,
        dt: float = 0.01,
        solver: dfx.AbstractAdaptiveSolver = dfx.Tsit5(),
        rtol: float = 1e-4,
        atol: float = 1e-6,
        max_steps: int = 4096,
        adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
        observation=None,
        key: PRNGKeyArray,
    ):
        check_positive(obs, "obs", integer=True)
        check_positive(latent, "latent", integer=True)
        check_positive(dt, "dt")
        check_positive(rtol, "rtol")
        check_positive(atol, "atol")
        check_positive(max_steps, "max_steps", integer=True)
        check_positive(inputs, "inputs", integer=True, strict=False)
        _check_solver(solver, "solver")
        kf, ko = jr.split(key)
        if vector_field is None:
            check_positive(width, "width", integer=True)
            check_positive(depth, "depth", integer=True, strict=False)
            vector_field = MLPVectorField(latent, width, depth, n_input=inputs, key=kf)
        self.func = vector_field
        self.observation = make_observation(observation, obs, latent, key=ko)
        self.dt = float(dt)
        self.solver = solver
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.adjoint = adjoint
        self.n_input = int(inputs)

    def _solve(self, z0, ts, u, needs, t_reg):
        args = _input_args(type(self).__name__, self.n_input, u, z0)
        return _diffeq.solve(
            dfx.ODETerm(self.func),
            self.solver,
            ts,
            z0,
            args,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            adjoint=self.adjoint,
            needs=needs,
            t_reg=t_reg,
            model_name=type(self).__name__,
        )

    def step(self, z: Float[Array, " latent"], u: Float[Array, " input"] | None = None):
        """Integrate `dz/dt = f(t, z, u)` over `[0, dt]` with adaptive steps."""
        ts = jnp.array([0.0, self.dt], jnp.result_type(z))
        ys, _, result = self._solve(z, ts, u, (), None)
        return _diffeq.check_result(ys, result, self.max_steps, type(self).__name__)[-1]

    def step_with_stats(
        self,
        z: Float[Array, " latent"],
        u: Float[Array, " input"] | None = None,
        *,
        needs: Sequence[str] = DEFAULT_NEEDS,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, " latent"], dict[str, Array]]:
        """`step` plus the solver statistics of this step.

        **Arguments:**
        - `z`, `u`: as `step`.
        - `needs`: statistics to compute besides the counts, from `error_integral`
          (`Σ_j EEst_j |dt_j|` over accepted steps), `stiffness_integral` (`Σ_j S_j |dt_j|`),
          `stiffness_max` (`max_j S_j`), `stiffness_sum` (`Σ_j S_j`) and `local_error`
          (`EEst·|dt|` of one fresh Tsit5 step at a time `t_reg` in `[0, dt]`); a regulariser's
          `needs` attribute says which it uses.
        - `key`: draws `t_reg ~ U[0, dt]` for `local_error`; `None` uses the midpoint.

        **Returns:** `(z_new, stats)`; `stats` always holds `nfe` (vector-field evaluations of
        the forward solve), `num_steps`, `num_accepted_steps`, `num_rejected_steps`.

        **Raises:** `DynrnnValueError` if a statistic needs discrete sensitivities and the
        adjoint is not `RecursiveCheckpointAdjoint`/`DirectAdjoint`.
        """
        needs = _check_needs(needs)
        ts = jnp.array([0.0, self.dt], jnp.result_type(z))
        t_reg = None if key is None else jr.uniform(key, (), ts.dtype, 0.0, self.dt)
        ys, stats, result = self._solve(z, ts, u, needs, t_reg)
        ys = _diffeq.check_result(ys, result, self.max_steps, type(self).__name__)
        return ys[-1], stats

    def solve(
        self,
        z0: Float[Array, " latent"],
        ts: Float[Array, " time"],
        u: Float[Array, " input"] | None = None,
        *,
        needs: Sequence[str] = (),
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "time latent"], dict[str, Array]]:
        """Integrate from `z0` at `ts[0]` and return the states at `ts` and the statistics.

        **Arguments:**
        - `z0`: initial latent state `(latent,)`.
        - `ts`: strictly increasing times `(time,)`; the first row of the result is `z0`.
        - `u`: a constant input over the whole solve (models built with `inputs > 0`).
        - `needs`, `key`: as `step_with_stats` (`t_reg ~ U[ts[0], ts[-1]]`).

        **Returns:** `(states, stats)` with `states` of shape `(time, latent)`.

        **Raises:** `DynrnnValueError` for non-finite `z0`, times that do not increase
        (`t1 <= t0`), or a solve that needs more than `max_steps` steps (inside `jax.jit` these
        surface as Equinox runtime errors with the same message).
        """
        needs = _check_needs(needs)
        ts = jnp.asarray(ts, jnp.result_type(z0, float))
        _diffeq.check_times(ts, "ts")
        z0 = _diffeq.check_start(jnp.asarray(z0), "z0", type(self).__name__)
        _diffeq.check_adjoint_for(needs, self.adjoint, type(self).__name__)
        ys, stats, result = _solve_jit(self, z0, ts, u, needs, key)
        return _diffeq.check_result(ys, result, self.max_steps, type(self).__name__), stats

    def jacobian(self, z, u=None):
        """`∂ step(z, u)/∂z` by reverse mode (Diffrax's checkpointed solve has no forward mode)."""
        return jax.jacrev(lambda s: self.step(s, u))(z)


@eqx.filter_jit
def _solve_jit(model, z0, ts, u, needs, key):
    t_reg = None if key is None else jr.uniform(key, (), ts.dtype, ts[0], ts[-1])
    return model._solve(z0, ts, u, needs, t_reg)
