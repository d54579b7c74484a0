"""Spike inference and the calcium indicator kernel.

Generative model of a calcium recording (Vogelstein et al. 2010; Friedrich, Zhou & Paninski
2017, OASIS; Pnevmatikakis et al. 2016, CaImAn), per neuron:

    s_t ≥ 0                                         (spikes per frame)
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

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.signal
from jaxtyping import Array, Float

from .._errors import DynrnnValueError, check_array, check_positive


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
