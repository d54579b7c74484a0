"""Liquid time-constant networks (LTC), with the pieces every liquid network shares.

Hasani, Lechner, Amini, Rus, Grosu, "Liquid Time-constant Networks", AAAI 2021; semantics of the
reference implementation `ncps.torch.LTC` (Lechner, Hasani), including its neuron form, fused
solver, parameter ranges and input/output mappings.

Shared with `CfC` (`_cfc.py`): `AbstractLiquidModel` (sequence call, batched call with per-sample
time spans, the latent-model interface), `LiquidReadout` (the ncps output map as an observation
model) and the mixed-memory LSTM cell.
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

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from ._base import AbstractLatentModel, AbstractObservation
from ._observation import glorot_uniform, make_observation
from ._wirings import AbstractWiring, FullyConnected, Wiring, as_wiring


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


def observation_kind(observation) -> str | None:
    """`None`, `"identity"` or `"affine"`: how to rebuild a liquid model's observation."""
    from ._observation import Affine, Identity

    if isinstance(observation, LiquidReadout):
        return None
    if isinstance(observation, Identity):
        return "identity"
    if isinstance(observation, Affine):
        return "affine"
    raise DynrnnTypeError(
        f"cannot describe a custom observation model ({type(observation).__name__}) by "
        "hyperparameters; save with `dr.save(..., hyperparameters=...)` or load with `like=`."
    )


def _check_engine(engine):
    if engine not in ("sequential", "deer"):
        raise DynrnnValueError(f"`engine` must be 'sequential' or 'deer', got {engine!r}.")


def _is_concrete(x):
    return not isinstance(x, jax.core.Tracer)


def _check_timespans(timespans, length, name="timespans", *, batch=None):
    """`None` (all 1), a scalar, `(length,)` or, with `batch`, `(batch, length)`."""
    if timespans is None:
        return None
    ts = timespans if hasattr(timespans, "shape") else np.asarray(timespans)
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

    def _deer_step(self, z, x):
        # A bound method of the model (a pytree), so `scan.deer` can reuse its compiled solve.
        u, timespan = x
        return self.cell(z, u, timespan, None).astype(z.dtype)

    # --- latent-model interface ----------------------------------------------------------

    def _input(self, u, dtype):
        if u is None:
            return jnp.zeros((self.input_size,), dtype)
        return u

    def step(self, z, u=None, *, timespan=None, key=None):
        """One step over `timespan` (default `dt`) with input `u` (default zeros)."""
        ts = self.dt if timespan is None else timespan
        return _step(self, z, self._input(u, z.dtype), jnp.asarray(ts, z.dtype), key)

    def rollout(self, z, n_steps, inputs=None, *, timespans=None, engine="sequential",
                deer_options=None):
        """The `n_steps` states after `z`; `inputs[t]` and `timespans[t]` drive step `t`.

        `engine="deer"` evaluates the recurrence by parallel Newton iterations
        (`dynrnn.scan.deer`); it needs a recurrence without dropout.
        """
        _check_engine(engine)
        dtype = z.dtype
        if inputs is None:
            inputs = jnp.zeros((n_steps, self.input_size), dtype)
        ts = jnp.full((n_steps,), self.dt, dtype) if timespans is None else jnp.broadcast_to(
            jnp.asarray(timespans, dtype), (n_steps,)
        )
        return _run_jit(self, z, inputs, ts, engine, deer_options, None)

    # --- sequence layer ------------------------------------------------------------------

    def _prepare(self, u, timespans, state0, name_u="u", *, batch=None):
        u = u if hasattr(u, "shape") else np.asarray(u)
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
        engine: str = "sequential",
        return_state: bool = False,
        key: PRNGKeyArray | None = None,
        deer_options: dict | None = None,
    ):
        """Run the network over a sequence.

        **Arguments:**
        - `u`: inputs `(time, input)`.
        - `timespans`: elapsed time before each input, `(time,)` or a scalar (default 1).
        - `state0`: initial flat state (default zeros).
        - `engine`: `"sequential"` (`lax.scan`) or `"deer"` (parallel Newton, `dynrnn.scan.deer`).
        - `return_state`: also return the states `(time, state)`.
        - `key`: PRNG key for backbone dropout (only used when dropout is active).

        **Returns:** the outputs `(time, output)` (and the states if asked for).

        **Raises:** `ValueError` for a wrong input width or shape, or negative time spans.
        """
        _check_engine(engine)
        u, ts = self._prepare(u, timespans, state0)
        return _sequence(self, u, ts, state0, engine, deer_options, return_state, key)

    def batch(
        self,
        u: Float[Array, "batch time input"],
        timespans: Float[Array, "batch time"] | Float[Array, " time"] | float | None = None,
        *,
        state0=None,
        engine: str = "sequential",
        return_state: bool = False,
        key: PRNGKeyArray | None = None,
        deer_options: dict | None = None,
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
        return _batched(self, u, ts, state0, engine, deer_options, return_state, key)


def _full_ts(ts, length, dtype):
    if ts is None:
        return jnp.ones((length,), dtype)
    return jnp.broadcast_to(jnp.asarray(ts, dtype), (length,))


def _run(model, z0, u, ts, engine, deer_options, key, cell=None):
    """States `(time, state)` of `model` from `z0` driven by `u`, `ts` (already full arrays);
    `cell(z, u, timespan, key)` replaces `model.cell` in the sequential engine."""
    if engine == "deer":
        from .. import scan as _scan

        states, _ = _scan.deer(model._deer_step, z0, (u, ts), **dict(deer_options or {}))
        return states
    if key is None:
        keys = None
    else:
        keys = jr.split(key, u.shape[0])

    cell = model.cell if cell is None else cell

    def body(z, xs):
        ut, tt, kt = xs
        # The state keeps its dtype (e.g. float32 data through a float64 model).
        z = cell(z, ut, tt, kt).astype(z.dtype)
        return z, z

    _, states = jax.lax.scan(body, z0, (u, ts, keys))
    return states


@eqx.filter_jit
def _step(model, z, u, timespan, key):
    return model.cell(z, u, timespan, key).astype(z.dtype)


_run_jit = eqx.filter_jit(_run)


@eqx.filter_jit
def _sequence(model, u, ts, state0, engine, deer_options, return_state, key):
    dtype = u.dtype
    ts = _full_ts(ts, u.shape[0], dtype)
    z0 = jnp.zeros((model.state_size,), dtype) if state0 is None else jnp.asarray(state0, dtype)
    states = _run(model, z0, u, ts, engine, deer_options, key)
    out = jax.vmap(model.observation)(states)
    return (out, states) if return_state else out


@eqx.filter_jit
def _batched(model, u, ts, state0, engine, deer_options, return_state, key):
    b, length = u.shape[:2]
    dtype = u.dtype
    if ts is None or jnp.ndim(ts) < 2:
        ts = jnp.broadcast_to(_full_ts(ts, length, dtype), (b, length))
    ts = jnp.asarray(ts, dtype)
    if state0 is None:
        z0 = jnp.zeros((b, model.state_size), dtype)
    else:
        z0 = jnp.broadcast_to(jnp.asarray(state0, dtype), (b, model.state_size))
    states = model._fast_batch(u, ts, z0, key) if engine == "sequential" else None
    if states is not None:  # the model's own batched sequence (`CfC`, `LTC._fast_batch`)
        out = jax.vmap(jax.vmap(model.observation))(states)
        return (out, states) if return_state else out
    keys = None if key is None else jr.split(key, b)

    def one(ui, ti, zi, ki):
        states = _run(model, zi, ui, ti, engine, deer_options, ki)
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
# LTC


class _Synapses(NamedTuple):
    """Derived LTC parameters (`LTC._synapses`)."""

    weight: Array
    weight_erev: Array
    sigma: Array
    sigma_mu: Array
    s_weight: Array
    s_weight_erev: Array
    s_sigma: Array
    s_sigma_mu: Array
    cm: Array
    gleak: Array
    leak: Array
    input_w: Array | None
    input_b: Array | None


def _sensory(syn: _Synapses, u):
    """Numerator and denominator contributions of the sensory synapses (input fixed)."""
    if syn.input_w is not None:
        u = u * syn.input_w
    if syn.input_b is not None:
        u = u + syn.input_b
    s = jax.nn.sigmoid(syn.s_sigma * u[:, None] - syn.s_sigma_mu)
    return jnp.sum(s * syn.s_weight_erev, 0), jnp.sum(s * syn.s_weight, 0)


def _synaptic(syn: _Synapses, v):
    """`Σ_j a_ji E_ji` and `Σ_j a_ji` with `a_ji = π(w_ji) σ(σ_ji v_j − σ_ji μ_ji)`."""
    s = jax.nn.sigmoid(syn.sigma * v[:, None] - syn.sigma_mu)
    return jnp.sum(s * syn.weight_erev, 0), jnp.sum(s * syn.weight, 0)


def _fused_step(syn: _Synapses, v, u, timespan, unfolds: int, epsilon: float):
    num_s, den_s = _sensory(syn, u)
    delta = timespan / unfolds
    leak_num = syn.leak + num_s
    leak_den = syn.gleak + den_s + epsilon

    def unfold(_, v):
        num, den = _synaptic(syn, v)
        new = (syn.cm * v + delta * (leak_num + num)) / (syn.cm + delta * (leak_den + den))
        return new.astype(v.dtype)

    return jax.lax.fori_loop(0, unfolds, unfold, v, unroll=unfolds <= 8)


class LTC(AbstractLiquidModel):
    """Liquid time-constant network with ncps semantics (Hasani et al., AAAI 2021).

    Neuron `i` has potential `v_i` and obeys (ncps neuron form of the LTC ODE)

    `C_i dv_i/dt = g_i (v^leak_i − v_i) + Σ_j w_ji σ(σ_ji (v_j − μ_ji)) (E_ji − v_i)
                  + Σ_s w^s_si σ(σ^s_si (ũ_s − μ^s_si)) (E^s_si − v_i)`,

    where the sums run over the synapses of the wiring (mask), `ũ = u ⊙ w_in + b_in` and
    `w, w^s, C, g` pass through a positivity map π. One step of elapsed time `Δt` is
    `ode_unfolds` fused semi-implicit Euler steps of `δ = Δt / ode_unfolds`:

    `v_i ← (C_i v_i + δ [g_i v^leak_i + Σ_j a_ji E_ji + Σ_s a^s_si E^s_si])
            / (C_i + δ [g_i + Σ_j a_ji + Σ_s a^s_si + ε])`,

    with `a_ji = π(w_ji) σ(σ_ji (v_j − μ_ji))` evaluated at the current `v` (ncps divides by
    `C_i/δ + … + ε`; multiplying through by `δ` keeps `Δt = 0` exact, `v` unchanged). The
    output is the first `output` (motor) neurons, `⊙ w_out + b_out`.

    **Positivity.** `implicit_param_constraints=True` (default, as the ncps `LTC` wrapper)
    applies π = softplus at run time, so the stored parameters are unconstrained and any
    optimiser step is valid. `False` (as ncps's `LTCCell`) uses the parameters as they are
    (π = identity) and the caller must clip after each optimiser step:
    `model = model.apply_constraints()` (ReLU on `w, w^s, C, g`). Only with non-negative
    `w, w^s, C, g` is each update a convex combination of `v`, `v^leak` and the `E`s.

    **Arguments:**
    - `input`: number of inputs (0 for an autonomous model).
    - `units_or_wiring`: number of fully connected neurons, or a wiring
      (`dr.models.wirings.NCP(...)`, `AutoNCP`, `FullyConnected`, `Random`, or a built `Wiring`).
    - `output`: number of motor neurons for an integer `units_or_wiring` (default: all);
      with a wiring it must equal the wiring's `output_dim` if given.
    - `ode_unfolds`, `epsilon`, `implicit_param_constraints`: as above (ncps defaults).
    - `mixed_memory`: run an LSTM step first; its `h` becomes the LTC state (state `[v; c]`).
    - `input_mapping`, `output_mapping`: `"affine"`, `"linear"` (no bias) or `None`.
    - `observation`: `None` (the output map above) or `"identity"`, `"affine"`, an observation
      model of the flat state (for reconstruction; the output size is then `output`).
    - `dt`: elapsed time of one `step` in the latent-model interface (default 1).
    - `key`: PRNG key.

    **Raises:** `ValueError` for sizes that do not match the wiring.
    """

    gleak: Float[Array, " units"]
    vleak: Float[Array, " units"]
    cm: Float[Array, " units"]
    sigma: Float[Array, "units units"]
    mu: Float[Array, "units units"]
    w: Float[Array, "units units"]
    erev: Float[Array, "units units"]
    sensory_sigma: Float[Array, "input units"]
    sensory_mu: Float[Array, "input units"]
    sensory_w: Float[Array, "input units"]
    sensory_erev: Float[Array, "input units"]
    input_w: Float[Array, " input"] | None
    input_b: Float[Array, " input"] | None
    lstm: LSTMCell | None
    observation: AbstractObservation
    wiring: Wiring = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    ode_unfolds: int = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    implicit_param_constraints: bool = eqx.field(static=True)
    mixed_memory: bool = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(
        self,
        input: int,
        units_or_wiring: int | AbstractWiring | Wiring,
        output: int | None = None,
        *,
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        mixed_memory: bool = False,
        input_mapping: str | None = "affine",
        output_mapping: str | None = "affine",
        observation=None,
        dt: float = 1.0,
        dtype=None,
        key: PRNGKeyArray,
    ):
        input = _check_int(input, "input", 0)
        if isinstance(units_or_wiring, int | np.integer) and not isinstance(units_or_wiring, bool):
            units = _check_int(units_or_wiring, "units_or_wiring", 1)
            wiring = FullyConnected(units, output).build(input)
        else:
            wiring = as_wiring(units_or_wiring, input)
            if output is not None and output != wiring.output_dim:
                raise DynrnnValueError(
                    f"`output`={output} does not match the wiring's {wiring.output_dim} motor "
                    "neurons; leave `output` unset or build the wiring with that output size."
                )
        for name, m in (("input_mapping", input_mapping), ("output_mapping", output_mapping)):
            if m not in ("affine", "linear", None):
                raise DynrnnValueError(
                    f"`{name}` must be 'affine', 'linear' or None, got {m!r}."
                )
        self.ode_unfolds = _check_int(ode_unfolds, "ode_unfolds", 1)
        self.epsilon = float(epsilon)
        self.implicit_param_constraints = bool(implicit_param_constraints)
        self.mixed_memory = bool(mixed_memory)
        self.dt = float(check_positive(dt, "dt"))
        self.wiring = wiring
        self.input_size = input
        n = wiring.units
        self.state_size = 2 * n if mixed_memory else n
        dtype = _dtype(dtype)
        keys = jr.split(key, 11)

        def u(k, shape, lo, hi):
            return jr.uniform(k, shape, dtype, lo, hi)

        self.gleak = u(keys[0], (n,), 0.001, 1.0)
        self.vleak = u(keys[1], (n,), -0.2, 0.2)
        self.cm = u(keys[2], (n,), 0.4, 0.6)
        self.sigma = u(keys[3], (n, n), 3.0, 8.0)
        self.mu = u(keys[4], (n, n), 0.3, 0.8)
        self.w = u(keys[5], (n, n), 0.001, 1.0)
        self.erev = jnp.asarray(wiring.adjacency, dtype)
        self.sensory_sigma = u(keys[6], (input, n), 3.0, 8.0)
        self.sensory_mu = u(keys[7], (input, n), 0.3, 0.8)
        self.sensory_w = u(keys[8], (input, n), 0.001, 1.0)
        self.sensory_erev = jnp.asarray(wiring.sensory_adjacency, dtype)
        self.input_w = jnp.ones((input,), dtype) if input_mapping is not None else None
        self.input_b = jnp.zeros((input,), dtype) if input_mapping == "affine" else None
        self.lstm = LSTMCell(input, n, key=keys[9], dtype=dtype) if mixed_memory else None
        m = wiring.output_dim
        if observation is None:
            self.observation = LiquidReadout(
                m,
                self.state_size,
                scale=jnp.ones((m,), dtype) if output_mapping is not None else None,
                bias=jnp.zeros((m,), dtype) if output_mapping == "affine" else None,
            )
        else:
            self.observation = make_observation(
                observation, m, self.state_size, key=keys[10], dtype=dtype
            )

    @property
    def units(self) -> int:
        return self.wiring.units

    @property
    def output_size(self) -> int:
        return self.observation.n_obs

    @property
    def hyperparameters(self) -> dict:
        """Constructor arguments (JSON) that rebuild this model's structure (`dr.save`)."""
        readout = isinstance(self.observation, LiquidReadout)
        out_map = None
        if readout and self.observation.scale is not None:
            out_map = "affine" if self.observation.bias is not None else "linear"
        in_map = None
        if self.input_w is not None:
            in_map = "affine" if self.input_b is not None else "linear"
        return {
            "input": self.input_size,
            "units_or_wiring": self.wiring.to_dict(),
            "ode_unfolds": self.ode_unfolds,
            "epsilon": self.epsilon,
            "implicit_param_constraints": self.implicit_param_constraints,
            "mixed_memory": self.mixed_memory,
            "input_mapping": in_map,
            "output_mapping": out_map,
            "observation": observation_kind(self.observation),
            "dt": self.dt,
            "dtype": str(self.cm.dtype),
        }

    def _positive(self, x):
        return jax.nn.softplus(x) if self.implicit_param_constraints else x

    def apply_constraints(self) -> LTC:
        """The model with `w, w^s, C, g` clipped at 0 (ReLU), for
        `implicit_param_constraints=False`; call after each optimiser step (ncps
        `apply_weight_constraints`). In the implicit (softplus) mode it returns the model
        unchanged."""
        if self.implicit_param_constraints:
            return self
        return eqx.tree_at(
            lambda m: (m.w, m.sensory_w, m.cm, m.gleak),
            self,
            tuple(jax.nn.relu(x) for x in (self.w, self.sensory_w, self.cm, self.gleak)),
        )

    def _synapses(self) -> _Synapses:
        """The parameters as the fused step uses them: π applied, masks folded into the
        weights, `w ⊙ E` and `σ ⊙ μ` precomputed (loop-invariant over steps and unfolds)."""
        dtype = self.w.dtype
        mask = jnp.asarray(np.abs(self.wiring.adjacency), dtype)
        smask = jnp.asarray(np.abs(self.wiring.sensory_adjacency), dtype)
        weight = self._positive(self.w) * mask
        s_weight = self._positive(self.sensory_w) * smask
        gleak = self._positive(self.gleak)
        return _Synapses(
            weight=weight,
            weight_erev=weight * self.erev,
            sigma=self.sigma,
            sigma_mu=self.sigma * self.mu,
            s_weight=s_weight,
            s_weight_erev=s_weight * self.sensory_erev,
            s_sigma=self.sensory_sigma,
            s_sigma_mu=self.sensory_sigma * self.sensory_mu,
            cm=self._positive(self.cm),
            gleak=gleak,
            leak=gleak * self.vleak,
            input_w=self.input_w,
            input_b=self.input_b,
        )

    def _fused(self, v, u, timespan, syn: _Synapses | None = None):
        """`ode_unfolds` fused semi-implicit steps over `timespan` (see the class docstring)."""
        return _fused_step(self._synapses() if syn is None else syn, v, u, timespan,
                           self.ode_unfolds, self.epsilon)

    def cell(self, z, u, timespan, key=None):
        # Rematerialised in the backward pass: storing the `units²` synapse activations of every
        # unfold makes the gradient memory-bound (3x slower on a 2-core CPU than recomputing).
        return self._cell_with(None, z, u, timespan, key)

    def _cell_with(self, syn, z, u, timespan, key=None):
        fused = jax.checkpoint(type(self)._fused)
        n = self.units
        if self.mixed_memory:
            h, c = self.lstm(u, z[:n], z[n:])
            return jnp.concatenate([fused(self, h, u, timespan, syn), c])
        return fused(self, z, u, timespan, syn)

    def _fast_batch(self, u, ts, z0, key):
        """States `(batch, time, state)` for `batch`: the derived parameters are computed once
        per call and every sample gets its own copy (a broadcast, so free in the forward
        pass). Their gradient then accumulates per sample over steps and unfolds as
        elementwise adds and is summed over the batch once, instead of one reduction over the
        batch per unfold (measured: a training step at batch 32, T = 100, 32 units, 20–30 %
        faster on one CPU core). The LTC has no dropout, so `key` is unused."""
        syn = jax.tree.map(lambda a: jnp.broadcast_to(a, (u.shape[0],) + a.shape),
                           self._synapses())

        def one(ui, ti, zi, si):
            cell = lambda z, x, t, k: self._cell_with(si, z, x, t)  # noqa: E731
            return _run(self, zi, ui, ti, "sequential", None, None, cell)

        return jax.vmap(one)(u, ts, z0, syn)

    # --- continuous time -------------------------------------------------------------------

    def input_path(self, u, timespans=None, *, t0=0.0, interpolation="hold"):
        """The input sequence as a path for `vector_field`'s `args`.

        Knots are `t_k = t0 + Σ_{j≤k} timespans_j`. `interpolation="hold"` holds `u_k` over
        `(t_{k−1}, t_k]`, which is what the fused step assumes; `"linear"` interpolates
        linearly between the knots (and holds `u_1` before `t_1`).
        """
        u, ts = self._prepare(u, timespans, None)
        ts = _full_ts(ts, u.shape[0], u.dtype)
        knots = t0 + jnp.concatenate([jnp.zeros((1,), u.dtype), jnp.cumsum(ts)])
        if interpolation == "hold":
            return PiecewiseConstantInput(knots, u)
        if interpolation == "linear":
            return diffrax.LinearInterpolation(knots, jnp.concatenate([u[:1], u], 0))
        raise DynrnnValueError(
            f"`interpolation` must be 'hold' or 'linear', got {interpolation!r}."
        )

    def vector_field(self, t, v: Float[Array, " units"], args) -> Float[Array, " units"]:
        """The LTC ODE `dv/dt` (neuron form above), for any Diffrax solver.

        `args` is the input: `None` (zero input), a Diffrax path such as `input_path(u, ts)`
        (evaluated at `t`), or an array `(input,)` held constant. The mixed-memory LSTM is a
        discrete map and has no vector field.

        **Raises:** `ValueError` for a mixed-memory model.
        """
        if self.mixed_memory:
            raise DynrnnValueError(
                "`vector_field` describes the LTC neurons only; a mixed_memory=True model has a "
                "discrete LSTM step and no vector field."
            )
        if args is None:
            u = jnp.zeros((self.input_size,), v.dtype)
        elif isinstance(args, diffrax.AbstractPath):
            u = args.evaluate(t)
        else:
            u = jnp.asarray(args, v.dtype)
        syn = self._synapses()
        num_s, den_s = _sensory(syn, u)
        num, den = _synaptic(syn, v)
        current = syn.leak - syn.gleak * v + (num + num_s) - (den + den_s) * v
        return current / syn.cm
