"""The contract every model with a state follows, and the capabilities some of them add.

A latent model is a discrete map on a flat state vector `z` (continuous-time models integrate
over their own `dt` in `step`), plus an observation model that maps states to data and data
back to (part of) the state for teacher forcing:

- `init_state(x0)`: latent state from a first observation;
- `step(z, u=None, *, key=None)`: one step of the map (`u`: external input, `key`: noise of a
  stochastic model; deterministic models ignore it);
- `observe(z)`: the observation model's prediction;
- `jacobian(z, u=None)`: the Jacobian of `step` with respect to `z`;
- `rollout(z0, n_steps, inputs=None, *, engine=Sequential(), key=None)`: the `n_steps` states
  *after* `z0` (time-major), evaluated by an engine from `dynrnn.engines`.

Teacher forcing (`dynrnn.forcing`) uses two more members, which every latent model inherits
from its observation model: `forcing_signal(x)`, the data-inferred latent state `ẑ` (the
observation model's inverse, no gradient), and `partial_forcing`, whether by default only the
first `n_obs` latent units are forced (Hess et al. 2023, Sec. 3; `Identity` with more latent
than observed units) or all of them (`Affine`).

Capabilities are abstract subclasses, checked with `isinstance` (as Diffrax's
`AbstractAdaptiveSolver`): `AbstractStochasticModel` (the step draws noise),
`AbstractDiffraxModel` (the step is a Diffrax solve), `AbstractSolverStatsModel` (the step can
report the solver's own statistics, for `dynrnn.regularizers`),
`AbstractRegressionModel` (fitted in closed form by linear least squares).
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Sequence
from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError
from ..engines import AbstractEngine, Deer, Sequential


class AbstractObservation(eqx.Module):
    """Maps latent states to observations, and observations back to forcing signals.

    Subclasses set `n_obs` and `n_latent` and implement `__call__`, `init_state` and
    `forcing_signal`; `partial_forcing` says whether teacher forcing replaces only the first
    `n_obs` latent units by default.
    """

    n_obs: eqx.AbstractVar[int]
    n_latent: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        """Predicted observation of state `z`."""

    @abc.abstractmethod
    def init_state(self, x0: Float[Array, " obs"]) -> Float[Array, " latent"]:
        """The initial latent state inferred from the first observation (carries gradient)."""

    @abc.abstractmethod
    def forcing_signal(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        """The data-inferred latent state `ẑ` (the observation model's inverse)."""

    @property
    def partial_forcing(self) -> bool:
        """Whether teacher forcing replaces only the first `n_obs` latent units by default."""
        return False

    def penalty(self) -> Float[Array, ""]:
        """Regularisation term of the observation model (0 unless a subclass adds one)."""
        return jnp.zeros(())

    @property
    def hyperparameters(self) -> dict:
        """Constructor keywords that rebuild this observation model (`dr.save`)."""
        return constructor_arguments(self)


def model_dtype(model) -> jnp.dtype | None:
    """The floating dtype of a model's parameters (`None` for a model without any)."""
    leaves = [x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x)]
    return jnp.result_type(*leaves) if leaves else None


# The common vocabulary of constructor keywords and the properties that hold their values.
_VOCABULARY = {"obs": "n_obs", "latent": "n_latent", "inputs": "n_inputs"}


def constructor_arguments(obj) -> dict:
    """The keyword arguments that rebuild `obj`'s structure, read from the instance: for each
    parameter of `type(obj).__init__` (but `key`), the field or property of the same name, or
    for `obs`/`latent`/`inputs` the properties `n_obs`/`n_latent`/`n_inputs`; `dtype` is the
    parameters' dtype. Parameters with a default that the instance does not hold are left out.

    **Raises:** `TypeError` if a required argument cannot be read (the class must then
    override `hyperparameters`).
    """
    cls = type(obj)
    readable = {f.name for f in dataclasses.fields(obj)}
    for klass in cls.__mro__:
        readable |= {n for n, v in vars(klass).items() if isinstance(v, property)}
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "key") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name == "dtype":
            dtype = model_dtype(obj)
            if dtype is not None:
                out[name] = str(jnp.dtype(dtype))
            continue
        attr = name if name in readable else _VOCABULARY.get(name)
        if attr is None or attr not in readable:
            if p.default is p.empty:
                raise DynrnnTypeError(
                    f"{cls.__name__} cannot describe its constructor argument `{name}`: no field "
                    f"or property of that name; override `hyperparameters`."
                )
            continue
        value = object.__getattribute__(obj, attr)
        if callable(value) and not isinstance(value, eqx.Module):
            continue  # a method of the same name (e.g. `state_size(length)`), not a value
        out[name] = value
    return out


class AbstractLatentModel(eqx.Module):
    """A dynamical system model with a flat latent state and an observation model.

    Subclasses implement `step` and `n_inputs` and hold an `observation` (an
    `AbstractObservation`); `init_state`, `observe`, `forcing_signal` and `jacobian` have
    generic implementations here that subclasses may override (with analytic Jacobians, for
    example). `rollout` is final: every family is rolled out by the same code, through an
    engine.
    """

    observation: eqx.AbstractVar[AbstractObservation]
    #: Short names `dr.models.build` also accepts for the family (e.g. `("ESN",)`).
    aliases: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def step(
        self,
        z: Float[Array, " latent"],
        u: Float[Array, " input"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " latent"]:
        """One step of the latent map, `z_t = F(z_{t−1}, u_t)`."""

    @property
    @abc.abstractmethod
    def n_inputs(self) -> int:
        """Number of external inputs `u` a step takes (0: autonomous)."""

    @property
    def n_latent(self) -> int:
        """Length of the flat state vector."""
        return self.observation.n_latent

    @property
    def n_obs(self) -> int:
        """Number of observed dimensions."""
        return self.observation.n_obs

    @property
    def partial_forcing(self) -> bool:
        return self.observation.partial_forcing

    def init_state(self, x0: Float[Array, " obs"]) -> Float[Array, " latent"]:
        if jnp.shape(x0) != (self.n_obs,):
            raise DynrnnValueError(
                f"`x0` must be an observation of shape ({self.n_obs},) for this "
                f"{type(self).__name__}, got shape {tuple(jnp.shape(x0))}."
            )
        return self.observation.init_state(x0)

    def _check_step(self, z, u=None) -> None:
        """Raise a `ValueError` naming `z` or `u` when their shapes do not fit the model.

        Every family calls it first in `step`: the shapes are static, so the check costs
        nothing inside `jit` and catches a wrong size before it reaches JAX's own errors.
        """
        if jnp.shape(z) != (self.n_latent,):
            raise DynrnnValueError(
                f"`z` must be a state of shape ({self.n_latent},) for this "
                f"{type(self).__name__}, got shape {tuple(jnp.shape(z))}."
            )
        if u is not None and jnp.shape(u) != (self.n_inputs,):
            raise DynrnnValueError(
                f"`u` must have shape ({self.n_inputs},): the model takes "
                f"inputs={self.n_inputs}, got shape {tuple(jnp.shape(u))}"
                + ("; build it with inputs=<size> to drive it." if not self.n_inputs else ".")
            )

    def observe(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        return self.observation(z)

    def forcing_signal(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        return self.observation.forcing_signal(x)

    def jacobian(
        self, z: Float[Array, " latent"], u: Float[Array, " input"] | None = None
    ) -> Float[Array, "latent latent"]:
        """`∂ step(z, u) / ∂z`, by forward-mode autodiff unless a subclass has a closed form."""
        return jax.jacfwd(lambda s: self.step(s, u))(z)

    def penalty(self) -> Float[Array, ""]:
        """Regularisation term added to the training loss (0 unless a subclass adds one)."""
        return self.observation.penalty()

    @property
    def hyperparameters(self) -> dict:
        """Constructor keywords that rebuild this model's structure, saved by `dr.save` so
        that `dr.load` needs nothing else (nested observation models and wirings are
        described the same way). The default reads each constructor argument from the field
        or property of the same name (`obs`, `latent`, `inputs` from `n_obs`, `n_latent`,
        `n_inputs`); a family whose constructor arguments are not all readable overrides it.
        """
        return constructor_arguments(self)

    def jacobian_norm_bound(self) -> Float[Array, ""] | None:
        """An upper bound of `‖∂F/∂z‖₂` over the state space, or `None` if unknown.

        Used by the `jacobian_upper_bound` method of adaptive teacher forcing.
        """
        return None

    @final
    def rollout(
        self,
        z0: Float[Array, " latent"],
        n_steps: int,
        inputs: Float[Array, "time input"] | None = None,
        *,
        engine: AbstractEngine = Sequential(),
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time latent"]:
        """The `n_steps` states after `z0`: `[F(z0, u_0), F(F(z0, u_0), u_1), ...]`.

        **Arguments:**
        - `z0`: the state to start from, `(n_latent,)` (not included in the output).
        - `n_steps`: number of steps (a positive integer).
        - `inputs`: `(n_steps, n_inputs)` external inputs; `inputs[t]` drives step `t`.
        - `engine`: `dr.engines.Sequential()` (default) or `dr.engines.Deer(...)` (parallel
          Newton; deterministic models only).
        - `key`: noise of a stochastic model, split into one key per step (default: the
          model's `noise_key`); deterministic models ignore it.

        **Returns:** the states `(n_steps, n_latent)`, in the dtype of `z0` promoted with the
        model's parameters.

        **Raises:** `ValueError` for a state or inputs of the wrong shape or a bad `n_steps`;
        `TypeError` for an engine that is not a `dr.engines` engine, or `Deer` on a
        stochastic model.
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 1:
            raise DynrnnValueError(f"`n_steps` must be a positive integer, got {n_steps!r}.")
        n_steps = int(n_steps)
        if not isinstance(engine, AbstractEngine):
            raise DynrnnTypeError(
                "`engine` must be a dr.engines engine (dr.engines.Sequential() or "
                f"dr.engines.Deer(...)), got {engine!r}."
            )
        z0 = jnp.asarray(z0)
        if z0.shape != (self.n_latent,):
            raise DynrnnValueError(
                f"`z0` must be a state of shape ({self.n_latent},) for this "
                f"{type(self).__name__}, got shape {tuple(z0.shape)}."
            )
        dtype = model_dtype(self)
        if dtype is not None and jnp.issubdtype(z0.dtype, jnp.floating):
            z0 = z0.astype(jnp.result_type(z0.dtype, dtype))
        elif dtype is not None:
            z0 = z0.astype(dtype)
        if inputs is not None:
            inputs = jnp.asarray(inputs)
            if inputs.shape != (n_steps, self.n_inputs):
                raise DynrnnValueError(
                    f"`inputs` must have shape (n_steps, n_inputs) = ({n_steps}, "
                    f"{self.n_inputs}), got shape {tuple(inputs.shape)}."
                )
        keys = None
        if isinstance(self, AbstractStochasticModel):
            if isinstance(engine, Deer):
                raise DynrnnTypeError(
                    f"engine {type(engine).__name__}() needs a deterministic recurrence, but "
                    f"{type(self).__name__} is stochastic; use dr.engines.Sequential()."
                )
            keys = jr.split(self.noise_key if key is None else key, n_steps)
        return _rollout(self, z0, n_steps, inputs, engine, keys)


@eqx.filter_jit
def _rollout(model, z0, n_steps, inputs, engine, keys):
    return engine.run(model.step, z0, n_steps, inputs, keys, model.jacobian)


class AbstractStochasticModel(AbstractLatentModel):
    """A latent model whose step draws noise.

    `step(z, u, key=k)` samples with `k`; `rollout` splits its `key` (default `noise_key`) into
    one key per step. Engines that need a deterministic recurrence (`dr.engines.Deer`) refuse
    such models.
    """

    noise_key: eqx.AbstractVar[PRNGKeyArray]


class AbstractDiffraxModel(AbstractLatentModel):
    """A latent model whose step is a Diffrax solve over its `dt`.

    Adds `solve(z0, ts, u=None, *, needs=(), key=None) -> (states, stats)` over arbitrary
    times. Its `jacobian` is by reverse mode (Diffrax's checkpointed solve has no forward mode).
    """

    dt: eqx.AbstractVar[float]

    @abc.abstractmethod
    def solve(
        self,
        z0: Float[Array, " latent"],
        ts: Float[Array, " time"],
        u: Float[Array, " input"] | None = None,
        *,
        needs: Sequence[str] = (),
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "time latent"], dict[str, Array]]:
        """The states at `ts` (first row `z0`) and the solver statistics."""

    def jacobian(self, z, u=None):
        """`∂ step(z, u)/∂z` by reverse mode."""
        return jax.jacrev(lambda s: self.step(s, u))(z)


class AbstractSolverStatsModel(AbstractLatentModel):
    """A latent model whose step can report the statistics of its adaptive solver
    (`dynrnn.regularizers`)."""

    @abc.abstractmethod
    def step_with_stats(
        self,
        z: Float[Array, " latent"],
        u: Float[Array, " input"] | None = None,
        *,
        needs: Sequence[str],
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, " latent"], dict[str, Array]]:
        """`step` plus the statistics named in `needs` (see `dynrnn.regularizers`)."""

    @abc.abstractmethod
    def check_statistics(self, needs: Sequence[str]) -> None:
        """Raise a `ValueError` naming the model if it cannot provide the statistics `needs`
        (called before training starts)."""


class AbstractRegressionModel(AbstractLatentModel):
    """A latent model fitted in closed form (linear least squares) instead of by gradient
    descent: the baselines of reconstruction studies (echo state networks, linear
    autoregression).

    Adds `fit_regression(series, *, ridge)`, which returns the fitted model, and
    `state_from(window)`, the state after reading the observations `window` `(time, obs)`;
    its observation `observe(state_from(window))` predicts the point after the window.
    `window` (an integer) is how many observations `state_from` should be given. Such models
    still follow the whole latent-model contract (gradient training through `dr.fit` works
    too); `dr.compare` fits them with `fit_regression`.
    """

    @property
    @abc.abstractmethod
    def window(self) -> int:
        """Number of observations `state_from` needs."""

    @abc.abstractmethod
    def state_from(self, window: Float[Array, "time obs"]) -> Float[Array, " latent"]:
        """The state after reading the observations `window`."""

    @abc.abstractmethod
    def fit_regression(self, series, *, ridge: float = 1e-6) -> AbstractRegressionModel:
        """This model with its linear read-out fitted to `series` `(time, obs)` (or a list of
        such series) by ridge regression."""
