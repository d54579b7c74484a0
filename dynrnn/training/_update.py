"""The training step, in Optax's `init`/`update` style: pure and jittable, shared by `dr.fit`
(one model) and `dr.fit_ensemble` (`jax.vmap` over members).

`trainer(objective, optimizer, static)` returns `Trainer(init, update)`:

- `init(params) -> TrainState` (optimiser state, objective state, divergence marker);
- `update(params, state, batch, key, step) -> (params, state, logs)`: the objective's state
  update, the loss and its gradient (data parallel over a device mesh when one is given), the
  optimiser step, and the NaN guard: an update whose loss or parameters are not finite is not
  applied and `state.stop` records its index; later updates are not applied either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PyTree

from .._errors import DynrnnValueError
from ._parallel import data_parallel


class TrainState(eqx.Module):
    """What changes between updates besides the parameters."""

    opt_state: PyTree
    objective: PyTree
    stop: Int[Array, ""]  # index of the update that diverged, or -1


class Trainer(NamedTuple):
    """A pure training step: `init(params)`, `update(params, state, batch, key, step)`."""

    init: Callable
    update: Callable


class DecayState(NamedTuple):
    """State of `scale_by_decay`: the update count, the start and final rates (settable per
    member of an ensemble with `set_learning_rate`) and the rate of the last update."""

    count: Array
    learning_rate: Array
    final_learning_rate: Array
    current_learning_rate: Array


def _rate(shape: str, start, final, count, n_steps: int):
    if shape == "staircase":
        # Falls by a constant factor every 50 updates, to `final` after `n_steps`.
        frac = jnp.floor(count / 50) / max(n_steps / 50.0, 1.0)
        return jnp.maximum(start * jnp.exp(jnp.log(final / start) * frac), final)
    frac = jnp.minimum(count, n_steps) / n_steps
    return final + (start - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def scale_by_decay(learning_rate: float, final_learning_rate: float, n_steps: int,
                   shape: str = "staircase") -> optax.GradientTransformation:
    """Scale updates by `−rate(count)`, decaying from `learning_rate` to `final_learning_rate`
    over `n_steps` updates: `"staircase"` (exponential, one step every 50 updates, as the GTF
    reference code) or `"cosine"`."""
    if shape not in ("staircase", "cosine"):
        raise DynrnnValueError(f"`shape` must be 'staircase' or 'cosine', got {shape!r}.")

    def init(params):
        dtype = jnp.result_type(*jax.tree.leaves(params)) if jax.tree.leaves(params) else None
        lr = jnp.asarray(learning_rate, dtype)
        return DecayState(jnp.zeros((), jnp.int32), lr, jnp.asarray(final_learning_rate, dtype),
                          lr)

    def update(updates, state, params=None):
        rate = _rate(shape, state.learning_rate, state.final_learning_rate, state.count,
                     n_steps)
        updates = jax.tree.map(lambda u: (-rate * u).astype(u.dtype), updates)
        return updates, DecayState(state.count + 1, state.learning_rate,
                                   state.final_learning_rate, rate)

    return optax.GradientTransformation(init, update)


def _check_rates(learning_rate, final_learning_rate):
    for name, v in (("learning_rate", learning_rate), ("final_learning_rate",
                                                        final_learning_rate)):
        if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise DynrnnValueError(f"`{name}` must be a finite number > 0, got {v!r}.")
    if final_learning_rate > learning_rate:
        raise DynrnnValueError(
            f"`final_learning_rate`={final_learning_rate} must not exceed `learning_rate`="
            f"{learning_rate}."
        )


def default_optimizer(n_steps: int, learning_rate: float = 1e-3,
                      final_learning_rate: float = 1e-6) -> optax.GradientTransformation:
    """The optimiser of teacher-forced reconstruction: RAdam (β 0.9/0.999, ε 1e-8) with the
    reference's staircase exponential decay, the rate falling by a constant factor every 50
    updates from `learning_rate` to `final_learning_rate` at the end of the run (Hess et al.
    2023: 1e-3 → 1e-6 over 5 000 epochs of 50 batches).

    The rates are state (`DecayState`), so each member of an ensemble can have its own
    (`set_learning_rate`). Supervised objectives default to Adam with a cosine decay
    (`Supervised.default_optimizer`).

    **Raises:** `ValueError` for rates that are not finite and positive or `final > start`.
    """
    _check_rates(learning_rate, final_learning_rate)
    return optax.chain(optax.scale_by_radam(b1=0.9, b2=0.999, eps=1e-8),
                       scale_by_decay(learning_rate, final_learning_rate, n_steps, "staircase"))


def cosine_adam(n_steps: int, learning_rate: float = 1e-3,
                final_learning_rate: float = 1e-5) -> optax.GradientTransformation:
    """Adam with a cosine decay from `learning_rate` to `final_learning_rate` over `n_steps`."""
    _check_rates(learning_rate, final_learning_rate)
    return optax.chain(optax.scale_by_adam(),
                       scale_by_decay(learning_rate, final_learning_rate, n_steps, "cosine"))


def set_learning_rate(opt_state: PyTree, learning_rate, final_learning_rate) -> PyTree:
    """The state of a `scale_by_decay` optimiser with other start and final rates."""
    return optax.tree_utils.tree_set(
        opt_state, learning_rate=learning_rate, final_learning_rate=final_learning_rate,
        current_learning_rate=learning_rate)


def current_learning_rate(opt_state: PyTree, dtype) -> Array:
    """The rate of the last update of a `scale_by_decay` optimiser (NaN for others)."""
    value = optax.tree_utils.tree_get(opt_state, "current_learning_rate")
    return jnp.asarray(jnp.nan if value is None else value, dtype)


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(pred, a, b):
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


def trainer(objective, optimizer: optax.GradientTransformation, static,
            *, mesh: jax.sharding.Mesh | None = None) -> Trainer:
    """The training step of `objective` with `optimizer` for models `combine(params, static)`.

    With a `mesh` (axis `"batch"`), each device differentiates the data loss of its slice of
    the batch and the gradients are averaged in one buffer (`data_parallel`); `extra_loss` is
    evaluated once on the whole batch. A callable supervised loss gets a different key on
    each device (`fold_in` of the device index).
    """

    def data_loss(p, batch, obj_state, key):
        return objective.loss(eqx.combine(p, static), batch, obj_state, key)

    def extra_loss(p, batch):
        return objective.extra_loss(eqx.combine(p, static), batch)

    if mesh is not None:
        def shard_loss(p, batch, obj_state, key):
            return data_loss(p, batch, obj_state, jax.random.fold_in(
                key, jax.lax.axis_index("batch")))

        sharded = data_parallel(jax.value_and_grad(shard_loss), mesh, n_sharded=1)

    def value_and_grad(p, batch, obj_state, key):
        if mesh is None:
            return jax.value_and_grad(lambda q: data_loss(q, batch, obj_state, key)
                                      + extra_loss(q, batch))(p)
        v1, g1 = sharded(p, batch, obj_state, key)
        v2, g2 = jax.value_and_grad(extra_loss)(p, batch)
        return v1 + v2, jax.tree.map(jnp.add, g1, g2)

    def init(params) -> TrainState:
        model = eqx.combine(params, static)
        return TrainState(optimizer.init(params), objective.init_state(model),
                          jnp.asarray(-1, jax.dtypes.canonicalize_dtype(jnp.int64)))

    def update(params, state: TrainState, batch, key, step):
        model = eqx.combine(params, static)
        obj_state = objective.update_state(model, state.objective, batch, step)
        value, grads = value_and_grad(params, batch, obj_state, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
        new_params = eqx.apply_updates(params, updates)
        running = state.stop < 0
        ok = jnp.isfinite(value) & _all_finite(new_params)
        accept = running & ok
        new = TrainState(opt_state, obj_state, jnp.where(running & ~ok, step, state.stop))
        params = _select(accept, new_params, params)
        state = _select(accept, new, eqx.tree_at(lambda s: s.stop, state, new.stop))
        return params, state, value

    return Trainer(init, update)
