"""Latent models trained for forward prediction: a shallow PLRNN started at the least-squares
linear autoregression, the k-step-ahead prediction loss, validation early stopping, and a
block-bootstrap confidence interval for the difference of two predictors' R².

A shallow PLRNN `z_{t+1} = A⊙z_t + W1 relu(W2 z_t + h2) + h1` (Hess et al., ICML 2023) holds any
linear map exactly: a pair of hidden units `relu(v·z) − relu(−v·z) = v·z`. With the delay-
embedded state `z_t = [x_t, x_{t−1}, …, x_{t−p+1}, (free units)]` and an `Identity` observation
of the first `N` units, the companion matrix of the AR(p) model

    x_{t+1} = c + Σ_{j=1}^{p} A_j x_{t−j+1}

is written into `W1 = [L, −L]`, `W2 = [I; −I]` (on the first `2Np` hidden units), `A = 0`,
`h1 = [c; 0]`, `h2 = 0` (`ar_init`). Forced with the data over `x_{t−p+1} … x_t` (GTF with
`α = 1`, i.e. `burn_in = p − 1` in `PredictionLoss` / `warmup` in `forward_prediction_r2`) the
model then predicts exactly what the least-squares AR(p) predicts, and training it further with
the prediction objective starts from the linear baseline instead of from a random map.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from ._calcium import _forced_run, _series, fit_ar, prediction_r2
from ._observation import Identity
from ._plrnn import ShallowPLRNN


def ar_init(model: ShallowPLRNN, data, order: int, *, ridge: float = 0.0) -> ShallowPLRNN:
    """A shallow PLRNN set to the least-squares AR(`order`) model of `data` (module docstring).

    The first `N·p` latent units hold the delay embedding; latent units beyond them start with
    zero input and output weights. The first `2·N·p` hidden units are the ReLU pairs of the
    linear map; the other hidden units keep their random `W2`, `h2` and get `W1 = 0`, so they
    add nothing at the start but receive gradients (the nonlinear capacity training may use).
    `Identity.L` is set to 0, so `init_state(x)` is `[x; 0]` (the delay units fill after
    `p − 1` forced steps).

    **Arguments:**
    - `model`: a `ShallowPLRNN` built with `clipped=False` (a clipped hidden layer is bounded
      and cannot hold a linear map), an `Identity` observation of `N` dims, `latent ≥ N·p` and
      `hidden ≥ 2·N·p`; its other weights are kept.
    - `data`: `(time, N)` array or recording, the training series.
    - `order`: the AR order `p`.
    - `ridge`: L2 weight of the least-squares fit (`fit_ar`).

    **Returns:** the model with `A`, `W1`, `W2`, `h1`, `h2` (and `observation.L`) replaced.

    **Raises:** `DynrnnTypeError` for another model class or observation; `DynrnnValueError`
    for a clipped model, too few latent or hidden units, or data of the wrong width.
    """
    if not isinstance(model, ShallowPLRNN):
        raise DynrnnTypeError(f"`model` must be a ShallowPLRNN, got {type(model).__name__}.")
    if not isinstance(model.observation, Identity):
        raise DynrnnTypeError(
            "`model` must have an Identity observation (the delay-embedded state is observed "
            f"on its first N units), got {type(model.observation).__name__}."
        )
    if model.clipped:
        raise DynrnnValueError(
            "`model` must be built with clipped=False: the clipped hidden layer "
            "relu(W2 z + h2) − relu(W2 z) is bounded and cannot represent a linear map."
        )
    if model.C is not None:
        raise DynrnnValueError("`model` must be autonomous (inputs=0) for `ar_init`.")
    check_positive(order, "order", integer=True)
    x = _series(data, "data")
    n = model.n_obs
    if x.shape[1] != n:
        raise DynrnnValueError(
            f"`data` has {x.shape[1]} dims but the model observes {n} (data shape {x.shape})."
        )
    p_units = n * order
    if model.n_latent < p_units or model.hidden < 2 * p_units:
        raise DynrnnValueError(
            f"an AR({order}) model of {n} dims needs latent >= {p_units} and hidden >= "
            f"{2 * p_units}, got latent={model.n_latent}, hidden={model.hidden}."
        )
    A, c = fit_ar(x, order, ridge=ridge)
    m = model.n_latent
    # The companion matrix on the delay units: AR rows on top, the shift below.
    L = np.zeros((m, p_units))
    L[:n] = np.concatenate(list(A), axis=1)
    L[n:p_units, : p_units - n] = np.eye(p_units - n)
    W1 = np.array(model.W1, np.float64)
    W2 = np.array(model.W2, np.float64)
    h2 = np.array(model.h2, np.float64)
    W1[:, : 2 * p_units] = np.concatenate([L, -L], axis=1)
    W1[:, 2 * p_units:] = 0.0
    W2[: 2 * p_units] = 0.0
    W2[:p_units, :p_units] = np.eye(p_units)
    W2[p_units: 2 * p_units, :p_units] = -np.eye(p_units)
    h2[: 2 * p_units] = 0.0
    h1 = np.zeros(m)
    h1[:n] = c
    dt = model.A.dtype
    new = eqx.tree_at(
        lambda mdl: (mdl.A, mdl.W1, mdl.W2, mdl.h1, mdl.h2),
        model,
        (jnp.zeros((m,), dt), jnp.asarray(W1, dt), jnp.asarray(W2, dt), jnp.asarray(h1, dt),
         jnp.asarray(h2, dt)),
    )
    if new.observation.L is not None:
        new = eqx.tree_at(lambda mdl: mdl.observation.L, new,
                          jnp.zeros_like(new.observation.L))
    return new


class PredictionLoss(eqx.Module):
    """Mean squared error of `1 … horizon`-step-ahead predictions from data-inferred states.

    For a window `x_0 … x_{b+H}` (`b = burn_in`, `H = horizon`) the state at `b` is inferred
    from `x_0 … x_b` as in `forward_prediction_r2` (`init_state(x_0)`, then `b` steps forced
    with strength `alpha` on the forced units), the model runs freely for `H` steps, and

        loss = mean_{windows, k = 1…H, dims} (observe(z_{b+k}) − x_{b+k})²,

    i.e. the objective that `forward_prediction_r2(model, data, H, warmup=b, alpha=alpha)`
    evaluates. With `burn_in = 0, horizon = 1, alpha = 1` it is one-step teacher forcing.

    Use it as the callable loss of `dr.fit`'s supervised mode:
    `dr.fit(model, loss.windows(train), loss=loss, ...)`.

    **Arguments:**
    - `burn_in`: forced frames before the first prediction (`p − 1` for an `ar_init(…, p)`
      model; more lets the trained model use a longer history).
    - `horizon`: number of free-running steps scored.
    - `alpha`: forcing strength during the burn-in (1: the forced units are the data).
    """

    burn_in: int = eqx.field(static=True)
    horizon: int = eqx.field(static=True)
    alpha: float = eqx.field(static=True)

    def __init__(self, burn_in: int, horizon: int = 1, *, alpha: float = 1.0):
        check_positive(burn_in, "burn_in", integer=True, strict=False)
        check_positive(horizon, "horizon", integer=True)
        if not 0.0 < alpha <= 1.0:
            raise DynrnnValueError(f"`alpha` must be in (0, 1], got {alpha!r}.")
        self.burn_in = int(burn_in)
        self.horizon = int(horizon)
        self.alpha = float(alpha)

    def windows(self, data, *, dtype=None) -> tuple[np.ndarray, np.ndarray]:
        """All windows of a series (or a list of series) as `(inputs, targets)`: inputs
        `(n, burn_in + 1, obs)` (the frames the state is inferred from), targets
        `(n, horizon, obs)` (the frames that follow).

        **Raises:** `DynrnnValueError` for a series shorter than `burn_in + 1 + horizon`.
        """
        series = data if isinstance(data, list | tuple) else [data]
        length = self.burn_in + 1 + self.horizon
        ins, outs = [], []
        for i, s in enumerate(series):
            x = _series(s, f"data[{i}]")
            if x.shape[0] < length:
                raise DynrnnValueError(
                    f"`data[{i}]` has {x.shape[0]} frames, fewer than burn_in + 1 + horizon = "
                    f"{length}."
                )
            w = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)
            w = np.moveaxis(w, -1, 1)
            ins.append(w[:, : self.burn_in + 1])
            outs.append(w[:, self.burn_in + 1:])
        dtype = dtype or jnp.result_type(float)
        return (np.concatenate(ins).astype(dtype), np.concatenate(outs).astype(dtype))

    def __call__(self, model, inputs: Float[Array, "batch past obs"],
                 targets: Float[Array, "batch horizon obs"], *,
                 key: PRNGKeyArray | None = None) -> Float[Array, ""]:
        if inputs.shape[1] != self.burn_in + 1 or targets.shape[1] != self.horizon:
            raise DynrnnValueError(
                f"`inputs`/`targets` must have {self.burn_in + 1}/{self.horizon} frames, got "
                f"shapes {tuple(inputs.shape)} and {tuple(targets.shape)}."
            )

        def one(w, y):
            z = _forced_run(model, w, self.alpha)[-1]
            pred = jax.vmap(model.observe)(model.rollout(z, self.horizon))
            return jnp.mean((pred - y) ** 2)

        return jnp.mean(jax.vmap(one)(inputs, targets))


class EarlyStopping:
    """A `dr.fit` callback that keeps the model with the lowest validation loss.

    After every host call of `dr.fit` it evaluates `loss(model, inputs, targets)` on the
    validation windows; `best_model` is the best model seen (the `initial` model counts, so
    training that never improves on the validation data returns its starting point), and
    training stops once `patience` evaluations in a row did not improve.

    **Arguments:**
    - `loss`: a loss `(model, inputs, targets, *, key) -> scalar`, e.g. `PredictionLoss`.
    - `inputs`, `targets`: validation windows (e.g. `loss.windows(validation_series)`); take
      them from the end of the training part, never from the test part.
    - `patience`: evaluations without improvement before stopping (`None`: never stop).
    - `initial`: the model before training, evaluated first.

    **Attributes:** `best_model`, `best_loss`, `best_step` (0 for `initial`), `history`
    (list of `(step, validation loss)`).
    """

    def __init__(self, loss, inputs, targets, *, patience: int | None = None, initial=None):
        if patience is not None:
            check_positive(patience, "patience", integer=True)
        self.loss = loss
        self.inputs = jnp.asarray(inputs)
        self.targets = jnp.asarray(targets)
        self.patience = patience
        self.best_model = None
        self.best_loss = math.inf
        self.best_step = -1
        self.history: list[tuple[int, float]] = []
        self._since = 0
        self._eval = eqx.filter_jit(lambda m, u, y: loss(m, u, y, key=None))
        if initial is not None:
            self(0, initial, {})

    def __call__(self, step: int, model, logs) -> bool:
        value = float(self._eval(model, self.inputs.astype(_dtype(model)),
                                 self.targets.astype(_dtype(model))))
        self.history.append((int(step), value))
        if value < self.best_loss:
            self.best_loss, self.best_model, self.best_step = value, model, int(step)
            self._since = 0
        else:
            self._since += 1
        return self.patience is not None and self._since >= self.patience


def _dtype(model):
    return jnp.result_type(*[v for v in jax.tree_util.tree_leaves(model)
                             if eqx.is_inexact_array(v)])


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
    check_positive(block, "block", integer=True)
    check_positive(n_boot, "n_boot", integer=True)
    if not 0.0 < level < 1.0:
        raise DynrnnValueError(f"`level` must be in (0, 1), got {level!r}.")
    n = y.shape[0]
    block = min(block, n)

    def diff(idx):
        return prediction_r2(a[idx], y[idx]) - prediction_r2(b[idx], y[idx])

    rng = np.random.default_rng(seed)
    n_blocks = math.ceil(n / block)
    offsets = np.arange(block)
    draws = np.empty((n_boot, y.shape[1]))
    for i in range(n_boot):
        starts = rng.integers(0, n - block + 1, size=n_blocks)
        draws[i] = diff((starts[:, None] + offsets).reshape(-1)[:n])
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return diff(np.arange(n)), lo, hi
