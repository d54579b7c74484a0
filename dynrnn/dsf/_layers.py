"""Trainable sequence mixers that compute their output through their DSF.

Every mixer maps `u` `(L, d_model)` to `y` `(L, d_model)`: it computes its per-step quantities
from `u`, builds its `DSF` with the converter of its family (`mixer.dsf(u)`, which acts on
`mixer.values(u)`), applies it with `dr.dsf.apply` and projects back. The architectures follow
the reference code of Sieber et al. (NeurIPS 2024; dsf-mqar, a Zoology fork): one head, no
attention dropout, no MLP; S6 with expand 1 and no input projection, convolution or gate.

`SequenceModel` stacks mixers into the small model used on MQAR and the other `dr.compare`
tasks: encoder → n × [x + mixer(norm(x))] → norm → readout.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._errors import DynrnnValueError
from ._converters import (
    from_gla,
    from_linear_attention,
    from_lru,
    from_normalized_attention,
    from_qlstm,
    from_retnet,
    from_rglru,
    from_s6,
    from_softmax_attention,
    from_ssd,
)
from ._dsf import DSF, apply


def _linear(d_in, d_out, *, bias=True, key):
    return eqx.nn.Linear(d_in, d_out, use_bias=bias, key=key)


def _rows(layer, x):
    """A `Linear` applied to every row of `x` `(L, d_in)`."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


def _rms(x, eps=1e-6):
    return x * jax.lax.rsqrt(jnp.mean(x**2, axis=-1, keepdims=True) + eps)


class AbstractMixer(eqx.Module):
    """A sequence layer `u (L, d_model) -> y (L, d_model)` that computes its output through its
    DSF.

    Subclasses implement `values(u)` (the DSF's input, `(L, d)`), `dsf(u)` (the system acting
    on it), `__call__` and `state_size(length)`; `positional` says whether the model should add
    learned position embeddings (the reference code does for attention only).
    """

    d_model: eqx.AbstractVar[int]
    method: eqx.AbstractVar[str]
    positional: ClassVar[bool] = False

    @abc.abstractmethod
    def values(self, u: Float[Array, "L d_model"]) -> Float[Array, "L d"]:
        """The input the DSF acts on (`W_V u` for attention)."""

    @abc.abstractmethod
    def dsf(self, u: Float[Array, "L d_model"]) -> DSF:
        """The layer's DSF on input `u`."""

    @abc.abstractmethod
    def __call__(self, u: Float[Array, "L d_model"], *, key: PRNGKeyArray | None = None):
        """`y = out(apply(dsf(u), values(u)))`."""

    @abc.abstractmethod
    def state_size(self, length: int) -> int:
        """Numbers held between steps at inference (softmax attention: its key/value cache)."""


class _AbstractAttentionFamily(AbstractMixer):
    """Attention-like mixers: `q, k = W_qk u`, values `W_V u`, output projection."""

    W_qk: eqx.AbstractVar[eqx.nn.Linear]
    W_v: eqx.AbstractVar[eqx.nn.Linear]
    out: eqx.AbstractVar[eqx.nn.Linear]
    d_qk: eqx.AbstractVar[int]

    def _qk(self, u):
        qk = _rows(self.W_qk, u)
        return qk[:, : self.d_qk], qk[:, self.d_qk:]

    def values(self, u):
        return _rows(self.W_v, u)

    def __call__(self, u, *, key=None):
        return _rows(self.out, apply(self.dsf(u), self.values(u), method=self.method))

    def state_size(self, length: int) -> int:
        return self.d_qk * self.d_model  # N = n·d


class SoftmaxAttention(_AbstractAttentionFamily):
    """Causal softmax attention, one head, scale `1/√d_qk`; applied as the matrix `Φ` (its
    DSF has no finite recurrent form, see `dr.dsf.from_softmax_attention`).

    **Arguments:** `d_model`, `d_qk` (default `d_model`), `key`.
    """

    W_qk: eqx.nn.Linear
    W_v: eqx.nn.Linear
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_qk: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    positional: ClassVar[bool] = True

    def __init__(self, d_model: int, d_qk: int | None = None, *, key: PRNGKeyArray):
        d_qk = d_model if d_qk is None else d_qk
        k1, k2, k3 = jr.split(key, 3)
        self.W_qk = _linear(d_model, 2 * d_qk, key=k1)
        self.W_v = _linear(d_model, d_model, key=k2)
        self.out = _linear(d_model, d_model, key=k3)
        self.d_model, self.d_qk, self.method = d_model, d_qk, "matrix"

    def dsf(self, u):
        return from_softmax_attention(*self._qk(u))

    def state_size(self, length: int) -> int:
        return length * (self.d_qk + self.d_model)  # the key/value cache grows with L


class LinearAttention(_AbstractAttentionFamily):
    """Causal normalised linear attention with feature map `ψ` (default `elu + 1`).

    **Arguments:** `d_model`, `d_qk`, `feature_map`, `method` (`"recurrent"`/`"parallel"`/
    `"matrix"`), `key`.
    """

    W_qk: eqx.nn.Linear
    W_v: eqx.nn.Linear
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_qk: int = eqx.field(static=True)
    feature_map: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    positional: ClassVar[bool] = True

    def __init__(self, d_model: int, d_qk: int | None = None, *, feature_map: str = "elu1",
                 method: str = "recurrent", key: PRNGKeyArray):
        d_qk = d_model if d_qk is None else d_qk
        k1, k2, k3 = jr.split(key, 3)
        self.W_qk = _linear(d_model, 2 * d_qk, key=k1)
        self.W_v = _linear(d_model, d_model, key=k2)
        self.out = _linear(d_model, d_model, key=k3)
        self.d_model, self.d_qk, self.feature_map, self.method = d_model, d_qk, feature_map, method

    def dsf(self, u):
        return from_linear_attention(*self._qk(u), feature_map=self.feature_map)


class NormalizedAttention(_AbstractAttentionFamily):
    """Normalised attention (Sieber et al. 2024, eq. 23): `y_i = Σ_{j≤i} (q_iᵀk_j) v_j / η_i`,
    `η_i = exp(W_n u_i + b_n)`.

    **Arguments:** `d_model`, `d_qk`, `method`, `key`.
    """

    W_qk: eqx.nn.Linear
    W_v: eqx.nn.Linear
    W_n: eqx.nn.Linear
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_qk: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    positional: ClassVar[bool] = True

    def __init__(self, d_model: int, d_qk: int | None = None, *, method: str = "recurrent",
                 key: PRNGKeyArray):
        d_qk = d_model if d_qk is None else d_qk
        k1, k2, k3, k4 = jr.split(key, 4)
        self.W_qk = _linear(d_model, 2 * d_qk, key=k1)
        self.W_v = _linear(d_model, d_model, key=k2)
        self.W_n = _linear(d_model, 1, key=k3)
        self.out = _linear(d_model, d_model, key=k4)
        self.d_model, self.d_qk, self.method = d_model, d_qk, method

    def dsf(self, u):
        q, k = self._qk(u)
        return from_normalized_attention(q, k, _rows(self.W_n, u)[:, 0])


class RetNet(_AbstractAttentionFamily):
    """Retention, one head (Sun et al. 2023): `y_i = Σ_{j≤i} γ^{i−j} (q_iᵀk_j) v_j`, keys
    scaled by `1/√d_qk`, output RMS-normalised (RetNet's group norm with one group).

    **Arguments:** `d_model`, `d_qk`, `gamma` (default `1 − 2⁻⁵`), `method`, `key`.
    """

    W_qk: eqx.nn.Linear
    W_v: eqx.nn.Linear
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_qk: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, d_qk: int | None = None, *, gamma: float = 1 - 2**-5,
                 method: str = "recurrent", key: PRNGKeyArray):
        d_qk = d_model if d_qk is None else d_qk
        k1, k2, k3 = jr.split(key, 3)
        self.W_qk = _linear(d_model, 2 * d_qk, key=k1)
        self.W_v = _linear(d_model, d_model, key=k2)
        self.out = _linear(d_model, d_model, key=k3)
        self.d_model, self.d_qk, self.gamma, self.method = d_model, d_qk, gamma, method

    def dsf(self, u):
        q, k = self._qk(u)
        return from_retnet(q, k / math.sqrt(self.d_qk), self.gamma)

    def __call__(self, u, *, key=None):
        return _rows(self.out, _rms(apply(self.dsf(u), self.values(u), method=self.method)))


class GLA(_AbstractAttentionFamily):
    """Gated linear attention, one head (Yang et al. 2024): gates `α_i = σ(W_α u_i)^{1/τ}`,
    keys scaled by `1/√d_qk`, output RMS-normalised.

    **Arguments:** `d_model`, `d_qk`, `tau` (default 16), `method`, `key`.
    """

    W_qk: eqx.nn.Linear
    W_v: eqx.nn.Linear
    W_alpha: eqx.nn.Linear
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_qk: int = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, d_qk: int | None = None, *, tau: float = 16.0,
                 method: str = "recurrent", key: PRNGKeyArray):
        d_qk = d_model if d_qk is None else d_qk
        k1, k2, k3, k4 = jr.split(key, 4)
        self.W_qk = _linear(d_model, 2 * d_qk, key=k1)
        self.W_v = _linear(d_model, d_model, key=k2)
        self.W_alpha = _linear(d_model, d_qk, key=k3)
        self.out = _linear(d_model, d_model, key=k4)
        self.d_model, self.d_qk, self.tau, self.method = d_model, d_qk, tau, method

    def dsf(self, u):
        q, k = self._qk(u)
        alpha = jnp.exp(jax.nn.log_sigmoid(_rows(self.W_alpha, u)) / self.tau)
        return from_gla(q, k / math.sqrt(self.d_qk), alpha)

    def __call__(self, u, *, key=None):
        return _rows(self.out, _rms(apply(self.dsf(u), self.values(u), method=self.method)))


def _dt_bias(key, d, dt_min=1e-3, dt_max=1e-1):
    """Mamba's Δ bias: inverse softplus of a log-uniform sample in [dt_min, dt_max]."""
    dt = jnp.exp(jr.uniform(key, (d,)) * (math.log(dt_max) - math.log(dt_min))
                 + math.log(dt_min))
    return dt + jnp.log(-jnp.expm1(-dt))


class S6(AbstractMixer):
    """The selective SSM of Mamba as in the reference code: expand 1, no input projection,
    convolution or gate; `[Δ_low, B, C] = W_x u`, `Δ = softplus(W_Δ Δ_low + b_Δ)` (rank
    `⌈d/16⌉`), `A = −exp(A_log)` initialised to `−1 … −n`, `D = 1`, output projection.

    **Arguments:** `d_model`, `d_state` (`n`, default 16), `dt_rank` (default `⌈d/16⌉`),
    `method`, `key`.
    """

    x_proj: eqx.nn.Linear
    dt_proj: eqx.nn.Linear
    A_log: Float[Array, "d n"]
    D: Float[Array, " d"]
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_state: int = eqx.field(static=True)
    dt_rank: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, d_state: int = 16, *, dt_rank: int | None = None,
                 method: str = "recurrent", key: PRNGKeyArray):
        r = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        k1, k2, k3, k4, k5 = jr.split(key, 5)
        self.x_proj = _linear(d_model, r + 2 * d_state, bias=False, key=k1)
        std = r**-0.5
        self.dt_proj = eqx.nn.Linear(r, d_model, key=k2)
        self.dt_proj = eqx.tree_at(
            lambda m: (m.weight, m.bias), self.dt_proj,
            (jr.uniform(k3, (d_model, r), minval=-std, maxval=std), _dt_bias(k4, d_model)),
        )
        self.A_log = jnp.log(jnp.tile(jnp.arange(1, d_state + 1, dtype=float), (d_model, 1)))
        self.D = jnp.ones(d_model)
        self.out = _linear(d_model, d_model, bias=False, key=k5)
        self.d_model, self.d_state, self.dt_rank, self.method = d_model, d_state, r, method

    def values(self, u):
        return u

    def dsf(self, u):
        proj = _rows(self.x_proj, u)
        r, n = self.dt_rank, self.d_state
        delta = jax.nn.softplus(_rows(self.dt_proj, proj[:, :r]))
        return from_s6(delta, -jnp.exp(self.A_log), proj[:, r:r + n], proj[:, r + n:], self.D)

    def __call__(self, u, *, key=None):
        return _rows(self.out, apply(self.dsf(u), u, method=self.method))

    def state_size(self, length: int) -> int:
        return self.d_model * self.d_state


class SSD(AbstractMixer):
    """The scalar-transition SSM ("S6-2" of the reference code, Mamba-2's SSD): as `S6` with
    `Δ` from a rank-1 projection and one scalar `A = −exp(A_log)`, `A_log = 0`.

    **Arguments:** `d_model`, `d_state`, `method`, `key`.
    """

    x_proj: eqx.nn.Linear
    dt_proj: eqx.nn.Linear
    A_log: Float[Array, ""]
    D: Float[Array, " d"]
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    d_state: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, d_state: int = 16, *, method: str = "recurrent",
                 key: PRNGKeyArray):
        k1, k2, k3, k4, k5 = jr.split(key, 5)
        self.x_proj = _linear(d_model, 1 + 2 * d_state, bias=False, key=k1)
        self.dt_proj = eqx.nn.Linear(1, d_model, key=k2)
        self.dt_proj = eqx.tree_at(
            lambda m: (m.weight, m.bias), self.dt_proj,
            (jr.uniform(k3, (d_model, 1), minval=-1.0, maxval=1.0), _dt_bias(k4, d_model)),
        )
        self.A_log = jnp.zeros(())
        self.D = jnp.ones(d_model)
        self.out = _linear(d_model, d_model, bias=False, key=k5)
        self.d_model, self.d_state, self.method = d_model, d_state, method

    def values(self, u):
        return u

    def dsf(self, u):
        proj = _rows(self.x_proj, u)
        n = self.d_state
        delta = jax.nn.softplus(_rows(self.dt_proj, proj[:, :1]))
        return from_ssd(delta, jnp.exp(self.A_log), proj[:, 1:1 + n], proj[:, 1 + n:], self.D)

    def __call__(self, u, *, key=None):
        return _rows(self.out, apply(self.dsf(u), u, method=self.method))

    def state_size(self, length: int) -> int:
        return self.d_model * self.d_state


class LRU(AbstractMixer):
    """The linear recurrent unit (Orvieto et al. 2023): complex diagonal `λ = exp(−e^ν + i e^θ)`
    with `|λ|` uniform in `[r_min, r_max]` and phase in `[0, max_phase]` at initialisation,
    `γ = √(1 − |λ|²)`, `y = Re(C h) + D ⊙ u`.

    **Arguments:** `d_model`, `d_state` (`N`), `r_min`, `r_max`, `max_phase`, `method`, `key`.
    """

    nu_log: Float[Array, " N"]
    theta_log: Float[Array, " N"]
    gamma_log: Float[Array, " N"]
    B_re: Float[Array, "N d"]
    B_im: Float[Array, "N d"]
    C_re: Float[Array, "d N"]
    C_im: Float[Array, "d N"]
    D: Float[Array, " d"]
    d_model: int = eqx.field(static=True)
    d_state: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, d_state: int = 64, *, r_min: float = 0.9,
                 r_max: float = 0.999, max_phase: float = 2 * math.pi,
                 method: str = "recurrent", key: PRNGKeyArray):
        k = jr.split(key, 7)
        u1, u2 = jr.uniform(k[0], (d_state,)), jr.uniform(k[1], (d_state,))
        self.nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        self.theta_log = jnp.log(max_phase * u2 + 1e-12)
        mod = jnp.exp(-jnp.exp(self.nu_log))
        self.gamma_log = jnp.log(jnp.sqrt(1 - mod**2))
        self.B_re = jr.normal(k[2], (d_state, d_model)) / math.sqrt(2 * d_model)
        self.B_im = jr.normal(k[3], (d_state, d_model)) / math.sqrt(2 * d_model)
        self.C_re = jr.normal(k[4], (d_model, d_state)) / math.sqrt(d_state)
        self.C_im = jr.normal(k[5], (d_model, d_state)) / math.sqrt(d_state)
        self.D = jr.normal(k[6], (d_model,))
        self.d_model, self.d_state, self.method = d_model, d_state, method

    def values(self, u):
        return u

    def dsf(self, u):
        return from_lru(self.nu_log, self.theta_log, self.gamma_log,
                        self.B_re + 1j * self.B_im, self.C_re + 1j * self.C_im, self.D,
                        length=u.shape[0])

    def __call__(self, u, *, key=None):
        return apply(self.dsf(u), u, method=self.method)

    def state_size(self, length: int) -> int:
        return 2 * self.d_state  # complex


class RGLRU(AbstractMixer):
    """The real-gated LRU of Griffin/Hawk (De et al. 2024) between two projections:
    `y = W_out RG-LRU(W_in u)`, `a = σ(Λ)` with `a^c` uniform in [0.9, 0.999] at
    initialisation, `c = 8`.

    **Arguments:** `d_model`, `c`, `method`, `key`.
    """

    W_in: eqx.nn.Linear
    W_a: eqx.nn.Linear
    W_x: eqx.nn.Linear
    Lambda: Float[Array, " d"]
    out: eqx.nn.Linear
    d_model: int = eqx.field(static=True)
    c: float = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, *, c: float = 8.0, method: str = "recurrent",
                 key: PRNGKeyArray):
        k = jr.split(key, 5)
        self.W_in = _linear(d_model, d_model, key=k[0])
        self.W_a = _linear(d_model, d_model, key=k[1])
        self.W_x = _linear(d_model, d_model, key=k[2])
        a_c = jr.uniform(k[3], (d_model,), minval=0.9, maxval=0.999)
        a = a_c ** (1.0 / c)
        self.Lambda = jnp.log(a) - jnp.log1p(-a)
        self.out = _linear(d_model, d_model, key=k[4])
        self.d_model, self.c, self.method = d_model, c, method

    def values(self, u):
        return _rows(self.W_in, u)

    def dsf(self, u):
        x = self.values(u)
        return from_rglru(_rows(self.W_a, x), _rows(self.W_x, x), self.Lambda, c=self.c)

    def __call__(self, u, *, key=None):
        return _rows(self.out, apply(self.dsf(u), self.values(u), method=self.method))

    def state_size(self, length: int) -> int:
        return self.d_model


class qLSTM(AbstractMixer):
    """The quasi-LSTM of the reference code: `[g, x] = W_in u` (hidden `e·d`), a causal
    depthwise convolution (kernel 4) on `x`, gates `[f, i, o] = W_g x`, the DSF of
    `from_qlstm` on `x`, `y = W_out(gelu(g) ⊙ h)` (exact GELU); reversed-sigmoid forget gate by
    default. `expansion=2` is the reference's hidden width; `expansion=1` keeps the hidden
    width equal to `d_model` (an equal-width comparison with the other mixers).

    **Arguments:** `d_model`, `expansion` (2), `kernel_size` (4), `reversed` (True), `method`,
    `key`.
    """

    W_in: eqx.nn.Linear
    conv_w: Float[Array, "h k"]
    conv_b: Float[Array, " h"]
    gates: eqx.nn.Linear
    out: eqx.nn.Linear
    alpha: Float[Array, ""]
    d_model: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    reversed: bool = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(self, d_model: int, *, expansion: int = 2, kernel_size: int = 4,
                 reversed: bool = True, method: str = "recurrent", key: PRNGKeyArray):
        h = int(d_model * expansion)
        k = jr.split(key, 5)
        self.W_in = eqx.nn.Linear(d_model, 2 * h, use_bias=False, key=k[0])
        self.W_in = eqx.tree_at(lambda m: m.weight, self.W_in,
                                jr.normal(k[1], (2 * h, d_model)) * d_model**-0.5)
        bound = kernel_size**-0.5
        self.conv_w = jr.uniform(k[2], (h, kernel_size), minval=-bound, maxval=bound)
        self.conv_b = jnp.zeros(h)
        self.gates = _linear(h, 3 * h, key=k[3])
        self.out = eqx.nn.Linear(h, d_model, use_bias=False, key=k[4])
        self.out = eqx.tree_at(lambda m: m.weight, self.out,
                               jr.normal(k[4], (d_model, h)) * h**-0.5)
        self.alpha = jnp.ones(())
        self.d_model, self.hidden, self.reversed, self.method = d_model, h, reversed, method

    def _split(self, u):
        gx = _rows(self.W_in, u)
        return gx[:, : self.hidden], gx[:, self.hidden:]

    def values(self, u):
        _, x = self._split(u)
        ks = self.conv_w.shape[1]
        xp = jnp.concatenate([jnp.zeros((ks - 1, x.shape[1]), x.dtype), x])
        L = x.shape[0]
        return self.conv_b + sum(self.conv_w[:, s] * xp[s:s + L] for s in range(ks))

    def dsf(self, u):
        f, i, o = jnp.split(_rows(self.gates, self.values(u)), 3, axis=-1)
        return from_qlstm(f, i, o, reversed=self.reversed, alpha=self.alpha)

    def __call__(self, u, *, key=None):
        g, _ = self._split(u)
        h = apply(self.dsf(u), self.values(u), method=self.method)
        # exact (erf) GELU, as PyTorch's default in the reference code
        return _rows(self.out, jax.nn.gelu(g, approximate=False) * h)

    def state_size(self, length: int) -> int:
        return 2 * self.hidden  # recurrent state plus the convolution's window (as the code)


MIXERS: dict[str, Callable[..., AbstractMixer]] = {
    "softmax": SoftmaxAttention,
    "linear": LinearAttention,
    "normalized": NormalizedAttention,
    "s6": S6,
    "ssd": SSD,
    "lru": LRU,
    "rglru": RGLRU,
    "qlstm": qLSTM,
    "retnet": RetNet,
    "gla": GLA,
}
_TAKES_D_QK = {"softmax", "linear", "normalized", "retnet", "gla"}
_TAKES_D_STATE = {"s6", "ssd", "lru"}


def make_mixer(name: str, d_model: int, *, d_qk: int | None = None, d_state: int | None = None,
               key: PRNGKeyArray, **kwargs) -> AbstractMixer:
    """A mixer by name: `"softmax"`, `"linear"`, `"normalized"`, `"s6"`, `"ssd"`, `"lru"`,
    `"rglru"`, `"qlstm"`, `"retnet"`, `"gla"`.

    **Arguments:**
    - `name`: the family.
    - `d_model`: the model width.
    - `d_qk`: query/key size of attention-like mixers (ignored by the others).
    - `d_state`: state size per channel of S6/SSD, or `N` of the LRU (ignored by the others).
    - `key`: PRNG key; `**kwargs` go to the mixer's constructor.

    **Returns:** the mixer.

    **Raises:** `DynrnnValueError` for an unknown name.
    """
    if name not in MIXERS:
        raise DynrnnValueError(f"`name` must be one of {sorted(MIXERS)}, got {name!r}.")
    if name in _TAKES_D_QK and d_qk is not None:
        kwargs["d_qk"] = d_qk
    if name in _TAKES_D_STATE and d_state is not None:
        kwargs["d_state"] = d_state
    return MIXERS[name](d_model, key=key, **kwargs)


class SequenceModel(eqx.Module):
    """A small sequence model around a mixer family (the MQAR model of Zoology/dsf-mqar):

    `x = encoder(u) (+ position embedding)`, then `n_layers` times `x ← x + mixer(norm(x))`,
    then `readout(norm(x))`; no MLP.

    **Arguments:**
    - `n_in`: vocabulary size (`tokens=True`, inputs are integer tokens `(L,)`) or input size
      (inputs `(L, n_in)`).
    - `n_out`: outputs per step (logits or values).
    - `mixer`: a family name (see `make_mixer`) or a callable `(d_model, key) -> mixer`.
    - `d_model`, `n_layers` (2), `max_length` (for position embeddings; needed when the mixer
      asks for them), `tokens`, `pool` (`"none"`: an output per step; `"last"`: only the last
      step's), `mixer_kwargs`, `key`.
    """

    encoder: eqx.nn.Embedding | eqx.nn.Linear
    position: Float[Array, "Lmax d"] | None
    mixers: tuple
    norms: tuple
    final_norm: eqx.nn.LayerNorm
    readout: eqx.nn.Linear
    tokens: bool = eqx.field(static=True)
    pool: str = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, mixer: str | Callable, *, d_model: int = 64,
                 n_layers: int = 2, max_length: int | None = None, tokens: bool = True,
                 pool: str = "none", mixer_kwargs: dict | None = None, key: PRNGKeyArray):
        if pool not in ("none", "last"):
            raise DynrnnValueError(f"`pool` must be 'none' or 'last', got {pool!r}.")
        keys = jr.split(key, n_layers + 3)
        mixer_kwargs = dict(mixer_kwargs or {})
        if isinstance(mixer, str):
            build = lambda k: make_mixer(mixer, d_model, key=k, **mixer_kwargs)  # noqa: E731
        else:
            build = lambda k: mixer(d_model, k)  # noqa: E731
        self.mixers = tuple(build(k) for k in keys[:n_layers])
        if tokens:
            self.encoder = eqx.nn.Embedding(n_in, d_model, key=keys[-3])
        else:
            self.encoder = eqx.nn.Linear(n_in, d_model, key=keys[-3])
        if any(isinstance(m, AbstractMixer) and m.positional for m in self.mixers):
            if max_length is None:
                raise DynrnnValueError(
                    "`max_length` is required: this mixer uses learned position embeddings."
                )
            self.position = 0.02 * jr.normal(keys[-2], (max_length, d_model))
        else:
            self.position = None
        self.norms = tuple(eqx.nn.LayerNorm(d_model) for _ in range(n_layers))
        self.final_norm = eqx.nn.LayerNorm(d_model)
        self.readout = eqx.nn.Linear(d_model, n_out, key=keys[-1])
        self.tokens, self.pool = tokens, pool

    def __call__(self, u: Int[Array, " L"] | Float[Array, "L n_in"], *,
                 key: PRNGKeyArray | None = None):
        """Outputs `(L, n_out)` (`pool="none"`) or `(n_out,)` (`pool="last"`)."""
        x = self.encoder.weight[u] if self.tokens else _rows(self.encoder, u)
        if self.position is not None:
            if x.shape[0] > self.position.shape[0]:
                raise DynrnnValueError(
                    f"sequence of length {x.shape[0]} exceeds `max_length` "
                    f"{self.position.shape[0]}."
                )
            x = x + self.position[: x.shape[0]]
        for mixer, norm in zip(self.mixers, self.norms):
            x = x + mixer(jax.vmap(norm)(x))
        x = jax.vmap(self.final_norm)(x)
        if self.pool == "last":
            return self.readout(x[-1])
        return _rows(self.readout, x)

    def state_size(self, length: int) -> int:
        """Numbers held between steps by all mixers together."""
        return int(sum(m.state_size(length) for m in self.mixers))


def n_parameters(model) -> int:
    """The number of trainable scalars (a complex number counts as two)."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(np.size(x) * (2 if jnp.iscomplexobj(x) else 1) for x in leaves))
