"""Vanilla PLRNN (Durstewitz 2017): `z_t = A⊙z + W relu(z) + h`, W with zero diagonal."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import check_positive
from .._base import AbstractObservation
from .._observation import glorot_uniform, make_observation
from .base import AbstractPLRNN, diagonal_and_coupling, zero_diagonal


class PLRNN(AbstractPLRNN):
    """Vanilla PLRNN `z_t = A⊙z + W relu(z) + h + C u_t` with zero-diagonal `W` (Durstewitz 2017).

    `A` and `W` come from one normalised positive-definite matrix `I + RᵀR/M` scaled by its
    largest eigenvalue (diagonal → A, off-diagonal → W); `h = 0`. The diagonal of `W` is
    masked in the forward pass, so its gradient is zero.

    **Arguments:** `latent` (M), `obs` (N, default M), `observation`, `inputs`,
    `penalty_weight`, `key` as in `ShallowPLRNN`.
    """

    A: Float[Array, " latent"]
    W: Float[Array, "latent latent"]
    h: Float[Array, " latent"]
    C: Float[Array, "latent input"] | None
    observation: AbstractObservation
    penalty_weight: float = eqx.field(static=True)

    def __init__(
        self,
        *,
        latent: int,
        obs: int | None = None,
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        obs = latent if obs is None else obs
        check_positive(obs, "obs", integer=True)
        dtype = dtype or jnp.result_type(float)
        kr, kc, ko = jr.split(key, 3)
        self.A, self.W = diagonal_and_coupling(kr, latent, dtype)
        self.h = jnp.zeros((latent,), dtype)
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.penalty_weight = float(penalty_weight)

    def _W(self):
        return zero_diagonal(self.W)

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        return self.A * z + self._W() @ jax.nn.relu(z) + self.h + self._input(z, u)

    def jacobian(self, z, u=None):
        return jnp.diag(self.A) + self._W() * (z > 0).astype(z.dtype)

    def jacobian_norm_bound(self):
        return jnp.max(jnp.abs(self.A)) + jnp.linalg.norm(self._W(), ord=2)

    def penalty(self):
        return self._latent_penalty([self._W(), self.h, self.C]) + self.observation.penalty()
