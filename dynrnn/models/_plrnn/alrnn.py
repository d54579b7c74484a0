"""Almost-linear RNN (Brenner, Hemmer et al., NeurIPS 2024):
`z_t = A⊙z + W [z_{1:M−P}; relu(z_{M−P+1:M})] + h`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_positive
from .._base import AbstractObservation
from .._observation import glorot_uniform, make_observation
from .base import AbstractPLRNN, normalized_positive_definite


class ALRNN(AbstractPLRNN):
    """Almost-linear RNN `z_t = A⊙z + W [z_{1:M−P}; relu(z_{M−P+1:M})] + h + C u_t`
    (Brenner, Hemmer et al., NeurIPS 2024): only the last `P` units are rectified.

    `A` normalised positive-definite, `W ~ N(0, 0.01²)` (full), `h = 0`.

    **Arguments:** `latent` (M), `n_relu` (P ≤ M, default `max(1, M // 4)`), `obs` (N,
    default M), `observation`, `inputs`, `penalty_weight`, `key` (as `ShallowPLRNN`).
    """

    A: Float[Array, " latent"]
    W: Float[Array, "latent latent"]
    h: Float[Array, " latent"]
    C: Float[Array, "latent input"] | None
    observation: AbstractObservation
    n_relu: int = eqx.field(static=True)
    penalty_weight: float = eqx.field(static=True)

    def __init__(
        self,
        *,
        latent: int,
        n_relu: int | None = None,
        obs: int | None = None,
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        n_relu = max(1, latent // 4) if n_relu is None else n_relu
        obs = latent if obs is None else obs
        check_positive(n_relu, "n_relu", integer=True, strict=False)
        check_positive(obs, "obs", integer=True)
        if n_relu > latent:
            raise DynrnnValueError(f"`n_relu` must be <= latent={latent}, got {n_relu}.")
        dtype = dtype or jnp.result_type(float)
        ka, kw, kc, ko = jr.split(key, 4)
        self.A = normalized_positive_definite(ka, latent, dtype)
        self.W = 0.01 * jr.normal(kw, (latent, latent), dtype)
        self.h = jnp.zeros((latent,), dtype)
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.n_relu = int(n_relu)
        self.penalty_weight = float(penalty_weight)

    def _mask(self, dtype):
        m = self.A.shape[0]
        return (jnp.arange(m) >= m - self.n_relu).astype(dtype)

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        mask = self._mask(z.dtype)
        phi = jnp.where(mask > 0, jax.nn.relu(z), z)
        return self.A * z + self.W @ phi + self.h + self._input(z, u)

    def jacobian(self, z, u=None):
        mask = self._mask(z.dtype)
        d = jnp.where(mask > 0, (z > 0).astype(z.dtype), 1.0)
        return jnp.diag(self.A) + self.W * d

    def jacobian_norm_bound(self):
        return jnp.max(jnp.abs(self.A)) + jnp.linalg.norm(self.W, ord=2)

    def penalty(self):
        return self._latent_penalty([self.W, self.h, self.C]) + self.observation.penalty()
