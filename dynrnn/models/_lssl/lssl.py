"""Linear state-space layers (LSSL) with HiPPO matrices, and a deep LSSL network.

Gu, Johnson, Goel, Saab, Dao, Rudra, Ré, "Combining Recurrent, Convolutional, and
Continuous-time Models with Linear State-Space Layers", NeurIPS 2021, Sec. 3 and 4.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnTypeError, DynrnnValueError, check_positive, is_array
from ...scan import linear as scan_linear
from .._base import AbstractLatentModel, AbstractObservation
from .._observation import make_observation
from .hippo_matrices import DISCRETIZATIONS, _discretize, hippo, krylov, method_alpha


_ACTIVATIONS = {
    # Exact (erf) GELU, as torch.nn.GELU in the reference layer.
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "identity": lambda x: x,
}
_MODES = ("convolution", "recurrent")
_LOWER_TRIANGULAR = ("legs", "lagt", "tlagt")  # HiPPO kinds whose A has no upper part


def _check_choice(value, name, choices):
    if value not in choices:
        raise DynrnnValueError(
            f"`{name}` must be one of {', '.join(repr(c) for c in choices)}, got {value!r}."
        )


def _check_sequence(u, name, features):
    if not is_array(u):
        raise DynrnnTypeError(f"`{name}` must be an array of shape (time, {features}).")
    if u.ndim != 2 or u.shape[-1] != features:
        raise DynrnnValueError(
            f"`{name}` must have shape (time, {features}), got shape {tuple(u.shape)}; "
            "apply the layer to one sequence and use jax.vmap for a batch."
        )


def _lssl_sizes(channels, state_size, obs, latent):
    if obs is None and latent is None:
        if channels is None or state_size is None:
            raise DynrnnValueError(
                "`LSSL` needs its sizes: `LSSL(channels, state_size)` or the latent-model "
                "keywords `obs=`, `latent=`."
            )
        return channels, state_size
    if channels is not None or state_size is not None:
        raise DynrnnValueError(
            "`LSSL` takes either `(channels, state_size)` or the keywords `obs=`, `latent=`, not "
            f"both; got channels={channels!r}, state_size={state_size!r}, obs={obs!r}, "
            f"latent={latent!r}."
        )
    if latent is None:
        raise DynrnnValueError("`LSSL` needs `latent=` (the HiPPO order of each channel).")
    return (latent if obs is None else obs), latent


def _linear_recurrence(a, b):
    """`x_t = a x_{t−1} + b_t`, `x_{−1} = 0`, for a constant dense `a` `(n, n)` and `b` `(T, n)`."""
    # Sequential: with a dense `a` the associative scan would cost O(T n³) work and O(T n²)
    # memory for products of matrices; the convolution mode is the parallel form of this layer.
    return scan_linear(jnp.broadcast_to(a, (b.shape[0],) + a.shape), b, method="sequential")


class LSSLReadout(AbstractObservation):
    """Observation model of an `LSSL` rolled out as a latent model.

    The latent state is `z = [y; x]`: the layer's last output `y` (`channels` values) followed
    by the flattened per-channel SSM states `x` (`channels × state_size`). The observation is
    `y`; the initial state from a first input `u_0` is `[u_0; 0]` (`x_{−1} = 0`, LSSL Sec. 2);
    the forcing signal puts data in place of `y`, i.e. teacher forcing feeds the observed value
    instead of the model's own prediction as the next input.
    """

    n_obs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)

    def __init__(self, obs: int, latent: int):
        self.n_obs = obs
        self.n_latent = latent

    def __call__(self, z):
        return z[..., : self.n_obs]

    def init_state(self, x0):
        pad = jnp.zeros(x0.shape[:-1] + (self.n_latent - self.n_obs,), x0.dtype)
        return jnp.concatenate([x0, pad], axis=-1)

    def forcing_signal(self, x):
        return jax.lax.stop_gradient(self.init_state(x))

    @property
    def partial_forcing(self) -> bool:
        return True


class LSSL(AbstractLatentModel):
    """Linear state-space layer: `H` channels, each an `N`-state continuous-time system

        x'(t) = A x(t) + B u(t),    y(t) = C x(t) + D u(t),

    with HiPPO `(A, B)` (`hippo(kind, N)`), discretised per channel with a trainable step
    `Δ_h` (stored as `log Δ`, initialised log-uniformly in `[dt_min, dt_max]`) into
    `x_t = Ā x_{t−1} + B̄ u_t`, `x_{−1} = 0`. `C ~ N(0, 1)` of shape `(H, M, N)` and
    `D ~ N(0, 1)` of shape `(H, M)` give `M` output copies per channel; the `H·M` outputs pass
    through the activation and dropout and are mixed back to `H` channels by a
    `Linear(M·H → H)` (the reference layer, state-spaces/s4 `standalone/lssl.py`).

    Two evaluation modes compute the same map from the same parameters:

    - `mode="convolution"` (training): `y = K̄ * u + D u` with the kernel `K̄_l = C Ā^l B̄`,
      `l < L`, from `krylov` (⌈log₂ L⌉ matrix products) and an FFT convolution padded to `2L`;
    - `mode="recurrent"`: the recurrence through `dynrnn.scan.linear` with the dense `Ā`.

    **State interface.** The layer is also an `AbstractLatentModel` whose state is
    `z = [y; x]` (`H + H·N` values: the last output, then the flattened per-channel states).
    `step(z, u)` advances one time step with input `u` (`(H,)`) and stores the new output;
    `step(z)` without input feeds the last output back as the input (autoregressive
    generation), so `rollout(z, n)` runs the layer autonomously. `init_state(u_0)` is
    `[u_0; 0]`; `observe(z)` is `y`. Dropout is not applied in `step`.

    As a mixer of `dr.dsf.layers.SequenceModel` (and so in `dr.compare`, via a callable
    `lambda d, key: LSSL(d, N, key=key)`) it reports `state_size(length) = H·N`; the HiPPO
    order itself is the attribute `n_state`.

    **Sizes**, in one of two forms: the sequence-layer form `LSSL(channels, state_size)`, or the
    latent-model keywords `obs` (= `channels`, default `latent`) and `latent` (= `state_size`,
    the HiPPO order of each channel). The flat latent state then has `obs · (1 + latent)`
    values (see above).

    **Arguments:**
    - `channels`: `H`, the input and output width.
    - `state_size`: `N`, the HiPPO order.
    - `copies`: `M`, output copies per channel (default 1).
    - `kind`: the HiPPO matrix, `"legs"` (default), `"legt"`, `"lmu"`, `"lagt"`, `"tlagt"`.
    - `discretization`: `"bilinear"` (default), `"forward_euler"`, `"backward_euler"`, `"zoh"`.
    - `dt_min`, `dt_max`: range of the log-uniform initial `Δ` (default `[1e-3, 1e-1]`). With
      a fixed step a LegS layer forgets on a scale of ~`1/Δ` steps (its slowest mode
      decays like `e^{−Δ l}`); for memories of `L` steps a range around `1/L` (e.g.
      `[0.1/L, 10/L]`) is the better start.
    - `train_A`: `False` (default): `A` and `B` are fixed HiPPO matrices (gradients stopped);
      `True`: each channel gets its own trainable copy of `A` `(H, N, N)` and `B` `(H, N)`,
      initialised at HiPPO (LSSL `learn=2`).
    - `activation`: `"gelu"` (default), `"relu"`, `"tanh"`, `"identity"`.
    - `dropout`: dropout probability after the activation (needs a `key` when calling).
    - `observation`: `None` (the layer's output `y`, see above) or another observation model of
      the flat state (a name, a table or an instance), for reconstruction.
    - `key`: PRNG key.

    **Raises:** `DynrnnValueError` for sizes < 1, an unknown kind/discretisation/activation,
    `dt_min`/`dt_max` not positive and ordered, or `dropout` outside `[0, 1)`.
    """

    A: Float[Array, "n n"] | Float[Array, "channels n n"]
    B: Float[Array, " n"] | Float[Array, "channels n"]
    log_dt: Float[Array, " channels"]
    C: Float[Array, "channels copies n"]
    D: Float[Array, "channels copies"]
    output: eqx.nn.Linear
    dropout: eqx.nn.Dropout
    observation: AbstractObservation
    channels: int = eqx.field(static=True)
    n_state: int = eqx.field(static=True)
    copies: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    discretization: str = eqx.field(static=True)
    train_A: bool = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        channels: int | None = None,
        state_size: int | None = None,
        *,
        obs: int | None = None,
        latent: int | None = None,
        copies: int = 1,
        kind: str = "legs",
        discretization: str = "bilinear",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        train_A: bool = False,
        activation: str = "gelu",
        dropout: float = 0.0,
        observation=None,
        key: PRNGKeyArray,
    ):
        channels, state_size = _lssl_sizes(channels, state_size, obs, latent)
        check_positive(channels, "channels", integer=True)
        check_positive(state_size, "state_size", integer=True)
        check_positive(copies, "copies", integer=True)
        _check_choice(discretization, "discretization", DISCRETIZATIONS)
        _check_choice(activation, "activation", tuple(_ACTIVATIONS))
        check_positive(dt_min, "dt_min")
        check_positive(dt_max, "dt_max")
        if dt_min > dt_max:
            raise DynrnnValueError(
                f"`dt_min` must be <= `dt_max`, got dt_min={dt_min}, dt_max={dt_max}."
            )
        if not 0.0 <= dropout < 1.0:
            raise DynrnnValueError(f"`dropout` must lie in [0, 1), got {dropout!r}.")
        A, B = hippo(kind, state_size)
        dtype = jnp.result_type(float)
        A, B = jnp.asarray(A, dtype), jnp.asarray(B, dtype)
        if train_A:
            A = jnp.tile(A, (channels, 1, 1))
            B = jnp.tile(B, (channels, 1))
        k_dt, k_c, k_d, k_out, k_obs = jr.split(key, 5)
        self.A, self.B = A, B
        self.log_dt = jr.uniform(
            k_dt, (channels,), dtype, minval=math.log(dt_min), maxval=math.log(dt_max)
        )
        self.C = jr.normal(k_c, (channels, copies, state_size), dtype)
        self.D = jr.normal(k_d, (channels, copies), dtype)
        self.output = eqx.nn.Linear(copies * channels, channels, key=k_out, dtype=dtype)
        self.dropout = eqx.nn.Dropout(dropout)
        n_latent = channels + channels * state_size
        if observation is None:
            self.observation = LSSLReadout(channels, n_latent)
        else:
            self.observation = make_observation(observation, channels, n_latent, key=k_obs,
                                                dtype=dtype)
        self.channels = channels
        self.n_state = state_size
        self.copies = copies
        self.kind = kind.lower()
        self.discretization = discretization
        self.train_A = bool(train_A)
        self.activation = activation

    @property
    def hyperparameters(self) -> dict:
        """Constructor arguments that rebuild this layer (`dr.save`)."""
        readout = isinstance(self.observation, LSSLReadout)
        return dict(channels=self.channels, state_size=self.n_state, copies=self.copies,
                    kind=self.kind, discretization=self.discretization, train_A=self.train_A,
                    activation=self.activation, dropout=self.dropout.p,
                    observation=None if readout else self.observation)

    def state_size(self, length: int | None = None) -> int:
        """Numbers carried between steps in recurrent mode: `channels × N` (any length).

        (The `dr.compare`/`dr.dsf.layers.SequenceModel` mixer contract; the latent state of
        `step` additionally holds the last output.)"""
        return self.channels * self.n_state

    def discretized(self) -> tuple[Float[Array, "channels n n"], Float[Array, "channels n"]]:
        """Per-channel `(Ā, B̄)` at the current `Δ = exp(log_dt)`."""
        A, B = self.A, self.B
        if not self.train_A:
            A, B = jax.lax.stop_gradient(A), jax.lax.stop_gradient(B)
        H = self.channels
        A = jnp.broadcast_to(A, (H,) + A.shape[-2:])
        B = jnp.broadcast_to(B, (H,) + B.shape[-1:])
        dt = jnp.exp(self.log_dt)
        # Fixed LegS/LagT/tLagT matrices are lower triangular: forward substitution in XLA
        # operations instead of a batched LAPACK LU inside every training step.
        lower = not self.train_A and self.kind in _LOWER_TRIANGULAR
        alpha = method_alpha(self.discretization)
        return jax.vmap(
            lambda a, b, d: _discretize(a, b, d, self.discretization, alpha, lower)
        )(A, B, dt.astype(A.dtype))

    def kernel(self, length: int) -> Float[Array, "length channels copies"]:
        """The convolution kernel `K̄_l = C Ā^l B̄`, `l = 0 … length−1`, per channel and copy."""
        Ab, Bb = self.discretized()
        X = jax.vmap(lambda a, b: krylov(length, a, b))(Ab, Bb)  # (H, L, N)
        return jnp.einsum("hln,hmn->lhm", X, self.C.astype(X.dtype))

    def _mix(self, y, key):
        y = _ACTIVATIONS[self.activation](y)
        y = self.dropout(y, key=key, inference=key is None)
        y = y.reshape(y.shape[:-2] + (self.channels * self.copies,))
        if y.ndim == 1:
            return self.output(y)
        return jax.vmap(self.output)(y)

    @eqx.filter_jit
    def __call__(
        self,
        u: Float[Array, "time channels"],
        *,
        mode: str = "convolution",
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time channels"]:
        """Apply the layer to one sequence `u` of shape `(L, H)`.

        **Arguments:**
        - `u`: the input sequence `(L, H)`.
        - `mode`: `"convolution"` (FFT convolution with the Krylov kernel) or `"recurrent"`
          (`dynrnn.scan.linear` over the state); both give the same output.
        - `key`: PRNG key for dropout; `None` switches dropout off.

        **Returns:** `(L, H)`.

        **Raises:** `DynrnnValueError` if `u` is not `(L, H)` or `mode` is unknown.
        """
        _check_sequence(u, "u", self.channels)
        _check_choice(mode, "mode", _MODES)
        L = u.shape[0]
        if mode == "convolution":
            K = self.kernel(L).astype(u.dtype)
            n = 2 * L  # zero padding to 2L turns the circular FFT product into a causal one
            Kf = jnp.fft.rfft(K, n=n, axis=0)
            uf = jnp.fft.rfft(u, n=n, axis=0)
            y = jnp.fft.irfft(uf[:, :, None] * Kf, n=n, axis=0)[:L]
        else:
            Ab, Bb = self.discretized()
            Ab, Bb = Ab.astype(u.dtype), Bb.astype(u.dtype)
            x = jax.vmap(_linear_recurrence)(Ab, u.T[:, :, None] * Bb[:, None, :])  # (H, L, N)
            y = jnp.einsum("hln,hmn->lhm", x, self.C.astype(u.dtype))
        y = y + u[:, :, None] * self.D.astype(u.dtype)
        return self._mix(y, key)

    def _advance(self, Ab, Bb, z, u):
        H, N = self.channels, self.n_state
        y, x = z[:H], z[H:].reshape(H, N)
        v = y if u is None else u
        x = jnp.einsum("hij,hj->hi", Ab, x) + Bb * v[:, None]
        out = jnp.einsum("hmn,hn->hm", self.C, x) + self.D * v[:, None]
        return jnp.concatenate([self._mix(out, None), x.reshape(-1)])

    @property
    def n_inputs(self) -> int:
        return self.channels

    def step(
        self,
        z: Float[Array, " latent"],
        u: Float[Array, " channels"] | None = None,
        *,
        key=None,
    ) -> Float[Array, " latent"]:
        """One time step of the recurrent mode on the state `z = [y; x]`.

        `x_t = Ā x_{t−1} + B̄ v_t`, `y_t = Linear(act(C x_t + D v_t))`, with `v_t = u` if an
        input is given and the previous output `y_{t−1}` otherwise (autonomous generation).
        """
        self._check_step(z, u)
        Ab, Bb = self.discretized()
        return self._advance(Ab, Bb, z, u)


class DeepLSSL(eqx.Module):
    """A deep LSSL network: encoder, `n_layers` residual LSSL blocks, decoder.

        h_0 = W_enc u,
        h_ℓ = Norm(h_{ℓ−1} + Dropout(LSSL_ℓ(h_{ℓ−1})))        (post-norm, default)
        h_ℓ = h_{ℓ−1} + Dropout(LSSL_ℓ(Norm(h_{ℓ−1})))        (prenorm=True)
        out = W_dec pool(h_n)  (classification/regression)  or  W_dec h_n  (sequence),

    as the backbone around the LSSL in Gu et al. (2021), Sec. 4 (residual connection and
    normalisation after each layer, the reference `SequenceModel` default being post-norm).

    `model(u)` maps one sequence `(L, in_features)` to logits/values `(out_features,)`
    (`task="classification"` or `"regression"`, pooled over time) or `(L, out_features)`
    (`task="sequence"`); it is a plain Equinox module, so `jax.vmap(model)` batches it and
    `dynrnn.fit(model, (inputs, targets), loss="cross_entropy" | "mse", ...)` trains it.

    **Arguments:**
    - `in_features`, `d_model`, `n_layers`, `out_features`: sizes.
    - `state_size`: `N` of every LSSL (default 64).
    - `task`: `"classification"` (default), `"regression"` or `"sequence"`.
    - `pooling`: `"mean"` (default) or `"last"`, for the pooled tasks.
    - `norm`: `"layer"` (LayerNorm, default) or `"none"`.
    - `prenorm`: normalise before each LSSL instead of after the residual sum.
    - `dropout`: dropout probability inside the blocks.
    - `**lssl_kw`: passed to every `LSSL` (`kind`, `copies`, `discretization`, `dt_min`,
      `dt_max`, `train_A`, `activation`).
    - `key`: PRNG key.

    **Raises:** `DynrnnValueError` for sizes < 1 or an unknown task/pooling/norm.
    """

    encoder: eqx.nn.Linear
    layers: tuple[LSSL, ...]
    norms: tuple[eqx.nn.LayerNorm, ...] | None
    dropout: eqx.nn.Dropout
    decoder: eqx.nn.Linear
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    d_model: int = eqx.field(static=True)
    task: str = eqx.field(static=True)
    pooling: str = eqx.field(static=True)
    norm: str = eqx.field(static=True)
    prenorm: bool = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        d_model: int,
        n_layers: int,
        out_features: int,
        *,
        state_size: int = 64,
        task: str = "classification",
        pooling: str = "mean",
        norm: str = "layer",
        prenorm: bool = False,
        dropout: float = 0.0,
        key: PRNGKeyArray,
        **lssl_kw,
    ):
        for value, name in [
            (in_features, "in_features"),
            (d_model, "d_model"),
            (n_layers, "n_layers"),
            (out_features, "out_features"),
        ]:
            check_positive(value, name, integer=True)
        _check_choice(task, "task", ("classification", "regression", "sequence"))
        _check_choice(pooling, "pooling", ("mean", "last"))
        _check_choice(norm, "norm", ("layer", "none"))
        if not 0.0 <= dropout < 1.0:
            raise DynrnnValueError(f"`dropout` must lie in [0, 1), got {dropout!r}.")
        k_enc, k_dec, *k_layers = jr.split(key, n_layers + 2)
        dtype = jnp.result_type(float)
        self.encoder = eqx.nn.Linear(in_features, d_model, key=k_enc, dtype=dtype)
        self.layers = tuple(
            LSSL(d_model, state_size, dropout=dropout, key=k, **lssl_kw) for k in k_layers
        )
        self.norms = (
            tuple(eqx.nn.LayerNorm(d_model, dtype=dtype) for _ in range(n_layers))
            if norm == "layer"
            else None
        )
        self.dropout = eqx.nn.Dropout(dropout)
        self.decoder = eqx.nn.Linear(d_model, out_features, key=k_dec, dtype=dtype)
        self.in_features = in_features
        self.out_features = out_features
        self.d_model = d_model
        self.task = task
        self.pooling = pooling
        self.norm = norm
        self.prenorm = bool(prenorm)

    def _normalize(self, i, h):
        if self.norms is None:
            return h
        return jax.vmap(self.norms[i])(h)

    @eqx.filter_jit
    def __call__(
        self,
        u: Float[Array, "time in_features"],
        *,
        mode: str = "convolution",
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " out_features"] | Float[Array, "time out_features"]:
        """Apply the network to one sequence `u` `(L, in_features)`.

        **Arguments:**
        - `u`: the input sequence.
        - `mode`: `"convolution"` or `"recurrent"`, passed to every LSSL.
        - `key`: PRNG key for dropout; `None` switches dropout off.

        **Returns:** `(out_features,)` for classification/regression, `(L, out_features)` for
        `task="sequence"`.

        **Raises:** `DynrnnValueError` if `u` is not `(L, in_features)`.
        """
        _check_sequence(u, "u", self.in_features)
        n_keys = 2 * len(self.layers)
        keys = [None] * n_keys if key is None else list(jr.split(key, n_keys))
        h = jax.vmap(self.encoder)(u)
        for i, layer in enumerate(self.layers):
            k_layer, k_drop = keys[2 * i], keys[2 * i + 1]
            inner = self._normalize(i, h) if self.prenorm else h
            inner = layer(inner, mode=mode, key=k_layer)
            h = h + self.dropout(inner, key=k_drop, inference=k_drop is None)
            if not self.prenorm:
                h = self._normalize(i, h)
        if self.task == "sequence":
            return jax.vmap(self.decoder)(h)
        pooled = h.mean(axis=0) if self.pooling == "mean" else h[-1]
        return self.decoder(pooled)
