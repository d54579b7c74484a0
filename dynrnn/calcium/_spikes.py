"""Spike inference and the calcium indicator kernel.

Generative model of a calcium recording (Vogelstein et al. 2010; Friedrich, Zhou & Paninski
2017, OASIS; Pnevmatikakis et al. 2016, CaImAn), per neuron:

    s_t ≥ 0                                         (spikes per frame)
    c_t = γ1 c_{t−1} + γ2 c_{t−2} + s_t             (indicator kernel, AR(1): γ2 = 0)
    F_t = α c_t + β + ε_t,  ε_t ~ N(0, σ²)          (fluorescence)

Spike inference (`deconvolve`) solves the non-negative, L1-penalised problem

    min_{s ≥ 0, b}  ½ ‖y − b − K s‖² + λ Σ_t s_t,    (K s)_t = c_t of the AR filter above,

for an AR(1) kernel with OASIS's pool-adjacent-violators algorithm (Friedrich, Zhou & Paninski
2017, "Fast online deconvolution of calcium imaging data", PLoS Comput Biol 13: e1005423,
Algorithm 1; §2.4 for the noise-constrained λ and the baseline), and otherwise with
`scipy.optimize.nnls` on overlapping windows or `scipy.optimize.minimize(method="L-BFGS-B")`
on the whole trace (box constraints `s ≥ 0`, exact gradient `Kᵀ r + λ` computed with two
`scipy.signal.lfilter` passes).
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


def _shrink(g: np.ndarray, factor: float) -> np.ndarray:
    """Scale the slower decay of an AR kernel by `factor` (AR(2): its larger root)."""
    if factor == 1.0:
        return g
    if g.size == 1:
        return g * factor
    roots = np.sort(np.real(np.roots([1.0, -g[0], -g[1]])))
    roots[-1] *= factor
    return np.array([roots.sum(), -roots.prod()])


# ---------------------------------------------------------------------------------------------
# Deconvolution


def deconvolve(
    y,
    gamma=None,
    *,
    order: int = 1,
    penalty: float | None = None,
    sparsity: float = 1.0,
    noise: float | None = None,
    baseline: float | None = None,
    nonneg_baseline: bool = True,
    fudge_factor: float = 0.98,
    method: str | None = None,
    window: int = 400,
    margin: int = 200,
    max_iter: int = 5000,
    ftol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Infer non-negative spikes from a calcium trace (AR(1)/AR(2) deconvolution).

    Solves `min_{s ≥ 0, b} ½‖y − b − K s‖² + λ Σ s` (module docstring) by one of

    - `method="oasis"` (default for an AR(1) kernel): OASIS's pool-adjacent-violators
      algorithm (Friedrich, Zhou & Paninski 2017), exact, in O(T) per pass. Without a
      `penalty`, λ solves OASIS's noise-constrained problem `min Σ s` s.t.
      `‖y − b − K s‖² ≤ σ² T` (σ from `noise_sd`), as `oasis.functions.deconvolve` does, and is
      then multiplied by `sparsity`.
    - `method="nnls"` (default for AR(2)): `scipy.optimize.nnls` on consecutive windows of
      `window` frames, each solved together with the next `margin` frames (whose spikes are
      then re-estimated in the next window) and started from the calcium the earlier spikes
      leave. The L1 term is folded into the target: `½‖K s − r‖² + λ1ᵀs = ½‖K s − (r −
      λK⁻ᵀ1)‖² + const`. With a free baseline, `b` and `s` are updated alternately (`b` = mean
      residual, three rounds, starting from the 10th percentile of `y`). Default
      `λ = sparsity · σ · ‖k‖₂`, `k` the kernel's impulse response: the size of `Kᵀε` for pure
      noise, so noise alone rarely exceeds it.
    - `method="lbfgs"`: the whole trace at once with `scipy.optimize.minimize(method=
      "L-BFGS-B")` (bounds `s ≥ 0`, `b` joint, exact gradient by two `lfilter` passes): exact,
      but slow for slowly decaying kernels (thousands of iterations at γ ≈ 0.99); λ as `"nnls"`.

    **Arguments:**
    - `y`: `(time,)` fluorescence trace (finite).
    - `gamma`: AR coefficients `(γ1,)` or `(γ1, γ2)`; default `fudge_factor ·
      estimate_gamma(y, order)` (per trace).
    - `order`: AR order when `gamma` is estimated.
    - `penalty`: λ (fixed); default from the noise level (see the methods).
    - `sparsity`: factor on the default λ.
    - `noise`: the noise sd σ; default `noise_sd(y)` (the PSD method).
    - `baseline`: fix `b` instead of fitting it.
    - `nonneg_baseline`: keep a fitted `b ≥ 0` (`"oasis"`; OASIS's `b_nonneg`, default).
    - `fudge_factor`: shrinks an estimated kernel's decay (AR(1): `γ`; AR(2): its slower
      root): slow drifts bias the autocovariance estimate towards 1 (OASIS and CaImAn use 0.98).
    - `window`, `margin`: window sizes of `"nnls"`.
    - `max_iter`, `ftol`: L-BFGS-B iteration cap and relative objective tolerance.

    **Returns:** `(spikes, calcium, baseline)`: `s`, `K s` (both `(time,)`) and `b`. The L1
    penalty shrinks spike amplitudes, and a fitted `b` trades against the slow tails of the
    kernel (it is determined only to within about the noise sd); spike *timing* is what the
    solution recovers best.

    **Raises:** `DynrnnValueError` for a non-finite or too-short trace, an unstable `gamma`, an
    unknown method, `"oasis"` with an AR(2) kernel, or a negative `penalty`, `noise` or
    `sparsity`.
    """
    y = np.asarray(check_array(y, "y", ndim=1, min_len=8), np.float64)
    if gamma is None:
        if not (isinstance(fudge_factor, int | float) and 0.0 < fudge_factor <= 1.0):
            raise DynrnnValueError(f"`fudge_factor` must be in (0, 1], got {fudge_factor!r}.")
        gamma = _shrink(estimate_gamma(y, order), fudge_factor)
    g = _check_gamma(gamma)
    if method is None:
        method = "oasis" if g.size == 1 else "nnls"
    if method not in ("oasis", "nnls", "lbfgs"):
        raise DynrnnValueError(f"`method` must be 'oasis', 'nnls' or 'lbfgs', got {method!r}.")
    check_positive(sparsity, "sparsity", strict=False)
    if noise is not None:
        check_positive(noise, "noise")
    T = y.size
    if penalty is not None and not (np.isfinite(penalty) and penalty >= 0):
        raise DynrnnValueError(f"`penalty` must be >= 0, got {penalty!r}.")
    if method == "oasis":
        if g.size != 1:
            raise DynrnnValueError(
                f"`method`='oasis' solves AR(1) kernels; `gamma`={g.tolist()} is AR(2) (use "
                "method='nnls')."
            )
        sigma = noise_sd(y) if noise is None else float(noise)
        s, c, b, lam = _oasis_ar1_baseline(
            y, float(g[0]), sigma=sigma, lam=penalty, baseline=baseline,
            nonneg_baseline=nonneg_baseline)
        if penalty is None and sparsity != 1.0:
            s, c, b, _ = _oasis_ar1_baseline(
                y, float(g[0]), lam=sparsity * lam, baseline=b, nonneg_baseline=nonneg_baseline)
        return s, c, b
    if penalty is None:
        k = _filter_np(np.r_[1.0, np.zeros(min(T, 2000) - 1)], g)
        sigma = noise_sd(y) if noise is None else float(noise)
        penalty = sparsity * sigma * float(np.linalg.norm(k))
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


# ---------------------------------------------------------------------------------------------
# OASIS: the pool-adjacent-violators algorithm for the AR(1) kernel


def _pools_ar1(z: np.ndarray, g: float):
    """Pools of the AR(1) problem `min_c ½‖c − z‖²` s.t. `c_0 ≥ 0`, `c_t ≥ γ c_{t−1}`.

    OASIS (Friedrich et al. 2017, Algorithm 1) grows pools of frames in which the calcium decays
    freely, `c_t = v_i γ^(t − t_i)`, and merges a pool into its predecessor while the pair
    violates `v_{i+1} ≥ γ^{l_i} v_i`. With `c_t = γ^t u_t` the constraints read `u_t ≥ u_{t−1}`
    and the objective `½ Σ γ^{2t} (u_t − z_t γ^{−t})²`: a weighted isotonic regression, which
    SciPy solves by pool-adjacent-violators in C++ (`scipy.optimize.isotonic_regression`).
    `γ^{−t}` overflows on long traces, so the regression runs on chunks short enough to keep
    the weights within range, and the pools at each chunk's start are then merged backwards
    into the previous chunk's pools as OASIS merges them. The bound `c_0 ≥ 0` clips the pools
    whose value is negative to 0 (the bounded isotonic solution is the clipped unbounded one).

    **Returns:** `(starts, lengths, values)`: the pools' first frames, lengths and the calcium
    `v_i` at their first frames (≥ 0).
    """
    T = z.size
    if g <= 0.0:  # no memory: c = max(z, 0) frame by frame
        return np.arange(T), np.ones(T, np.int64), np.maximum(z, 0.0)
    log_g = math.log(g)
    chunk = int(max(16, min(T, 200.0 / -log_g)))  # γ^(−chunk) ≤ e^200
    starts = []
    for a in range(0, T, chunk):
        n = min(chunk, T - a)
        k = np.arange(n)
        scale = np.exp(k * log_g)
        res = scipy.optimize.isotonic_regression(z[a: a + n] / scale, weights=scale * scale)
        starts.append(a + res.blocks[:-1])
    first_of_chunk = np.cumsum([0] + [s.size for s in starts])[:-1]
    starts = np.concatenate(starts)
    lengths = np.diff(np.r_[starts, T])
    num, weight = _pool_sums(z, starts, lengths, log_g)
    if first_of_chunk.size > 1:
        starts, lengths, num, weight = _merge_chunks(starts, lengths, num, weight,
                                                     first_of_chunk[1:], g)
    return starts, lengths, np.maximum(num / weight, 0.0)


def _pool_sums(z, starts, lengths, log_g):
    """`Σ_k γ^k z_{t_i+k}` and `Σ_k γ^{2k}` over each pool (the value is their ratio)."""
    decay = np.exp(_local_time(starts, lengths, z.size) * log_g)
    num = np.add.reduceat(decay * z, starts)
    weight = -np.expm1(2.0 * lengths * log_g) / -np.expm1(2.0 * log_g)
    return num, weight


def _local_time(starts, lengths, T):
    """Frames since the start of each frame's pool."""
    return np.arange(T) - np.repeat(starts, lengths)


def _merge_chunks(starts, lengths, num, weight, boundaries, g):
    """Merge pools across chunk boundaries (each chunk's pools are consistent on their own,
    so a boundary is settled once a pushed pool no longer violates its predecessor)."""
    s, ln, nu, w = (list(x) for x in (starts.tolist(), lengths.tolist(), num.tolist(),
                                      weight.tolist()))
    out_s, out_l, out_n, out_w = s[: boundaries[0]], ln[: boundaries[0]], nu[: boundaries[0]], \
        w[: boundaries[0]]
    ends = list(boundaries[1:]) + [len(s)]
    for b, e in zip(boundaries, ends):
        i = b
        while i < e:
            out_s.append(s[i]), out_l.append(ln[i]), out_n.append(nu[i]), out_w.append(w[i])
            i += 1
            merged = False
            while len(out_s) > 1:
                lp = out_l[-2]
                gl = g ** lp
                if out_n[-1] / out_w[-1] >= gl * out_n[-2] / out_w[-2]:
                    break
                out_n[-2] += gl * out_n[-1]
                out_w[-2] += gl * gl * out_w[-1]
                out_l[-2] += out_l[-1]
                del out_s[-1], out_l[-1], out_n[-1], out_w[-1]
                merged = True
            if not merged:
                break
        out_s += s[i:e]
        out_l += ln[i:e]
        out_n += nu[i:e]
        out_w += w[i:e]
    return (np.asarray(out_s), np.asarray(out_l), np.asarray(out_n), np.asarray(out_w))


def _calcium_from_pools(starts, lengths, values, g, T):
    return np.repeat(values, lengths) * np.exp(_local_time(starts, lengths, T) * math.log(g)) \
        if g > 0 else np.repeat(values, lengths)


def _spikes_from_calcium(c, g):
    return np.r_[c[0], c[1:] - g * c[:-1]]


def _l1_shift(T, g):
    """`h` with `Σ_t s_t = hᵀc` for `s_t = c_t − γ c_{t−1}`, `s_0 = c_0`."""
    h = np.full(T, 1.0 - g)
    h[-1] = 1.0
    return h


def _oasis_ar1(y, g, lam):
    """`min_{s ≥ 0} ½‖y − c‖² + λ Σ s` for a baseline-free trace: the L1 term is the linear
    term `λ hᵀc`, a shift of the target (`_l1_shift`)."""
    starts, lengths, values = _pools_ar1(y - lam * _l1_shift(y.size, g), g)
    c = _calcium_from_pools(starts, lengths, values, g, y.size)
    return np.maximum(_spikes_from_calcium(c, g), 0.0), c


def _oasis_ar1_baseline(y, g, *, sigma=None, lam=None, baseline=None, nonneg_baseline=True,
                       max_iter=30, tol=1e-6):
    """The AR(1) problem with a baseline: `min_{s ≥ 0, b} ½‖y − b − c‖² + λ Σ s` for a given
    `λ`, or, with `sigma`, OASIS's noise-constrained problem `min Σ s` s.t.
    `‖y − b − c‖² ≤ σ² T` (whose Lagrange multiplier is `λ`).

    For a fixed set of pools the calcium is affine in `λ` and `b`: `c = P(y − b − λ h)`, `P`
    the projection onto the pools' decays `γ^(t − t_i)` (pools clipped to 0 excluded). The
    optimal `b` makes the residual sum to zero, and then the residual `r0 + λ r1` meets the
    noise level `‖r‖² = σ² T` at the positive root of a quadratic in `λ`. Solving the pools
    again at the new `(λ, b)` and repeating until the pools stop changing is the update of
    Friedrich, Zhou & Paninski (2017, §2.4).

    **Returns:** `(spikes, calcium, b, λ)`.
    """
    T = y.size
    h = _l1_shift(T, g)
    log_g = math.log(g) if g > 0 else -math.inf
    fit_b = baseline is None
    b = float(np.percentile(y, 15)) if fit_b else float(baseline)
    if fit_b and nonneg_baseline:
        b = max(b, 0.0)
    constrained = lam is None
    lam = 0.0 if constrained else float(lam)
    previous = None
    for _ in range(max_iter):
        starts, lengths, values = _pools_ar1(y - b - lam * h, g)
        on = np.repeat(values > 0, lengths)
        decay = np.exp(_local_time(starts, lengths, T) * log_g) if g > 0 else np.ones(T)
        weight = (-np.expm1(2.0 * lengths * log_g) / -np.expm1(2.0 * log_g) if g > 0
                  else np.ones(starts.size))

        def project(x, on=on, decay=decay, weight=weight, starts=starts, lengths=lengths):
            pooled = np.add.reduceat(decay * x, starts) / weight
            return np.where(on, np.repeat(pooled, lengths) * decay, 0.0)

        e = y - project(y)
        q = project(h)
        f = 1.0 - project(np.ones(T))
        if fit_b and f.sum() > 0:
            # residual r = e − b f + λ q with b = (Σe + λΣq) / Σf, i.e. r = r0 + λ r1
            r0 = e - f * (e.sum() / f.sum())
            r1 = q - f * (q.sum() / f.sum())
        else:
            r0, r1 = e - b * f, q
        new_lam = lam
        if constrained:
            a2, a1, a0 = r1 @ r1, 2.0 * (r0 @ r1), r0 @ r0 - sigma * sigma * T
            new_lam = 0.0 if a0 >= 0 or a2 <= 0 else float(
                (-a1 + math.sqrt(a1 * a1 - 4.0 * a2 * a0)) / (2.0 * a2))
        new_b = b
        if fit_b and f.sum() > 0:
            new_b = float((e.sum() + new_lam * q.sum()) / f.sum())
            if nonneg_baseline and new_b < 0:
                new_b = 0.0
        pools = (starts.size, int(on.sum()))
        settled = (previous == pools and abs(new_lam - lam) <= tol * max(new_lam, 1e-12)
                   and abs(new_b - b) <= tol * max(abs(new_b), 1e-12))
        lam, b, previous = new_lam, new_b, pools
        if settled:
            break
    s, c = _oasis_ar1(y - b, g, lam)
    return s, c, b, lam


def naive_deconvolve(y, gamma=None) -> np.ndarray:
    """The plain AR(1) baseline `max(y_t − γ y_{t−1}, 0)` (first frame 0), `γ` the lag-1
    autocorrelation of `y` unless given."""
    y = np.asarray(check_array(y, "y", ndim=1, min_len=3), np.float64)
    if gamma is None:
        yc = y - y.mean()
        gamma = float(yc[:-1] @ yc[1:] / (yc @ yc))
    return np.concatenate([[0.0], np.clip(y[1:] - gamma * y[:-1], 0.0, None)])
