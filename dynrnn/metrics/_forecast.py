"""Forecasting statistics of latent models on held-out data: k-step-ahead predictions and
their R², co-smoothing of held-out neurons (Pei et al. 2021, Neural Latents Benchmark), a
least-squares linear autoregression as the baseline every latent model must beat, and a
block-bootstrap interval for the difference of two predictors' R².
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from ..forcing import infer_states
from ..forcing._forcing import gtf_blend  # noqa: F401
from ..forcing._infer import as_time_major, forced_states
from ..models import AbstractLatentModel


def _series(data, name):
    x = as_time_major(data, name)
    if x.shape[0] < 3:
        raise DynrnnValueError(f"`{name}` needs at least 3 frames, got shape {x.shape}.")
    return x


def _r2(pred: np.ndarray, true: np.ndarray, axis=0) -> np.ndarray:
    ss_res = np.sum((pred - true) ** 2, axis=axis)
    ss_tot = np.sum((true - true.mean(axis=axis, keepdims=True)) ** 2, axis=axis)
    return 1.0 - ss_res / ss_tot


@eqx.filter_jit
def _model_predictions(model, windows, n_steps: int, alpha):
    def one(w):
        z = forced_states(model, w, alpha)[-1]
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
    return _r2(readout_predictions(f_tr, f_te, tr[:, held_out], ridge=ridge), te[:, held_out])


def readout_predictions(features_train, features_test, targets_train, *,
                        ridge: float = 1e-3) -> np.ndarray:
    """A ridge read-out (with intercept) fitted on the training part, applied to the test part.

    Features are standardised with the training statistics; the penalty is
    `ridge · T_train · ‖W‖²` (the intercept is not penalised), so `ridge` does not depend on
    the length of the training part. This is the read-out of co-smoothing (`cosmoothing_r2`).

    **Arguments:**
    - `features_train` `(T_train, f)`, `features_test` `(T_test, f)`: regressors.
    - `targets_train` `(T_train, n)`: what to predict; `ridge`: L2 weight.

    **Returns:** `(T_test, n)` predictions.
    """
    f_tr = np.asarray(features_train, np.float64)
    f_te = np.asarray(features_test, np.float64)
    y_tr = np.asarray(targets_train, np.float64)
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-12
    X = np.concatenate([(f_tr - mu) / sd, np.ones((f_tr.shape[0], 1))], axis=1)
    reg = ridge * X.shape[0] * np.eye(X.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(X.T @ X + reg, X.T @ y_tr)
    Xte = np.concatenate([(f_te - mu) / sd, np.ones((f_te.shape[0], 1))], axis=1)
    return Xte @ coef


class BlockBootstrap:
    """Moving-block bootstrap of a statistic of a time series (Künsch 1989).

    Consecutive frames (or consecutive prediction starts) are correlated, so resampling them one
    by one understates the spread; resampling blocks of `block` consecutive indices keeps the
    correlation within a block. A resample is `⌈n / block⌉` blocks with uniformly drawn starts
    in `[0, n − block]`, concatenated and cut to `n` indices; the interval is the percentile
    interval of the statistic over `n_boot` resamples.

    ```python
    boot = dr.metrics.BlockBootstrap(block=50, n_boot=2000, level=0.95, seed=0)
    value, low, high = boot.interval(lambda idx: np.mean(x[idx]), len(x))
    ```

    **Arguments:**
    - `block`: block length (indices); `n_boot`: resamples; `level`: interval level in (0, 1);
      `seed`: NumPy seed (the same seed gives the same resamples, so statistics computed with
      one `BlockBootstrap` on the same `n` are paired).
    """

    def __init__(self, block: int = 50, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0):
        check_positive(block, "block", integer=True)
        check_positive(n_boot, "n_boot", integer=True)
        if not 0.0 < level < 1.0:
            raise DynrnnValueError(f"`level` must be in (0, 1), got {level!r}.")
        self.block, self.n_boot, self.level, self.seed = int(block), int(n_boot), float(
            level), int(seed)

    def __repr__(self):
        return (f"BlockBootstrap(block={self.block}, n_boot={self.n_boot}, level={self.level}, "
                f"seed={self.seed})")

    def indices(self, n: int) -> np.ndarray:
        """`(n_boot, n)` resampled indices into `0 … n − 1`."""
        block = min(self.block, n)
        rng = np.random.default_rng(self.seed)
        starts = rng.integers(0, n - block + 1, size=(self.n_boot, math.ceil(n / block)))
        return (starts[..., None] + np.arange(block)).reshape(self.n_boot, -1)[:, :n]

    def interval(self, statistic, n: int):
        """The statistic on all `n` indices and its percentile interval.

        **Arguments:**
        - `statistic`: `f(indices) -> scalar or array`, evaluated on `arange(n)` and on each
          resample.
        - `n`: the number of indices.

        **Returns:** `(value, low, high)`, each of the statistic's shape.
        """
        draws = np.stack([np.asarray(statistic(idx), np.float64) for idx in self.indices(n)])
        lo, hi = np.quantile(draws, [(1 - self.level) / 2, (1 + self.level) / 2], axis=0)
        return np.asarray(statistic(np.arange(n)), np.float64), lo, hi


def bootstrap_r2_difference(
    pred_a, pred_b, targets, *, block: int = 50, n_boot: int = 2000, level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`R²(a) − R²(b)` per horizon with a moving-block bootstrap confidence interval.

    Starts are consecutive frames of one series, so neighbouring errors are correlated;
    resampling blocks of `block` consecutive starts (Künsch 1989) keeps that correlation, and
    both predictors are resampled together (a paired comparison). R² is `prediction_r2`
    (pooled over dims, `x̄` the resampled targets' mean).

    **Arguments:**
    - `pred_a`, `pred_b`, `targets`: `(starts, horizon, obs)` (`forward_predictions`).
    - `block`, `n_boot`, `level`, `seed`: block length, resamples, interval level, NumPy seed.

    **Returns:** `(difference, low, high)`, each `(horizon,)`.
    """
    a, b, y = (np.asarray(v, np.float64) for v in (pred_a, pred_b, targets))
    if a.shape != y.shape or b.shape != y.shape or y.ndim != 3:
        raise DynrnnValueError(
            f"`pred_a`, `pred_b`, `targets` must have the same (starts, horizon, obs) shape, got "
            f"{a.shape}, {b.shape}, {y.shape}."
        )
    boot = BlockBootstrap(block=block, n_boot=n_boot, level=level, seed=seed)

    def diff(idx):
        return prediction_r2(a[idx], y[idx]) - prediction_r2(b[idx], y[idx])

    return boot.interval(diff, y.shape[0])
