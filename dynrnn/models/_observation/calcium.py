"""Observation models of calcium-imaging recordings.

`CalciumObservation`: latent state → rates → spikes → calcium → fluorescence, with the indicator
kernel of `dynrnn.calcium` (Vogelstein et al. 2010; Friedrich, Zhou & Paninski 2017):

    λ_t = softplus(W z_t + b)                       (rates from the latent state)
    s_t ~ Poisson(λ_t)                              (spikes per frame)
    c_t = γ1 c_{t−1} + γ2 c_{t−2} + s_t             (indicator kernel, AR(1): γ2 = 0)
    F_t = α c_t + β + ε_t,  ε_t ~ N(0, σ²)          (fluorescence)

`LinearGaussian`: a linear read-out with bias for dF/F data.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_array, check_positive
from ...calcium._spikes import _check_gamma, calcium_filter, deconvolve
from .._base import AbstractObservation, constructor_arguments


def _inv_softplus(x):
    return x + jnp.log(-jnp.expm1(-x))


def tau_from_gamma(gamma) -> np.ndarray:
    """Time constants in frames `(…, order)` of AR kernels `(…, order)`: AR(1) `−1/ln γ`;
    AR(2) `(−1/ln d, −1/ln r)` for the roots `d ≥ r` of `z² − γ1 z − γ2` (the inverse of
    `gamma_from_log_tau`).

    **Raises:** `ValueError` naming `gamma` when a root is not real and in `(0, 1)`.
    """
    g = np.asarray(gamma, np.float64)
    if g.shape[-1] == 1:
        roots = g.copy()
    else:
        disc = g[..., 0] ** 2 + 4.0 * g[..., 1]
        sq = np.sqrt(np.maximum(disc, 0.0))
        roots = np.stack([(g[..., 0] + sq) / 2.0, (g[..., 0] - sq) / 2.0], axis=-1)
        roots = np.where((disc < 0)[..., None], np.nan, roots)
    if not np.all((roots > 0.0) & (roots < 1.0)):
        raise DynrnnValueError(
            f"`gamma`={g.tolist()} cannot be learned: the kernel's roots must be real and in "
            "(0, 1) to have time constants (use gamma_from_tau, or learn_kernel=False)."
        )
    return -1.0 / np.log(roots)


def gamma_from_log_tau(log_tau):
    """AR coefficients from log time constants in frames (NumPy or JAX, `(…, order)`)."""
    xp = jnp if isinstance(log_tau, jax.Array) else np
    roots = xp.exp(-xp.exp(-log_tau))
    if log_tau.shape[-1] == 1:
        return roots
    d, r = roots[..., 0], roots[..., 1]
    return xp.stack([d + r, -d * r], axis=-1)


class CalciumObservation(AbstractObservation):
    """Latent state → rates → spikes → calcium → fluorescence (module docstring).

    Per frame, `__call__(z)` is the expected fluorescence at the steady state of the kernel
    for the current rate, `α λ(z) / (1 − γ1 − γ2) + β` (the kernel's DC gain): this is what
    teacher forcing with `dr.fit` compares to the data frame by frame, and its inverse gives
    `init_state` and `forcing_signal` (`pinv(W)(softplus⁻¹(λ̂) − b)` with
    `λ̂ = max((x − β)(1 − Σγ)/α, 0.01)`). The sequence-level model with the kernel's memory is
    `forward(zs)` (differentiable, for fitting with a custom loss: `loss(zs, F)`), `sample`
    draws Poisson spikes and noisy fluorescence, and `deconvolve(F)` infers spikes with this
    model's kernel.

    **Arguments:**
    - `obs`: number of neurons; `latent`: latent dimension.
    - `gamma`: AR coefficients shared by all neurons, `(γ1,)` or `(γ1, γ2)`, or a
      `(obs, order)` array (see `gamma_from_tau`).
    - `alpha`, `beta`: fluorescence scale and offset (scalars or `(obs,)`).
    - `noise_sd`: σ of the Gaussian fluorescence noise (used by `sample`).
    - `learn_kernel`: make the kernel a trained parameter (default `False`: `gamma` is fixed).
      It is stored as the logarithms of its time constants in frames, `log τ` of shape
      `(obs, order)`: AR(1) `γ = e^{−1/τ}`; AR(2) decay and rise `d = e^{−1/τ_d}`,
      `r = e^{−1/τ_r}`, `γ1 = d + r`, `γ2 = −d r` (`gamma_from_tau` with `τ` in seconds times
      the frame rate), so that every update keeps a stable kernel with real, positive roots.
    - `encoder`: half-width `K` in frames of a learned linear encoder (default 0: none). With
      `K > 0` the model holds a recognition model of the latent state from the spikes of the
      `K` frames before and after a frame, `ẑ_t = e + Σ_{0<|k|≤K} E_k s_{t+k}/α / √(2K·obs)`,
      leaves `E` `(2K, latent, obs)` and `e` `(latent,)`; the frame's own spikes are left
      out, so the encoder predicts the rate from its neighbours instead of copying the
      frame's Poisson noise. `dr.training.CalciumReconstruction` trains it and uses its
      states as the teacher-forcing signals (see there).
    - `path`: number of training frames `T` of a latent path (default 0: none). With `T > 0`
      the model holds the latent states of its training frames as a free parameter,
      `states` `(T, latent)`: a non-amortised recognition model (where the encoder is an
      amortised one), inferred jointly with the dynamics by
      `dr.training.CalciumReconstruction(latent_path=True)` (see there), which also sets it.
    - `key`: PRNG key for `W` (orthogonal: pinv(W) is well conditioned); `b = 0`.

    `W`, `b`, `log α`, `β` are trained; the kernel `gamma` is fixed (a static field) unless
    `learn_kernel=True`, when `log_tau` is trained (`gamma` is then the current kernel).

    **Raises:** `ValueError` for non-positive sizes, `alpha` or `noise_sd`, an unstable
    `gamma`, or, with `learn_kernel=True`, a kernel whose roots are not real and in `(0, 1)`
    (it has no time constants).
    """

    W: Float[Array, "obs latent"]
    b: Float[Array, " obs"]
    log_alpha: Float[Array, " obs"]
    beta: Float[Array, " obs"]
    log_tau: Float[Array, "obs order"] | None
    E: Float[Array, "taps latent obs"] | None
    e: Float[Array, " latent"] | None
    states: Float[Array, "path latent"] | None
    kernel: tuple[tuple[float, ...], ...] = eqx.field(static=True)
    noise_sd: float = eqx.field(static=True)
    learn_kernel: bool = eqx.field(static=True)
    encoder: int = eqx.field(static=True)
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(self, obs: int, latent: int, *, gamma=(0.95,), alpha=1.0, beta=0.0,
                 noise_sd: float = 0.1, learn_kernel: bool = False, encoder: int = 0,
                 path: int = 0, key: PRNGKeyArray, dtype=None):
        check_positive(obs, "obs", integer=True)
        check_positive(latent, "latent", integer=True)
        check_positive(encoder, "encoder", integer=True, strict=False)
        check_positive(path, "path", integer=True, strict=False)
        check_positive(noise_sd, "noise_sd", strict=False)
        dtype = dtype or jnp.result_type(float)
        g = np.asarray(gamma, np.float64)
        if g.ndim <= 1:
            g = np.broadcast_to(_check_gamma(g), (obs, np.atleast_1d(g).size)).copy()
        elif g.shape[0] != obs or g.shape[1] not in (1, 2):
            raise DynrnnValueError(f"`gamma` must be (order,) or (obs, order), got {g.shape}.")
        else:
            for row in g:
                _check_gamma(row)
        alpha = jnp.broadcast_to(jnp.asarray(alpha, dtype), (obs,))
        if np.any(np.asarray(alpha) <= 0):
            raise DynrnnValueError(f"`alpha` must be > 0, got {alpha}.")
        # Orthogonal, not Glorot: `init_state` and the forcing signal apply pinv(W), and a
        # random square matrix is often nearly singular (states of size 1/s_min).
        self.W = jax.nn.initializers.orthogonal()(key, (obs, latent), dtype)
        self.b = jnp.zeros((obs,), dtype)
        # Stored as a logarithm: the scale must stay positive under any optimiser step (RAdam's
        # first updates are plain momentum steps that could push α through zero).
        self.log_alpha = jnp.log(alpha)
        self.beta = jnp.broadcast_to(jnp.asarray(beta, dtype), (obs,))
        # A tuple, not an array: static fields must be hashable for `filter_jit`.
        self.kernel = tuple(tuple(float(v) for v in row) for row in g)
        self.noise_sd = float(noise_sd)
        self.learn_kernel = bool(learn_kernel)
        # `None` when fixed: the leaves (and so the files of `dr.save`) stay those of a model
        # built before the kernel could be learned.
        self.log_tau = jnp.asarray(np.log(tau_from_gamma(g)), dtype) if learn_kernel else None
        # Zeros: `CalciumReconstruction.initialise` fits the encoder to the forcing signals of
        # the principal axes before training. `None` without an encoder (files as before).
        self.encoder = int(encoder)
        self.E = jnp.zeros((2 * self.encoder, latent, obs), dtype) if encoder else None
        self.e = jnp.zeros((latent,), dtype) if encoder else None
        # Zeros: `CalciumReconstruction.initialise` starts the path at the forcing signals of
        # the principal axes. `None` without a path (files as before).
        self.states = jnp.zeros((int(path), latent), dtype) if path else None
        self.n_obs = obs
        self.n_latent = latent

    @property
    def hyperparameters(self) -> dict:
        # The kernel the model was built with: a learned kernel travels in the leaves.
        return dict(constructor_arguments(self), gamma=np.asarray(self.kernel, np.float64))

    @property
    def path(self) -> int:
        """Frames of the latent path (`states`), 0 without one."""
        return 0 if self.states is None else int(self.states.shape[0])

    @property
    def alpha(self) -> Float[Array, " obs"]:
        """Fluorescence scale `α > 0`."""
        return jnp.exp(self.log_alpha)

    @property
    def gamma(self) -> np.ndarray:
        """AR coefficients `(obs, order)` (the current ones when the kernel is learned)."""
        if self.log_tau is None:
            return np.asarray(self.kernel, np.float64)
        return gamma_from_log_tau(np.asarray(self.log_tau, np.float64))

    @property
    def order(self) -> int:
        return len(self.kernel[0])

    def kernel_coefficients(self, dtype=None) -> Float[Array, "obs order"]:
        """The AR coefficients as a JAX array, differentiable when the kernel is learned.

        **Arguments:** `dtype` (default: that of `W`).

        **Returns:** `(obs, order)` coefficients `(γ1[, γ2])` per neuron.
        """
        if self.log_tau is None:
            return jnp.asarray(self.kernel, dtype or self.W.dtype)
        return gamma_from_log_tau(self.log_tau).astype(dtype or self.W.dtype)

    def encode(self, spikes: Float[Array, "time obs"]) -> Float[Array, "time-2K latent"]:
        """The encoder's states `ẑ_t = e + Σ_{0<|k|≤K} E_k s_{t+k}/α / √(2K·obs)` of the frames
        that have `K` frames on both sides (`spikes`: deconvolved spikes in fluorescence units, as
        `dr.calcium.deconvolve` gives them for `F`; divided by `α` here without gradient).

        **Raises:** `ValueError` when the model has no encoder (`encoder=0`).
        """
        if self.E is None:
            raise DynrnnValueError("this CalciumObservation has no encoder (encoder=0).")
        K = self.encoder
        u = spikes / jax.lax.stop_gradient(self.alpha).astype(spikes.dtype)
        n = u.shape[0] - 2 * K
        offsets = [k for k in range(-K, K + 1) if k != 0]
        # Scaled by 1/√(fan-in) (the NTK parameterisation): RAdam's first updates are plain
        # momentum steps, and with `E` unscaled a step changes ẑ by O(fan-in) (the loss
        # exploded within 5 updates at rates of 0.5-2 spikes per frame).
        E = self.E.astype(u.dtype) / np.sqrt(len(offsets) * self.n_obs)
        z = self.e.astype(u.dtype)
        for j, k in enumerate(offsets):
            z = z + u[K + k:K + k + n] @ E[j].T
        return z

    def _gain(self, dtype):
        return 1.0 / (1.0 - self.kernel_coefficients(dtype).sum(axis=1))

    def rates(self, z: Float[Array, "*time latent"]) -> Float[Array, "*time obs"]:
        """`λ = softplus(W z + b)`."""
        return jax.nn.softplus(z @ self.W.T.astype(z.dtype) + self.b)

    def __call__(self, z):
        return self.alpha * self.rates(z) * self._gain(z.dtype) + self.beta

    def _invert(self, x):
        lam = (x - self.beta) / (self.alpha * self._gain(x.dtype))
        # A floor well above 0: a data point below the offset β would otherwise send the
        # inverted state to −∞ through softplus⁻¹.
        u = _inv_softplus(jnp.maximum(lam, 1e-2)) - self.b
        return u @ jnp.linalg.pinv(self.W).T.astype(x.dtype)

    def init_state(self, x0):
        return self._invert(x0)

    def forcing_signal(self, x):
        return jax.lax.stop_gradient(self._invert(x))

    def calcium(self, spikes: Float[Array, "time obs"], c0=None) -> Float[Array, "time obs"]:
        """The indicator kernel applied to spikes (or expected spikes)."""
        return calcium_filter(spikes, self.kernel_coefficients(spikes.dtype), c0)

    def forward(self, zs: Float[Array, "time latent"], c0=None) -> Float[Array, "time obs"]:
        """Expected fluorescence of a latent trajectory: `α K λ(z) + β` (differentiable)."""
        return self.alpha * self.calcium(self.rates(zs), c0) + self.beta

    def loss(self, zs: Float[Array, "time latent"], F: Float[Array, "time obs"]):
        """Mean squared error of `forward(zs)` against fluorescence `F` (the Gaussian negative
        log-likelihood up to constants)."""
        return jnp.mean((self.forward(zs) - F) ** 2)

    def sample(self, zs: Float[Array, "time latent"], *, key: PRNGKeyArray):
        """`(spikes, fluorescence)`: Poisson spikes from the rates, then the kernel and noise."""
        ks, kn = jr.split(key)
        spikes = jr.poisson(ks, self.rates(zs)).astype(zs.dtype)
        F = self.alpha * self.calcium(spikes) + self.beta
        return spikes, F + self.noise_sd * jr.normal(kn, F.shape, zs.dtype)

    def deconvolve(self, F, **kwargs) -> np.ndarray:
        """Spikes `(time, obs)` inferred from fluorescence `F` with this model's kernel:
        `deconvolve((F_i − β_i)/α_i, γ_i)` per neuron (keyword arguments are passed on)."""
        F = np.asarray(check_array(F, "F", ndim=2, dims=self.n_obs), np.float64)
        a, bta = np.asarray(self.alpha), np.asarray(self.beta)
        kwargs.setdefault("baseline", 0.0)
        return np.stack([
            deconvolve((F[:, i] - bta[i]) / a[i], self.gamma[i], **kwargs)[0]
            for i in range(self.n_obs)
        ], axis=1)


class LinearGaussian(AbstractObservation):
    """Linear-Gaussian observation of dF/F: `x = B z + d + ε` (an `Affine` with a bias).

    `init_state` and the forcing signal are `pinv(B)(x − d)`; all units are forced.

    **Arguments:** `obs`, `latent`, `key` (B Kaiming-normal, `d = 0`).
    """

    B: Float[Array, "obs latent"]
    d: Float[Array, " obs"]
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(self, obs: int, latent: int, *, key: PRNGKeyArray, dtype=None):
        check_positive(obs, "obs", integer=True)
        check_positive(latent, "latent", integer=True)
        dtype = dtype or jnp.result_type(float)
        self.B = jr.normal(key, (obs, latent), dtype) * math.sqrt(2.0 / latent)
        self.d = jnp.zeros((obs,), dtype)
        self.n_obs = obs
        self.n_latent = latent

    def __call__(self, z):
        return z @ self.B.T.astype(z.dtype) + self.d

    def init_state(self, x0):
        return (x0 - self.d) @ jnp.linalg.pinv(self.B).T.astype(x0.dtype)

    def forcing_signal(self, x):
        return jax.lax.stop_gradient(self.init_state(x))

