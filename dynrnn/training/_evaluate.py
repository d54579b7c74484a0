"""`dr.evaluate`: the reconstruction measures under the reference protocol.

Hess et al., ICML 2023 (GTF-shPLRNN `src/evaluation.jl`): generate `⌊1.25 T⌋` steps from
`z_1 = init_state(x_1)` of the test set (`z_1` is the first generated step), drop the first
`⌊0.25 T⌋`, compare the remaining T steps with the test set.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DynrnnTypeError, check_array
from ..models import AbstractLatentModel


@eqx.filter_jit
def _generate(model, x0, n):
    z1 = model.init_state(x0)
    zs = model.rollout(z1, n - 1)
    zs = jnp.concatenate([z1[None], zs], axis=0)
    return jax.vmap(model.observe)(zs), zs


def generate(model, x0, n_steps: int):
    """Observations of `n_steps` states starting from `init_state(x0)` (included).

    **Returns:** `(observations (n_steps, obs), states (n_steps, latent))` as NumPy arrays.
    """
    x, z = _generate(model, jnp.asarray(x0), int(n_steps))
    return np.asarray(x), np.asarray(z)


def _params_finite(model) -> bool:
    leaves = [x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x)]
    return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def evaluate(
    model,
    x_test,
    *,
    n_bins: int = 30,
    smoothing: float = 20.0,
    prediction_steps: int | None = 20,
    lyapunov: bool = True,
    lyapunov_steps: int = 10_000,
    max_prediction_points: int = 10_000,
) -> dict:
    """All reconstruction measures of `model` on the test series `x_test` `(time, obs)`.

    **Returns:** a dict with `D_stsp` (binning for N < 6, Gaussian mixture otherwise), `D_H`
    (power-spectrum Hellinger distance), `PE` (the `prediction_steps`-step prediction error on up
    to `max_prediction_points` start points, evenly spaced), `max_lyapunov` (per step, from the
    generated orbit's end; only with `lyapunov=True`) and `generated` (the generated series).
    Models with non-finite parameters give NaN measures (reference protocol).
    """
    from .. import metrics

    if not isinstance(model, AbstractLatentModel):
        raise DynrnnTypeError(
            f"`model` must have the common state interface (AbstractLatentModel), got "
            f"{type(model).__name__}."
        )
    x_test = np.asarray(check_array(x_test, "x_test", ndim=2, dims=model.n_obs, min_len=2))
    T = x_test.shape[0]
    n_gen = int(1.25 * T)
    drop = int(0.25 * T)
    out: dict = {}
    if not _params_finite(model):
        out.update(D_stsp=np.nan, D_H=np.nan, PE=np.nan, max_lyapunov=np.nan, generated=None)
        return out
    x_gen, z_gen = generate(model, x_test[0], n_gen)
    x_gen = x_gen[drop : drop + T]
    out["generated"] = x_gen
    if not np.all(np.isfinite(x_gen)):
        out.update(D_stsp=np.nan, D_H=np.nan)
    else:
        method = "bins" if x_test.shape[1] < 6 else "gmm"
        out["D_stsp"] = float(
            metrics.state_space_divergence(x_test, x_gen, n_bins=n_bins, method=method)
        )
        out["D_H"] = float(metrics.power_spectrum_distance(x_test, x_gen, smoothing=smoothing))
    if prediction_steps is not None:
        n = int(prediction_steps)
        stride = max(1, (T - n) // max_prediction_points)
        xs = x_test[::stride] if stride > 1 else x_test
        if stride > 1:
            # PE(n) on a subsampled grid of start points: targets are n steps later in the
            # original series, so evaluate start/target pairs explicitly.
            starts = np.arange(0, T - n, stride)
            out["PE"] = float(_prediction_error_pairs(model, x_test, starts, n))
        else:
            out["PE"] = float(metrics.prediction_error(model, xs, n=n))
    if lyapunov:
        z0 = jnp.asarray(z_gen[-1])
        out["max_lyapunov"] = float(
            metrics.max_lyapunov(model, z0, n_steps=lyapunov_steps)
        )
    return out


@eqx.filter_jit
def _pe_pairs(model, x0s, targets, n):
    def one(x0, target):
        z = model.init_state(x0)
        z = jax.lax.fori_loop(0, n, lambda _, s: model.step(s), z)
        return jnp.mean((model.observe(z) - target) ** 2)

    return jnp.mean(jax.vmap(one)(x0s, targets))


def _prediction_error_pairs(model, x, starts, n):
    return _pe_pairs(model, jnp.asarray(x[starts]), jnp.asarray(x[starts + n]), n)
