"""n-step prediction error `PE(n)`: how far a model's free run drifts from the data in n steps."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._errors import DynrnnTypeError, DynrnnValueError, check_array, check_positive
from ..models import AbstractLatentModel
from ._stsp import _check_series


@eqx.filter_jit
def _prediction_error(
    model,
    x: Float[Array, "time obs"],
    inputs: Float[Array, "time input"] | None,
    n: int,
    chunk: int,
) -> Float[Array, ""]:
    n_windows = x.shape[0] - n

    def window(t):
        z = model.init_state(x[t])
        if inputs is None:
            z = jax.lax.fori_loop(0, n, lambda _, s: model.step(s), z)
        else:
            # Step i (1-based) lands on time t + i and is driven by the input of that time.
            z = jax.lax.fori_loop(1, n + 1, lambda i, s: model.step(s, inputs[t + i]), z)
        return jnp.mean((model.observe(z) - x[t + n]) ** 2)

    errors = jax.lax.map(window, jnp.arange(n_windows), batch_size=min(chunk, n_windows))
    return jnp.mean(errors)


def prediction_error(
    model,
    x: Float[Array, "time obs"],
    *,
    n: int = 20,
    inputs: Float[Array, "time input"] | None = None,
    chunk: int = 4096,
) -> Float[Array, ""]:
    """n-step-ahead prediction error of a latent model on a series
    (Hess et al. 2023, ICML, Sec. 5; reference implementation GTF-shPLRNN
    `prediction_error.jl`).

    From every time step `t = 0 … T−n−1` the model starts at `z = init_state(x_t)`, runs `n`
    free steps and is compared with the data `n` steps later:

    `PE(n) = mean_{t, d} (observe(F^n(init_state(x_t))) − x_{t+n})²_d`.

    All `T − n` windows run at once (vectorised over `t`, in chunks of `chunk` windows to bound
    memory).

    **Arguments:**
    - `model`: any model with the common interface (`init_state`, `step`, `observe`; see
      `dynrnn.models.AbstractLatentModel`).
    - `x`: the series, `(time, obs)`; a 1-D array is read as one observed dimension.
    - `n`: the prediction horizon in steps (`n >= 1`).
    - `inputs`: external inputs `(time, input)` aligned with `x`; the step that lands on time
      `s` is `model.step(z, inputs[s])`.
    - `chunk`: windows evaluated together.

    **Returns:** the mean squared error, a scalar.

    **Raises:** `DynrnnValueError` when `x` has no more than `n` time steps, is empty or
    non-finite, or its last axis differs from the model's `n_obs`; `DynrnnTypeError` when
    `model` lacks the interface or `x` is not numeric.
    """
    if not isinstance(model, AbstractLatentModel):
        raise DynrnnTypeError(
            "`model` must be a latent model with the common state interface "
            f"(dr.models.AbstractLatentModel), got {type(model).__name__}."
        )
    check_positive(n, "n", integer=True)
    check_positive(chunk, "chunk", integer=True)
    x = _check_series(x, "x", min_len=n + 1)
    n_obs = model.n_obs
    if x.shape[1] != n_obs:
        raise DynrnnValueError(
            f"`x` must have the model's {n_obs} observed dimensions on its last axis, got shape "
            f"{tuple(x.shape)}."
        )
    if inputs is not None:
        inputs = check_array(inputs, "inputs", ndim=2)
        if inputs.shape[0] != x.shape[0]:
            raise DynrnnValueError(
                f"`inputs` must have as many time steps as `x` ({x.shape[0]}), got shape "
                f"{tuple(inputs.shape)}."
            )
        inputs = jnp.asarray(inputs)
    return _prediction_error(model, x, inputs, n, chunk)
