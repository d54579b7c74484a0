"""Neural ordinary differential equations solved with Diffrax.

Chen, Rubanova, Bettencourt, Duvenaud, "Neural Ordinary Differential Equations", NeurIPS 2018;
the solver statistics follow Pal, Ma, Shah, Rackauckas, ICML 2021 (see `dynrnn.regularizers`).
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax.random as jr
from jaxtyping import PRNGKeyArray

from ..._errors import check_positive
from .._base import AbstractObservation
from .._observation import make_observation
from .base import AbstractNeuralDE, MLPVectorField, check_solver_options


class NeuralODE(AbstractNeuralDE):
    """A latent neural ODE `dz/dt = f_θ(t, z, u)` with an observation model `x̂ = O(z)`.

    `step(z, u)` integrates over the time `dt` between observations with an adaptive solver
    (default `Tsit5`, PID step-size control), so the model has the interface of every latent
    model (`dr.fit` with teacher forcing, `dr.evaluate`). `solve(z0, ts)` integrates over
    arbitrary times and reports the solver statistics; `step_with_stats` is the step used by
    `dr.fit` when a solver regulariser (`dr.regularizers.SolverError`, `Stiffness`,
    `LocalSolverError`) is given.

    **Arguments:**
    - `latent`: latent dimensions `M`; `obs`: observed dimensions `N` (default `M`).
    - `width`, `depth`: hidden width and number of hidden layers of the default MLP field
      (`tanh`; default 64 and 2).
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
    - `observation`: `"identity"`, `"affine"`, `None`, a table or an observation model.
    - `key`: PRNG key.

    **Raises:** `ValueError`/`TypeError` for invalid sizes, `dt`, tolerances or a non-adaptive
    solver.
    """

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
        *,
        latent: int,
        obs: int | None = None,
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
        obs = latent if obs is None else obs
        check_solver_options(obs=obs, latent=latent, dt=dt, rtol=rtol, atol=atol,
                             max_steps=max_steps, inputs=inputs, solver=solver)
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

    @property
    def hyperparameters(self) -> dict:
        """Constructor arguments that rebuild this model (`dr.save`); a custom `vector_field`
        is recorded as itself (saved only if it is a public dynrnn/Equinox module)."""
        hp = dict(latent=self.n_latent, obs=self.n_obs, inputs=self.n_input, dt=self.dt,
                  solver=self.solver, rtol=self.rtol, atol=self.atol,
                  max_steps=self.max_steps, adjoint=self.adjoint, observation=self.observation)
        if isinstance(self.func, MLPVectorField):
            hp.update(width=self.func.mlp.width_size, depth=self.func.mlp.depth)
        else:
            hp.update(vector_field=self.func)
        return hp

    def terms(self, t0, t1, shape, key):
        return dfx.ODETerm(self.func)
