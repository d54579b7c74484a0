"""`dr.evaluate`: the reconstruction measures under the reference protocol, and on a recording
also forward prediction against AR and persistence and co-smoothing (`_evaluate_recording`).

Hess et al., ICML 2023 (GTF-shPLRNN `src/evaluation.jl`): generate `⌊1.25 T⌋` steps from
`z_1 = init_state(x_1)` of the test set (`z_1` is the first generated step), drop the first
`⌊0.25 T⌋`, compare the remaining T steps with the test set.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DynrnnTypeError, DynrnnValueError, check_array
from ..models import AbstractLatentModel


@eqx.filter_jit
def _generate(model, x0, n):
    z1 = model.init_state(x0)
    zs = model.rollout(z1, n - 1)
    zs = jnp.concatenate([z1[None], zs], axis=0)
    return jax.vmap(model.observe)(zs), zs


def generate(model, x0, n_steps: int):
    """Observations of `n_steps` states starting from `init_state(x0)` (included).

    **Arguments:**
    - `model`: a latent model.
    - `x0`: the first observation `(obs,)`, or a recording (`xr.Dataset`/`xr.DataArray` on
      `("time", "neuron")` with a rate or a time coordinate in seconds) whose first frame is
      used.
    - `n_steps`: number of generated steps (the first is `init_state(x0)`).

    **Returns:** for an array `x0`, `(observations (n_steps, obs), states (n_steps, latent))` as
    NumPy arrays; for a recording, an `xr.Dataset` with `activity` on `("time", neuron)` (the
    recording's neuron coordinate) and `state` on `("time", "latent")`, `time` in seconds from
    the recording's first frame at its rate.
    """
    from ._evaluate_recording import activity, is_recording, rate_of

    if is_recording(x0):
        rec = activity(x0, "x0")
        rate, t0 = rate_of(rec, "x0")
        dim = rec.dims[1]
        x, z = generate(model, rec.values[0], n_steps)
        import xarray as xr

        return xr.Dataset(
            {"activity": (("time", dim), x), "state": (("time", "latent"), z)},
            coords={"time": ("time", t0 + np.arange(x.shape[0]) / rate, {"units": "s"}),
                    dim: rec[dim].values},
            attrs={"rate": rate, "units": rec.attrs.get("units", "a.u."),
                   "source": "dr.generate"},
        )
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
    train=None,
    held_out=None,
    projection=None,
    horizon: int = 5,
    ar_order: int = 5,
    warmup: int = 0,
    bootstrap=None,
    cosmoothing_alpha: float = 0.5,
) -> dict:
    """All reconstruction measures of `model` on the test series `x_test`; on a recording also
    forward prediction against AR and persistence baselines and co-smoothing.

    ```python
    ev = dr.evaluate(model, test, train=train, held_out=[0, 5, 10], projection=to_pcs)
    ev["forecast"]["r2"].sel(model=["model", "AR(5)", "persistence"])
    ev["cosmoothing"]["mean_r2"]
    ```

    **Arguments:**
    - `model`: a latent model (`AbstractLatentModel`).
    - `x_test`: the test series `(time, obs)`, or a test **recording** (`xr.Dataset` with
      `activity` on `("time", "neuron")`, or such an `xr.DataArray`) with a `rate` attr or a
      `time` coordinate in seconds.
    - `n_bins`, `smoothing`: of `D_stsp` and `D_H` (for a test series too short for
      `smoothing` bins, a tenth of its spectrum's bins); `prediction_steps`: `n` of `PE(n)` (`None`:
      no PE); `lyapunov`, `lyapunov_steps`: the largest Lyapunov exponent;
      `max_prediction_points`: start points of PE (and, on a recording, at most as many
    forecast starts, evenly spaced).

    For a recording only:
    - `train`: the training part of the same recording (same neurons). The AR(`ar_order`)
      baseline is fitted on it by least squares and the co-smoothing read-out is fitted on it;
      without it the forecast has no AR row.
    - `held_out`: positions of neurons the model was **not** trained on (co-smoothing); the
      model observes the other, held-in neurons.
    - `projection`: a callable mapping held-in activity `(time, held-in neurons)` to what the
      model observes `(time, obs)`, e.g. the principal components it was trained on (fitted on
      the training part of the held-in neurons only, so nothing of the held-out neurons leaks);
      `None`: the held-in neurons themselves.
    - `horizon`: largest forecast horizon `k`; `ar_order`: the AR baseline's order; `warmup`:
      frames before each start that force the model's state (`dr.forcing.infer_states` with
      α = 1; 0: `init_state(x_t)`). Every row uses the same starts `t ≥ max(ar_order − 1,
      warmup)` and targets.
    - `bootstrap`: a `dr.metrics.BlockBootstrap` (default: blocks of 50, 2 000 resamples, 95 %).
    - `cosmoothing_alpha`: forcing strength of the states read out in co-smoothing.

    **Returns:** a dict with `D_stsp` (binning for N < 6, Gaussian mixture otherwise), `D_H`
    (power-spectrum Hellinger distance), `PE` (the `prediction_steps`-step prediction error on up
    to `max_prediction_points` start points, evenly spaced), `max_lyapunov` (per step, from the
    generated orbit's end; only with `lyapunov=True`) and `generated` (the generated series;
    for a recording an `xr.DataArray` on `("time", neuron | "component")` with `time` in
    seconds). For a recording the measures are computed on what the model observes (the
    held-in neurons after `projection`), and the dict also holds
    - `forecast`: an `xr.Dataset` with `r2` on `("model", "horizon")` (rows `model`,
      `AR(p)` when `train` is given, `persistence`; a `lead_time` coordinate in seconds) and
      `difference`, `low`, `high` on `("baseline", "horizon")`: `R²(model) − R²(baseline)`
      and its bootstrap interval;
    - `cosmoothing` (`None` without `held_out`): an `xr.Dataset` with `r2` on
      `("regressors", neuron)` for the held-out neurons (`regressors`: `latent states`,
      `held-in activity`), `mean_r2`, `median_r2`, and `difference`, `low`, `high`: mean R²
      of the states minus that of the held-in activity, with its bootstrap interval.

    Models with non-finite parameters give NaN measures (reference protocol).

    **Raises:** `DynrnnValueError` for a recording without a rate or time coordinate, `held_out`
    indices out of range, repeated or covering every neuron, `held_out` without `train`, or a
    model whose observed width does not match the held-in neurons after `projection`.
    """
    from .. import metrics
    from ..metrics._spectrum import smoothing_for_length

    if not isinstance(model, AbstractLatentModel):
        raise DynrnnTypeError(
            f"`model` must have the common state interface (AbstractLatentModel), got "
            f"{type(model).__name__}."
        )
    from ._evaluate_recording import evaluate_recording, is_recording

    array_kw = dict(n_bins=n_bins, smoothing=smoothing, prediction_steps=prediction_steps,
                    lyapunov=lyapunov, lyapunov_steps=lyapunov_steps,
                    max_prediction_points=max_prediction_points)
    if is_recording(x_test):
        return evaluate_recording(
            model, x_test, train=train, held_out=held_out, projection=projection,
            horizon=horizon, ar_order=ar_order, warmup=warmup, bootstrap=bootstrap,
            cosmoothing_alpha=cosmoothing_alpha, evaluate_array=evaluate, **array_kw)
    given = [k for k, v in dict(train=train, held_out=held_out, projection=projection).items()
             if v is not None]
    if given:
        raise DynrnnValueError(
            f"`{given[0]}` applies to a recording (xr.Dataset/DataArray with a time "
            "coordinate); `x_test` is an array."
        )
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
        # `smoothing` bins, fewer where the test series is too short for them
        out["D_H"] = float(metrics.power_spectrum_distance(
            x_test, x_gen, smoothing=smoothing_for_length(T, smoothing)))
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
