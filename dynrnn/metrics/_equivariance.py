"""Flow equivariance of sequence models on periodic grids.

Keller, "Flow Equivariant Recurrent Neural Networks", arXiv:2507.14793 (2025), Def. 3.1 and
Thm. 4.1. The reference implementation has no such measure; this one tests the theorem directly.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._errors import DynrnnTypeError, DynrnnValueError, is_array
from ..models import AbstractFrameRNN, FlowEquivariantRNN


class TranslationFlow(eqx.Module):
    """A translation flow with constant integer velocity `ν̂` on a periodic grid.

    Acting on a sequence, it rolls frame `t` (0-based) by `t·ν̂`: `(T f)_t = T_{tν̂} f_t`, the
    content moving by `+ν̂` per step; component `i` of `ν̂` acts on grid axis `i` (array order),
    and the grid axes are the last `len(ν̂)` axes.

    **Arguments:**
    - `velocity`: an integer (1-D) or a sequence of integers (one per grid axis).

    **Raises:** `DynrnnValueError` for an empty or non-integer velocity.
    """

    velocity: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, velocity):
        vec = np.atleast_1d(np.asarray(velocity))
        if vec.ndim != 1 or vec.size == 0 or vec.size > 3:
            raise DynrnnValueError(
                f"`velocity` must be an integer or a vector of 1-3 integers, got {velocity!r}."
            )
        if vec.dtype.kind not in "iu" and not np.all(vec == np.round(vec)):
            raise DynrnnValueError(f"`velocity` must have integer components, got {velocity!r}.")
        self.velocity = tuple(int(c) for c in vec)

    @property
    def spatial_dims(self) -> int:
        return len(self.velocity)

    def shift(self, x: Array, t) -> Array:
        """`T_{tν̂} x`: roll the last `spatial_dims` axes of `x` by `t·ν̂` (`t` may be traced)."""
        axes = tuple(range(x.ndim - self.spatial_dims, x.ndim))
        return jnp.roll(x, tuple(t * c for c in self.velocity), axis=axes)

    def __call__(self, seq: Float[Array, "time ..."]) -> Float[Array, "time ..."]:
        """Apply the flow to a time-major sequence: frame `t` is rolled by `t·ν̂`."""
        return jax.vmap(self.shift)(seq, jnp.arange(seq.shape[0]))


def _relative_error(a, b, batched):
    axes = tuple(range(2 if batched else 1, a.ndim))
    num = jnp.sqrt(jnp.sum((a - b) ** 2, axis=axes))
    den = jnp.sqrt(jnp.sum(a**2, axis=axes))
    if batched:  # norms over the whole batch, per time step
        num = jnp.sqrt(jnp.sum(num**2, axis=0))
        den = jnp.sqrt(jnp.sum(den**2, axis=0))
    return num / jnp.where(den > 0, den, 1.0)


def equivariance_error(
    model: Callable,
    inputs: Float[Array, "*batch time channels *grid"],
    flow: TranslationFlow,
    *,
    lifted: bool | None = None,
) -> Float[Array, " time"]:
    """Relative flow-equivariance error of a sequence model, per time step.

    For a model with a velocity axis (`model.lifted(frames)` of shape `(time, |V|, C, *grid)` and
    `model.velocities`), on the interior velocities `ν` (those with `ν − ν̂ ∈ V`):

        e_t = ‖h_t[T f](ν) − T_{tν̂} h_t[f](ν − ν̂)‖ / ‖h_t[T f](ν)‖,

    the norms taken over all interior `ν`, channels and grid points (Keller 2025, Thm. 4.1: zero
    for a flow-equivariant RNN when `ν̂ ∈ V`). Otherwise, on the model's output `y = model(f)` of
    shape `(time, C, *grid)`: `e_t = ‖y_t[T f] − T_{tν̂} y_t[f]‖ / ‖y_t[T f]‖`. `0/0` counts as 0.

    **Arguments:**
    - `model`: a callable `(time, channels, *grid) -> (time, C, *grid)`, for example
      `dynrnn.models.FlowEquivariantRNN`, `FrameRNN` or any sequence model on a grid.
    - `inputs`: one sequence `(time, channels, *grid)` or a batch `(batch, time, channels, *grid)`
      (the norms then run over the batch too).
    - `flow`: a `TranslationFlow`; its number of components is the number of grid axes.
    - `lifted`: compare the lifted hidden states (default: whenever the model has `lifted`),
      or the pooled outputs (`False`, for example for the G-RNN, whose `V = {0}`).

    **Returns:** the errors `e_t`, shape `(time,)`.

    **Raises:** `DynrnnTypeError` if `flow` is not a `TranslationFlow` or `lifted=True` for a model
    without a velocity axis; `DynrnnValueError` if `ν̂` is not in `V` in the lifted comparison, if
    `ν̂` has the wrong number of components for the model, or if the inputs have too few axes.
    """
    if not isinstance(flow, TranslationFlow):
        raise DynrnnTypeError(
            f"`flow` must be a dynrnn.metrics.TranslationFlow, got {type(flow).__name__}."
        )
    has_lift = isinstance(model, FlowEquivariantRNN)
    if lifted is None:
        lifted = has_lift
    if lifted and not has_lift:
        raise DynrnnTypeError(
            "`lifted=True` needs a model with a velocity axis (a "
            f"dr.models.FlowEquivariantRNN), got {type(model).__name__}."
        )
    if not is_array(inputs):
        inputs = jnp.asarray(inputs)
    d = flow.spatial_dims
    model_d = model.spatial_dims if isinstance(model, AbstractFrameRNN) else d
    if model_d != d:
        raise DynrnnValueError(
            f"`flow` has a {d}-component velocity {flow.velocity} but the model works on "
            f"{model_d}-D grids."
        )
    if inputs.ndim not in (d + 2, d + 3):
        raise DynrnnValueError(
            f"`inputs` must have shape (time, channels, *grid) or (batch, time, channels, *grid) "
            f"with {d} grid axes, got shape {tuple(inputs.shape)}."
        )
    batched = inputs.ndim == d + 3

    if lifted:
        vels = [tuple(v) for v in model.velocities]
        if flow.velocity not in vels:
            raise DynrnnValueError(
                f"the flow's velocity {flow.velocity} is not in the model's velocity set V "
                f"(max |component| {max(abs(c) for v in vels for c in v)}, {len(vels)} "
                "velocities); the lifted equivariance holds only for velocities in V. "
                "Use a model with a larger V, or `lifted=False` to compare pooled outputs."
            )
        index = {v: i for i, v in enumerate(vels)}
        pairs = [
            (i, index[tuple(a - b for a, b in zip(v, flow.velocity, strict=True))])
            for i, v in enumerate(vels)
            if tuple(a - b for a, b in zip(v, flow.velocity, strict=True)) in index
        ]
        dst = np.array([p[0] for p in pairs])
        src = np.array([p[1] for p in pairs])
        return _lifted_error(model, inputs, flow, dst, src, batched)
    return _pooled_error(model, inputs, flow, batched)


@eqx.filter_jit
def _lifted_error(model, inputs, flow, dst, src, batched):
    run = jax.vmap(model.lifted) if batched else model.lifted
    move = jax.vmap(flow) if batched else flow
    h_moved = run(move(inputs))  # h_t[T f]
    h = run(inputs)
    v_axis = 2 if batched else 1
    lhs = jnp.take(h_moved, dst, axis=v_axis)
    rhs = move(jnp.take(h, src, axis=v_axis))  # T_{tν̂} h_t[f](ν − ν̂)
    return _relative_error(lhs, rhs, batched)


@eqx.filter_jit
def _pooled_error(model, inputs, flow, batched):
    run = jax.vmap(model) if batched else model
    move = jax.vmap(flow) if batched else flow
    return _relative_error(run(move(inputs)), move(run(inputs)), batched)
