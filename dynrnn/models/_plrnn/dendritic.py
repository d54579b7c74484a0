"""Dendritic PLRNN (Brenner et al., ICML 2022, Eq. 5): `z_t = A⊙z + W Φ(z) + h`,
`Φ_m(z) = Σ_b α_b relu(z_m − H_mb)` (clipped: `Σ_b α_b (relu(z_m − H_mb) − relu(z_m))`)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_positive
from .._base import AbstractObservation
from .._observation import glorot_uniform, make_observation
from .base import AbstractPLRNN, diagonal_and_coupling, uniform, zero_diagonal


class DendPLRNN(AbstractPLRNN):
    """Dendritic PLRNN `z_t = A⊙z + W Φ(z) + h + C u_t` (Brenner et al., ICML 2022, Eq. 5).

    `Φ_m(z) = Σ_b α_b relu(z_m − H_mb)`; with `clipped=True`,
    `Φ_m(z) = Σ_b α_b (relu(z_m − H_mb) − relu(z_m))`. Thresholds `H_mb ~ U(lo, hi)` with
    `(lo, hi) = threshold_range` (the data range min X, max X in the reference), `α_b ~ U(±1/√B)`.

    **Arguments:** `latent` (M), `bases` (B, default 20), `obs` (N, default M), `clipped`,
    `threshold_range`, `observation`, `inputs`, `penalty_weight`, `key` (as `ShallowPLRNN`).
    """

    A: Float[Array, " latent"]
    W: Float[Array, "latent latent"]
    h: Float[Array, " latent"]
    alpha: Float[Array, " bases"]
    H: Float[Array, "latent bases"]
    C: Float[Array, "latent input"] | None
    observation: AbstractObservation
    clipped: bool = eqx.field(static=True)
    penalty_weight: float = eqx.field(static=True)
    threshold_range: tuple[float, float] = eqx.field(static=True)

    def __init__(
        self,
        *,
        latent: int,
        bases: int = 20,
        obs: int | None = None,
        clipped: bool = False,
        threshold_range: tuple[float, float] = (-2.0, 2.0),
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        obs = latent if obs is None else obs
        check_positive(bases, "bases", integer=True)
        check_positive(obs, "obs", integer=True)
        lo, hi = (float(v) for v in threshold_range)
        if not hi > lo:
            raise DynrnnValueError(
                f"`threshold_range` must be (lo, hi) with lo < hi, got {threshold_range!r}."
            )
        dtype = dtype or jnp.result_type(float)
        kr, ka, kh, kc, ko = jr.split(key, 5)
        self.A, self.W = diagonal_and_coupling(kr, latent, dtype)
        self.h = jnp.zeros((latent,), dtype)
        self.alpha = uniform(ka, (bases,), 1.0 / math.sqrt(bases), dtype)
        self.H = jr.uniform(kh, (latent, bases), dtype, minval=lo, maxval=hi)
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.clipped = bool(clipped)
        self.penalty_weight = float(penalty_weight)
        self.threshold_range = (lo, hi)

    @property
    def bases(self) -> int:
        """The number of basis functions B."""
        return self.alpha.shape[0]

    def _W(self):
        return zero_diagonal(self.W)

    def basis(self, z):
        """The basis expansion `Φ(z)`."""
        act = jax.nn.relu(z[:, None] - self.H)
        if self.clipped:
            act = act - jax.nn.relu(z)[:, None]
        return act @ self.alpha

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        return self.A * z + self._W() @ self.basis(z) + self.h + self._input(z, u)

    def jacobian(self, z, u=None):
        d = (z[:, None] > self.H).astype(z.dtype)
        if self.clipped:
            d = d - (z > 0).astype(z.dtype)[:, None]
        return jnp.diag(self.A) + self._W() * (d @ self.alpha)

    def jacobian_norm_bound(self):
        return jnp.max(jnp.abs(self.A)) + jnp.linalg.norm(self._W(), ord=2) * jnp.sum(
            jnp.abs(self.alpha)
        )

    def penalty(self):
        return self._latent_penalty([self._W(), self.h, self.C]) + self.observation.penalty()
