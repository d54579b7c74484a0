"""Shallow PLRNN (Hess et al., ICML 2023, Eq. 6): `z_t = A⊙z + W1 relu(W2 z + h2) + h1`
(clipped: `A⊙z + W1 (relu(W2 z + h2) − relu(W2 z)) + h1`, bounded orbits when max|A| < 1)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import check_positive
from .._base import AbstractObservation
from .._observation import glorot_uniform, make_observation
from .base import AbstractPLRNN, normalized_positive_definite, uniform


def default_hidden(latent: int) -> int:
    """The hidden width when none is given: `max(100, 10 · latent)`."""
    return max(100, 10 * latent)


class ShallowPLRNN(AbstractPLRNN):
    """Shallow PLRNN `z_t = A⊙z + W1 relu(W2 z + h2) + h1 + C u_t` (Hess et al., ICML 2023).

    With `clipped=True` (default) the hidden layer is `relu(W2 z + h2) − relu(W2 z)`, whose
    output is bounded by `|h2|`, so orbits stay bounded when `max|A| < 1`.

    Initialisation (reference code): `A` from a normalised positive-definite matrix,
    `W1 ~ U(±1/√H)`, `W2 ~ U(±1/√M)`, `h1 = 0`, `h2 = 0` (unclipped) or `U(±1/√H)` (clipped),
    `C` Glorot-uniform.

    **Arguments:**
    - `latent`: latent dimension M.
    - `hidden`: hidden width H (default `max(100, 10 M)`).
    - `obs`: observed dimension N (default M).
    - `clipped`: use the clipped variant.
    - `observation`: `"identity"`, `"affine"`, an observation model, or `None` (identity when
      N ≤ M, affine otherwise).
    - `inputs`: number of external inputs K (0: autonomous).
    - `penalty_weight`: λ_lat of the latent penalty
      `λ(‖1−A‖² + ‖W1‖² + ‖W2‖² + ‖h1‖² + ‖h2‖² + ‖C‖²)`.
    - `key`: PRNG key.
    """

    A: Float[Array, " latent"]
    W1: Float[Array, "latent hidden"]
    W2: Float[Array, "hidden latent"]
    h1: Float[Array, " latent"]
    h2: Float[Array, " hidden"]
    C: Float[Array, "latent input"] | None
    observation: AbstractObservation
    clipped: bool = eqx.field(static=True)
    penalty_weight: float = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        latent: int,
        hidden: int | None = None,
        obs: int | None = None,
        clipped: bool = True,
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        hidden = default_hidden(latent) if hidden is None else hidden
        obs = latent if obs is None else obs
        check_positive(hidden, "hidden", integer=True)
        check_positive(obs, "obs", integer=True)
        dtype = dtype or jnp.result_type(float)
        ka, k1, k2, kh, kc, ko = jr.split(key, 6)
        self.A = normalized_positive_definite(ka, latent, dtype)
        self.W1 = uniform(k1, (latent, hidden), 1.0 / math.sqrt(hidden), dtype)
        self.W2 = uniform(k2, (hidden, latent), 1.0 / math.sqrt(latent), dtype)
        self.h1 = jnp.zeros((latent,), dtype)
        self.h2 = (
            uniform(kh, (hidden,), 1.0 / math.sqrt(hidden), dtype)
            if clipped
            else jnp.zeros((hidden,), dtype)
        )
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.clipped = bool(clipped)
        self.penalty_weight = float(penalty_weight)
        self.hidden = hidden

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        a = self.W2 @ z
        hidden = jax.nn.relu(a + self.h2)
        if self.clipped:
            hidden = hidden - jax.nn.relu(a)
        return self.A * z + self.W1 @ hidden + self.h1 + self._input(z, u)

    def jacobian(self, z, u=None):
        a = self.W2 @ z
        d = (a + self.h2 > 0).astype(z.dtype)
        if self.clipped:
            d = d - (a > 0).astype(z.dtype)
        return jnp.diag(self.A) + (self.W1 * d) @ self.W2

    def jacobian_norm_bound(self):
        s1 = jnp.linalg.norm(self.W1, ord=2)
        s2 = jnp.linalg.norm(self.W2, ord=2)
        return jnp.max(jnp.abs(self.A)) + s1 * s2

    def penalty(self):
        return self._latent_penalty([self.W1, self.W2, self.h1, self.h2, self.C]) + (
            self.observation.penalty()
        )
