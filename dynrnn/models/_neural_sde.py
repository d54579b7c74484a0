"""Neural stochastic differential equations (Stratonovich, diagonal noise) solved with Diffrax's
adaptive SDE solvers over a `VirtualBrownianTree`.

Kidger, Foster, Li, Lyons, "Efficient and Accurate Gradients for Neural SDEs", NeurIPS 2021;
adaptive stepping with SPaRK: Diffrax documentation, "SDE solvers".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import check_positive
from . import _diffeq
from ._base import AbstractLatentModel, AbstractObservation
from ._neural_ode import (
    DEFAULT_NEEDS,
    MLPVectorField,
    _check_needs,
    _check_solver,
    _input_args,
)
from ._observation import make_observation


class _Diagonal(eqx.Module):
    """Diagonal noise: the diffusion network's output as a diagonal linear operator."""

    diffusion: Callable

    def __call__(self, t, z, args):
        return lx.DiagonalLinearOperator(self.diffusion(t, z, args))


def _state_key(base: PRNGKeyArray, z: Array) -> PRNGKeyArray:
    """A key derived from the bits of the state, so that `step(z)` without a key is
    deterministic but successive states get different Brownian paths."""
    bits = jax.lax.bitcast_convert_type(
        jax.lax.stop_gradient(z).astype(jnp.float32), jnp.uint32
    )
    return jr.fold_in(base, jnp.sum(bits * jnp.arange(1, bits.size + 1, dtype=jnp.uint32)))


class NeuralSDE(AbstractLatentModel):
    """A latent neural SDE `dz = f_θ(t, z, u) dt + g_θ(t, z, u) ∘ dW` (Stratonovich, diagonal
    noise, `g` one value per latent unit) with an observation model `x̂ = O(z)`.

    The Brownian motion is a `diffrax.VirtualBrownianTree` with space-time Lévy area, so the
    default solver `SPaRK` steps adaptively from its embedded error estimate (other choices:
    `diffrax.Heun()`, `Midpoint()`, `Ralston()`, or any solver wrapped in `HalfSolver`).

    Randomness: `step(z, u=None, *, key=None)` draws the Brownian path of `[0, dt]` from `key`;
    without a key it uses a key derived from the model's `noise_key` and the bits of `z`, so a
    step is a deterministic function of the state (what teacher forcing and Jacobians need)
    while successive states see different paths. `rollout(z, n, *, key=None)` splits `key`
    (default `noise_key`) into one key per step.

    **Arguments:**
    - `obs`, `latent`: observed and latent dimensions.
    - `width`, `depth`: hidden width and depth of the drift and diffusion MLPs (`tanh`; the
      diffusion ends in a `softplus` times `noise_scale`).
    - `drift`, `diffusion`: Equinox modules `f(t, z, args)`, `g(t, z, args)` returning `(latent,)`
      arrays, instead of the MLPs.
    - `noise_scale`: scale of the default diffusion's output.
    - `inputs`: size of a constant-per-step input fed to both networks.
    - `dt`: time between observations; `solver`, `rtol`, `atol`, `max_steps`, `adjoint`: as
      `NeuralODE` (`BacksolveAdjoint` needs a Stratonovich solver, which all defaults are).
    - `brownian_tol`: the Brownian tree's resolution as a fraction of the solved interval.
    - `observation`: as `NeuralODE`.
    - `key`: PRNG key (also the source of `noise_key`).
    """

    drift: Callable
    diffusion: Callable
    observation: AbstractObservation
    noise_key: PRNGKeyArray
    dt: float = eqx.field(static=True)
    solver: dfx.AbstractAdaptiveSolver = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: dfx.AbstractAdjoint = eqx.field(static=True)
    brownian_tol: float = eqx.field(static=True)
    n_input: int = eqx.field(static=True)

    def __init__(
        self,
        obs: int,
        latent: int,
        *,
        width: int = 64,
        depth: int = 2,
        drift: Callable | None = None,
        diffusion: Callable | None = None,
        noise_scale: float = 0.1,
        inputs: int = 0,
        dt: float = 0.01,
        solver: dfx.AbstractAdaptiveSolver = dfx.SPaRK(),
        rtol: float = 1e-3,
        atol: float = 1e-3,
        max_steps: int = 4096,
        adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
        brownian_tol: float = 1e-3,
        observation=None,
        key: PRNGKeyArray,
    ):
        for name, v in (("obs", obs), ("latent", latent), ("max_steps", max_steps)):
            check_positive(v, name, integer=True)
        for name, v in (("dt", dt), ("rtol", rtol), ("atol", atol), ("brownian_tol", brownian_tol),
                        ("noise_scale", noise_scale)):
            check_positive(v, name)
        check_positive(inputs, "inputs", integer=True, strict=False)
        _check_solver(solver, "solver")
        kf, kg, ko, kn = jr.split(key, 4)
        if drift is None:
            drift = MLPVectorField(latent, width, depth, n_input=inputs, key=kf)
        if diffusion is None:
            net = MLPVectorField(latent, width, depth, n_input=inputs, key=kg)
            diffusion = _ScaledSoftplus(net, float(noise_scale))
        self.drift = drift
        self.diffusion = diffusion
        self.observation = make_observation(observation, obs, latent, key=ko)
        self.noise_key = kn
        self.dt = float(dt)
        self.solver = solver
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.adjoint = adjoint
        self.brownian_tol = float(brownian_tol)
        self.n_input = int(inputs)

    def _solve(self, z0, ts, u, needs, key, t_reg):
        args = _input_args(type(self).__name__, self.n_input, u, z0)
        bm = _diffeq.brownian_tree(ts[0], ts[-1], z0.shape, key, self.brownian_tol)
        noise = dfx.ControlTerm(_Diagonal(self.diffusion), bm)
        terms = dfx.MultiTerm(dfx.ODETerm(self.drift), noise)
        return _diffeq.solve(
            terms,
            self.solver,
            ts,
            z0,
            args,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            adjoint=self.adjoint,
            needs=needs,
            sde=True,
            t_reg=t_reg,
            model_name=type(self).__name__,
        )

    def _key(self, z, key):
        return _state_key(self.noise_key, z) if key is None else key

    def step(
        self,
        z: Float[Array, " latent"],
        u: Float[Array, " input"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " latent"]:
        """Integrate over `[0, dt]` along the Brownian path drawn from `key` (see the class
        docstring for `key=None`)."""
        ts = jnp.array([0.0, self.dt], jnp.result_type(z))
        ys, _, result = self._solve(z, ts, u, (), self._key(z, key), None)
        return _diffeq.check_result(ys, result, self.max_steps, type(self).__name__)[-1]

    def step_with_stats(
        self,
        z: Float[Array, " latent"],
        u: Float[Array, " input"] | None = None,
        *,
        needs: Sequence[str] = DEFAULT_NEEDS,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, " latent"], dict[str, Array]]:
        """`step` plus solver statistics, as `NeuralODE.step_with_stats`; `key` draws both the
        Brownian path and `t_reg` (`nfe` counts drift evaluations, `nfe_diffusion` diffusion
        evaluations). The stiffness estimate of an SDE uses the drift (see `dr.regularizers`).
        """
        needs = _check_needs(needs)
        ts = jnp.array([0.0, self.dt], jnp.result_type(z))
        key = self._key(z, key)
        kb, kt = jr.split(key)
        t_reg = jr.uniform(kt, (), ts.dtype, 0.0, self.dt)
        ys, stats, result = self._solve(z, ts, u, needs, kb, t_reg)
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
        """One sample path from `z0` at `ts[0]`, saved at `ts`, and the solver statistics.

        `key` draws the Brownian path and `t_reg` (default: `noise_key`). Arguments, returns and
        errors as `NeuralODE.solve`.
        """
        needs = _check_needs(needs)
        ts = jnp.asarray(ts, jnp.result_type(z0, float))
        _diffeq.check_times(ts, "ts")
        z0 = _diffeq.check_start(jnp.asarray(z0), "z0", type(self).__name__)
        _diffeq.check_adjoint_for(needs, self.adjoint, type(self).__name__)
        key = self.noise_key if key is None else key
        ys, stats, result = _solve_jit(self, z0, ts, u, needs, key)
        return _diffeq.check_result(ys, result, self.max_steps, type(self).__name__), stats

    def rollout(
        self,
        z: Float[Array, " latent"],
        n_steps: int,
        inputs: Float[Array, "time input"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time latent"]:
        """The `n_steps` states after `z`, with one Brownian key per step split from `key`
        (default `noise_key`)."""
        keys = jr.split(self.noise_key if key is None else key, n_steps)

        def body(state, xs):
            k, u = xs
            new = self.step(state, u, key=k)
            return new, new

        _, states = jax.lax.scan(body, z, (keys, inputs))
        return states

    def jacobian(self, z, u=None):
        """`∂ step(z, u)/∂z` along the path of `key=None`, by reverse mode."""
        return jax.jacrev(lambda s: self.step(s, u, key=_state_key(self.noise_key, z)))(z)


class _ScaledSoftplus(eqx.Module):
    """`g(t, z, u) = scale · softplus(net(t, z, u))`: positive noise amplitudes."""

    net: Callable
    scale: float = eqx.field(static=True)

    def __call__(self, t, z, args):
        return self.scale * jax.nn.softplus(self.net(t, z, args))


@eqx.filter_jit
def _solve_jit(model, z0, ts, u, needs, key):
    kb, kt = jr.split(key)
    t_reg = jr.uniform(kt, (), ts.dtype, ts[0], ts[-1])
    return model._solve(z0, ts, u, needs, kb, t_reg)
