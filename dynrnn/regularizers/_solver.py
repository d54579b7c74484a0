"""Regularisers built from an adaptive solver's own heuristics: its local error estimates
(ERNODE), its stiffness estimates (SRNODE) and the error of one extra step at a random time
(the local variant).

Pal, Ma, Shah, Rackauckas, "Opening the Blackbox: Accelerating Neural Differential Equations by
Regularizing Internal Solver Heuristics", ICML 2021, Eqs. (5)-(7); Pal, Edelman, Rackauckas,
"Locally Regularized Neural Differential Equations: Some Black Boxes Were Meant to Remain
Closed!", ICML 2023, Sec. 3.

## The contract with models and `dr.fit`

A regulariser works with any model that has
`step_with_stats(z, u=None, *, needs, key) -> (z_new, stats)` (`dr.models.NeuralODE`,
`NeuralSDE`): `needs` (the regulariser's `needs` attribute) names the statistics to compute, and
`stats` is a dict of scalars for that one step (`error_integral`, `stiffness_integral`,
`stiffness_max`, `stiffness_sum`, `local_error`, `nfe`, `num_steps`, `num_accepted_steps`,
`num_rejected_steps`). A training loop does, per model step,

```python
z, stats = model.step_with_stats(z, u, needs=regularizer.needs, key=k)   # k: fresh per step
penalty = penalty + regularizer(model, stats)                              # scalar
```

sums the penalties over the steps of a window (the window's trajectory is one solve split at
the observations, so the sum is the trajectory's `Σ_j EEst_j |dt_j|`), averages over the batch
and adds the result to the data loss. `regularizer.check(model)` raises early, before training,
when the model cannot provide what the regulariser needs. For a whole solve
(`model.solve(z0, ts, needs=regularizer.needs)`), `regularizer(model, stats)` applies likewise.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError
from ..models import AbstractSolverStatsModel


class AbstractSolverRegularizer(eqx.Module):
    """A penalty `weight · value(stats)` on the statistics of an adaptive solve.

    Subclasses set `needs` (the statistics they read) and implement `value`.
    """

    weight: eqx.AbstractVar[float | Array]

    @property
    @abc.abstractmethod
    def needs(self) -> tuple[str, ...]:
        """Names of the statistics `step_with_stats`/`solve` must compute."""

    @abc.abstractmethod
    def value(self, stats: dict[str, Array]) -> Float[Array, ""]:
        """The unweighted penalty of one solve."""

    def __call__(self, model, stats: dict[str, Array] | Array) -> Float[Array, ""]:
        """`weight · value(stats)` for the statistics of one step or solve of `model`.

        Given a data batch instead of a statistics dict (`dr.fit`'s generic
        `regularizer(model, batch)` call), the penalty is that of one step from every
        data-inferred state: `mean_windows Σ_t weight · value(stats of step_with_stats(
        init_state(x_t)))` over `t` = all but the last row of each window `(time, obs)`. That
        costs one extra solve per step; a training loop that calls `step_with_stats` in its
        rollout (see the module docstring) regularises the trajectory it trains instead.
        """
        if not isinstance(stats, dict):
            return self._batch_penalty(model, stats)
        missing = [n for n in self.needs if n not in stats]
        if missing:
            raise DynrnnValueError(
                f"`{type(self).__name__}` needs the statistics {list(self.needs)}, but `stats` "
                f"lacks {missing}; call `model.step_with_stats(..., needs=regularizer.needs)`."
            )
        return self.weight * self.value(stats)

    def _batch_penalty(self, model, x) -> Float[Array, ""]:
        self.check(model)
        x = jnp.asarray(x)
        if x.ndim not in (2, 3) or x.shape[-2] < 2:
            raise DynrnnValueError(
                f"`{type(self).__name__}` takes a statistics dict or data windows of shape "
                f"(time, obs) or (batch, time, obs) with time >= 2, got shape {x.shape}."
            )

        def window(xw):
            zs = jax.vmap(model.init_state)(xw[:-1])
            _, stats = jax.vmap(lambda z: model.step_with_stats(z, needs=self.needs))(zs)
            return jnp.sum(self.weight * jax.vmap(self.value)(stats))

        if x.ndim == 2:
            return window(x)
        return jnp.mean(jax.vmap(window)(x))

    def check(self, model) -> None:
        """Raise if `model` cannot provide the statistics (a model without solver statistics,
        or an adjoint that does not differentiate through the solver when stages are
        needed)."""
        if not isinstance(model, AbstractSolverStatsModel):
            raise DynrnnTypeError(
                f"`{type(self).__name__}` regularises an adaptive differential-equation solve; "
                f"the model {type(model).__name__} reports no solver statistics (it is not a "
                "dr.models.AbstractSolverStatsModel with `step_with_stats`; use "
                "dr.models.NeuralODE or NeuralSDE)."
            )
        model.check_statistics(self.needs)

    def __add__(self, other):
        if not isinstance(other, AbstractSolverRegularizer):
            return NotImplemented
        return SumOfRegularizers(self, other)

    def step(
        self, model, z, u=None, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, Float[Array, ""]]:
        """One model step and its weighted penalty: `(z_new, weight · value(stats))`."""
        z_new, stats = model.step_with_stats(z, u, needs=self.needs, key=key)
        return z_new, self(model, stats)


class SolverError(AbstractSolverRegularizer):
    """ERNODE: the local error estimates integrated over the accepted steps,

    `R_E = Σ_j EEst_j |dt_j|`, with `EEst_j = rms(ỹ_j / (atol + rtol·max(|y_{j−1}|, |y_j|)))`

    the scaled error estimate the PID controller accepts (`EEst_j < 1`) or rejects the step by
    (Pal et al. 2021, Eq. 5). The step sizes are constants of the penalty (Diffrax's controller
    stops their gradient); only the estimates carry gradient. Needs discrete sensitivities
    (`RecursiveCheckpointAdjoint` or `DirectAdjoint`); with `BacksolveAdjoint` use
    `LocalSolverError`.

    **Arguments:**
    - `weight`: the penalty weight λ (the paper anneals 100 → 10 on MNIST).
    """

    weight: float | Array

    def __init__(self, weight: float | Array = 1.0):
        self.weight = weight

    @property
    def needs(self) -> tuple[str, ...]:
        return ("error_integral",)

    def value(self, stats):
        return stats["error_integral"]


class Stiffness(AbstractSolverRegularizer):
    """SRNODE: Shampine's stiffness estimate over the accepted steps.

    Per step, for Tsit5 and Dopri5 (stages 6 and 7 both at `c = 1`; `k_i = dt·f_i`,
    `g_6 = y_0 + Σ_{i≤5} a_6i k_i` the argument of stage 6, `y_1` that of stage 7):

    `S_j = rms(k_7 − k_6) / (|dt_j| · rms(y_1 − g_6)) / 3.5068`,

    an estimate of the dominant eigenvalue modulus divided by the size of Tsit5's stability
    region on the negative real axis (Pal et al. 2021, Eq. 7). For other solvers and for SDEs
    (where the drift is used) `S_j = rms(f(t_1, y_1) − f(t_1, y_0)) / rms(y_1 − y_0) / 3.5068`,
    which costs two drift evaluations per step. Aggregation over the steps of a solve:

    - `reduce="sum"` (default): `R_S = Σ_j S_j |dt_j|`, the stiffness integrated over time;
    - `reduce="max"`: `max_j S_j` (the reference code on MNIST and PhysioNet);
    - `reduce="mean"`: `Σ_j S_j / n_accepted` (the reference code on neural SDEs).

    Needs discrete sensitivities, as `SolverError`.

    **Arguments:**
    - `weight`: the penalty weight (the paper: 0.1/3.5068 ≈ 0.0285 on MNIST with `max`).
    - `reduce`: `"sum"`, `"max"` or `"mean"`.
    """

    weight: float | Array
    reduce: str = eqx.field(static=True)

    _NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "sum": ("stiffness_integral",),
        "max": ("stiffness_max",),
        "mean": ("stiffness_sum", "num_accepted_steps"),
    }

    def __init__(self, weight: float | Array = 1.0, *, reduce: str = "sum"):
        if reduce not in self._NEEDS:
            raise DynrnnValueError(
                f"`reduce` must be 'sum', 'max' or 'mean', got {reduce!r}."
            )
        self.weight = weight
        self.reduce = reduce

    @property
    def needs(self) -> tuple[str, ...]:
        return self._NEEDS[self.reduce]

    def value(self, stats):
        if self.reduce == "sum":
            return stats["stiffness_integral"]
        if self.reduce == "max":
            return stats["stiffness_max"]
        n = jnp.maximum(stats["num_accepted_steps"], 1)
        return stats["stiffness_sum"] / n


class LocalSolverError(AbstractSolverRegularizer):
    """The local variant: after the solve, the state at a random time `t_reg ~ U[t0, t1]` is
    interpolated from the solution and one fresh Tsit5 step of size `dt_reg` is taken from it;

    `R = EEst(t_reg, u(t_reg), dt_reg) · |dt_reg|`

    (Pal, Edelman, Rackauckas 2023, Sec. 3). Because the step is taken outside the solve, its
    gradient reaches the parameters through `u(t_reg)` with any adjoint, `BacksolveAdjoint`
    included. `dt_reg = (t1 − t0)/n_accepted` (the solve's mean accepted step, no gradient):
    Tsit5's initial-step heuristic gives steps so small that `R` vanishes (≈ 1e-11). The key
    passed to `step_with_stats`/`solve` draws `t_reg`; without one, `NeuralODE` uses the
    interval's midpoint. Costs 7 evaluations per solve (counted in `nfe`). For SDEs the step
    integrates the drift.

    **Arguments:**
    - `weight`: the penalty weight (the paper anneals 2.5 → 1.0 on MNIST).
    """

    weight: float | Array

    def __init__(self, weight: float | Array = 1.0):
        self.weight = weight

    @property
    def needs(self) -> tuple[str, ...]:
        return ("local_error",)

    def value(self, stats):
        return stats["local_error"]


class SumOfRegularizers(AbstractSolverRegularizer):
    """The sum of several solver regularisers (`SolverError(10.) + Stiffness(0.1)`); its
    `weight` multiplies the sum."""

    terms: tuple[AbstractSolverRegularizer, ...]
    weight: float | Array

    def __init__(self, *terms: AbstractSolverRegularizer, weight: float | Array = 1.0):
        flat = []
        for t in terms:
            if not isinstance(t, AbstractSolverRegularizer):
                raise DynrnnTypeError(
                    f"`SumOfRegularizers` takes solver regularisers, got {type(t).__name__}."
                )
            flat.extend(t.terms if isinstance(t, SumOfRegularizers) else (t,))
        self.terms = tuple(flat)
        self.weight = weight

    @property
    def needs(self) -> tuple[str, ...]:
        out: list[str] = []
        for t in self.terms:
            out.extend(n for n in t.needs if n not in out)
        return tuple(out)

    def value(self, stats):
        return sum(t(None, stats) for t in self.terms)
