"""Latent states driven by data: the GTF blend run over a whole series."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from .._errors import DynrnnValueError, check_array
from ._forcing import gtf_blend


def as_time_major(data, name: str) -> np.ndarray:
    """`data` as a float64 `(time, dims)` array: an array, or a recording/simulation dataset
    (its `activity` or `state` variable, else its first variable, time first)."""
    if isinstance(data, xr.Dataset):
        names = [v for v in ("activity", "state") if v in data.data_vars]
        var = names[0] if names else next(iter(data.data_vars))
        data = data[var].transpose("time", ...).values
    elif isinstance(data, xr.DataArray):
        data = data.transpose("time", ...).values
    return np.asarray(check_array(data, name, ndim=2, min_len=2), np.float64)


def infer_states(model, data, *, alpha: float = 0.5) -> Float[Array, "time latent"]:
    """Latent states driven by data, `z̃_t = (1 − α) F(z̃_{t−1}) + α ẑ_t` on the forced units
    (GTF's blend, `ẑ_t = forcing_signal(x_t)`), from `z̃_0 = init_state(x_0)`.

    **Arguments:**
    - `model`: a latent model (`dynrnn.models.AbstractLatentModel`).
    - `data`: `(time, obs)` array or a recording/simulation `xr.Dataset`.
    - `alpha`: forcing strength in [0, 1] (1: the data's own states; 0: free running).

    **Returns:** `(time, latent)` states as a NumPy array.

    **Raises:** `ValueError` for `alpha` outside [0, 1] or data of the wrong width.
    """
    x = as_time_major(data, "data")
    if not 0.0 <= alpha <= 1.0:
        raise DynrnnValueError(f"`alpha` must be in [0, 1], got {alpha!r}.")
    if x.shape[1] != model.n_obs:
        raise DynrnnValueError(
            f"`data` must have the model's {model.n_obs} observed dimensions, got shape "
            f"{x.shape}."
        )
    return np.asarray(_infer(model, jnp.asarray(x), alpha))


@eqx.filter_jit
def _infer(model, x, alpha):
    return forced_states(model, x, alpha)


def forced_states(model, x, alpha):
    """The forced states of `infer_states` (traceable; `x` in any float dtype)."""
    leaves = [v for v in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(v)]
    if leaves:
        x = x.astype(jnp.result_type(*leaves))
    partial = model.partial_forcing
    n_forced = model.n_obs if partial else model.n_latent

    def body(z, xt):
        new = model.step(z).astype(z.dtype)
        new = gtf_blend(new, model.forcing_signal(xt), alpha, n_forced)
        return new, new

    z0 = model.init_state(x[0])
    _, zs = jax.lax.scan(body, z0, x[1:])
    return jnp.concatenate([z0[None], zs])
