"""A linear autoregressive model as a latent model: the linear baseline of reconstruction
studies (a vector AR(p) fitted by least squares; Brenner et al., ICML 2022, and Hess et al.,
ICML 2023, report linear models; neuroscience uses it as the forecast baseline).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnValueError, check_positive
from ._base import AbstractObservation, AbstractRegressionModel, constructor_arguments
from ._esn import _check_series, ridge_regression
from ._observation import Identity, make_observation


class LinearAR(AbstractRegressionModel):
    """Linear latent map `z_{t+1} = A z_t + c` whose state holds the last observations,
    `z_t = (x_t, x_{t−1}, …)`: the first `obs` rows of `A` predict the next observation, the
    rest shift the window down. With `latent = p·obs` it is the vector autoregression

        x_{t+1} = c + A_1 x_t + A_2 x_{t−1} + … + A_p x_{t−p+1},

    fitted by (ridge) least squares with `fit_regression`. It starts as the persistence model
    `x_{t+1} = x_t`. The observation is the identity on the first `obs` units.

    **Arguments:**
    - `obs`: observed dimensions (default: `latent`, an AR(1) of the whole state).
    - `latent`: state size (default `2·obs`: an AR(2)); `fit_regression` needs a multiple of
      `obs` (the order is `latent / obs`).
    - `order`: the AR order `p`, instead of `latent` (`latent = p·obs`).
    - `observation`: default `"identity"` (the one `fit_regression` and `state_from` assume;
      others train by gradient only).
    - `key`: PRNG key (of the identity observation's unused initial-state map; the model
      itself starts deterministic); `dtype`: floating dtype.
    """

    A: Float[Array, "latent latent"]
    c: Float[Array, " latent"]
    observation: AbstractObservation
    aliases: ClassVar[tuple[str, ...]] = ("AR", "VAR")

    def __init__(self, *, obs: int | None = None, latent: int | None = None,
                 order: int | None = None, observation=None, key: PRNGKeyArray, dtype=None):
        if obs is None:
            if latent is None:
                raise DynrnnValueError("LinearAR needs `obs` (the data's dimension) or `latent`.")
            obs = latent if order is None else latent // order
        check_positive(obs, "obs", integer=True)
        if order is not None:
            check_positive(order, "order", integer=True)
            if latent is not None and latent != order * obs:
                raise DynrnnValueError(
                    f"`latent` ({latent}) must be order·obs = {order * obs} when both are given."
                )
            latent = order * obs
        latent = 2 * obs if latent is None else latent
        check_positive(latent, "latent", integer=True)
        if latent < obs:
            raise DynrnnValueError(
                f"`latent` must be at least `obs` ({obs}): the state holds the last "
                f"observations, got latent={latent}."
            )
        dtype = dtype or jnp.result_type(float)
        A = np.zeros((latent, latent))
        A[:obs, :obs] = np.eye(obs)  # persistence
        A[obs:, : latent - obs] = np.eye(latent - obs)  # shift the window
        self.A = jnp.asarray(A, dtype)
        self.c = jnp.zeros(latent, dtype)
        observation = "identity" if observation is None else observation
        self.observation = make_observation(observation, obs, latent, key=key, dtype=dtype)

    @property
    def n_inputs(self) -> int:
        return 0

    @property
    def order(self) -> int:
        """Number of past observations in the state (`latent // obs`)."""
        return self.n_latent // self.n_obs

    @property
    def hyperparameters(self) -> dict:
        hp = constructor_arguments(self)
        hp.pop("order", None)  # `latent` says it (and may not be a multiple of `obs`)
        return hp

    @property
    def window(self) -> int:
        return -(-self.n_latent // self.n_obs)

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        return self.A @ z + self.c

    def jacobian(self, z, u=None):
        return self.A

    def init_state(self, x0):
        """The state of a window that repeats `x0`."""
        super().init_state(x0)  # shape check
        return jnp.resize(jnp.asarray(x0), (self.n_latent,))

    def state_from(self, window):
        window = jnp.asarray(window)
        if window.ndim != 2 or window.shape[1] != self.n_obs or window.shape[0] < self.window:
            raise DynrnnValueError(
                f"`window` must have shape (time >= {self.window}, {self.n_obs}), got "
                f"{tuple(window.shape)}."
            )
        # the state of the window's last point, stepped once: its observation is the
        # prediction of the point after the window (as for every regression model)
        return self.step(window[::-1][: self.window].reshape(-1)[: self.n_latent])

    def fit_regression(self, series, *, ridge: float = 0.0) -> LinearAR:
        """The AR(p) model fitted by least squares (`ridge` > 0: ridge regression with an
        unpenalised intercept), `p = latent / obs`, on every window of `series` (or of each
        series of a list).

        **Raises:** `ValueError` when `latent` is not a multiple of `obs`.
        """
        check_positive(ridge, "ridge", strict=False)
        if not isinstance(self.observation, Identity):
            raise DynrnnValueError(
                "fit_regression fits an AR model whose state holds past observations; this "
                f"model has observation={type(self.observation).__name__} (use 'identity')."
            )
        n, p = self.n_obs, self.order
        if p * n != self.n_latent:
            raise DynrnnValueError(
                f"fitting an AR model needs `latent` a multiple of `obs` ({n}), got "
                f"latent={self.n_latent}."
            )
        items = _check_series(series, n, p + 2)
        Z, Y = [], []
        for x in items:
            T = x.shape[0]
            # row t: (x_t, x_{t-1}, ..., x_{t-p+1}) for t = p-1 .. T-2; target x_{t+1}
            Z.append(np.concatenate([x[p - 1 - k: T - 1 - k] for k in range(p)], axis=1))
            Y.append(x[p:])
        W, b = ridge_regression(np.concatenate(Z), np.concatenate(Y), ridge)
        A = np.asarray(self.A, np.float64).copy()
        A[:n] = W.T
        c = np.zeros(self.n_latent)
        c[:n] = b
        dtype = self.A.dtype
        return eqx.tree_at(lambda m: (m.A, m.c), self, (jnp.asarray(A, dtype),
                                                       jnp.asarray(c, dtype)))
