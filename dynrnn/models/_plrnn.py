"""Piecewise-linear recurrent neural networks.

- PLRNN (Durstewitz 2017): `z_t = A⊙z + W relu(z) + h`, W with zero diagonal.
- DendPLRNN (Brenner et al., ICML 2022, Eq. 5): `z_t = A⊙z + W Φ(z) + h`,
  `Φ_m(z) = Σ_b α_b relu(z_m − H_mb)` (clipped: `Σ_b α_b (relu(z_m − H_mb) − relu(z_m))`).
- ShallowPLRNN (Hess et al., ICML 2023, Eq. 6): `z_t = A⊙z + W1 relu(W2 z + h2) + h1`
  (clipped: `A⊙z + W1 (relu(W2 z + h2) − relu(W2 z)) + h1`, bounded orbits when max|A| < 1).
- ALRNN (Brenner, Hemmer et al., NeurIPS 2024): `z_t = A⊙z + W [z_{1:M−P}; relu(z_{M−P+1:M})] + h`.

External inputs enter linearly, `+ C u_t`. All have analytic Jacobians (`jacobian`) and the
parameter bound used by adaptive teacher forcing (`jacobian_norm_bound`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnValueError, check_positive
from ._base import AbstractLatentModel, AbstractObservation
from ._observation import Affine, glorot_uniform, make_observation


def normalized_positive_definite(key, m: int, dtype=None) -> Float[Array, " m"]:
    """Diagonal of `K = RᵀR/M + I` divided by `λ_max(K)`, `R ~ N(0,1)` (Talathi & Vartak 2016).

    The result lies in (0, 1]: a contracting diagonal to start from.
    """
    return _diagonal_and_coupling(key, m, dtype or jnp.result_type(float))[0]


def _diagonal_and_coupling(key, m: int, dtype):
    """`A` (diagonal) and `W` (off-diagonal) of `I + RᵀR/M` scaled by its largest eigenvalue
    (the PLRNN/dendPLRNN reference initialisation)."""
    r = jr.normal(key, (m, m), dtype)
    k = jnp.eye(m, dtype=dtype) + r.T @ r / m
    k = k / jnp.max(jnp.abs(jnp.linalg.eigvalsh(k)))
    return jnp.diag(k), k - jnp.diag(jnp.diag(k))


def _zero_diagonal(W):
    return W * (1.0 - jnp.eye(W.shape[0], dtype=W.dtype))


def _uniform(key, shape, bound, dtype):
    return jr.uniform(key, shape, dtype, minval=-bound, maxval=bound)


def _observation_kind(obs: AbstractObservation) -> str:
    return "affine" if isinstance(obs, Affine) else "identity"


class AbstractPLRNN(AbstractLatentModel):
    """Shared pieces of the piecewise-linear RNNs: diagonal `A`, bias, inputs, penalty."""

    A: eqx.AbstractVar[Float[Array, " latent"]]
    C: eqx.AbstractVar[Float[Array, "latent input"] | None]
    penalty_weight: eqx.AbstractVar[float]

    def _input(self, z, u):
        if u is None or self.C is None:
            if u is not None and self.C is None and u.shape[-1] != 0:
                raise DynrnnValueError(
                    f"`u` has {u.shape[-1]} input dimensions but the model was built with "
                    "inputs=0; pass `inputs=K` to the constructor."
                )
            return jnp.zeros_like(z)
        return self.C @ u

    def _latent_penalty(self, arrays) -> Float[Array, ""]:
        if self.penalty_weight == 0.0:
            return jnp.zeros((), self.A.dtype)
        total = jnp.sum((1.0 - self.A) ** 2)
        for a in arrays:
            if a is not None:
                total = total + jnp.sum(a**2)
        return self.penalty_weight * total


class ShallowPLRNN(AbstractPLRNN):
    """Shallow PLRNN `z_t = A⊙z + W1 relu(W2 z + h2) + h1 + C u_t` (Hess et al., ICML 2023).

    With `clipped=True` (default) the hidden layer is `relu(W2 z + h2) − relu(W2 z)`, whose
    output is bounded by `|h2|`, so orbits stay bounded when `max|A| < 1`.

    Initialisation (reference code): `A` from a normalised positive-definite matrix,
    `W1 ~ U(±1/√H)`, `W2 ~ U(±1/√M)`, `h1 = 0`, `h2 = 0` (unclipped) or `U(±1/√H)` (clipped),
    `C` Glorot-uniform.

    **Arguments:**
    - `latent`: latent dimension M; `hidden`: hidden width H; `obs`: observed dimension N.
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
        latent: int,
        hidden: int,
        obs: int,
        *,
        clipped: bool = True,
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        check_positive(hidden, "hidden", integer=True)
        check_positive(obs, "obs", integer=True)
        dtype = dtype or jnp.result_type(float)
        ka, k1, k2, kh, kc, ko = jr.split(key, 6)
        self.A = normalized_positive_definite(ka, latent, dtype)
        self.W1 = _uniform(k1, (latent, hidden), 1.0 / math.sqrt(hidden), dtype)
        self.W2 = _uniform(k2, (hidden, latent), 1.0 / math.sqrt(latent), dtype)
        self.h1 = jnp.zeros((latent,), dtype)
        self.h2 = (
            _uniform(kh, (hidden,), 1.0 / math.sqrt(hidden), dtype)
            if clipped
            else jnp.zeros((hidden,), dtype)
        )
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.clipped = bool(clipped)
        self.penalty_weight = float(penalty_weight)
        self.hidden = hidden

    @property
    def hyperparameters(self) -> dict:
        return dict(
            latent=self.n_latent, hidden=self.hidden, obs=self.n_obs, clipped=self.clipped,
            observation=_observation_kind(self.observation),
            inputs=0 if self.C is None else self.C.shape[1], penalty_weight=self.penalty_weight,
        )

    def step(self, z, u=None):
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


class PLRNN(AbstractPLRNN):
    """Vanilla PLRNN `z_t = A⊙z + W relu(z) + h + C u_t` with zero-diagonal `W` (Durstewitz 2017).

    `A` and `W` come from one normalised positive-definite matrix `I + RᵀR/M` scaled by its
    largest eigenvalue (diagonal → A, off-diagonal → W); `h = 0`. The diagonal of `W` is
    masked in the forward pass, so its gradient is zero.

    **Arguments:** `latent`, `obs`, `observation`, `inputs`, `penalty_weight`, `key` as in
    `ShallowPLRNN`.
    """

    A: Float[Array, " latent"]
    W: Float[Array, "latent latent"]
    h: Float[Array, " latent"]
    C: Float[Array, "latent input"] | None
    observation: AbstractObservation
    penalty_weight: float = eqx.field(static=True)

    def __init__(
        self,
        latent: int,
        obs: int,
        *,
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        check_positive(obs, "obs", integer=True)
        dtype = dtype or jnp.result_type(float)
        kr, kc, ko = jr.split(key, 3)
        self.A, self.W = _diagonal_and_coupling(kr, latent, dtype)
        self.h = jnp.zeros((latent,), dtype)
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.penalty_weight = float(penalty_weight)

    @property
    def hyperparameters(self) -> dict:
        return dict(
            latent=self.n_latent, obs=self.n_obs,
            observation=_observation_kind(self.observation),
            inputs=0 if self.C is None else self.C.shape[1], penalty_weight=self.penalty_weight,
        )

    def _W(self):
        return _zero_diagonal(self.W)

    def step(self, z, u=None):
        return self.A * z + self._W() @ jax.nn.relu(z) + self.h + self._input(z, u)

    def jacobian(self, z, u=None):
        return jnp.diag(self.A) + self._W() * (z > 0).astype(z.dtype)

    def jacobian_norm_bound(self):
        return jnp.max(jnp.abs(self.A)) + jnp.linalg.norm(self._W(), ord=2)

    def penalty(self):
        return self._latent_penalty([self._W(), self.h, self.C]) + self.observation.penalty()


class DendPLRNN(AbstractPLRNN):
    """Dendritic PLRNN `z_t = A⊙z + W Φ(z) + h + C u_t` (Brenner et al., ICML 2022, Eq. 5).

    `Φ_m(z) = Σ_b α_b relu(z_m − H_mb)`; with `clipped=True`,
    `Φ_m(z) = Σ_b α_b (relu(z_m − H_mb) − relu(z_m))`. Thresholds `H_mb ~ U(lo, hi)` with
    `(lo, hi) = threshold_range` (the data range min X, max X in the reference), `α_b ~ U(±1/√B)`.

    **Arguments:** `latent`, `bases` (B), `obs`, `clipped`, `threshold_range`, `observation`,
    `inputs`, `penalty_weight`, `key`.
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
        latent: int,
        bases: int,
        obs: int,
        *,
        clipped: bool = False,
        threshold_range: tuple[float, float] = (-2.0, 2.0),
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
        check_positive(bases, "bases", integer=True)
        check_positive(obs, "obs", integer=True)
        lo, hi = (float(v) for v in threshold_range)
        if not hi > lo:
            raise DynrnnValueError(
                f"`threshold_range` must be (lo, hi) with lo < hi, got {threshold_range!r}."
            )
        dtype = dtype or jnp.result_type(float)
        kr, ka, kh, kc, ko = jr.split(key, 5)
        self.A, self.W = _diagonal_and_coupling(kr, latent, dtype)
        self.h = jnp.zeros((latent,), dtype)
        self.alpha = _uniform(ka, (bases,), 1.0 / math.sqrt(bases), dtype)
        self.H = jr.uniform(kh, (latent, bases), dtype, minval=lo, maxval=hi)
        self.C = glorot_uniform(kc, (latent, inputs), dtype) if inputs else None
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.clipped = bool(clipped)
        self.penalty_weight = float(penalty_weight)
        self.threshold_range = (lo, hi)

    @property
    def hyperparameters(self) -> dict:
        return dict(
            latent=self.n_latent, bases=self.alpha.shape[0], obs=self.n_obs,
            clipped=self.clipped, threshold_range=list(self.threshold_range),
            observation=_observation_kind(self.observation),
            inputs=0 if self.C is None else self.C.shape[1], penalty_weight=self.penalty_weight,
        )

    def _W(self):
        return _zero_diagonal(self.W)

    def basis(self, z):
        """The basis expansion `Φ(z)`."""
        act = jax.nn.relu(z[:, None] - self.H)
        if self.clipped:
            act = act - jax.nn.relu(z)[:, None]
        return act @ self.alpha

    def step(self, z, u=None):
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


class ALRNN(AbstractPLRNN):
    """Almost-linear RNN `z_t = A⊙z + W [z_{1:M−P}; relu(z_{M−P+1:M})] + h + C u_t`
    (Brenner, Hemmer et al., NeurIPS 2024): only the last `P` units are rectified.

    `A` normalised positive-definite, `W ~ N(0, 0.01²)` (full), `h = 0`.

    **Arguments:** `latent` (M), `n_relu` (P ≤ M), `obs`, `observation`, `inputs`,
    `penalty_weight`, `key`.
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
        latent: int,
        n_relu: int,
        obs: int,
        *,
        observation=None,
        inputs: int = 0,
        penalty_weight: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(latent, "latent", integer=True)
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

    @property
    def hyperparameters(self) -> dict:
        return dict(
            latent=self.n_latent, n_relu=self.n_relu, obs=self.n_obs,
            observation=_observation_kind(self.observation),
            inputs=0 if self.C is None else self.C.shape[1], penalty_weight=self.penalty_weight,
        )

    def _mask(self, dtype):
        m = self.A.shape[0]
        return (jnp.arange(m) >= m - self.n_relu).astype(dtype)

    def step(self, z, u=None):
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
