"""Calcium-imaging observation models, spike inference, and the evaluation of latent models
fitted to population recordings.

Generative model (Vogelstein et al. 2010; Friedrich, Zhou & Paninski 2017, OASIS; Pnevmatikakis
et al. 2016, CaImAn), per neuron `i`:

    λ_t = softplus(W z_t + b)                       (rates from the latent state)
    s_t ~ Poisson(λ_t)                              (spikes per frame)
    c_t = γ1 c_{t−1} + γ2 c_{t−2} + s_t             (indicator kernel, AR(1): γ2 = 0)
    F_t = α c_t + β + ε_t,  ε_t ~ N(0, σ²)          (fluorescence)

Spike inference (`deconvolve`) solves the non-negative, L1-penalised problem

    min_{s ≥ 0, b}  ½ ‖y − b − K s‖² + λ Σ_t s_t,    (K s)_t = c_t of the AR filter above,

with `scipy.optimize.nnls` on overlapping windows (default) or with
`scipy.optimize.minimize(method="L-BFGS-B")` on the whole trace (box constraints `s ≥ 0`,
exact gradient `Kᵀ r + λ` computed with two `scipy.signal.lfilter` passes).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.signal
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError, check_array, check_positive
from ._base import AbstractLatentModel, AbstractObservation


# ---------------------------------------------------------------------------------------------
# The indicator kernel


def _check_gamma(gamma) -> np.ndarray:
    g = np.atleast_1d(np.asarray(gamma, np.float64))
    if g.ndim != 1 or g.size not in (1, 2):
        raise DynrnnValueError(f"`gamma` must be (γ1,) or (γ1, γ2), got {gamma!r}.")
    # Stationarity of c_t = γ1 c_{t−1} + γ2 c_{t−2} + s_t: the roots of z² − γ1 z − γ2 inside
    # the unit circle.
    roots = np.roots([1.0, -g[0], -(g[1] if g.size == 2 else 0.0)])
    if not np.all(np.isfinite(g)) or np.any(np.abs(roots) >= 1.0):
        raise DynrnnValueError(
            f"`gamma`={g.tolist()} is not a stable AR kernel (roots {np.abs(roots).round(4)} must "
            "lie inside the unit circle)."
        )
    return g


def gamma_from_tau(tau, rate, *, rise=None) -> tuple[float, ...]:
    """AR coefficients from decay (and rise) time constants in seconds at `rate` Hz.

    AR(1): `γ = exp(−1/(τ_d · rate))`. AR(2): with `d = exp(−1/(τ_d rate))`,
    `r = exp(−1/(τ_r rate))`, the kernel `d^t − r^t` has `γ1 = d + r`, `γ2 = −d r`.
    """
    check_positive(tau, "tau")
    check_positive(rate, "rate")
    d = math.exp(-1.0 / (tau * rate))
    if rise is None:
        return (d,)
    check_positive(rise, "rise")
    r = math.exp(-1.0 / (rise * rate))
    return (d + r, -d * r)


def calcium_filter(
    spikes: Float[Array, "time ..."], gamma: Float[Array, "... order"], c0=None,
) -> Float[Array, "time ..."]:
    """`c_t = γ1 c_{t−1} + γ2 c_{t−2} + s_t` along axis 0 (JAX, differentiable).

    **Arguments:**
    - `spikes`: `(time, ...)`.
    - `gamma`: `(..., order)` with order 1 or 2, broadcast against a spike frame.
    - `c0`: `(order, ...)` calcium before the first frame, `[c_{−1}, c_{−2}]` (default 0).
    """
    spikes = jnp.asarray(spikes)
    gamma = jnp.asarray(gamma, spikes.dtype)
    order = gamma.shape[-1]
    g1 = gamma[..., 0]
    g2 = gamma[..., 1] if order == 2 else jnp.zeros_like(g1)
    frame = spikes.shape[1:]
    if c0 is None:
        prev1 = jnp.zeros(frame, spikes.dtype)
        prev2 = jnp.zeros(frame, spikes.dtype)
    else:
        c0 = jnp.asarray(c0, spikes.dtype)
        prev1 = jnp.broadcast_to(c0[0], frame)
        prev2 = jnp.broadcast_to(c0[1], frame) if c0.shape[0] > 1 else jnp.zeros(frame)

    def body(carry, s):
        c1, c2 = carry
        c = g1 * c1 + g2 * c2 + s
        return (c, c1), c

    _, c = jax.lax.scan(body, (prev1, prev2), spikes)
    return c


def _filter_np(s: np.ndarray, g: np.ndarray) -> np.ndarray:
    return scipy.signal.lfilter([1.0], np.concatenate([[1.0], -g]), s)


def _filter_t_np(r: np.ndarray, g: np.ndarray) -> np.ndarray:
    """`Kᵀ r`: the AR filter run backwards in time."""
    return _filter_np(r[::-1], g)[::-1]


# ---------------------------------------------------------------------------------------------
# Parameter estimation from a trace


def noise_sd(y, *, band=(0.25, 0.5)) -> float:
    """Noise sd of a trace from its power spectral density at high frequencies.

    White noise of sd σ has a flat one-sided PSD of `2σ²` (frequencies in cycles per frame);
    the calcium signal has little power in `band` (fractions of the sampling rate), so
    `σ = sqrt(mean PSD(band) / 2)` (Welch's method; the CaImAn `GetSn` idea).
    """
    y = np.asarray(y, np.float64)
    f, p = scipy.signal.welch(y, fs=1.0, nperseg=min(256, y.size))
    sel = (f > band[0]) & (f <= band[1])
    return float(np.sqrt(np.mean(p[sel]) / 2.0))


def estimate_gamma(y, order: int = 1, *, lags: int = 10) -> np.ndarray:
    """AR coefficients of the calcium from the autocovariance of the noisy trace `y`.

    For `k ≥ 1` the autocovariance of `y = α c + β + ε` equals that of `α c`, which obeys
    `a_k = γ1 a_{k−1} + γ2 a_{k−2}`; the equations for `k = order+1 … order+lags` (which never use
    the noise-contaminated `a_0`) are solved by least squares (cf. CaImAn
    `estimate_time_constant`). The result is clipped to a stable kernel.

    **Raises:** `DynrnnValueError` for an order other than 1, 2 or a too-short trace.
    """
    if order not in (1, 2):
        raise DynrnnValueError(f"`order` must be 1 or 2, got {order!r}.")
    y = np.asarray(y, np.float64)
    n = order + lags + 1
    if y.ndim != 1 or y.size < 4 * n:
        raise DynrnnValueError(
            f"`y` must be a 1-D trace of at least {4 * n} frames, got shape {y.shape}."
        )
    y = y - y.mean()
    a = np.array([y[: y.size - k] @ y[k:] for k in range(n)]) / y.size
    ks = np.arange(order + 1, order + lags + 1)
    A = np.stack([a[ks - j] for j in range(1, order + 1)], axis=1)
    g, *_ = np.linalg.lstsq(A, a[ks], rcond=None)
    if order == 1:
        return np.clip(g, 0.0, 0.9999)
    roots = np.roots([1.0, -g[0], -g[1]])
    if np.any(np.abs(roots) >= 1.0) or np.any(np.abs(np.imag(roots)) > 0):
        # Fall back to a real, stable pair of decays.
        roots = np.clip(np.real(roots), 0.0, 0.9999)
        g = np.array([roots.sum(), -roots.prod()])
    return g


# ---------------------------------------------------------------------------------------------
# Deconvolution


def deconvolve(
    y,
    gamma=None,
    *,
    order: int = 1,
    penalty: float | None = None,
    sparsity: float = 1.0,
    baseline: float | None = None,
    method: str = "nnls",
    window: int = 400,
    margin: int = 200,
    max_iter: int = 5000,
    ftol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Infer non-negative spikes from a calcium trace (AR(1)/AR(2) deconvolution).

    Solves `min_{s ≥ 0, b} ½‖y − b − K s‖² + λ Σ s` (module docstring) by one of

    - `method="nnls"` (default): `scipy.optimize.nnls` on consecutive windows of `window`
      frames, each solved together with the next `margin` frames (whose spikes are then
      re-estimated in the next window) and started from the calcium the earlier spikes leave.
      The L1 term is folded into the target: `½‖K s − r‖² + λ1ᵀs = ½‖K s − (r − λK⁻ᵀ1)‖² +
      const`. With a free baseline, `b` and `s` are updated alternately (`b` = mean residual,
      three rounds, starting from the 10th percentile of `y`).
    - `method="lbfgs"`: the whole trace at once with `scipy.optimize.minimize(method=
      "L-BFGS-B")` (bounds `s ≥ 0`, `b` joint, exact gradient by two `lfilter` passes): exact,
      but slow for slowly decaying kernels (thousands of iterations at γ ≈ 0.99).

    **Arguments:**
    - `y`: `(time,)` fluorescence trace (finite).
    - `gamma`: AR coefficients `(γ1,)` or `(γ1, γ2)`; default `estimate_gamma(y, order)`.
    - `order`: AR order when `gamma` is estimated.
    - `penalty`: λ; default `sparsity · σ · ‖k‖₂`, with σ from `noise_sd` and `k` the kernel's
      impulse response: the size of `Kᵀε` for pure noise, so noise alone rarely exceeds it.
    - `baseline`: fix `b` instead of fitting it.
    - `window`, `margin`: window sizes of `"nnls"`.
    - `max_iter`, `ftol`: L-BFGS-B iteration cap and relative objective tolerance.

    **Returns:** `(spikes, calcium, baseline)`: `s`, `K s` (both `(time,)`) and `b`. The L1
    penalty shrinks spike amplitudes, and a fitted `b` trades against the slow tails of the
    kernel (it is determined only to within about the noise sd); spike *timing* is what the
    solution recovers best.

    **Raises:** `DynrnnValueError` for a non-finite or too-short trace, an unstable `gamma` or
    an unknown method.
    """
    y = np.asarray(check_array(y, "y", ndim=1, min_len=8), np.float64)
    g = _check_gamma(estimate_gamma(y, order) if gamma is None else gamma)
    if method not in ("nnls", "lbfgs"):
        raise DynrnnValueError(f"`method` must be 'nnls' or 'lbfgs', got {method!r}.")
    T = y.size
    if penalty is None:
        k = _filter_np(np.r_[1.0, np.zeros(min(T, 2000) - 1)], g)
        penalty = sparsity * noise_sd(y) * float(np.linalg.norm(k))
    if not (np.isfinite(penalty) and penalty >= 0):
        raise DynrnnValueError(f"`penalty` must be >= 0, got {penalty!r}.")
    if method == "nnls":
        check_positive(window, "window", integer=True)
        check_positive(margin, "margin", integer=True, strict=False)
        if baseline is not None:
            s = _nnls_windows(y - float(baseline), g, penalty, window, margin)
            return s, _filter_np(s, g), float(baseline)
        b = float(np.percentile(y, 10))
        for _ in range(3):
            s = _nnls_windows(y - b, g, penalty, window, margin)
            b = float(np.mean(y - _filter_np(s, g)))
        return s, _filter_np(s, g), b
    fit_b = baseline is None
    b_fixed = 0.0 if baseline is None else float(baseline)

    def objective(x):
        s = x[:T]
        b = x[T] if fit_b else b_fixed
        r = _filter_np(s, g) + b - y
        val = 0.5 * r @ r + penalty * s.sum()
        grad_s = _filter_t_np(r, g) + penalty
        grad = np.concatenate([grad_s, [r.sum()]]) if fit_b else grad_s
        return val, grad

    b0 = np.percentile(y, 10) if fit_b else b_fixed
    # Warm start: the naive inverse filter of the baseline-free trace, clipped at zero.
    s0 = np.clip(scipy.signal.lfilter(np.concatenate([[1.0], -g]), [1.0], y - b0), 0, None)
    x0 = np.concatenate([s0, [b0]]) if fit_b else s0
    bounds = [(0.0, None)] * T + ([(None, None)] if fit_b else [])
    res = scipy.optimize.minimize(
        objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
        options=dict(maxiter=max_iter, maxfun=2 * max_iter, ftol=ftol, gtol=1e-8),
    )
    s = np.clip(res.x[:T], 0.0, None)
    b = float(res.x[T]) if fit_b else b_fixed
    return s, _filter_np(s, g), b


def _nnls_windows(y, g, penalty, window, margin):
    T = y.size
    L = min(window + margin, T)
    h = _filter_np(np.r_[1.0, np.zeros(L - 1)], g)
    K_full = scipy.linalg.toeplitz(h, np.zeros(L))
    a_coef = np.concatenate([[1.0], -g])
    s = np.zeros(T)
    a = 0
    while a < T:
        n = min(L, T - a)
        K = K_full[:n, :n]
        # the calcium left by the spikes already placed, decaying into this window
        c = _filter_np(s[:a], g) if a else np.zeros(0)
        past = np.r_[c[::-1][: g.size], np.zeros(g.size)][: g.size]
        zi = scipy.signal.lfiltic([1.0], a_coef, past)
        free = scipy.signal.lfilter([1.0], a_coef, np.zeros(n), zi=zi)[0]
        shift = scipy.linalg.solve_triangular(K.T, np.ones(n), lower=False)
        sol, _ = scipy.optimize.nnls(K, y[a: a + n] - free - penalty * shift, maxiter=20 * n)
        keep = n if a + n >= T else min(window, n)
        s[a: a + keep] = sol[:keep]
        a += keep
    return s


def naive_deconvolve(y, gamma=None) -> np.ndarray:
    """The plain AR(1) baseline `max(y_t − γ y_{t−1}, 0)` (first frame 0), `γ` the lag-1
    autocorrelation of `y` unless given."""
    y = np.asarray(check_array(y, "y", ndim=1, min_len=3), np.float64)
    if gamma is None:
        yc = y - y.mean()
        gamma = float(yc[:-1] @ yc[1:] / (yc @ yc))
    return np.concatenate([[0.0], np.clip(y[1:] - gamma * y[:-1], 0.0, None)])


# ---------------------------------------------------------------------------------------------
# Observation models


def _inv_softplus(x):
    return x + jnp.log(-jnp.expm1(-x))


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
    - `key`: PRNG key for `W` (orthogonal: pinv(W) is well conditioned); `b = 0`.

    `W`, `b`, `log α`, `β` are trained; the kernel `gamma` is fixed (a static field).
    """

    W: Float[Array, "obs latent"]
    b: Float[Array, " obs"]
    log_alpha: Float[Array, " obs"]
    beta: Float[Array, " obs"]
    kernel: tuple[tuple[float, ...], ...] = eqx.field(static=True)
    noise_sd: float = eqx.field(static=True)
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(self, obs: int, latent: int, *, gamma=(0.95,), alpha=1.0, beta=0.0,
                 noise_sd: float = 0.1, key: PRNGKeyArray, dtype=None):
        check_positive(obs, "obs", integer=True)
        check_positive(latent, "latent", integer=True)
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
        self.n_obs = obs
        self.n_latent = latent

    @property
    def alpha(self) -> Float[Array, " obs"]:
        """Fluorescence scale `α > 0`."""
        return jnp.exp(self.log_alpha)

    @property
    def gamma(self) -> np.ndarray:
        """AR coefficients `(obs, order)`."""
        return np.asarray(self.kernel, np.float64)

    @property
    def order(self) -> int:
        return self.gamma.shape[1]

    def _gain(self):
        return 1.0 / (1.0 - self.gamma.sum(axis=1))

    def rates(self, z: Float[Array, "*time latent"]) -> Float[Array, "*time obs"]:
        """`λ = softplus(W z + b)`."""
        return jax.nn.softplus(z @ self.W.T.astype(z.dtype) + self.b)

    def __call__(self, z):
        return self.alpha * self.rates(z) * jnp.asarray(self._gain(), z.dtype) + self.beta

    def _invert(self, x):
        lam = (x - self.beta) / (self.alpha * jnp.asarray(self._gain(), x.dtype))
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
        return calcium_filter(spikes, jnp.asarray(self.gamma, spikes.dtype), c0)

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


# ---------------------------------------------------------------------------------------------
# Evaluation on held-out time and held-out neurons


def _r2(pred: np.ndarray, true: np.ndarray, axis=0) -> np.ndarray:
    ss_res = np.sum((pred - true) ** 2, axis=axis)
    ss_tot = np.sum((true - true.mean(axis=axis, keepdims=True)) ** 2, axis=axis)
    return 1.0 - ss_res / ss_tot


def _series(data, name):
    if hasattr(data, "data_vars"):
        var = "activity" if "activity" in data.data_vars else next(iter(data.data_vars))
        data = data[var].transpose("time", ...).values
    return np.asarray(check_array(data, name, ndim=2, min_len=3), np.float64)


@eqx.filter_jit
def _model_predictions(model, windows, n_steps: int, alpha):
    def one(w):
        z = _forced_run(model, w, alpha)[-1]
        return jax.vmap(model.observe)(model.rollout(z, n_steps))

    return jax.vmap(one)(windows)


def forward_predictions(
    model, data, n_steps: int, *, first: int = 0, stride: int = 1, warmup: int = 0,
    alpha: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """`k`-step-ahead predictions, `k = 1 … n_steps`, on a (held-out) series, and their targets.

    From every start `t = first, first + stride, …` (`t ≥ warmup`) the model's state at `t` is
    inferred from `x_{t−warmup} … x_t` (`infer_states` with forcing strength `alpha`; with
    `warmup=0` simply `init_state(x_t)`), then the model runs freely; prediction `x̂_{t+k}` is
    compared with `x_{t+k}` (`forward_prediction_r2`).

    **Arguments:**
    - `model`: a latent model (`AbstractLatentModel`) or a callable
      `predict(history, n_steps) -> (n_steps, obs)` given the frames `x_0 … x_t`
      (see `ar_predictor`).
    - `data`: `(time, obs)` array or recording.
    - `n_steps`: largest horizon; `first`, `stride`: start indices.
    - `warmup`, `alpha`: frames before `t` used to infer the state, and the forcing strength.

    **Returns:** `(predictions, targets)`, both `(starts, n_steps, obs)`.
    """
    x = _series(data, "data")
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(stride, "stride", integer=True)
    check_positive(warmup, "warmup", integer=True, strict=False)
    starts = np.arange(max(first, warmup), x.shape[0] - n_steps, stride)
    if starts.size < 2:
        raise DynrnnValueError(
            f"`data` with {x.shape[0]} frames leaves fewer than 2 starts for n_steps={n_steps}, "
            f"first={first}, warmup={warmup}."
        )
    targets = np.stack([x[s + 1: s + 1 + n_steps] for s in starts])
    if isinstance(model, AbstractLatentModel):
        dtype = jnp.result_type(*[v for v in jax.tree_util.tree_leaves(model)
                                  if eqx.is_inexact_array(v)])
        windows = np.stack([x[s - warmup: s + 1] for s in starts])
        preds = []
        for i in range(0, len(starts), 512):
            preds.append(np.asarray(_model_predictions(
                model, jnp.asarray(windows[i: i + 512], dtype), n_steps, alpha)))
        preds = np.concatenate(preds)
    elif callable(model):
        preds = np.stack([np.asarray(model(x[: s + 1], n_steps)) for s in starts])
    else:
        raise DynrnnTypeError(
            f"`model` must be a latent model or a callable predictor, got {type(model).__name__}."
        )
    return preds, targets


def forward_prediction_r2(
    model, data, n_steps: int, *, first: int = 0, stride: int = 1, warmup: int = 0,
    alpha: float = 1.0,
) -> np.ndarray:
    """R² of `k`-step-ahead predictions, `k = 1 … n_steps`, on a (held-out) series.

    The predictions of `forward_predictions` (same arguments) scored per horizon:
    `R²_k = 1 − Σ(x̂ − x)² / Σ(x − x̄)²`, sums over starts and dimensions, `x̄` the
    per-dimension mean of the targets.

    **Returns:** `(n_steps,)` array of R².
    """
    preds, targets = forward_predictions(model, data, n_steps, first=first, stride=stride,
                                         warmup=warmup, alpha=alpha)
    return prediction_r2(preds, targets)


def prediction_r2(predictions, targets) -> np.ndarray:
    """R² per horizon of `(starts, horizon, obs)` predictions (`forward_predictions`):
    `R²_k = 1 − Σ(x̂ − x)² / Σ(x − x̄)²`, sums over starts and dimensions, `x̄` the
    per-dimension mean of the horizon-`k` targets.

    **Returns:** `(horizon,)` array.
    """
    pred, true = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    if pred.shape != true.shape or true.ndim != 3:
        raise DynrnnValueError(
            f"`predictions` and `targets` must have the same (starts, horizon, obs) shape, got "
            f"{pred.shape} and {true.shape}."
        )
    ss_res = np.sum((pred - true) ** 2, axis=(0, 2))
    ss_tot = np.sum((true - true.mean(axis=0, keepdims=True)) ** 2, axis=(0, 2))
    return 1.0 - ss_res / ss_tot


def fit_ar(data, order: int, *, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares linear autoregression `x_t = c + Σ_{j=1}^p A_j x_{t−j}`.

    **Returns:** `(A, c)` with `A` `(p, obs, obs)` (so `A[j−1] @ x_{t−j}`) and `c` `(obs,)`.
    """
    x = _series(data, "data")
    check_positive(order, "order", integer=True)
    T, n = x.shape
    if T <= order + n * order:
        raise DynrnnValueError(f"`data` has {T} frames, too few for an AR({order}) on {n} dims.")
    X = np.concatenate([x[order - j: T - j] for j in range(1, order + 1)] + [np.ones((T - order,
                       1))], axis=1)
    Y = x[order:]
    G = X.T @ X + ridge * np.eye(X.shape[1])
    coef = np.linalg.solve(G, X.T @ Y)
    A = coef[:-1].reshape(order, n, n).transpose(0, 2, 1)
    return A, coef[-1]


def ar_predictor(A: np.ndarray, c: np.ndarray):
    """A predictor for `forward_prediction_r2` that iterates a fitted AR model (`fit_ar`)."""
    p = A.shape[0]

    def predict(history, n_steps):
        buf = [history[-j] if j <= history.shape[0] else history[0] for j in range(1, p + 1)]
        out = []
        for _ in range(n_steps):
            nxt = c + sum(A[j] @ buf[j] for j in range(p))
            out.append(nxt)
            buf = [nxt] + buf[:-1]
        return np.stack(out)

    return predict


def infer_states(model: AbstractLatentModel, data, *, alpha: float = 0.5) -> np.ndarray:
    """Latent states driven by data: `z̃_t = (1 − α) F(z̃_{t−1}) + α ẑ_t` on the forced units
    (GTF's blend; `ẑ_t = forcing_signal(x_t)`), `z̃_0 = init_state(x_0)`.

    **Returns:** `(time, latent)` states.
    """
    x = jnp.asarray(_series(data, "data"))
    if not 0.0 <= alpha <= 1.0:
        raise DynrnnValueError(f"`alpha` must be in [0, 1], got {alpha!r}.")
    return np.asarray(_infer(model, x, alpha))


@eqx.filter_jit
def _infer(model, x, alpha):
    return _forced_run(model, x, alpha)


def _forced_run(model, x, alpha):
    n_forced = model.n_obs if model.partial_forcing else model.n_latent
    x = x.astype(jnp.result_type(*[v for v in jax.tree_util.tree_leaves(model)
                                   if eqx.is_inexact_array(v)]))

    def body(z, xt):
        new = model.step(z)
        zhat = model.forcing_signal(xt)
        head = (1.0 - alpha) * new[:n_forced] + alpha * zhat[:n_forced]
        new = jnp.concatenate([head, new[n_forced:]])
        return new, new

    z0 = model.init_state(x[0])
    _, zs = jax.lax.scan(body, z0, x[1:])
    return jnp.concatenate([z0[None], zs])


def cosmoothing_r2(model, train, test, held_out, *, alpha: float = 0.5,
                   ridge: float = 1e-3) -> np.ndarray:
    """Co-smoothing: predict held-out neurons from latent states inferred on held-in neurons.

    The model observes the held-in neurons only. Its states (`infer_states`, forced by the
    held-in activity) on `train` are regressed (ridge, with intercept) onto the held-out
    neurons; the read-out is applied to the states on `test`, and R² is reported per held-out
    neuron (Pei et al. 2021, Neural Latents Benchmark). With `model=None` the held-in activity
    itself is the regressor (the baseline without dynamics).

    **Arguments:**
    - `train`, `test`: `(time, neurons)` arrays or recordings with all neurons.
    - `held_out`: indices of the held-out neurons.
    - `alpha`: forcing strength of the state inference; `ridge`: L2 weight.

    **Returns:** `(len(held_out),)` test R² per held-out neuron.
    """
    tr, te = _series(train, "train"), _series(test, "test")
    held_out = np.asarray(held_out, int).reshape(-1)
    n = tr.shape[1]
    if held_out.size == 0 or np.any((held_out < 0) | (held_out >= n)) or len(
            set(held_out.tolist())) != held_out.size:
        raise DynrnnValueError(
            f"`held_out` must be distinct neuron indices in [0, {n}), got {held_out.tolist()}."
        )
    held_in = np.setdiff1d(np.arange(n), held_out)
    if model is None:
        f_tr, f_te = tr[:, held_in], te[:, held_in]
    else:
        if model.n_obs != held_in.size:
            raise DynrnnValueError(
                f"the model observes {model.n_obs} dims but there are {held_in.size} held-in "
                "neurons; fit it on the held-in neurons only."
            )
        f_tr = infer_states(model, tr[:, held_in], alpha=alpha)
        f_te = infer_states(model, te[:, held_in], alpha=alpha)
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-12
    X = np.concatenate([(f_tr - mu) / sd, np.ones((f_tr.shape[0], 1))], axis=1)
    reg = ridge * X.shape[0] * np.eye(X.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(X.T @ X + reg, X.T @ tr[:, held_out])
    Xte = np.concatenate([(f_te - mu) / sd, np.ones((f_te.shape[0], 1))], axis=1)
    return _r2(Xte @ coef, te[:, held_out])
