"""Neural stochastic differential equations (Stratonovich, diagonal noise) solved with Diffrax's
adaptive solvers over a `VirtualBrownianTree`.

Kidger, Foster, Li, Lyons, "Efficient and Accurate Gradients for Neural ODEs", NeurIPS 2021;
adaptive stepping with SPaRK: Diffrax documentation, "ODE solvers".
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, PRNGKeyArray

from ..._errors import check_positive
from .._base import AbstractObservation, AbstractStochasticModel
from .._observation import make_observation
from . import solve as _solve
from .base import AbstractNeuralDE, MLPVectorField, check_solver_options


class _Diagonal(eqx.Module):
    """Diagonal noise: the diffusion network's output as a diagonal linear operator."""

    diffusion: Callable

    def __call__(self, t, z, args):
        return lx.DiagonalLinearOperator(self.diffusion(t, z, args))


class _ScaledSoftplus(eqx.Module):
    """`g(t, z, u) = scale · softplus(net(t, z, u))`: positive noise amplitudes."""

    net: Callable
    scale: float = eqx.field(static=True)

    def __call__(self, t, z, args):
        return self.scale * jax.nn.softplus(self.net(t, z, args))


def _state_key(base: PRNGKeyArray, z: Array) -> PRNGKeyArray:
    """A key derived from the bits of the state, so that `step(z)` without a key is
    deterministic but successive states get different Brownian paths."""
    bits = jax.lax.bitcast_convert_type(
        jax.lax.stop_gradient(z).astype(jnp.float32), jnp.uint32
    )
    return jr.fold_in(base, jnp.sum(bits * jnp.arange(1, bits.size + 1, dtype=jnp.uint32)))


class NeuralSDE(AbstractNeuralDE, AbstractStochasticModel):
    """A latent neural SDE `dz = f_θ(t, z, u) dt + g_θ(t, z, u) ∘ dW` (Stratonovich, diagonal
    noise, `g` one value per latent unit) with an observation model `x̂ = O(z)`.

    The Brownian motion is a `diffrax.VirtualBrownianTree` with space-time Lévy area, so the
    default solver `SPaRK` steps adaptively from its embedded error estimate (other choices:
    `diffrax.Heun()`, `Midpoint()`, `Ralston()`, or any solver wrapped in `HalfSolver`).

    Randomness: `step(z, u=None, *, key=None)` draws the Brownian path of `[0, dt]` from `key`;
    without a key it uses a key derived from the model's `noise_key` and the bits of `z`, so a
    step is a deterministic function of the state (what teacher forcing and Jacobians need)
    while successive states see different paths. `rollout(z, n, *, key=None)` splits `key`
    (default `noise_key`) into one key per step. `step_with_stats` with the same key follows the
    same path as `step`.

    **Arguments:**
    - `latent`, `obs`: latent and observed dimensions (`obs` default `latent`).
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
        *,
        latent: int,
        obs: int | None = None,
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
        obs = latent if obs is None else obs
        check_solver_options(obs=obs, latent=latent, dt=dt, rtol=rtol, atol=atol,
                             max_steps=max_steps, inputs=inputs, solver=solver)
        check_positive(brownian_tol, "brownian_tol")
        check_positive(noise_scale, "noise_scale")
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

    @property
    def hyperparameters(self) -> dict:
        """Constructor arguments that rebuild this model (`dr.save`); custom networks are
        recorded as themselves (saved only if they are public dynrnn/Equinox modules)."""
        hp = dict(latent=self.n_latent, obs=self.n_obs, inputs=self.n_input, dt=self.dt,
                  solver=self.solver, rtol=self.rtol, atol=self.atol,
                  max_steps=self.max_steps, adjoint=self.adjoint,
                  brownian_tol=self.brownian_tol, observation=self.observation)
        default = (isinstance(self.drift, MLPVectorField)
                   and isinstance(self.diffusion, _ScaledSoftplus)
                   and isinstance(self.diffusion.net, MLPVectorField))
        if default:
            hp.update(width=self.drift.mlp.width_size, depth=self.drift.mlp.depth,
                      noise_scale=self.diffusion.scale)
        else:
            hp.update(drift=self.drift, diffusion=self.diffusion)
        return hp

    def terms(self, t0, t1, shape, key):
        bm = _solve.brownian_tree(t0, t1, shape, key, self.brownian_tol)
        noise = dfx.ControlTerm(_Diagonal(self.diffusion), bm)
        return dfx.MultiTerm(dfx.ODETerm(self.drift), noise)

    def noise(self, z, key, *, solve=False):
        """The Brownian key (`key`, else `noise_key` for a solve and a key from the state's bits
        for a step) and, folded from it, the key of the regularisation time."""
        if key is None:
            key = self.noise_key if solve else _state_key(self.noise_key, z)
        return key, jr.fold_in(key, 1)

    def jacobian(self, z, u=None):
        """`∂ step(z, u)/∂z` along the path of `key=None` at `z`, by reverse mode."""
        key = _state_key(self.noise_key, z)
        return jax.jacrev(lambda s: self.step(s, u, key=key))(z)
