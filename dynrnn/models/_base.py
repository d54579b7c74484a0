"""The common interface of every model with a state.

A latent model is a discrete map on a flat state vector `z` (continuous-time models integrate
over their own `dt` in `step`), plus an observation model that maps states to data and data
back to (part of) the state for teacher forcing:

- `init_state(x0)`: latent state from a first observation;
- `step(z, u=None)`: one step of the map;
- `observe(z)`: the observation model's prediction;
- `rollout(z, n_steps, inputs=None)`: the `n_steps` states *after* `z` (time-major);
- `jacobian(z)`: the Jacobian of `step` with respect to `z`.

Teacher forcing (`dynrnn.GTF`, `dynrnn.STF`) uses two more members, which every latent model
inherits from its observation model: `forcing_signal(x)`, the data-inferred latent state `ẑ`
(the observation model's inverse, no gradient), and `partial_forcing`, whether by default only
the first `n_obs` latent units are forced (Hess et al. 2023, Sec. 3; `Identity` with more latent
than observed units) or all of them (`Affine`).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


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


class AbstractLatentModel(eqx.Module):
    """A dynamical system model with a flat latent state and an observation model.

    Subclasses implement `step` and hold an `observation` (an `AbstractObservation`);
    `init_state`, `observe`, `forcing_signal`, `rollout` and `jacobian` have generic
    implementations here that subclasses may override (for example with analytic Jacobians).
    """

    observation: eqx.AbstractVar[AbstractObservation]

    @abc.abstractmethod
    def step(self, z: Float[Array, " latent"], u: Float[Array, " input"] | None = None):
        """One step of the latent map, `z_t = F(z_{t-1}) + C u_t`."""

    @property
    def n_latent(self) -> int:
        return self.observation.n_latent

    @property
    def n_obs(self) -> int:
        return self.observation.n_obs

    @property
    def partial_forcing(self) -> bool:
        return self.observation.partial_forcing

    def init_state(self, x0: Float[Array, " obs"]) -> Float[Array, " latent"]:
        return self.observation.init_state(x0)

    def observe(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        return self.observation(z)

    def forcing_signal(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        return self.observation.forcing_signal(x)

    def rollout(
        self,
        z: Float[Array, " latent"],
        n_steps: int,
        inputs: Float[Array, "time input"] | None = None,
        *,
        engine: str = "sequential",
        **engine_options,
    ) -> Float[Array, "time latent"]:
        """The `n_steps` states after `z`: `[F(z, u_0), F(F(z, u_0), u_1), ...]`.

        **Arguments:**
        - `z`: the state to start from (not included in the output).
        - `n_steps`: number of steps.
        - `inputs`: `(n_steps, input)` external inputs; `inputs[t]` drives step `t`.
        - `engine`: `"sequential"` (`lax.scan`) or `"deer"` (parallel Newton evaluation with
          `dynrnn.scan.deer`; falls back to the sequential scan
          with a warning when Newton does not converge, e.g. on chaotic orbits).
        - `**engine_options`: passed to `dynrnn.scan.deer` (`tol`, `max_iter`, `jacobian`,
          `damping`, ...).
        """
        if engine == "deer":
            from ..scan import deer

            options = dict(engine_options)
            # The bound method (an Equinox pytree) lets `deer` reuse its compiled solve.
            states, _ = deer(
                self.step, z, inputs,
                length=None if inputs is not None else n_steps, **options,
            )
            return states
        if engine != "sequential":
            from .._errors import DynrnnValueError

            raise DynrnnValueError(
                f"`engine` must be 'sequential' or 'deer', got {engine!r}."
            )

        def body(state, u):
            new = self.step(state, u)
            return new, new

        if inputs is None:
            _, states = jax.lax.scan(lambda s, _: body(s, None), z, None, length=n_steps)
        else:
            _, states = jax.lax.scan(body, z, inputs)
        return states

    def jacobian(self, z: Float[Array, " latent"], u=None) -> Float[Array, "latent latent"]:
        """`∂ step(z, u) / ∂z`, by forward-mode autodiff unless a subclass has a closed form."""
        return jax.jacfwd(lambda s: self.step(s, u))(z)

    def penalty(self) -> Float[Array, ""]:
        """Regularisation term added to the training loss (0 unless a subclass adds one)."""
        return self.observation.penalty()

    def jacobian_norm_bound(self) -> Float[Array, ""] | None:
        """An upper bound of `‖∂F/∂z‖₂` over the state space, or `None` if unknown.

        Used by the `jacobian_upper_bound` method of adaptive teacher forcing.
        """
        return None
