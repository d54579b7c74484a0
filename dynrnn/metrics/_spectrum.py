"""Power-spectrum Hellinger distance `D_H`: how differently two trajectories oscillate."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._errors import DynrnnValueError
from ._stsp import _check_pair


def smoothing_for_length(n: int, smoothing: float = 20.0) -> float:
    """The kernel width `power_spectrum_distance` uses on an `n`-point series: `smoothing`
    bins, or for a series too short for it a tenth of its spectrum's bins (at least 1)."""
    return float(min(smoothing, max(1.0, (n // 2) / 5)))


def _kernel_radius(smoothing: float) -> int:
    # 8σ+1 taps, as SciPy's `gaussian_filter1d(truncate=4)` and the reference implementation.
    return int(4.0 * smoothing + 0.5)


def _smoothed_spectrum(x: Float[Array, " time"], smoothing: float) -> Float[Array, " freq"]:
    """Normalised, Gaussian-smoothed power spectrum of one z-scored series."""
    constant = jnp.max(x) == jnp.min(x)
    centred = x - jnp.mean(x)
    sd = jnp.std(x)
    z = jnp.where(constant, 0.0, centred / jnp.where(constant, 1.0, sd))
    power = jnp.abs(jnp.fft.rfft(z)) ** 2
    radius = _kernel_radius(smoothing)
    if radius > 0:
        taps = jnp.arange(-radius, radius + 1, dtype=power.dtype)
        kernel = jnp.exp(-0.5 * (taps / smoothing) ** 2)
        kernel = kernel / jnp.sum(kernel)
        # "reflect" in NumPy's naming pads without repeating the edge sample (… c b | a b c …),
        # which is what the reference's ImageFiltering `"reflect"` does.
        padded = jnp.pad(power, radius, mode="reflect")
        n_freq = power.shape[0]
        # The kernel is symmetric, so correlation = convolution; a loop over the taps of
        # shifted slices is several times faster on CPU than XLA's 1-channel convolution.
        power = jax.lax.fori_loop(
            0,
            2 * radius + 1,
            lambda i, acc: acc + kernel[i] * jax.lax.dynamic_slice_in_dim(padded, i, n_freq),
            jnp.zeros_like(power),
        )
        power = jnp.maximum(power, 0.0)
    total = jnp.sum(power)
    # A constant series (a model collapsed onto a fixed point) has no spectrum after z-scoring;
    # it is treated as white, i.e. flat.
    flat = jnp.full_like(power, 1.0 / power.shape[0])
    return jnp.where(total > 0, power / jnp.where(total > 0, total, 1.0), flat)


@eqx.filter_jit
def _hellinger_spectra(
    x_true: Float[Array, "time dim"], x_gen: Float[Array, "time dim"], smoothing: float
) -> tuple[Float[Array, ""], Float[Array, " dim"]]:
    dtype = jnp.result_type(x_true.dtype, x_gen.dtype)
    spectra = jax.vmap(lambda col: _smoothed_spectrum(col, smoothing), in_axes=1)
    p = spectra(x_true.astype(dtype))
    q = spectra(x_gen.astype(dtype))
    # `(1/√2)‖√P − √Q‖₂` equals `√(1 − Σ√(PQ))` for normalised spectra but has no cancellation
    # for nearly equal spectra (exactly 0 for identical ones).
    h = jnp.sqrt(jnp.sum((jnp.sqrt(p) - jnp.sqrt(q)) ** 2, axis=1) / 2.0)
    h = jnp.clip(h, 0.0, 1.0)
    return jnp.mean(h), h


def power_spectrum_distance(
    x_true: Float[Array, "time dim"],
    x_gen: Float[Array, "time dim"],
    *,
    smoothing: float = 20.0,
    per_dim: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], Float[Array, " dim"]]:
    """Power-spectrum Hellinger distance `D_H` of two trajectories
    (Mikhaeil et al. 2022; Hess et al. 2023, ICML, Sec. 5; reference implementation GTF-shPLRNN
    `pse.jl`).

    Per dimension `d`, each series is z-scored, its power spectrum `|rfft(x)|²` (DC kept, no
    cutoff) is smoothed by a normalised Gaussian kernel of standard deviation `smoothing`
    frequency bins with `8σ+1` taps (padding by reflection without repeating the edge bin,
    `… c b | a b c …`), clamped at 0 and normalised to `P`; then

    `H_d = (1/√2)‖√P − √Q‖₂ = √(1 − Σ_f √(P_f Q_f))`, `D_H = mean_d H_d ∈ [0, 1]`.

    The measure is symmetric and invariant to affine rescaling of each dimension. A constant
    dimension (a model collapsed onto a fixed point) is treated as having a flat (white)
    spectrum.

    **Arguments:**
    - `x_true`: the reference trajectory, `(time, dims)`; a 1-D array is read as one dimension.
    - `x_gen`: the generated trajectory, with the same shape: spectra are compared bin by bin,
      so the lengths must be equal (cut the longer series yourself if that is what you mean).
    - `smoothing`: the kernel's standard deviation in frequency bins (0 turns smoothing off).
    - `per_dim`: also return the per-dimension distances `H_d`.

    **Returns:** `D_H`, or `(D_H, H)` with `per_dim=True`.

    **Raises:** `DynrnnValueError` for unequal lengths or dimensions, non-finite or empty
    input, a negative `smoothing`, or series too short for the kernel (the one-sided spectrum,
    `time//2 + 1` bins, must be longer than the kernel radius `4 σ`); `DynrnnTypeError` for
    non-numeric dtypes.
    """
    x_true, x_gen = _check_pair(x_true, x_gen)
    if x_true.shape[0] != x_gen.shape[0]:
        raise DynrnnValueError(
            f"`x_true` and `x_gen` must have the same length for the power-spectrum distance, "
            f"got {x_true.shape[0]} and {x_gen.shape[0]} time steps (shapes "
            f"{tuple(x_true.shape)} and {tuple(x_gen.shape)})."
        )
    if not np.isfinite(smoothing) or smoothing < 0:
        raise DynrnnValueError(f"`smoothing` must be a finite number >= 0, got {smoothing!r}.")
    smoothing = float(smoothing)
    n_freq = x_true.shape[0] // 2 + 1
    radius = _kernel_radius(smoothing)
    if n_freq <= radius or x_true.shape[0] < 2:
        raise DynrnnValueError(
            f"`x_true` is too short for smoothing={smoothing}: the spectrum has {n_freq} "
            f"frequency bins but the kernel radius is {radius}; needs at least "
            f"{max(2 * radius, 2)} time steps, got {x_true.shape[0]}."
        )
    d_h, h = _hellinger_spectra(x_true, x_gen, smoothing)
    return (d_h, h) if per_dim else d_h
