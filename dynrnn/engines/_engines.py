"""Engines that evaluate `z_t = F(z_{t−1}, u_t)` for `t = 1 … T`.

An engine receives the model's `step(z, u, *, key)`, the start state, the number of steps, the
inputs `(T, input)` or `None`, one PRNG key per step (stochastic models) or `None`, and the
model's `jacobian(z, u)`, and returns the `T` states after the start state.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError
from ..scan import deer


class _Deterministic(eqx.Module):
    """`step(z, u)` without noise, keeping the dtype of `z` (a pytree: `dynrnn.scan.deer`
    differentiates through the arrays the step holds)."""

    step: Callable

    def __call__(self, z, u):
        return self.step(z, u, key=None).astype(z.dtype)


class AbstractEngine(eqx.Module):
    """Evaluates a recurrence over `n_steps` steps; see `dynrnn.engines`."""

    @abc.abstractmethod
    def run(
        self,
        step: Callable,
        z0: Float[Array, " latent"],
        n_steps: int,
        inputs: Float[Array, "time input"] | None,
        keys: PRNGKeyArray | None,
        jacobian: Callable,
    ) -> Float[Array, "time latent"]:
        """The `n_steps` states after `z0`; `inputs[t]` and `keys[t]` drive step `t`."""


class Sequential(AbstractEngine):
    """One step after the other (`jax.lax.scan`): `T` sequential steps, any model.

    Each new state keeps the dtype of `z0`.
    """

    def run(self, step, z0, n_steps, inputs, keys, jacobian):
        def body(z, xs):
            u, k = xs
            new = step(z, u, key=k).astype(z.dtype)
            return new, new

        if inputs is None and keys is None:
            _, states = jax.lax.scan(lambda z, _: body(z, (None, None)), z0, None,
                                     length=n_steps)
        else:
            _, states = jax.lax.scan(body, z0, (inputs, keys), length=n_steps)
        return states


class Deer(AbstractEngine):
    """All steps at once by parallel Newton iterations on the whole trajectory (DEER;
    Lim et al., ICLR 2024), through `dynrnn.scan.deer`.

    Each iteration linearises every step around the current guess of the trajectory and solves
    the linear recurrence with a parallel scan; it converges to the sequential result (to the
    tolerance) in a few iterations for contracting or short trajectories. On chaotic orbits
    over long horizons Newton may not converge: the sequential result is then returned and a
    `dynrnn.scan.DeerNotConvergedWarning` emitted (`fallback=True`).

    **Arguments:**
    - `tol`: `None` (per-dtype defaults of `dynrnn.scan.deer`: float64 rtol 1e-8, atol 1e-10),
      a number, or `(rtol, atol)`.
    - `max_iter`: most Newton iterations (default 100).
    - `jacobian`: `"model"` (default: the model's own `jacobian(z, u)`, closed forms where a
      family has them and reverse mode for Diffrax solves), `"full"` (forward-mode `jax.jacfwd`
      of `step`) or `"diagonal"` (quasi-DEER: only the diagonal, O(T D) memory).
    - `damping`: `None` or λ ≥ 0 (damped Newton; see `dynrnn.scan.deer`).
    - `fallback`: return the sequential result when Newton does not converge.

    Only deterministic recurrences: a stochastic model (`dynrnn.models.AbstractStochasticModel`)
    is refused by `rollout`.
    """

    tol: float | tuple[float, float] | None = eqx.field(static=True, default=None)
    max_iter: int | None = eqx.field(static=True, default=None)
    jacobian: Literal["model", "full", "diagonal"] = eqx.field(static=True, default="model")
    damping: float | None = eqx.field(static=True, default=None)
    fallback: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.jacobian not in ("model", "full", "diagonal"):
            raise DynrnnValueError(
                f"`Deer(jacobian=...)` must be 'model', 'full' or 'diagonal', got "
                f"{self.jacobian!r}."
            )

    def run(self, step, z0, n_steps, inputs, keys, jacobian):
        if keys is not None:
            raise DynrnnTypeError(
                "engine Deer() evaluates a deterministic recurrence by Newton iterations and "
                "cannot take per-step noise keys (the model is stochastic); use "
                "engine=dr.engines.Sequential()."
            )
        jac = jacobian if self.jacobian == "model" else self.jacobian
        states, _ = deer(
            _Deterministic(step), z0, inputs,
            length=n_steps if inputs is None else None, tol=self.tol, max_iter=self.max_iter,
            jacobian=jac, damping=self.damping, fallback=self.fallback,
        )
        return states
