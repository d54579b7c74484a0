"""Observation models: `Identity` (read out the first N latent units) and `Affine` (x̂ = B z).

Hess, Monfared, Brenner, Durstewitz, "Generalized Teacher Forcing for Learning Chaotic
Dynamics", ICML 2023, Sec. 3 and App. A.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_positive
from .._base import AbstractObservation


def glorot_uniform(key, shape, dtype=None):
    """Glorot/Xavier uniform for a `(fan_out, fan_in)` matrix."""
    fan_out, fan_in = shape
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    return jr.uniform(key, shape, dtype=dtype or jnp.result_type(float), minval=-lim, maxval=lim)


class Identity(AbstractObservation):
    """Read out the first `N` of `M` latent units: `x̂ = z[:N]`.

    The initial state is `z_1 = [x_1; L x_1]` with a trained `(M−N)×N` matrix `L`
    (Glorot-uniform; absent when `M = N`). The forcing signal is `ẑ = [x; 0]`, and by default
    only the first `N` units are forced (partial forcing): forcing all `M` would pull the
    unobserved units to 0.

    **Arguments:**
    - `obs`: number of observed dimensions `N`.
    - `latent`: number of latent units `M ≥ N`.
    - `key`: PRNG key for `L`.

    **Raises:** `ValueError` if `obs > latent`.
    """

    L: Float[Array, "rest obs"] | None
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(self, obs: int, latent: int, *, key: PRNGKeyArray | None = None, dtype=None):
        check_positive(obs, "obs", integer=True)
        check_positive(latent, "latent", integer=True)
        if obs > latent:
            raise DynrnnValueError(
                f"`Identity` observation needs obs <= latent, got obs={obs} > latent={latent}; "
                "use an `Affine` observation model (observation='affine') or a larger latent size."
            )
        self.n_obs = obs
        self.n_latent = latent
        if latent > obs:
            if key is None:
                raise DynrnnValueError("`key` is required to initialise `Identity.L`.")
            self.L = glorot_uniform(key, (latent - obs, obs), dtype)
        else:
            self.L = None

    def __call__(self, z):
        return z[..., : self.n_obs]

    def init_state(self, x0):
        if self.L is None:
            return x0
        return jnp.concatenate([x0, x0 @ self.L.T.astype(x0.dtype)], axis=-1)

    def forcing_signal(self, x):
        pad = jnp.zeros(x.shape[:-1] + (self.n_latent - self.n_obs,), x.dtype)
        return jnp.concatenate([x, pad], axis=-1)

    @property
    def partial_forcing(self) -> bool:
        return True


class Affine(AbstractObservation):
    """Linear read-out `x̂ = B z` (no bias), `B` Kaiming-normal and trained.

    The initial state and the forcing signal are `pinv(B) x` (the forcing signal carries no
    gradient). An optional penalty `λ_obs (1 − s_max/(s_min + 1e-8))²` on the singular values
    of `B` keeps it well conditioned (Hess et al. 2023, App. A).

    **Arguments:**
    - `obs`: observed dimensions `N`; `latent`: latent units `M`.
    - `key`: PRNG key for `B`.
    - `penalty_weight`: `λ_obs` (default 0).
    """

    B: Float[Array, "obs latent"]
    penalty_weight: float = eqx.field(static=True)
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(
        self, obs: int, latent: int, *, key: PRNGKeyArray, penalty_weight: float = 0.0, dtype=None
    ):
        check_positive(obs, "obs", integer=True)
        check_positive(latent, "latent", integer=True)
        self.n_obs = obs
        self.n_latent = latent
        # Kaiming normal as in Flux: std = sqrt(2 / fan_in), fan_in = latent.
        dtype = dtype or jnp.result_type(float)
        self.B = jr.normal(key, (obs, latent), dtype) * math.sqrt(2.0 / latent)
        self.penalty_weight = float(penalty_weight)

    def __call__(self, z):
        return z @ self.B.T.astype(z.dtype)

    def inverse(self) -> Float[Array, "latent obs"]:
        return jnp.linalg.pinv(self.B)

    def init_state(self, x0):
        return x0 @ self.inverse().T.astype(x0.dtype)

    def forcing_signal(self, x):
        return jax.lax.stop_gradient(x @ self.inverse().T.astype(x.dtype))

    def penalty(self):
        if self.penalty_weight == 0.0:
            return jnp.zeros((), self.B.dtype)
        s = jnp.linalg.svd(self.B, compute_uv=False)
        return self.penalty_weight * (1.0 - s[0] / (s[-1] + 1e-8)) ** 2
