"""What every liquid network shares: the sequence call with per-step elapsed times, the
batched call with per-sample time spans, the latent-model interface, the ncps output map as an
observation model (`LiquidReadout`) and the mixed-memory LSTM cell.

Hasani, Lechner, Amini, Rus, Grosu, "Liquid Time-constant Networks", AAAI 2021; semantics of the
reference implementation `ncps` (Lechner, Hasani).
"""

from __future__ import annotations

import abc
import math
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnTypeError, DynrnnValueError, is_array
from ...engines import AbstractEngine, Sequential
from .._base import AbstractLatentModel, AbstractObservation
from .._observation import glorot_uniform
from .wirings import as_wiring


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _torch_bias(key, n, fan_in, dtype):
    """PyTorch's default `nn.Linear` bias: U(±1/√fan_in) (0 for an empty input)."""
    lim = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return jr.uniform(key, (n,), dtype, -lim, lim)


def _dtype(dtype):
    return jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DynrnnTypeError(f"`{name}` must be an integer, got {value!r}.")
    if value < minimum:
        raise DynrnnValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


class LiquidReadout(AbstractObservation):
    """The output map of a liquid network, used as its observation model.

    Reads the first `n_cells` latent units (the motor neurons; for mixed memory the LSTM cell
    state `c` comes after them and is not read) and maps them with an optional elementwise
    `scale`, an optional dense `weight` and an optional `bias`:
    `x = W (s ⊙ z[:n_cells]) + b`. ncps's LTC output mapping is `s, b` ("affine"), its CfC
    projection `W, b`.

    Its inverse gives teacher forcing a target: `ẑ = [W⁺(x − b) ⊘ s; 0]`. Without a dense
    `weight` the map is invertible unit by unit, and by default only those first units are
    forced (partial forcing, as for `Identity`).
    """

    weight: Float[Array, "obs cells"] | None
    scale: Float[Array, " cells"] | None
    bias: Float[Array, " obs"] | None
    n_cells: int = eqx.field(static=True)
    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(self, n_cells: int, n_latent: int, *, weight=None, scale=None, bias=None):
        self.n_cells = int(n_cells)
        self.n_latent = int(n_latent)
        self.weight = weight
        self.scale = scale
        self.bias = bias
        self.n_obs = int(weight.shape[0]) if weight is not None else self.n_cells

    def __call__(self, z):
        y = z[..., : self.n_cells]
        if self.scale is not None:
            y = y * self.scale
        if self.weight is not None:
            y = y @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return y

    def _invert(self, x):
        y = x
        if self.bias is not None:
            y = y - self.bias
        if self.weight is not None:
            y = y @ jnp.linalg.pinv(self.weight).T
        if self.scale is not None:
            y = y / self.scale
        pad = jnp.zeros(y.shape[:-1] + (self.n_latent - self.n_cells,), y.dtype)
        return jnp.concatenate([y, pad], axis=-1)

    def init_state(self, x0):
        return self._invert(x0)

    def forcing_signal(self, x):
        return jax.lax.stop_gradient(self._invert(x))

    @property
    def partial_forcing(self) -> bool:
        return self.weight is None


class LSTMCell(eqx.Module):
    """The mixed-memory LSTM of ncps (Lechner & Hasani 2020, "Learning long-term dependencies in
    irregularly-sampled time series"): `z = W_in u + b + W_rec h`, split into (i, ig, fg, og),
    `c' = c σ(fg + 1) + tanh(i) σ(ig)`, `h' = tanh(c') σ(og)`.
    W_in Xavier-uniform, W_rec orthogonal, b ~ U(±0.1)."""

    input_weight: Float[Array, "four_hidden input"]
    input_bias: Float[Array, " four_hidden"]
    recurrent_weight: Float[Array, "four_hidden hidden"]

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray, dtype=None):
        dtype = _dtype(dtype)
        k1, k2, k3 = jr.split(key, 3)
        self.input_weight = glorot_uniform(k1, (4 * hidden_size, input_size), dtype)
        self.input_bias = jr.uniform(k2, (4 * hidden_size,), dtype, -0.1, 0.1)
        self.recurrent_weight = jax.nn.initializers.orthogonal()(
            k3, (4 * hidden_size, hidden_size), dtype
        )

    def __call__(self, u, h, c):
        z = self.input_weight @ u + self.input_bias + self.recurrent_weight @ h
        i, ig, fg, og = jnp.split(z, 4)
        c = c * jax.nn.sigmoid(fg + 1.0) + jnp.tanh(i) * jax.nn.sigmoid(ig)
        h = jnp.tanh(c) * jax.nn.sigmoid(og)
        return h, c


def _is_concrete(x):
    return not isinstance(x, jax.core.Tracer)


def _check_engine(engine):
    if not isinstance(engine, AbstractEngine):
        raise DynrnnTypeError(
            "`engine` must be a dr.engines engine (dr.engines.Sequential() or "
            f"dr.engines.Deer(...)), got {engine!r}."
        )


def check_timespan(timespan):
    """A single elapsed time must be finite and >= 0 (checked when it is a concrete value; the
    sequence call checks whole arrays of time spans before it traces)."""
    if _is_concrete(timespan):
        value = np.asarray(timespan, dtype=np.float64)
        if value.shape != () or not np.isfinite(value) or value < 0:
            raise DynrnnValueError(
                f"`timespan` must be a finite number >= 0 (the elapsed time of the step), got "
                f"{timespan!r}."
            )
    return timespan


def _check_timespans(timespans, length, name="timespans", *, batch=None):
    """`None` (all 1), a scalar, `(length,)` or, with `batch`, `(batch, length)`."""
    if timespans is None:
        return None
    ts = timespans if is_array(timespans) else np.asarray(timespans)
    if not jnp.issubdtype(ts.dtype, jnp.number) or jnp.issubdtype(ts.dtype, jnp.complexfloating):
        raise DynrnnTypeError(f"`{name}` must be real numbers, got dtype {ts.dtype}.")
    allowed = [(), (length,)] + ([(batch, length)] if batch is not None else [])
    if tuple(ts.shape) not in allowed:
        exp = " or ".join(str(a) for a in allowed)
        raise DynrnnValueError(
            f"`{name}` must have shape {exp} (time spans between consecutive inputs), got "
            f"shape {tuple(ts.shape)}."
        )
    if _is_concrete(ts):
        arr = np.asarray(ts, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise DynrnnValueError(f"`{name}` must be finite.")
        if (arr < 0).any():
            first = tuple(int(i) for i in np.argwhere(arr < 0)[0])
            raise DynrnnValueError(
                f"`{name}` must be >= 0 (elapsed times), got {arr[first]} at index {first}."
            )
    return ts


class AbstractLiquidModel(AbstractLatentModel):
    """A liquid network (LTC or CfC): a per-step cell on a flat state, run over sequences with
    per-step elapsed times, and a latent model for dynamical-systems reconstruction.

    Subclasses implement `cell(z, u, timespan, key)` (one step over `timespan` time units) and
    set `input_size`, `state_size` (the size of the flat state: neurons, plus the LSTM cell
    state for mixed memory), `dt` (the time span of one `step`) and `observation`.
    """

    input_size: eqx.AbstractVar[int]
    state_size: eqx.AbstractVar[int]
    dt: eqx.AbstractVar[float]

    @abc.abstractmethod
    def cell(self, z, u, timespan, key=None):
        """One step of the recurrence: the new flat state after `timespan` time units."""

    def _fast_batch(self, u, ts, z0, key):
        """States `(batch, time, state)` of `batch` by a model's own batched sequence, or
        None to run the per-sample sequence under `vmap` (the default)."""
        return None

    # --- latent-model interface ----------------------------------------------------------

    @property
    def n_inputs(self) -> int:
        return self.input_size

    def _input(self, u, dtype):
        if u is None:
            return jnp.zeros((self.input_size,), dtype)
        return u

    def step(self, z, u=None, *, key=None):
        """One step over the model's `dt` with input `u` (default zeros); `key` drives backbone
        dropout where the model has it (training only). For other elapsed times use
        `cell(z, u, timespan)` or the sequence call with `timespans`."""
        self._check_step(z, u)
        dtype = z.dtype
        return self.cell(z, self._input(u, dtype), jnp.asarray(self.dt, dtype), key).astype(dtype)

    # --- sequence layer ------------------------------------------------------------------

    def _prepare(self, u, timespans, state0, name_u="u", *, batch=None):
        u = u if is_array(u) else np.asarray(u)
        want = 3 if batch is not None else 2
        if u.ndim != want:
            shape = "(batch, time, input)" if batch is not None else "(time, input)"
            raise DynrnnValueError(
                f"`{name_u}` must have shape {shape} with input={self.input_size}, got shape "
                f"{tuple(u.shape)}."
            )
        if u.shape[-1] != self.input_size:
            raise DynrnnValueError(
                f"`{name_u}` must have {self.input_size} features on its last axis (the model's "
                f"input size), got shape {tuple(u.shape)}."
            )
        if not jnp.issubdtype(u.dtype, jnp.floating):
            u = jnp.asarray(u, jnp.result_type(float))
        length = u.shape[-2]
        ts = _check_timespans(timespans, length, batch=u.shape[0] if batch is not None else None)
        if state0 is not None:
            s_shape = tuple(state0.shape)
            ok = s_shape == (self.state_size,) or (
                batch is not None and s_shape == (u.shape[0], self.state_size)
            )
            if not ok:
                raise DynrnnValueError(
                    f"`state0` must have shape ({self.state_size},)"
                    + (f" or ({u.shape[0]}, {self.state_size})" if batch is not None else "")
                    + f", got {s_shape}."
                )
        return u, ts

    def __call__(
        self,
        u: Float[Array, "time input"],
        *,
        timespans: Float[Array, " time"] | float | None = None,
        state0: Float[Array, " state"] | None = None,
        engine: AbstractEngine = Sequential(),
        return_state: bool = False,
        key: PRNGKeyArray | None = None,
    ):
        """Run the network over a sequence.

        **Arguments:**
        - `u`: inputs `(time, input)`.
        - `timespans`: elapsed time before each input, `(time,)` or a scalar (default 1).
        - `state0`: initial flat state (default zeros).
        - `engine`: `dr.engines.Sequential()` (`lax.scan`) or `dr.engines.Deer(...)` (parallel
          Newton, `dynrnn.scan.deer`; no dropout).
        - `return_state`: also return the states `(time, state)`.
        - `key`: PRNG key for backbone dropout (only used when dropout is active).

        **Returns:** the outputs `(time, output)` (and the states if asked for).

        **Raises:** `ValueError` for a wrong input width or shape, or negative time spans.
        """
        _check_engine(engine)
        u, ts = self._prepare(u, timespans, state0)
        return _sequence(self, u, ts, state0, engine, return_state, key)

    def batch(
        self,
        u: Float[Array, "batch time input"],
        timespans: Float[Array, "batch time"] | Float[Array, " time"] | float | None = None,
        *,
        state0=None,
        engine: AbstractEngine = Sequential(),
        return_state: bool = False,
        key: PRNGKeyArray | None = None,
    ):
        """Run a batch of sequences, each with its own elapsed times.

        `timespans` is `(batch, time)` (per-sample irregular sampling), `(time,)` (shared) or a
        scalar. Each sample's time spans scale only that sample's steps, also when
        `batch == units` (the broadcasting mistake of ncps#81–#83 cannot happen: the call is a
        `jax.vmap` of the single-sequence call).

        **Returns:** outputs `(batch, time, output)` (and states `(batch, time, state)`).
        """
        _check_engine(engine)
        u, ts = self._prepare(u, timespans, state0, batch=True)
        return _batched(self, u, ts, state0, engine, return_state, key)


def _full_ts(ts, length, dtype):
    if ts is None:
        return jnp.ones((length,), dtype)
    return jnp.broadcast_to(jnp.asarray(ts, dtype), (length,))


def _run(model, z0, u, ts, engine, key, cell=None):
    """States `(time, state)` of `model` from `z0` driven by `u`, `ts` (already full arrays);
    `cell(z, u, timespan, key)` replaces `model.cell`."""
    step = _CellStep(model.cell if cell is None else cell)
    keys = None if key is None else jr.split(key, u.shape[0])
    return engine.run(step, z0, u.shape[0], (u, ts), keys, step.jacobian)


class _CellStep(eqx.Module):
    """A liquid cell as the step of an engine over `(input, time span)` pairs (a pytree, so
    that `dynrnn.scan.deer` differentiates through the model's arrays)."""

    cell: object

    def __call__(self, z, x, *, key=None):
        return self.cell(z, x[0], x[1], key)

    def jacobian(self, z, x):
        return jax.jacfwd(lambda s: self.cell(s, x[0], x[1], None))(z)


@eqx.filter_jit
def _sequence(model, u, ts, state0, engine, return_state, key):
    dtype = u.dtype
    ts = _full_ts(ts, u.shape[0], dtype)
    z0 = jnp.zeros((model.state_size,), dtype) if state0 is None else jnp.asarray(state0, dtype)
    states = _run(model, z0, u, ts, engine, key)
    out = jax.vmap(model.observation)(states)
    return (out, states) if return_state else out


@eqx.filter_jit
def _batched(model, u, ts, state0, engine, return_state, key):
    b, length = u.shape[:2]
    dtype = u.dtype
    if ts is None or jnp.ndim(ts) < 2:
        ts = jnp.broadcast_to(_full_ts(ts, length, dtype), (b, length))
    ts = jnp.asarray(ts, dtype)
    if state0 is None:
        z0 = jnp.zeros((b, model.state_size), dtype)
    else:
        z0 = jnp.broadcast_to(jnp.asarray(state0, dtype), (b, model.state_size))
    states = model._fast_batch(u, ts, z0, key) if isinstance(engine, Sequential) else None
    if states is not None:  # the model's own batched sequence (`CfC`, `LTC._fast_batch`)
        out = jax.vmap(jax.vmap(model.observation))(states)
        return (out, states) if return_state else out
    keys = None if key is None else jr.split(key, b)

    def one(ui, ti, zi, ki):
        states = _run(model, zi, ui, ti, engine, ki)
        return jax.vmap(model.observation)(states), states

    out, states = jax.vmap(one)(u, ts, z0, keys)
    return (out, states) if return_state else out


# ---------------------------------------------------------------------------------------------
# Inputs for the continuous-time vector field


class PiecewiseConstantInput(diffrax.AbstractPath):
    """The input held constant over each step: `u(t) = u_k` for `t ∈ (t_{k−1}, t_k]`.

    This is what the fused LTC step assumes (step `k` integrates over its elapsed time with the
    input `u_k` of that step). At a knot, `left=True` gives the value of the step that ends
    there.
    """

    times: Float[Array, " knots"]
    values: Float[Array, "time input"]

    @property
    def t0(self):
        return self.times[0]

    @property
    def t1(self):
        return self.times[-1]

    def evaluate(self, t0, t1=None, left=True):
        if t1 is not None:
            return self.evaluate(t1, left=left) - self.evaluate(t0, left=left)
        side = "left" if left else "right"
        idx = jnp.searchsorted(self.times[1:], t0, side=side)
        return self.values[jnp.clip(idx, 0, self.values.shape[0] - 1)]


# ---------------------------------------------------------------------------------------------
# The two ways to give the sizes of a liquid network


class LiquidSizes(NamedTuple):
    """Sizes of a liquid network from either vocabulary (`liquid_sizes`)."""

    input: int
    units: object  # an int, a wiring, a built `Wiring` or its dict
    output: int | None
    obs: int | None  # latent-model form: the observed dimensions; None in the ncps form


def liquid_sizes(name, units_name, input, units, output, *, obs, latent, inputs, wiring):
    """Resolve `Model(input, units, output)` (ncps) or `Model(obs=, latent=, inputs=, wiring=)`.

    In the latent-model form the network has `latent` fully connected neurons (or the neurons
    of `wiring`), `inputs` external inputs (default 0) and observes `obs` dimensions (default:
    `latent`, or the wiring's motor neurons) through an observation model of the flat state.
    """
    latent_form = obs is not None or latent is not None or inputs is not None
    if latent_form and (input is not None or units is not None or output is not None):
        raise DynrnnValueError(
            f"`{name}` takes either the ncps sizes `{name}(input, {units_name}, output)` or the "
            "latent-model keywords `obs=`, `latent=`, `inputs=` (with an optional `wiring=`), "
            f"not both; got input={input!r}, {units_name}={units!r}, output={output!r}, "
            f"obs={obs!r}, latent={latent!r}, inputs={inputs!r}."
        )
    if latent_form or input is None:
        if latent is None and wiring is None:
            raise DynrnnValueError(
                f"`{name}` needs `latent=` (the number of neurons) or a `wiring=`; for the ncps "
                f"form pass `{name}(input, {units_name}, output)`."
            )
        inputs = 0 if inputs is None else _check_int(inputs, "inputs", 0)
        if wiring is not None:
            built = as_wiring(wiring, inputs)
            if latent is not None and latent != built.units:
                raise DynrnnValueError(
                    f"`latent`={latent} does not match the wiring's {built.units} neurons."
                )
            obs = built.output_dim if obs is None else obs
            return LiquidSizes(inputs, built, None, _check_int(obs, "obs", 1))
        latent = _check_int(latent, "latent", 1)
        obs = latent if obs is None else obs
        return LiquidSizes(inputs, latent, None, _check_int(obs, "obs", 1))
    if units is None and wiring is None:
        raise DynrnnValueError(f"`{name}` needs `{units_name}` (a number of neurons or a wiring).")
    if units is not None and wiring is not None:
        raise DynrnnValueError(
            f"pass the wiring either as `{units_name}` or as `wiring`, not both."
        )
    return LiquidSizes(_check_int(input, "input", 0), wiring if units is None else units,
                       output, None)
