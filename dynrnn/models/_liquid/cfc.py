"""Closed-form continuous-time networks (CfC).

Hasani, Lechner, Amini, Liebenwein, Ray, Tschaikowski, Teschl, Rus, "Closed-form
continuous-time neural networks", Nature Machine Intelligence 2022, Eq. 10; semantics of the
reference implementation `ncps.torch.CfC` (tanh heads, gate `σ(t_a·Δt + t_b)`, lecun-tanh
backbone; wired CfC as `ncps.torch.WiredCfCCell`).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnValueError, check_positive
from .._base import AbstractObservation
from .._observation import glorot_uniform, make_observation
from .base import (
    AbstractLiquidModel,
    LiquidReadout,
    LSTMCell,
    _check_int,
    _dtype,
    _torch_bias,
    check_timespan,
    liquid_sizes,
)
from .wirings import AbstractWiring, Wiring, as_wiring


_MODES = ("default", "no_gate", "pure")


def lecun_tanh(x):
    """LeCun's scaled tanh `1.7159 tanh(0.666 x)` (ncps's constants)."""
    return 1.7159 * jnp.tanh(0.666 * x)


_ACTIVATIONS = {
    "lecun_tanh": lecun_tanh,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


def _linear(key, fan_out, fan_in, dtype):
    """ncps's initialisation: Xavier-uniform weight, PyTorch-default bias."""
    kw, kb = jr.split(key)
    return glorot_uniform(kw, (fan_out, fan_in), dtype), _torch_bias(kb, fan_out, fan_in, dtype)


class CfCCell(eqx.Module):
    """One CfC cell (ncps `CfCCell`): `x = backbone([u; h])`, heads on `x`, and

    - `default`: `h' = tanh(ff1) ⊙ (1 − s) + s ⊙ tanh(ff2)`, `s = σ(t_a Δt + t_b)`;
    - `no_gate`: `h' = tanh(ff1) + s ⊙ tanh(ff2)`;
    - `pure` (Cf-S, the direct solution): `h' = −A ⊙ exp(−Δt (|w_τ| + |ff1|)) ⊙ ff1 + A`.

    The backbone is `Linear → act`, then `(layers − 1) × [Linear → act → dropout]`; with no
    backbone layers the heads read `[u; h]` directly. `mask` (wired CfC) multiplies the
    weights of `ff1` and `ff2`.
    """

    backbone: tuple[tuple[Float[Array, "out in"], Float[Array, " out"]], ...]
    ff1: tuple[Float[Array, "hidden cat"], Float[Array, " hidden"]]
    ff2: tuple[Float[Array, "hidden cat"], Float[Array, " hidden"]] | None
    time_a: tuple[Float[Array, "hidden cat"], Float[Array, " hidden"]] | None
    time_b: tuple[Float[Array, "hidden cat"], Float[Array, " hidden"]] | None
    A: Float[Array, " hidden"] | None
    w_tau: Float[Array, " hidden"] | None
    mode: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    dropout: float = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, mode, backbone_units, backbone_layers,
                 backbone_dropout, activation, dtype, key):
        keys = jr.split(key, backbone_layers + 4)
        backbone = []
        fan_in = input_size + hidden_size
        for i in range(backbone_layers):
            backbone.append(_linear(keys[i], backbone_units, fan_in, dtype))
            fan_in = backbone_units
        self.backbone = tuple(backbone)
        k1, k2, k3, k4 = keys[backbone_layers:]
        self.ff1 = _linear(k1, hidden_size, fan_in, dtype)
        if mode == "pure":
            # The paper's A = 1, w_τ = 0 (ncps then overwrites these (1, H) parameters with
            # its Xavier loop over all 2-D parameters; from_ncps copies whatever they are).
            self.A = jnp.ones((hidden_size,), dtype)
            self.w_tau = jnp.zeros((hidden_size,), dtype)
            self.ff2 = self.time_a = self.time_b = None
        else:
            self.A = self.w_tau = None
            self.ff2 = _linear(k2, hidden_size, fan_in, dtype)
            self.time_a = _linear(k3, hidden_size, fan_in, dtype)
            self.time_b = _linear(k4, hidden_size, fan_in, dtype)
        self.mode = mode
        self.activation = activation
        self.dropout = float(backbone_dropout)

    def __call__(self, u, h, timespan, mask=None, key=None):
        x = jnp.concatenate([u, h])
        act = _ACTIVATIONS[self.activation]
        for i, (w, b) in enumerate(self.backbone):
            x = act(w @ x + b)
            # ncps puts dropout after the second and later backbone layers only.
            if i > 0 and self.dropout > 0.0 and key is not None:
                key, sub = jr.split(key)
                keep = jr.bernoulli(sub, 1.0 - self.dropout, x.shape)
                x = jnp.where(keep, x / (1.0 - self.dropout), 0.0)

        def head(p, masked):
            w, b = p
            if masked and mask is not None:
                w = w * mask
            return w @ x + b

        ff1 = head(self.ff1, True)
        if self.mode == "pure":
            decay = jnp.exp(-timespan * (jnp.abs(self.w_tau) + jnp.abs(ff1)))
            return -self.A * decay * ff1 + self.A
        ff1 = jnp.tanh(ff1)
        ff2 = jnp.tanh(head(self.ff2, True))
        gate = jax.nn.sigmoid(head(self.time_a, False) * timespan + head(self.time_b, False))
        if self.mode == "no_gate":
            return ff1 + gate * ff2
        return ff1 * (1.0 - gate) + gate * ff2


def _index(ids):
    """A slice for a contiguous ascending id range (cheaper than a gather), else the ids."""
    ids = tuple(ids)
    if ids == tuple(range(ids[0], ids[0] + len(ids))):
        return slice(ids[0], ids[0] + len(ids))
    return np.asarray(ids)


class CfC(AbstractLiquidModel):
    """Closed-form continuous-time network with ncps (PyTorch) semantics.

    Per step with elapsed time `Δt` (Hasani et al. 2022, Eq. 10, as ncps implements it):

    `h' = tanh(ff1(x)) ⊙ (1 − σ(t_a(x) Δt + t_b(x))) + σ(t_a(x) Δt + t_b(x)) ⊙ tanh(ff2(x))`,
    `x = backbone([u; h])` (modes: see `CfCCell`). The paper's `σ(−f t)` gate is `σ(t_a Δt + t_b)`.

    **Wired CfC** (`wiring=` an NCP, or a wiring passed as `hidden`): no backbone; one cell per
    layer of the wiring (inter → command → motor), each reading the previous layer's new
    state (the inputs for the first) through the wiring's synapses (masks on `ff1`, `ff2`;
    `t_a`, `t_b` unmasked) plus its own state. The flat state is in the wiring's neuron order
    (motor neurons first; ncps concatenates its state layer by layer, inter first), and the
    output is the motor layer.

    **Mixed memory**: an LSTM step first (`h, c ← LSTM(u, h, c)`), then the CfC step from the
    LSTM's `h`; the flat state is `[h; c]`.

    **Batches**: `batch` of a dense CfC (`default`/`no_gate` mode, no mixed memory, no active
    dropout) runs one scan over the whole batch with a hand-written reverse-mode gradient (each
    weight gradient one matrix product over all steps; faster training). Forward-mode
    differentiation (`jax.jvp`, `jax.jacfwd`) is not defined through it: use
    `jax.vmap(lambda u, t: model(u, timespans=t))` for that.

    **Output**: the first `n` state units (all hidden units, or the motor neurons), followed by
    a dense `Linear(n → output)` if `output` is given (ncps `proj_size`). For reconstruction,
    `observation="identity"`/`"affine"`/an observation model replaces this map.

    **Sizes**, in one of two forms:
    - latent-model keywords (as every latent family): `obs` (observed dimensions, default
      `latent` or the wiring's motor neurons), `latent` (number of hidden units), `inputs`
      (external inputs, default 0), optionally `wiring=` instead of `latent`; the observation
      model (`observation`, default identity when `obs` ≤ the state size) reads the flat state;
    - the ncps positional form `CfC(input, hidden, output)`: `input` inputs (0 for an
      autonomous model), `hidden` units or a wiring (`dr.models.wirings.AutoNCP(...)`, ...),
      `output` the projection size (default: no projection), read through the ncps output map.

    The flat state has `latent` values (`2 · latent` with mixed memory: `[h; c]`).

    **Arguments:**
    - `mode`: `"default"`, `"no_gate"` or `"pure"`.
    - `backbone_units`, `backbone_layers`, `backbone_dropout`, `backbone_activation`: default
      128, 1, 0.0, `"lecun_tanh"` (also `"tanh"`, `"relu"`, `"silu"`, `"gelu"`); not allowed
      with a wiring. Dropout is active only when a `key` is passed to the call.
    - `mixed_memory`: prepend the LSTM.
    - `wiring`: a wiring (alternative to passing it as `hidden`).
    - `observation`: `None` (ncps form: the output map above; latent form: identity or affine
      by the sizes), a name, a table or an observation model of the flat state.
    - `dt`: elapsed time of one `step` in the latent-model interface (default 1).
    - `key`: PRNG key.

    **Raises:** `ValueError` for an unknown mode, sizes that do not match the wiring, or backbone
    arguments with a wiring.
    """

    cells: tuple[CfCCell, ...]
    lstm: LSTMCell | None
    observation: AbstractObservation
    wiring: Wiring | None = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    units: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    mixed_memory: bool = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(
        self,
        input: int | None = None,
        hidden: int | AbstractWiring | Wiring | None = None,
        output: int | None = None,
        *,
        obs: int | None = None,
        latent: int | None = None,
        inputs: int | None = None,
        mode: str = "default",
        backbone_units: int | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
        backbone_activation: str = "lecun_tanh",
        mixed_memory: bool = False,
        wiring: AbstractWiring | Wiring | None = None,
        observation=None,
        dt: float = 1.0,
        dtype=None,
        key: PRNGKeyArray,
    ):
        if isinstance(hidden, AbstractWiring | Wiring | dict):
            if wiring is not None:
                raise DynrnnValueError(
                    "pass the wiring either as `hidden` or as `wiring`, not both."
                )
            wiring, hidden = hidden, None
        sizes = liquid_sizes("CfC", "hidden", input, hidden, output, obs=obs, latent=latent,
                             inputs=inputs, wiring=wiring)
        input, output = sizes.input, sizes.output
        if isinstance(sizes.units, int | np.integer):
            hidden, wiring = sizes.units, None
        else:
            hidden, wiring = None, sizes.units
        if mode not in _MODES:
            raise DynrnnValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
        if backbone_activation not in _ACTIVATIONS:
            raise DynrnnValueError(
                f"`backbone_activation` must be one of {tuple(_ACTIVATIONS)}, got "
                f"{backbone_activation!r}."
            )
        if wiring is not None:
            built = as_wiring(wiring, input)
            if hidden is not None and hidden != built.units:
                raise DynrnnValueError(
                    f"`hidden`={hidden} does not match the wiring's {built.units} units."
                )
            for name, v in (("backbone_units", backbone_units),
                            ("backbone_layers", backbone_layers),
                            ("backbone_dropout", backbone_dropout)):
                if v is not None:
                    raise DynrnnValueError(
                        f"`{name}` cannot be used with a wiring (a wired CfC has no backbone)."
                    )
            units = built.units
            n_cells = built.output_dim
        else:
            built = None
            units = _check_int(hidden, "hidden", 1)
            n_cells = units
        backbone_units = 128 if backbone_units is None else _check_int(
            backbone_units, "backbone_units", 1)
        backbone_layers = 1 if backbone_layers is None else _check_int(
            backbone_layers, "backbone_layers", 0)
        backbone_dropout = 0.0 if backbone_dropout is None else float(backbone_dropout)
        if not 0.0 <= backbone_dropout < 1.0:
            raise DynrnnValueError(f"`backbone_dropout` must be in [0, 1), got {backbone_dropout}.")
        dtype = _dtype(dtype)
        kc, kl, ko = jr.split(key, 3)
        if built is None:
            self.cells = (
                CfCCell(input, units, mode=mode, backbone_units=backbone_units,
                        backbone_layers=backbone_layers, backbone_dropout=backbone_dropout,
                        activation=backbone_activation, dtype=dtype, key=kc),
            )
        else:
            cells = []
            fan_in = input
            for layer, k in zip(built.layers, jr.split(kc, built.num_layers)):
                cells.append(CfCCell(fan_in, len(layer), mode=mode, backbone_units=0,
                                     backbone_layers=0, backbone_dropout=0.0,
                                     activation="lecun_tanh", dtype=dtype, key=k))
                fan_in = len(layer)
            self.cells = tuple(cells)
        self.wiring = built
        self.mode = mode
        self.input_size = input
        self.units = units
        self.mixed_memory = bool(mixed_memory)
        self.state_size = 2 * units if mixed_memory else units
        self.dt = float(check_positive(dt, "dt"))
        self.lstm = LSTMCell(input, units, key=kl, dtype=dtype) if mixed_memory else None
        if sizes.obs is not None:  # latent-model form
            self.observation = make_observation(
                observation, sizes.obs, self.state_size, key=ko, dtype=dtype
            )
        elif observation is None:
            if output is None:
                self.observation = LiquidReadout(n_cells, self.state_size)
            else:
                output = _check_int(output, "output", 1)
                w, b = _linear(ko, output, n_cells, dtype)
                self.observation = LiquidReadout(n_cells, self.state_size, weight=w, bias=b)
        else:
            n_obs = n_cells if output is None else _check_int(output, "output", 1)
            if isinstance(observation, AbstractObservation):
                n_obs = observation.n_obs
            self.observation = make_observation(
                observation, n_obs, self.state_size, key=ko, dtype=dtype
            )

    @property
    def output_size(self) -> int:
        return self.observation.n_obs

    @property
    def hyperparameters(self) -> dict:
        """Constructor arguments (ncps form, with the observation model itself) that rebuild
        this model's structure (`dr.save`)."""
        obs = self.observation
        readout = isinstance(obs, LiquidReadout)
        cell = self.cells[0]
        hp = {
            "input": self.input_size,
            "hidden": self.units if self.wiring is None else self.wiring,
            "output": obs.n_obs if readout and obs.weight is not None else None,
            "mode": self.mode, "mixed_memory": self.mixed_memory,
            "observation": None if readout else obs, "dt": self.dt,
            "dtype": str(cell.ff1[0].dtype),
        }
        if self.wiring is None:
            hp.update(
                backbone_units=cell.backbone[0][0].shape[0] if cell.backbone else 128,
                backbone_layers=len(cell.backbone), backbone_dropout=cell.dropout,
                backbone_activation=cell.activation,
            )
        return hp

    def _cfc(self, h, u, timespan, key):
        if self.wiring is None:
            return self.cells[0](u, h, timespan, None, key)
        masks = self.wiring.layer_input_masks()
        inputs = u
        new = []
        for cell, layer, mask in zip(self.cells, self.wiring.layers, masks):
            inputs = cell(inputs, h[_index(layer)], timespan, jnp.asarray(mask, h.dtype))
            new.append(inputs)
        order = np.concatenate([np.asarray(layer) for layer in self.wiring.layers])
        flat = jnp.concatenate(new)
        inverse = np.argsort(order)
        if np.array_equal(inverse, np.arange(len(order))):
            return flat
        return flat[inverse]

    def _fast_batch(self, u, ts, z0, key):
        """States `(batch, time, state)` by the dense-CfC sequence with a hand-written
        gradient (`_dense_sequence`), or None where it does not apply (wired or mixed-memory
        models, the `pure` mode, active dropout, mixed dtypes)."""
        cell = self.cells[0]
        params = [x for x in jax.tree.leaves(cell) if eqx.is_array(x)]
        if (self.wiring is not None or self.mixed_memory or self.mode == "pure"
                or (key is not None and cell.dropout > 0.0)
                or any(x.dtype != u.dtype for x in params) or z0.dtype != u.dtype):
            return None
        heads = tuple(jnp.concatenate([p[i] for p in (cell.ff1, cell.ff2, cell.time_a,
                                                      cell.time_b)]) for i in (0, 1))
        states = _dense_sequence(self.mode, cell.activation, (cell.backbone, heads),
                                 jnp.swapaxes(u, 0, 1), jnp.swapaxes(ts, 0, 1), z0)
        return jnp.swapaxes(states, 0, 1)

    def cell(self, z, u, timespan, key=None):
        timespan = check_timespan(timespan)
        n = self.units
        if self.mixed_memory:
            h, c = self.lstm(u, z[:n], z[n:])
            return jnp.concatenate([self._cfc(h, u, timespan, key), c])
        return self._cfc(z, u, timespan, key)


# ---------------------------------------------------------------------------------------------
# Fast batched sequence for the dense CfC (default and no_gate modes)
#
# A training step of the dense CfC is a chain of small matrix products per time step. With
# automatic differentiation of the scan, every step of the backward pass also forms the weight
# gradients `x_tᵀ dz_t` (inner dimension = batch) and accumulates them. Here the backward scan
# only propagates the state cotangent and emits the per-step pre-activation cotangents; the
# weight gradients are then one matrix product each over all T·B rows (and the input part of
# the first layer is one product over all steps in the forward pass too).


def _act_grad(name, pre):
    act = _ACTIVATIONS[name]
    return jax.jvp(act, (pre,), (jnp.ones_like(pre),))[1]


def _dense_gates(mode, z, t):
    """`(h_new, a, c, g)` from the head pre-activations `z = [ff1, ff2, t_a, t_b]`."""
    ff1, ff2, ta, tb = jnp.split(z, 4, -1)
    a, c = jnp.tanh(ff1), jnp.tanh(ff2)
    g = jax.nn.sigmoid(ta * t[..., None] + tb)
    new = a + g * c if mode == "no_gate" else a * (1.0 - g) + g * c
    return new, a, c, g


def _dense_forward(mode, activation, weights, u, ts, h0):
    """Scan over time (time-major `u (T, B, I)`, `ts (T, B)`, `h0 (B, H)`); returns the
    states and, for the backward pass, the pre-activations of every layer and of the heads
    (everything else is recomputed from them outside the scans, vectorised over time)."""
    layers, heads = weights
    n_in = u.shape[-1]
    w1, b1 = layers[0] if layers else heads
    pin = u @ w1[:, :n_in].T + b1  # input part of the first layer, all steps at once
    act = _ACTIVATIONS[activation]
    wh, bh = heads
    # Transposed once outside the loop (a materialised copy), so every step multiplies by a
    # matrix in the layout the matrix kernel takes directly.
    w1h_t, wh_t, ws_t = jax.lax.optimization_barrier(
        (w1[:, n_in:].T, wh.T, tuple(w.T for w, _ in layers[1:])))

    def body(h, xs):
        p, t = xs
        pres = []
        pre = p + h @ w1h_t
        if layers:
            pres.append(pre)
            x = act(pre)
            for w_t, (_, b) in zip(ws_t, layers[1:]):
                pre = x @ w_t + b
                pres.append(pre)
                x = act(pre)
            z = x @ wh_t + bh
        else:
            z = pre
        new = _dense_gates(mode, z, t)[0]
        return new, (new, tuple(pres), z)

    _, res = jax.lax.scan(body, h0, (pin, ts))
    return res


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _dense_sequence(mode, activation, weights, u, ts, h0):
    return _dense_forward(mode, activation, weights, u, ts, h0)[0]


def _dense_sequence_fwd(mode, activation, weights, u, ts, h0):
    res = _dense_forward(mode, activation, weights, u, ts, h0)
    return res[0], (weights, u, ts, h0, res)


def _dense_sequence_bwd(mode, activation, saved, d_states):
    weights, u, ts, h0, (hs, pres, zs) = saved
    layers, (wh, bh) = weights
    n_in = u.shape[-1]
    w1 = layers[0][0] if layers else wh
    w1h = w1[:, n_in:]
    _, a_s, c_s, g_s = _dense_gates(mode, zs, ts)  # all steps at once
    act_grads = tuple(_act_grad(activation, pre) for pre in pres)

    def body(dh, xs):
        dho, grads_t, a, c, g, t = xs
        dh = dh + dho
        if mode == "no_gate":
            da, dc, dg = dh, dh * g, dh * c
        else:
            da, dc, dg = dh * (1.0 - g), dh * g, dh * (c - a)
        dl = dg * g * (1.0 - g)
        dz = jnp.concatenate([da * (1.0 - a * a), dc * (1.0 - c * c), dl * t[:, None], dl], -1)
        dpres = []
        if layers:
            dx = dz @ wh
            for i in range(len(layers) - 1, -1, -1):
                dpre = dx * grads_t[i]
                dpres.append(dpre)
                if i:
                    dx = dpre @ layers[i][0]
            dpres.reverse()
            d_first = dpres[0]
        else:
            d_first = dz
        return d_first @ w1h, (dz, tuple(dpres))

    dh0, (dzs, dpres) = jax.lax.scan(
        body, jnp.zeros_like(h0), (d_states, act_grads, a_s, c_s, g_s, ts), reverse=True)
    steps, batch = u.shape[:2]

    def outer(d, x):  # Σ_{t,b} d_tbᵀ x_tb as one matrix product over T·B rows
        return d.reshape(steps * batch, -1).T @ x.reshape(steps * batch, -1)

    h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
    first_in = jnp.concatenate([u, h_prev], -1)
    act = _ACTIVATIONS[activation]
    outs = [act(pre) for pre in pres]
    d_first = dpres[0] if layers else dzs
    if layers:
        d_layers = [(outer(d_first, first_in), d_first.sum((0, 1)))]
        for i in range(1, len(layers)):
            d_layers.append((outer(dpres[i], outs[i - 1]), dpres[i].sum((0, 1))))
        d_heads = (outer(dzs, outs[-1]), dzs.sum((0, 1)))
    else:
        d_layers = []
        d_heads = (outer(dzs, first_in), dzs.sum((0, 1)))
    du = d_first @ w1[:, :n_in]
    _, _, ta, _ = jnp.split(zs, 4, -1)
    dl = jnp.split(dzs, 4, -1)[3]  # the t_b block of dz is the gate's logit cotangent
    dts = jnp.sum(dl * ta, -1)
    return (tuple(d_layers), d_heads), du, dts, dh0


_dense_sequence.defvjp(_dense_sequence_fwd, _dense_sequence_bwd)
