"""Liquid time-constant networks (LTC).

Hasani, Lechner, Amini, Rus, Grosu, "Liquid Time-constant Networks", AAAI 2021; semantics of the
reference implementation `ncps.torch.LTC` (Lechner, Hasani), including its neuron form, fused
solver, parameter ranges and input/output mappings.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_positive
from ...engines import Sequential
from .._base import AbstractObservation
from .._observation import make_observation
from .base import (
    AbstractLiquidModel,
    LiquidReadout,
    LSTMCell,
    PiecewiseConstantInput,
    _check_int,
    _dtype,
    _full_ts,
    _run,
    check_timespan,
    liquid_sizes,
)
from .wirings import AbstractWiring, FullyConnected, Wiring, as_wiring


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

    **Sizes**, in one of two forms:
    - latent-model keywords (as every latent family): `obs` (observed dimensions, default
      `latent` or the wiring's motor neurons), `latent` (number of neurons), `inputs` (external
      inputs, default 0), optionally `wiring=` instead of `latent`; the observation model
      (`observation`, default identity when `obs` ≤ the state size) reads the flat state;
    - the ncps positional form `LTC(input, units_or_wiring, output)`: `input` inputs (0 for an
      autonomous model), `units_or_wiring` fully connected neurons or a wiring
      (`dr.models.wirings.NCP(...)`, `AutoNCP`, `FullyConnected`, `Random`, or a built
      `Wiring`), `output` motor neurons for an integer `units_or_wiring` (default: all; with a
      wiring it must equal the wiring's `output_dim`), read through the ncps output map.

    The flat state has `latent` values (`2 · latent` with mixed memory: `[v; c]`).

    **Arguments:**
    - `ode_unfolds`, `epsilon`, `implicit_param_constraints`: as above (ncps defaults).
    - `mixed_memory`: run an LSTM step first; its `h` becomes the LTC state (state `[v; c]`).
    - `input_mapping`, `output_mapping`: `"affine"`, `"linear"` (no bias) or `None`.
    - `observation`: `None` (ncps form: the output map above; latent form: identity or
      affine by the sizes), a name (`"identity"`, `"affine"`, ...), a table or an observation
      model of the flat state.
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
        input: int | None = None,
        units_or_wiring: int | AbstractWiring | Wiring | None = None,
        output: int | None = None,
        *,
        obs: int | None = None,
        latent: int | None = None,
        inputs: int | None = None,
        wiring: AbstractWiring | Wiring | None = None,
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
        sizes = liquid_sizes("LTC", "units_or_wiring", input, units_or_wiring, output, obs=obs,
                             latent=latent, inputs=inputs, wiring=wiring)
        input, units_or_wiring, output = sizes.input, sizes.units, sizes.output
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
        m = wiring.output_dim if sizes.obs is None else sizes.obs
        if isinstance(observation, AbstractObservation):
            m = observation.n_obs
        if observation is None and sizes.obs is None:
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
        """Constructor arguments (ncps form, with the observation model itself) that rebuild
        this model's structure (`dr.save`)."""
        readout = isinstance(self.observation, LiquidReadout)
        out_map = None
        if readout and self.observation.scale is not None:
            out_map = "affine" if self.observation.bias is not None else "linear"
        in_map = None
        if self.input_w is not None:
            in_map = "affine" if self.input_b is not None else "linear"
        return {
            "input": self.input_size, "units_or_wiring": self.wiring,
            "ode_unfolds": self.ode_unfolds, "epsilon": self.epsilon,
            "implicit_param_constraints": self.implicit_param_constraints,
            "mixed_memory": self.mixed_memory, "input_mapping": in_map,
            "output_mapping": out_map, "observation": None if readout else self.observation,
            "dt": self.dt, "dtype": str(self.cm.dtype),
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
        return self._cell_with(None, z, u, check_timespan(timespan), key)

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
            return _run(self, zi, ui, ti, Sequential(), None, cell)

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
