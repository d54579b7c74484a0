"""State-space divergence `D_stsp`: how differently two trajectories fill the state space.

Two estimators of `KL(p_true ‖ p_gen)` between the occupation measures of a true and a generated
trajectory (Koppe et al. 2019; Brenner et al. 2022; Hess et al. 2023, Sec. 5 and Appendix):

- **binning** (low dimensions): histograms on a common grid laid over the true data;
- **Gaussian mixture** (high dimensions): each point is the centre of an isotropic Gaussian, and
  the KL divergence of the two mixtures is estimated by Monte Carlo (Hershey & Olsen 2007).
"""

from __future__ import annotations

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._errors import (
    DynrnnTypeError,
    DynrnnValueError,
    check_array,
    check_positive,
    check_same_dims,
    is_array,
)


# Laplace smoothing constant of the reference implementation (GTF-shPLRNN, `stsp_measure.jl`).
_ALPHA = 1e-5
# Above this many cells the histogram is never materialised: only occupied cells are counted.
_DENSE_CELL_LIMIT = 2**22


def _check_series(x, name: str, *, min_len: int = 1):
    """Validate a `(time, dims)` (or `(time,)`, read as one dimension) series; return a JAX
    array of floating dtype with two axes."""
    x = check_array(x, name, ndim=(1, 2), min_len=min_len)
    if np.dtype(x.dtype).kind in "iu":
        x = jnp.asarray(x, dtype=float)
    x = jnp.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def _check_pair(x_true, x_gen, *, min_len: int = 1):
    x_true = _check_series(x_true, "x_true", min_len=min_len)
    x_gen = _check_series(x_gen, "x_gen", min_len=min_len)
    check_same_dims(x_true, x_gen, "x_true", "x_gen")
    return x_true, x_gen


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _accum_dtype():
    # The KL sum over up to 30^N cells is accumulated in the widest float JAX allows.
    return jnp.zeros(()).dtype


def _kl_from_counts(
    h_true: Float[Array, " cells"],
    h_gen: Float[Array, " cells"],
    n_cells: float,
) -> Float[Array, ""]:
    """`Σ p ln(p/q)` over all `n_cells` cells, given the counts of the occupied cells only.

    `h_true`, `h_gen` may contain entries for cells that are empty in both histograms (padding);
    those are skipped here and counted, together with every cell never listed, by the
    closed-form term `(n_cells − n_occupied) · p₀ ln(p₀/q₀)` with `p₀ = α/(Σh_true + α n_cells)`.
    """
    dtype = _accum_dtype()
    h_true = h_true.astype(dtype)
    h_gen = h_gen.astype(dtype)
    n_true, n_gen = jnp.sum(h_true), jnp.sum(h_gen)
    z_true = n_true + _ALPHA * n_cells
    z_gen = n_gen + _ALPHA * n_cells
    p = (h_true + _ALPHA) / z_true
    q = (h_gen + _ALPHA) / z_gen
    occupied = (h_true + h_gen) > 0
    kl_occupied = jnp.sum(jnp.where(occupied, p * (jnp.log(p) - jnp.log(q)), 0.0))
    p0, q0 = _ALPHA / z_true, _ALPHA / z_gen
    n_empty = n_cells - jnp.sum(occupied).astype(dtype)
    kl = kl_occupied + n_empty * p0 * (jnp.log(p0) - jnp.log(q0))
    return jnp.where(n_gen > 0, kl, jnp.nan)


def _bin_indices(
    x: Float[Array, "time dim"], edges: Float[Array, "dim edges"]
) -> tuple[Int[Array, "time dim"], Array]:
    """Left-closed bin index of every coordinate, and whether the point lies inside the box."""
    n_bins = edges.shape[1] - 1
    # Comparing with every edge is one fused pass and the fastest on CPU for few bins.
    method = "compare_all" if n_bins <= 64 else "scan_unrolled"
    search = lambda e, col: jnp.searchsorted(e, col, side="right", method=method)
    idx = jax.vmap(search, in_axes=(0, 1))(edges, x).T - 1
    inside = jnp.all((idx >= 0) & (idx < n_bins), axis=1)
    return idx.astype(jnp.int32), inside


@eqx.filter_jit
def _stsp_bins(
    x_true: Float[Array, "time dim"],
    x_gen: Float[Array, "time2 dim"],
    n_bins: int,
    dense_limit: int,
) -> Float[Array, ""]:
    n_dim = x_true.shape[1]
    dtype = jnp.result_type(x_true.dtype, x_gen.dtype)
    x_true = x_true.astype(dtype)
    x_gen = x_gen.astype(dtype)
    sd = jnp.std(x_true, axis=0, ddof=1)
    lo = jnp.min(x_true, axis=0) - 0.1 * sd
    hi = jnp.max(x_true, axis=0) + 0.1 * sd
    edges = jax.vmap(lambda a, b: jnp.linspace(a, b, n_bins + 1))(lo, hi)

    idx_true, in_true = _bin_indices(x_true, edges)
    idx_gen, in_gen = _bin_indices(x_gen, edges)
    n_cells = n_bins**n_dim

    if n_cells <= dense_limit:
        strides = jnp.asarray([n_bins ** (n_dim - 1 - d) for d in range(n_dim)], jnp.int32)

        def hist(idx, inside):
            flat = jnp.where(inside, idx @ strides, 0)
            return jnp.bincount(flat, weights=inside.astype(jnp.int32), length=n_cells)

        return _kl_from_counts(hist(idx_true, in_true), hist(idx_gen, in_gen), float(n_cells))

    # Sparse path: sort the points of both series by cell (lexicographically, so no flat index
    # that could overflow is needed), label runs of equal cells, and count each series per run.
    # Out-of-box points share one sentinel cell and carry weight 0.
    keys = jnp.concatenate(
        [jnp.where(in_true[:, None], idx_true, n_bins), jnp.where(in_gen[:, None], idx_gen, n_bins)]
    )
    w_true = jnp.concatenate([in_true, jnp.zeros_like(in_gen)]).astype(jnp.int32)
    w_gen = jnp.concatenate([jnp.zeros_like(in_true), in_gen]).astype(jnp.int32)
    order = jnp.lexsort(tuple(keys[:, d] for d in range(n_dim)))
    keys = keys[order]
    new_cell = jnp.any(keys[1:] != keys[:-1], axis=1)
    segment = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(new_cell, dtype=jnp.int32)])
    n_points = keys.shape[0]
    h_true = jax.ops.segment_sum(w_true[order], segment, num_segments=n_points)
    h_gen = jax.ops.segment_sum(w_gen[order], segment, num_segments=n_points)
    return _kl_from_counts(h_true, h_gen, float(n_cells))


def _gmm_log_density(
    samples: Float[Array, "sample dim"], centres: Float[Array, "time dim"], sigma2
) -> Float[Array, " sample"]:
    """`ln[(1/T) Σ_t exp(−‖s − x_t‖² / (2σ²))]`, by log-sum-exp (the `σ^N` and `(2π)^{N/2}`
    normalisers are dropped: they cancel in `ln p − ln q`)."""
    d2 = (
        jnp.sum(samples**2, axis=1)[:, None]
        + jnp.sum(centres**2, axis=1)[None, :]
        - 2.0 * samples @ centres.T
    )
    d2 = jnp.maximum(d2, 0.0)
    return jax.nn.logsumexp(-d2 / (2.0 * sigma2), axis=1) - jnp.log(centres.shape[0])


@eqx.filter_jit
def _stsp_gmm(
    x_true: Float[Array, "time dim"],
    x_gen: Float[Array, "time2 dim"],
    scaling,
    n_samples: int,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    dtype = jnp.result_type(x_true.dtype, x_gen.dtype)
    x_true = x_true.astype(dtype)
    x_gen = x_gen.astype(dtype)
    k_index, k_noise = jr.split(key)
    t = jr.randint(k_index, (n_samples,), 0, x_true.shape[0])
    eps = jr.normal(k_noise, (n_samples, x_true.shape[1]), dtype)
    samples = x_true[t] + jnp.sqrt(scaling) * eps
    log_p = _gmm_log_density(samples, x_true, scaling)
    log_q = _gmm_log_density(samples, x_gen, scaling)
    return jnp.mean(log_p - log_q)


def state_space_divergence(
    x_true: Float[Array, "time dim"],
    x_gen: Float[Array, "time2 dim"],
    *,
    n_bins: int = 30,
    method: Literal["bins", "gmm", "auto"] = "bins",
    scaling: float = 1.0,
    n_samples: int = 1000,
    key: PRNGKeyArray | None = None,
    max_points: int = 10_000,
) -> Float[Array, ""]:
    """State-space divergence `D_stsp = KL(p_true ‖ p_gen)` of two trajectories
    (Hess et al. 2023, ICML, Sec. 5; reference implementation GTF-shPLRNN `stsp_measure.jl`).

    **Binning** (`method="bins"`). A box is laid over the true data, per dimension
    `[min − 0.1 sd, max + 0.1 sd]`, and cut into `n_bins` equal, left-closed bins per dimension
    (`n_bins^N` cells); points of either series outside the box are ignored. With the in-box
    counts `h` and `α = 1e-5`,

    `p = (h_true + α) / (Σh_true + α n_bins^N)`, `q` likewise, `D_stsp = Σ_cells p ln(p/q)`.

    Only occupied cells are ever counted (by sorting the cell indices when `n_bins^N` is
    large), and the empty cells enter through one closed-form term, so `30^5` cells for a 5-d
    series cost no more memory than the data. Counts are int32, so the reference's silent
    wrap-around of UInt16 counts above 65 535 hits per cell does not happen here.

    **Gaussian mixture** (`method="gmm"`). Each of the first `T' = min(T, max_points)` points of a
    series is the centre of an isotropic Gaussian of variance `σ² = scaling`; `n_samples` draws
    `s_i = x_{t_i} + σ ε_i` (`t_i` uniform on the first `T'` true points) estimate

    `D_stsp = mean_i [ln p(s_i) − ln q(s_i)]`, `p(s) = (1/T') Σ_t exp(−‖s − x_t‖²/(2σ²))`,

    computed with log-sum-exp, so it never underflows. The Float32 reference instead drops the
    draws where `p` or `q` underflows to 0, which makes it report *smaller* values than this
    function for very poor models (distributions far apart); for reasonable models the two
    agree.

    `method="auto"` uses the binning for `N < 6` dimensions and the mixture otherwise (the
    GTF protocol).

    **Arguments:**
    - `x_true`: the reference trajectory, `(time, dims)`; a 1-D array is read as one dimension.
    - `x_gen`: the generated trajectory, `(time2, dims)` (any length).
    - `n_bins`: bins per dimension (binning).
    - `method`: `"bins"`, `"gmm"` or `"auto"`.
    - `scaling`: the mixture components' variance `σ²` (mixture).
    - `n_samples`: Monte Carlo draws (mixture).
    - `key`: PRNG key of the draws (mixture); a fixed default key keeps the result reproducible.
    - `max_points`: at most this many leading points of each series are used (mixture).

    **Returns:** a scalar; NaN when no generated point falls inside the box (binning).

    **Raises:** `DynrnnValueError` for empty or non-finite input, different numbers of
    dimensions, a true series that is constant in some dimension (binning: its box is empty),
    or bad options; `DynrnnTypeError` for non-numeric dtypes.
    """
    x_true, x_gen = _check_pair(x_true, x_gen, min_len=1)
    if method not in ("bins", "gmm", "auto"):
        raise DynrnnValueError(f"`method` must be 'bins', 'gmm' or 'auto', got {method!r}.")
    if method == "auto":
        method = "bins" if x_true.shape[1] < 6 else "gmm"
    if method == "bins":
        check_positive(n_bins, "n_bins", integer=True)
        if x_true.shape[0] < 2:
            raise DynrnnValueError(
                f"`x_true` needs at least 2 time steps to define the binning box, got shape "
                f"{tuple(x_true.shape)}."
            )
        if _is_concrete(x_true):
            constant = np.flatnonzero(np.ptp(np.asarray(x_true), axis=0) == 0)
            if constant.size:
                raise DynrnnValueError(
                    f"`x_true` is constant in dimension(s) {constant.tolist()}, so the binning "
                    "box has zero width there; drop those dimensions or use method='gmm'."
                )
        if math.log(n_bins) * x_true.shape[1] > math.log(2.0**62):
            raise DynrnnValueError(
                f"`n_bins`**dims = {n_bins}**{x_true.shape[1]} cells is too many for the binning "
                "estimator; use method='gmm' for high-dimensional data."
            )
        return _stsp_bins(x_true, x_gen, n_bins, _DENSE_CELL_LIMIT)

    check_positive(scaling, "scaling")
    check_positive(n_samples, "n_samples", integer=True)
    check_positive(max_points, "max_points", integer=True)
    if key is None:
        key = jr.PRNGKey(0)
    elif not is_array(key):
        raise DynrnnTypeError(f"`key` must be a JAX PRNG key, got {type(key).__name__}.")
    return _stsp_gmm(x_true[:max_points], x_gen[:max_points], float(scaling), n_samples, key)
