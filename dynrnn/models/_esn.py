"""An echo state network (reservoir computer) as a latent model: the baseline that
reconstruction studies compare against (Pathak et al., Phys. Rev. Lett. 2018; Hess et al.,
ICML 2023, Table 2; Brenner et al., ICML 2022).

Jaeger, "The 'echo state' approach to analysing and training recurrent neural networks", GMD
Report 148, 2001; the leaky-integrator form, the initialisation and the ridge read-out follow
`reservoirpy` (Trouvain et al., ICANN 2020): `Reservoir` and `Ridge(fit_bias=True)` nodes.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnValueError, check_array, check_positive
from ._base import AbstractObservation, AbstractRegressionModel
from ._observation import Affine, make_observation


def _fraction(value, name: str) -> float:
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise DynrnnValueError(f"`{name}` must lie in (0, 1], got {value}.")
    return value


def ridge_regression(states: np.ndarray, targets: np.ndarray, ridge: float):
    """`(W, b)` minimising `‖targets − states W − b‖² + ridge ‖W‖²` with an unpenalised
    intercept (the data are centred first, as `reservoirpy.nodes.Ridge(fit_bias=True)`), in
    float64.

    **Arguments:** `states` `(n, k)`, `targets` `(n, d)`, `ridge` ≥ 0.

    **Returns:** `W` `(k, d)` and `b` `(d,)`.
    """
    X = np.asarray(states, np.float64)
    Y = np.asarray(targets, np.float64)
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    import scipy.linalg

    W = scipy.linalg.solve(Xc.T @ Xc + ridge * np.eye(X.shape[1]), Xc.T @ Yc, assume_a="sym")
    return W, ym - xm @ W


def _check_series(series, n_obs: int, min_len: int) -> list[np.ndarray]:
    items = series if isinstance(series, list | tuple) else [series]
    if not items:
        raise DynrnnValueError("`series` must be a (time, obs) array or a non-empty list of them.")
    return [np.asarray(check_array(s, "series", ndim=2, dims=n_obs, min_len=min_len),
                       np.float64) for s in items]


class EchoStateNetwork(AbstractRegressionModel):
    """Echo state network in closed loop: a fixed random leaky-tanh reservoir whose linear
    read-out is fed back as its next input,

        x̂_t = W_out z_t + b_out
        z_{t+1} = (1 − a) z_t + a · tanh(W z_t + W_in x̂_t + b)

    With data `x_t` in place of `x̂_t` this is the driven reservoir of `reservoirpy`
    (`Reservoir(lr=a)`); `fit_regression` drives it with a training series, drops the first
    `washout` states and fits `W_out`, `b_out` by ridge regression on the next observation.
    `W` is sparse Gaussian (density `connectivity`) scaled to spectral radius
    `spectral_radius`, `W_in` sparse ±`input_scaling` (density `input_connectivity`), as
    reservoirpy's defaults; `b` is uniform in ±`bias_scaling`. Only the read-out is a
    parameter: gradients do not reach `W`, `W_in` or `b`.

    **Arguments:**
    - `latent`: reservoir size (default 300).
    - `obs`: observed dimensions (default `latent`; a data set's when built by
      `dr.models.build` or the command line).
    - `spectral_radius` (0.9), `leak` (`a`, 1.0), `input_scaling` (0.5), `bias_scaling` (0.2),
      `connectivity` (0.1, but at least 8 connections per unit on average),
      `input_connectivity` (1.0).
    - `washout`: states dropped before the read-out is fitted, and the number of observations
      `state_from` reads (default 100).
    - `observation`: the read-out (default `"affine"`, the one `fit_regression` fits; other
      observation models train by gradient only).
    - `key`: PRNG key; `dtype`: floating dtype.
    """

    W: Float[Array, "latent latent"]
    W_in: Float[Array, "latent obs"]
    b: Float[Array, " latent"]
    readout_bias: Float[Array, " obs"]
    observation: AbstractObservation
    aliases: ClassVar[tuple[str, ...]] = ("ESN",)
    spectral_radius: float = eqx.field(static=True)
    leak: float = eqx.field(static=True)
    input_scaling: float = eqx.field(static=True)
    bias_scaling: float = eqx.field(static=True)
    connectivity: float = eqx.field(static=True)
    input_connectivity: float = eqx.field(static=True)
    washout: int = eqx.field(static=True)

    def __init__(self, *, latent: int = 300, obs: int | None = None, spectral_radius: float = 0.9,
                 leak: float = 1.0, input_scaling: float = 0.5, bias_scaling: float = 0.2,
                 connectivity: float = 0.1, input_connectivity: float = 1.0,
                 washout: int = 100, observation=None, key: PRNGKeyArray, dtype=None):
        check_positive(latent, "latent", integer=True)
        obs = latent if obs is None else obs
        check_positive(obs, "obs", integer=True)
        check_positive(spectral_radius, "spectral_radius")
        check_positive(input_scaling, "input_scaling")
        check_positive(bias_scaling, "bias_scaling", strict=False)
        check_positive(washout, "washout", integer=True)
        dtype = dtype or jnp.result_type(float)
        self.leak = _fraction(leak, "leak")
        self.connectivity = _fraction(connectivity, "connectivity")
        self.input_connectivity = _fraction(input_connectivity, "input_connectivity")
        self.spectral_radius = float(spectral_radius)
        self.input_scaling = float(input_scaling)
        self.bias_scaling = float(bias_scaling)
        self.washout = int(washout)
        kw, kmw, ki, kmi, kb, ko = jr.split(key, 6)
        density = min(1.0, max(self.connectivity, 8.0 / latent))
        W = (np.asarray(jr.normal(kw, (latent, latent)), np.float64)
             * np.asarray(jr.bernoulli(kmw, density, (latent, latent))))
        radius = float(np.max(np.abs(np.linalg.eigvals(W)))) if latent > 0 else 0.0
        if radius > 0:
            W = W * (self.spectral_radius / radius)
        W_in = (np.asarray(jr.rademacher(ki, (latent, obs)), np.float64)
                * np.asarray(jr.bernoulli(kmi, self.input_connectivity, (latent, obs))))
        self.W = jnp.asarray(W, dtype)
        self.W_in = jnp.asarray(W_in * self.input_scaling, dtype)
        self.b = jr.uniform(kb, (latent,), dtype, -self.bias_scaling, self.bias_scaling)
        observation = "affine" if observation is None else observation
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)
        self.readout_bias = jnp.zeros(obs, dtype)

    @property
    def n_inputs(self) -> int:
        return 0

    @property
    def window(self) -> int:
        return self.washout

    def _drive(self, z, x):
        W, W_in, b = (jax.lax.stop_gradient(a) for a in (self.W, self.W_in, self.b))
        return (1.0 - self.leak) * z + self.leak * jnp.tanh(W @ z + W_in @ x + b)

    def observe(self, z):
        return self.observation(z) + self.readout_bias

    def init_state(self, x0):
        """A state whose read-out is `x0` (least-squares inverse of the read-out); use
        `state_from` with `window` observations for a state on the reservoir's own orbit."""
        return super().init_state(x0 - self.readout_bias)

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        return self._drive(z, self.observe(z))

    def state_from(self, window):
        window = jnp.asarray(window)
        if window.ndim != 2 or window.shape[1] != self.n_obs:
            raise DynrnnValueError(
                f"`window` must have shape (time, {self.n_obs}), got {tuple(window.shape)}."
            )
        z0 = jnp.zeros(self.n_latent, jnp.result_type(window.dtype, self.W.dtype))
        return jax.lax.scan(lambda z, x: (self._drive(z, x), None), z0, window)[0]

    def states(self, series: Float[Array, "time obs"]) -> Float[Array, "time latent"]:
        """The reservoir driven by `series` from rest: row `t` is the state after reading
        `series[t]` (reservoirpy's `Reservoir.run`)."""
        series = jnp.asarray(series)
        z0 = jnp.zeros(self.n_latent, jnp.result_type(series.dtype, self.W.dtype))

        def body(z, x):
            z = self._drive(z, x)
            return z, z

        return jax.lax.scan(body, z0, series)[1]

    def fit_regression(self, series, *, ridge: float = 1e-6) -> EchoStateNetwork:
        """The network with its read-out fitted by ridge regression: for every series, the
        states after reading `x_0 … x_{T−2}` (the first `washout` dropped) are regressed on
        the next observations `x_1 … x_{T−1}`.

        **Arguments:** `series` `(time, obs)` or a list of them; `ridge` (≥ 0).

        **Returns:** the fitted network.
        """
        check_positive(ridge, "ridge", strict=False)
        if not isinstance(self.observation, Affine):
            raise DynrnnValueError(
                "fit_regression fits an affine read-out; this network has observation="
                f"{type(self.observation).__name__} (build it with observation='affine')."
            )
        items = _check_series(series, self.n_obs, self.washout + 2)
        S, Y = [], []
        for x in items:
            s = np.asarray(self.states(jnp.asarray(x, self.W.dtype)), np.float64)
            S.append(s[self.washout:-1])
            Y.append(x[self.washout + 1:])
        W_out, b_out = ridge_regression(np.concatenate(S), np.concatenate(Y), ridge)
        dtype = self.W.dtype
        model = eqx.tree_at(lambda m: m.observation.B, self, jnp.asarray(W_out.T, dtype))
        return eqx.tree_at(lambda m: m.readout_bias, model, jnp.asarray(b_out, dtype))
