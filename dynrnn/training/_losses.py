"""Training losses beyond the teacher-forced reconstruction error."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnValueError, check_positive
from ..forcing._infer import as_time_major, forced_states


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
            x = as_time_major(s, f"data[{i}]")
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
            z = forced_states(model, w, self.alpha)[-1]
            pred = jax.vmap(model.observe)(model.rollout(z, self.horizon))
            return jnp.mean((pred - y) ** 2)

        return jnp.mean(jax.vmap(one)(inputs, targets))
