"""Latent ODE for irregularly sampled multivariate series: a GRU runs backwards over the
observations (with their time gaps and missingness mask) to an initial latent state `z0`, a
neural ODE carries `z0` to every observation time, and a decoder maps states to observations.

Rubanova, Chen, Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series", NeurIPS 2019,
Sec. 3 (the RNN encoder with time gaps of their baselines; `vae=True` gives the variational
model of their Eq. 3 with a standard-normal prior on `z0`).
"""

from __future__ import annotations

from collections.abc import Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_positive
from . import solve as _diffeq
from .base import MLPVectorField, check_adaptive_solver, check_needs as _check_needs


def _mask_like(x, mask):
    if mask is None:
        return jnp.ones_like(x)
    if jnp.shape(mask) != jnp.shape(x):
        raise DynrnnValueError(
            f"`mask` must have the shape of `x` {tuple(jnp.shape(x))}, got "
            f"{tuple(jnp.shape(mask))}."
        )
    return jnp.asarray(mask, x.dtype)


class LatentODE(eqx.Module):
    """Encoder (backward GRU over `[x_i·m_i, m_i, t_{i+1} − t_i]`) → `z0` → ODE → decoder.

    `model(ts, x, mask)` reconstructs a series at its own times; `model.predict(ts, x, mask,
    ts_query)` encodes the observed part and decodes at other times (interpolation and
    extrapolation). Times are per series, strictly increasing; missing entries have mask 0 (their
    values are ignored). Batches: `jax.vmap` over series of equal length (pad with masked rows at
    increasing times).

    **Arguments:**
    - `obs`: observed dimensions; `latent`: latent ODE dimensions; `hidden`: GRU units.
    - `width`, `depth`: the ODE's MLP vector field (`tanh`); the decoder is an MLP with one
      hidden layer of `width` units.
    - `vae`: encode to a Gaussian `q(z0)` (mean and log-std) instead of a point.
    - `solver`, `rtol`, `atol`, `max_steps`, `adjoint`: as `NeuralODE`.
    - `key`: PRNG key.
    """

    encoder: eqx.nn.GRUCell
    to_latent: eqx.nn.Linear
    vector_field: MLPVectorField
    decoder: eqx.nn.MLP
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)
    vae: bool = eqx.field(static=True)
    solver: dfx.AbstractAdaptiveSolver = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: dfx.AbstractAdjoint = eqx.field(static=True)

    def __init__(
        self,
        obs: int,
        latent: int,
        *,
        hidden: int = 32,
        width: int = 64,
        depth: int = 2,
        vae: bool = False,
        solver: dfx.AbstractAdaptiveSolver = dfx.Tsit5(),
        rtol: float = 1e-3,
        atol: float = 1e-4,
        max_steps: int = 4096,
        adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
        key: PRNGKeyArray,
    ):
        for name, v in (("obs", obs), ("latent", latent), ("hidden", hidden), ("width", width),
                        ("max_steps", max_steps)):
            check_positive(v, name, integer=True)
        check_positive(depth, "depth", integer=True, strict=False)
        check_positive(rtol, "rtol")
        check_positive(atol, "atol")
        check_adaptive_solver(solver)
        ke, kl, kf, kd = jr.split(key, 4)
        self.encoder = eqx.nn.GRUCell(2 * obs + 1, hidden, key=ke)
        self.to_latent = eqx.nn.Linear(hidden, 2 * latent if vae else latent, key=kl)
        self.vector_field = MLPVectorField(latent, width, depth, key=kf)
        self.decoder = eqx.nn.MLP(latent, obs, width, 1, activation=jnp.tanh, key=kd)
        self.n_obs = obs
        self.n_latent = latent
        self.vae = bool(vae)
        self.solver = solver
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.adjoint = adjoint

    def encode(
        self, ts: Float[Array, " time"], x: Float[Array, "time obs"], mask=None
    ) -> tuple[Float[Array, " latent"], Float[Array, " latent"] | None]:
        """`(mean, log_std)` of `q(z0)` (`log_std` is `None` unless `vae`)."""
        m = _mask_like(x, mask)
        gaps = jnp.concatenate([jnp.diff(ts), jnp.zeros((1,), ts.dtype)])
        inputs = jnp.concatenate([x * m, m, gaps[:, None]], axis=-1)
        h0 = jnp.zeros((self.encoder.hidden_size,), x.dtype)

        def body(h, inp):
            return self.encoder(inp, h), None

        h, _ = jax.lax.scan(body, h0, inputs, reverse=True)
        out = self.to_latent(h)
        if self.vae:
            return out[: self.n_latent], out[self.n_latent :]
        return out, None

    def _z0(self, ts, x, mask, key):
        mean, log_std = self.encode(ts, x, mask)
        if log_std is None or key is None:
            return mean, mean, log_std
        return mean + jnp.exp(log_std) * jr.normal(key, mean.shape, mean.dtype), mean, log_std

    def solve(self, z0, ts, *, needs: Sequence[str] = (), key: PRNGKeyArray | None = None):
        """The latent trajectory from `z0` at `ts[0]` and the solver statistics (as
        `NeuralODE.solve`, inside JIT the errors are Equinox runtime errors)."""
        needs = _check_needs(needs)
        t_reg = None if key is None else jr.uniform(key, (), ts.dtype, ts[0], ts[-1])
        ys, stats, result = _diffeq.solve(
            dfx.ODETerm(self.vector_field), self.solver, ts, z0, None,
            rtol=self.rtol, atol=self.atol, max_steps=self.max_steps, adjoint=self.adjoint,
            needs=needs, t_reg=t_reg, model_name=type(self).__name__,
        )
        return _diffeq.check_result(ys, result, self.max_steps, type(self).__name__), stats

    def __call__(self, ts, x, mask=None, *, key: PRNGKeyArray | None = None):
        """Reconstruction `(time, obs)` of `x` at `ts` (from the mean of `q(z0)` unless a key is
        given to sample it)."""
        return self.predict(ts, x, mask, ts, key=key)

    def loss(self, ts, x, mask=None, *, key=None, kl_weight: float = 1.0, regularizer=None):
        """`latent_ode_loss(model, ts, x, mask, ...)`; also callable as
        `LatentODE.loss(model, ts, x, mask)`."""
        return latent_ode_loss(
            self, ts, x, mask, key=key, kl_weight=kl_weight, regularizer=regularizer
        )

    def predict(self, ts, x, mask, ts_query, *, key: PRNGKeyArray | None = None):
        """Encode `(ts, x, mask)`, decode at `ts_query` (increasing, `ts_query[0] = ts[0]` or
        later; the solve starts at `ts[0]`)."""
        z0, _, _ = self._z0(ts, x, mask, key)
        t_all = jnp.concatenate([ts[:1], ts_query])
        zs, _ = self.solve(z0, t_all)
        return jax.vmap(self.decoder)(zs[1:])


def latent_ode_loss(
    model: LatentODE,
    ts: Float[Array, " time"],
    x: Float[Array, "time obs"],
    mask=None,
    *,
    key: PRNGKeyArray | None = None,
    kl_weight: float = 1.0,
    regularizer=None,
) -> Float[Array, ""]:
    """Masked mean squared reconstruction error of one series, plus for `vae` models
    `kl_weight · KL(q(z0) ‖ N(0, I)) / n_observed`, plus `regularizer(model, stats)` of the
    latent solve if a solver regulariser (`dr.regularizers.SolverError`, ...) is given.

    `key` samples `z0` (VAE) and the regulariser's random time; batches: `jax.vmap` and average.
    """
    m = _mask_like(x, mask)
    kz, kr = (None, None) if key is None else jr.split(key)
    z0, mean, log_std = model._z0(ts, x, m, kz)
    needs = () if regularizer is None else regularizer.needs
    zs, stats = model.solve(z0, ts, needs=needs, key=kr)
    xhat = jax.vmap(model.decoder)(zs)
    n = jnp.maximum(jnp.sum(m), 1.0)
    loss = jnp.sum(m * (xhat - x) ** 2) / n
    if log_std is not None:
        kl = 0.5 * jnp.sum(mean**2 + jnp.exp(2 * log_std) - 1.0 - 2 * log_std)
        loss = loss + kl_weight * kl / n
    if regularizer is not None:
        loss = loss + regularizer(model, stats)
    return loss
