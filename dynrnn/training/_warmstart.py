"""A shallow PLRNN started at the least-squares linear autoregression (a warm start for
training with the prediction objective, `dr.training.PredictionLoss`).

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

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from ..forcing._infer import as_time_major
from ..metrics import fit_ar
from ..models import Identity, ShallowPLRNN


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
    x = as_time_major(data, "data")
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
