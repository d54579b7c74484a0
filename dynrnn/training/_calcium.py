"""Fitting a latent model to fluorescence through its calcium observation model, end to end.

`CalciumReconstruction` maximises the likelihood of the fluorescence itself instead of fitting
deconvolved spikes (the two-stage pipeline). Per window of `order + T` frames, with the
latent model `F_θ`, the observation `CalciumObservation` (`W, b, α, β`, kernel `γ`) and the
forcing signals `ẑ_t` (below):

    z̃_{order} = ẑ_{order}      z_t = F_θ(z̃_{t−1}),   z̃_t = (1 − a) z_t + a ẑ_t     (GTF)
    λ_t = softplus(W z_t + b)                                   (expected spikes per frame)
    c_t = γ1 c̃_{t−1} + γ2 c̃_{t−2} + λ_t,   c̃_t = (1 − a) c_t + a ĉ_t    (forced calcium)
    μ_t = α c_t + β
    loss = mean_{t,i} (F_{t,i} − μ_{t,i})² / (2 σ_i²)
           [+ w_s mean_{t,i} (λ_{t,i} − (ŝ_{t,i}/α_i) ln λ_{t,i})]

the Gaussian negative log-likelihood of the fluorescence given the expected spikes (up to
constants; σ_i the noise sd of neuron `i`, fixed), plus optionally the Poisson negative
log-likelihood of the deconvolved spikes `ŝ/α` as counts. The expected spikes, not sampled
ones, pass through the kernel (the kernel is linear, so `α K λ + β` is the expected
fluorescence).

**Forcing signals from inferred spikes.** Each neuron's trace is deconvolved once with the
observation's kernel (`dr.calcium.deconvolve`, free baseline), the spikes are smoothed with a
Gaussian of `smooth` frames into a rate `r̂` (fluorescence units per frame), and the forcing
signal is the latent state whose rates are `r̂ / α`:
`ẑ = pinv(W) (softplus⁻¹(max(r̂/α, 0.01)) − b)`, recomputed from the current `W, b, α` at
every update and held without gradient, as teacher forcing holds its signals (Hess et al.,
ICML 2023, Sec. 3). The kernel's calcium is the observation model's part of the state and is
forced alike, towards the calcium the deconvolution inferred, `ĉ = (F̂ − β)/α` (`F̂` the
denoised fluorescence; `force_calcium=False` lets it run freely through the window from its
first `order` frames instead).

**With a learned encoder** (`CalciumObservation(..., encoder=K)`), the forcing signals are
instead the encoder's states `ẑ_t` from the deconvolved spikes of the `K` frames before and
after frame `t` (held without gradient in the forcing), and the loss gains the encoder's own
term: its states decoded frame by frame, with the data's calcium before each frame,

    λ̂_t = softplus(W ẑ_t + b),   ĉ'_t = γ1 ĉ_{t−1} + γ2 ĉ_{t−2} + λ̂_t
    loss += mean_{t,i} (F_{t,i} − α_i ĉ'_{t,i} − β_i)² / (2 σ_i²)

so that the forcing signals have the scale the likelihood asks of the latent state (without
it, signals compressed against the rates taught the dynamics to amplify; measured in
`docs/decisions.md`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.ndimage
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError, check_array, check_positive
from ..calcium import deconvolve, noise_sd
from ..forcing import GTF, AbstractTeacherForcing
from ..forcing._forcing import gtf_blend
from ..models import AbstractLatentModel, AbstractStochasticModel, CalciumObservation
from ..models._base import model_dtype
from ._data import as_series_list
from ._objective import AbstractObjective, Windows, make_windows


_RATE_FLOOR = 1e-2  # as CalciumObservation's own inversion: softplus⁻¹ is −∞ at 0


def _inv_softplus(x):
    return x + jnp.log(-jnp.expm1(-x))


class CalciumWindows(eqx.Module):
    """Prepared data of `CalciumReconstruction`: windows of `(F, r̂, F̂, ŝ)` side by side
    (`4·obs` columns) and the per-neuron weights `1/σ²`."""

    windows: Windows
    weight: Array


def _deconvolved(obs: CalciumObservation, F: np.ndarray, smooth: float, sparsity: float):
    """`(r̂, F̂, ŝ, baseline)` of one series `F` (time, obs), neuron by neuron."""
    T, n = F.shape
    s = np.empty((T, n))
    fhat = np.empty((T, n))
    base = np.empty(n)
    gamma = obs.gamma
    for i in range(n):
        s[:, i], c, base[i] = deconvolve(F[:, i], gamma[i], sparsity=sparsity)
        fhat[:, i] = c + base[i]
    rhat = scipy.ndimage.gaussian_filter1d(s, smooth, axis=0, mode="nearest") if smooth else s
    return rhat, fhat, s, base


def _check_model(model) -> CalciumObservation:
    if not isinstance(model, AbstractLatentModel):
        raise DynrnnTypeError(
            f"`model` must be a latent model (dr.models.AbstractLatentModel), got "
            f"{type(model).__name__}."
        )
    if not isinstance(model.observation, CalciumObservation):
        raise DynrnnTypeError(
            "CalciumReconstruction fits a latent model whose observation is a "
            "dr.models.CalciumObservation (build it with observation='calcium'), got "
            f"{type(model.observation).__name__}."
        )
    return model.observation


def _fluorescence(model, data, name: str = "data") -> list[np.ndarray]:
    series = as_series_list(data, name)
    for i, s in enumerate(series):
        where = name if len(series) == 1 else f"{name}[{i}]"
        if s.shape[1] != model.n_obs:
            raise DynrnnValueError(
                f"`{where}` has {s.shape[1]} neurons but the model observes {model.n_obs} "
                f"(shape {s.shape}); build the model with obs={s.shape[1]}."
            )
        check_array(s, where, finite=True)
    return [np.asarray(s, np.float64) for s in series]


def forcing_states(obs: CalciumObservation, rhat: Float[Array, "time obs"]):
    """The forcing signals `ẑ = pinv(W)(softplus⁻¹(max(r̂/α, 0.01)) − b)` (no gradient)."""
    lam = jnp.maximum(rhat / obs.alpha, _RATE_FLOOR)
    z = (_inv_softplus(lam) - obs.b) @ jnp.linalg.pinv(obs.W).T.astype(rhat.dtype)
    return jax.lax.stop_gradient(z)


def _padded(x: np.ndarray, K: int) -> np.ndarray:
    """`x` with `K` frames of its mean before and after (the encoder's edges)."""
    if not K:
        return x
    pad = np.broadcast_to(x.mean(axis=0), (K, x.shape[1]))
    return np.concatenate([pad, x, pad])


def _forced(model, zhat, chat, tf, alpha, keys, force_calcium: bool):
    """Teacher-forced predictions for t = 1 … T from `z̃_0 = ẑ_0` and the calcium of the
    first `order` frames `ĉ`: `z_t = F(z̃_{t−1})`, `λ_t = rates(z_t)`,
    `c_t = γ1 c̃_{t−1} + γ2 c̃_{t−2} + λ_t`, then the blends `z̃_t` of `z_t` and `ẑ_t` and (with
    `force_calcium`) `c̃_t = (1 − a) c_t + a ĉ_t` (else `c̃_t = c_t`).

    **Returns:** `(λ, c)`, both `(T, obs)`.
    """
    obs = model.observation
    gamma = obs.kernel_coefficients(zhat.dtype).T  # (order, obs)
    p = gamma.shape[0]
    n_forced = tf.n_forced(model)
    alphas = tf.alphas(alpha, zhat.shape[0] - 1, zhat.dtype)

    def body(carry, inp):
        z, c_prev = carry  # c_prev: [c̃_{t−1}, c̃_{t−2}]
        zh, ch, a, k = inp
        new = model.step(z, key=k).astype(z.dtype)
        lam = obs.rates(new)
        c = jnp.sum(gamma * c_prev, axis=0) + lam
        c_next = (1.0 - a) * c + a * ch if force_calcium else c
        c_prev = jnp.concatenate([c_next[None], c_prev[:-1]])
        return (gtf_blend(new, zh, a, n_forced), c_prev), (lam, c)

    init = (zhat[0], chat[:p][::-1])
    _, (lam, c) = jax.lax.scan(body, init, (zhat[1:], chat[p:], alphas, keys))
    return lam, c


class CalciumReconstruction(AbstractObjective):
    """End-to-end fit of a latent model to fluorescence by its calcium likelihood.

    Any latent family (`ShallowPLRNN`, `PLRNN`, `GRU`, `CfC`, ...) whose observation is a
    `dr.models.CalciumObservation` is trained on the fluorescence `(time, neurons)` by
    maximising the likelihood of the module docstring: latent states under teacher forcing
    with signals inferred from deconvolved spikes, rates, expected spikes through the
    indicator kernel (with the calcium at each window's start taken from the data), Gaussian
    fluorescence noise, and optionally a Poisson term on the deconvolved spikes. The kernel
    is fixed (`gamma`, e.g. from `dr.calcium.gamma_from_tau`) or learned
    (`CalciumObservation(..., learn_kernel=True)`). Use `initialise` to set the observation's
    offset, scale and read-out from the data before `dr.fit`:

    ```python
    model = dr.models.ShallowPLRNN(obs=40, latent=3, hidden=50, observation=dr.models.
        CalciumObservation(40, 3, gamma=dr.calcium.gamma_from_tau(0.5, 30.0), key=k1), key=k2)
    objective = dr.training.CalciumReconstruction(seq_len=100)
    model = objective.initialise(model, F_train)
    result = dr.fit(model, F_train, loss=objective, n_steps=2000, key=k3)
    states = objective.infer_states(result.model, F_test)
    rates = result.model.observation.rates(states)
    ```

    **Arguments:**
    - `teacher_forcing`: `dr.GTF(...)` or `dr.STF(...)` (default `GTF("adaptive")`).
    - `seq_len`: predicted frames per window (each window also holds `order` frames before).
    - `noise`: the fluorescence noise sd σ, a number or one per neuron; default estimated per
      neuron from the training data (`dr.calcium.noise_sd`, the high-frequency PSD).
    - `smooth`: sd in frames of the Gaussian that turns deconvolved spikes into the rates
      behind the forcing signals (0: none).
    - `spike_weight`: weight `w_s` of the Poisson term on the deconvolved spikes (0: the
      fluorescence likelihood alone).
    - `sparsity`: factor on the deconvolution's L1 penalty (`dr.calcium.deconvolve`).
    - `force_calcium`: force the calcium too (default): the kernel's state is the
      observation model's part of the latent state, and is blended with the data-inferred
      calcium `ĉ_t = (F̂_t − β)/α` with the same strength as the latent state; `False` runs the
      calcium freely through the window from its first `order` frames.

    **Raises:** `ValueError` for a non-positive `seq_len`, a negative `smooth`,
    `spike_weight` or `sparsity`, or a non-positive `noise`; `TypeError` for a teacher
    forcing that is not one of `dr.forcing`.
    """

    teacher_forcing: AbstractTeacherForcing
    seq_len: int = eqx.field(static=True)
    noise: tuple[float, ...] | None = eqx.field(static=True)
    smooth: float = eqx.field(static=True)
    spike_weight: float = eqx.field(static=True)
    sparsity: float = eqx.field(static=True)
    force_calcium: bool = eqx.field(static=True)

    def __init__(self, teacher_forcing: AbstractTeacherForcing | None = None, *,
                 seq_len: int = 200, noise=None, smooth: float = 1.0,
                 spike_weight: float = 0.0, sparsity: float = 1.0, force_calcium: bool = True):
        tf = GTF("adaptive") if teacher_forcing is None else teacher_forcing
        if not isinstance(tf, AbstractTeacherForcing):
            raise DynrnnTypeError(
                f"`teacher_forcing` must be dr.GTF(...) or dr.STF(...), got {type(tf).__name__}."
            )
        check_positive(seq_len, "seq_len", integer=True)
        check_positive(smooth, "smooth", strict=False)
        check_positive(spike_weight, "spike_weight", strict=False)
        check_positive(sparsity, "sparsity", strict=False)
        if noise is not None:
            arr = np.atleast_1d(np.asarray(noise, np.float64))
            if arr.ndim != 1 or not np.all(np.isfinite(arr) & (arr > 0)):
                raise DynrnnValueError(
                    f"`noise` must be a positive number or one per neuron, got {noise!r}.")
            noise = tuple(float(v) for v in arr)
        self.teacher_forcing = tf
        self.seq_len = int(seq_len)
        self.noise = noise
        self.smooth = float(smooth)
        self.spike_weight = float(spike_weight)
        self.force_calcium = bool(force_calcium)
        self.sparsity = float(sparsity)

    # -- data --------------------------------------------------------------------------------

    def prepare(self, model, data) -> CalciumWindows:
        """Deconvolve every neuron of every series once and cut windows of
        `(F, r̂, F̂, ŝ)`; σ per neuron from `noise` or the training data.

        **Raises:** `TypeError` for a model without a calcium observation; `ValueError` for
        fluorescence with another number of neurons, non-finite values, or series shorter
        than a window.
        """
        obs = _check_model(model)
        series = _fluorescence(model, data)
        length = self.seq_len + obs.order + 2 * obs.encoder
        longest = max(s.shape[0] for s in series)
        if length > longest:
            raise DynrnnValueError(
                f"`seq_len`={self.seq_len} needs windows of {length} frames (with {obs.order} "
                f"of initial calcium and {2 * obs.encoder} for the encoder) but the longest "
                f"series in `data` has {longest}."
            )
        if self.noise is None:
            sd = np.array([[noise_sd(s[:, i]) for i in range(s.shape[1])] for s in series])
            sd = np.average(sd, axis=0, weights=[s.shape[0] for s in series])
        else:
            sd = np.broadcast_to(np.asarray(self.noise), (model.n_obs,))
            if len(self.noise) not in (1, model.n_obs):
                raise DynrnnValueError(
                    f"`noise` has {len(self.noise)} values for {model.n_obs} neurons.")
        if not np.all(sd > 0):
            raise DynrnnValueError(
                f"the estimated noise sd is 0 for neurons {np.flatnonzero(sd <= 0).tolist()} "
                "(constant traces?); pass `noise=` explicitly.")
        stacked = []
        for F in series:
            rhat, fhat, s, _ = _deconvolved(obs, F, self.smooth, self.sparsity)
            if F.shape[0] >= length:
                stacked.append(np.concatenate([F, rhat, fhat, s], axis=1))
        dtype = np.dtype(model_dtype(model) or jnp.result_type(float))
        return CalciumWindows(make_windows(stacked, length, dtype),
                              jnp.asarray(1.0 / sd ** 2, dtype))

    def sample(self, prepared, key, batch_size):
        kb, kr = jr.split(key)
        return prepared.windows.sample(kb, batch_size), prepared.weight, jr.split(kr, batch_size)

    # -- the likelihood ----------------------------------------------------------------------

    def window_loss(self, model, window: Float[Array, "time 4*obs"], weight, alpha,
                    key: PRNGKeyArray | None = None) -> Float[Array, ""]:
        """The negative log-likelihood (module docstring) of one window.

        **Arguments:**
        - `model`: a latent model with a `CalciumObservation`.
        - `window`: `(order + seq_len, 4·obs)`, the columns `(F, r̂, F̂, ŝ)` of `prepare`.
        - `weight`: `(obs,)` per-neuron weights `1/σ²`.
        - `alpha`: the teacher-forcing strength.
        - `key`: the noise of a stochastic model (ignored otherwise).

        **Returns:** the scalar loss.
        """
        obs = model.observation
        n, p, K = model.n_obs, obs.order, obs.encoder
        F, rhat, fhat, s = (window[:, k * n:(k + 1) * n] for k in range(4))
        # the calcium inferred from the data: the deconvolved (denoised) fluorescence
        chat = jax.lax.stop_gradient((fhat - obs.beta) / obs.alpha)
        if K:
            # the encoder sees K frames on both sides of the window's core
            encoded = obs.encode(s)
            F, chat, s = F[K:-K], chat[K:-K], s[K:-K]
            zhat = jax.lax.stop_gradient(encoded[p - 1:])
        else:
            zhat = forcing_states(obs, rhat[p - 1:])
        keys = (jr.split(key, zhat.shape[0] - 1) if isinstance(model, AbstractStochasticModel)
                else None)
        lam, c = _forced(model, zhat, chat, self.teacher_forcing, alpha, keys,
                         self.force_calcium)
        mu = obs.alpha * c + obs.beta
        value = 0.5 * jnp.mean(weight * (F[p:] - mu) ** 2)
        if K:
            # The encoder's own term: its states decoded frame by frame, with the data's
            # calcium before each frame, must explain the fluorescence. This sets the forcing
            # signals' scale to the one the likelihood asks of the latent state.
            gamma = obs.kernel_coefficients(chat.dtype).T
            lam_e = obs.rates(encoded[p:])
            c_e = lam_e + sum(gamma[j] * chat[p - 1 - j:chat.shape[0] - 1 - j]
                              for j in range(p))
            value = value + 0.5 * jnp.mean(weight * (F[p:] - obs.alpha * c_e - obs.beta) ** 2)
        if self.spike_weight:
            counts = s[p:] / jax.lax.stop_gradient(obs.alpha)
            value = value + self.spike_weight * jnp.mean(lam - counts * jnp.log(lam))
        return value

    def loss(self, model, batch, alpha, key):
        windows, weight, keys = batch
        return jnp.mean(jax.vmap(lambda w, k: self.window_loss(model, w, weight, alpha, k))(
            windows, keys))

    def extra_loss(self, model, batch):
        return model.penalty()

    def init_state(self, model):
        dtype = model_dtype(model) or jnp.result_type(float)
        return jnp.asarray(self.teacher_forcing.initial_alpha(), dtype)

    def update_state(self, model, alpha, batch, step):
        windows, _, _ = batch
        n, obs = model.n_obs, model.observation
        if obs.encoder:
            zhat = jax.vmap(lambda w: jax.lax.stop_gradient(obs.encode(w[:, 3 * n:])))(windows)
        else:
            zhat = jax.vmap(lambda w: forcing_states(obs, w[:, n:2 * n]))(windows)
        return self.teacher_forcing.update_alpha(model, alpha, zhat, step + 1)[0]

    # -- before and after fitting ------------------------------------------------------------

    def initialise(self, model, data, *, states=None):
        """The model with its observation set from the data: `β` the deconvolution's
        baselines, `α` the median size of the deconvolved events (one spike's jump, as the
        L1 penalty shrinks small events to zero), and `b`, `W` the mean and the leading
        principal axes of `softplus⁻¹(r̂/α)`, scaled so that the forcing signals `ẑ` are the
        standardised principal components (latent units beyond the data's rank keep their
        initial columns). With an encoder (`CalciumObservation(..., encoder=K)`), its `E, e`
        are then fitted by ridge least squares to those forcing signals from the neighbouring
        frames' spikes, so training starts from them. The dynamics are untouched.

        **Warm start.** With `states`, `W, b` are instead the least-squares affine map from
        the given latent states to `softplus⁻¹(r̂/α)`, so that the forcing signals `ẑ` are the
        least-squares reconstruction of those states. Use it to continue, on the fluorescence
        likelihood, from a model fitted to the deconvolved spikes (the two-stage pipeline):
        put that model's dynamics under a `CalciumObservation` and pass the states it was
        trained to follow (e.g. `dr.forcing.infer_states(two_stage, x, alpha=1.0)` on the
        spikes `x` it was fitted to):

        ```python
        model = eqx.tree_at(lambda m: m.observation, two_stage, calcium_observation)
        states = dr.forcing.infer_states(two_stage, x, alpha=1.0)
        model = objective.initialise(model, F, states=states)
        ```

        On the simulated calcium benchmark (`benchmarks/calcium_end_to_end.py --methods
        warm-start`) this kept most of the end-to-end rate gain but did not keep the free runs
        stable: the fluorescence likelihood relearned amplifying dynamics.

        **Arguments:**
        - `model`: a latent model with a `CalciumObservation`.
        - `data`: fluorescence `(time, neurons)` (or a list / recording), as for `dr.fit`.
        - `states`: optional `(time, latent)` states frame by frame with `data` (one array per
          series, or one array for the series concatenated).

        **Returns:** the model with the new observation parameters.

        **Raises:** `ValueError` for `states` of another length or width than the data and
        the model's latent, or with non-finite values.
        """
        obs = _check_model(model)
        series = _fluorescence(model, data)
        parts = [_deconvolved(obs, F, self.smooth, self.sparsity) for F in series]
        rhat = np.concatenate([p[0] for p in parts])
        s = np.concatenate([p[2] for p in parts])
        base = np.mean([p[3] for p in parts], axis=0)
        alpha = np.empty(model.n_obs)
        for i in range(model.n_obs):
            events = s[:, i][s[:, i] > 1e-3 * max(s[:, i].max(), 1e-12)]
            alpha[i] = np.median(events) if events.size else 1.0
        alpha = np.maximum(alpha, 1e-6)
        x = np.asarray(_inv_softplus(jnp.maximum(jnp.asarray(rhat / alpha), _RATE_FLOOR)))
        W = np.array(obs.W, np.float64)
        if states is None:
            b = x.mean(axis=0)
            _, sv, vt = np.linalg.svd(x - b, full_matrices=False)
            k = min(model.n_latent, vt.shape[0])
            W[:, :k] = vt[:k].T * (sv[:k] / np.sqrt(x.shape[0]))
        else:
            S = states if isinstance(states, (list, tuple)) else [states]
            S = np.concatenate([np.asarray(v, np.float64) for v in S])
            if S.shape != (x.shape[0], model.n_latent):
                raise DynrnnValueError(
                    f"`states` must be (time, latent) = {(x.shape[0], model.n_latent)}, one "
                    f"state per frame of `data`, got shape {S.shape}.")
            check_array(S, "states", finite=True)
            coef, *_ = np.linalg.lstsq(np.c_[S, np.ones(len(S))], x, rcond=None)
            W, b = coef[:-1].T, coef[-1]
        dtype = obs.W.dtype
        new = eqx.tree_at(
            lambda o: (o.W, o.b, o.log_alpha, o.beta), obs,
            (jnp.asarray(W, dtype), jnp.asarray(b, dtype), jnp.asarray(np.log(alpha), dtype),
             jnp.asarray(base, dtype)))
        if obs.encoder:
            new = _fit_encoder(new, parts, alpha)
        return eqx.tree_at(lambda m: m.observation, model, new)

    def infer_states(self, model, data, *, alpha: float = 0.5) -> np.ndarray:
        """Latent states driven by fluorescence: `z̃_t = (1 − α) F(z̃_{t−1}) + α ẑ_t` with the
        forcing signals of this objective (deconvolved, smoothed spikes; module docstring),
        from `z̃_0 = ẑ_0` (cf. `dr.forcing.infer_states`, which uses the observation's
        per-frame inverse).

        **Arguments:**
        - `model`: a latent model with a `CalciumObservation`.
        - `data`: fluorescence `(time, neurons)`.
        - `alpha`: forcing strength in [0, 1].

        **Returns:** `(time, latent)` states as a NumPy array.

        **Raises:** `ValueError` for `alpha` outside [0, 1] or fluorescence of the wrong
        width or with non-finite values; `TypeError` for a model without a calcium
        observation.
        """
        obs = _check_model(model)
        if not 0.0 <= alpha <= 1.0:
            raise DynrnnValueError(f"`alpha` must be in [0, 1], got {alpha!r}.")
        (F,) = _fluorescence(model, check_array(data, "data", ndim=2))
        rhat, _, s, _ = _deconvolved(obs, F, self.smooth, self.sparsity)
        dtype = model_dtype(model) or jnp.result_type(float)
        signal = _padded(s, obs.encoder) if obs.encoder else rhat
        return np.asarray(_infer(model, jnp.asarray(signal, dtype), jnp.asarray(alpha, dtype)))


def _fit_encoder(obs: CalciumObservation, parts, alpha: np.ndarray) -> CalciumObservation:
    """The encoder fitted by least squares (a small ridge) to the forcing signals of the
    principal axes, `pinv(W)(softplus⁻¹(r̂/α) − b)`, from the spikes of the neighbouring
    frames: the starting point that `CalciumReconstruction` then trains."""
    K = obs.encoder
    X, Y = [], []
    for rhat, _, s, _ in parts:
        target = np.asarray(forcing_states(obs, jnp.asarray(rhat, obs.W.dtype)), np.float64)
        u = _padded(s / alpha, K)
        n = s.shape[0]
        X.append(np.concatenate([u[K + k:K + k + n] for k in range(-K, K + 1) if k], axis=1))
        Y.append(target)
    X, Y = np.concatenate(X), np.concatenate(Y)
    mu = X.mean(axis=0)
    Xc = X - mu
    gram = Xc.T @ Xc
    ridge = 1e-3 * np.trace(gram) / gram.shape[0]
    coef = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), Xc.T @ (Y - Y.mean(axis=0)))
    E = coef.T.reshape(obs.n_latent, 2 * K, obs.n_obs).transpose(1, 0, 2)
    E = E * np.sqrt(2 * K * obs.n_obs)  # `encode` divides by √(fan-in)
    e = Y.mean(axis=0) - mu @ coef
    dtype = obs.W.dtype
    return eqx.tree_at(lambda o: (o.E, o.e), obs, (jnp.asarray(E, dtype), jnp.asarray(e, dtype)))


@eqx.filter_jit
def _infer(model, signal, alpha):
    obs = model.observation
    zhat = obs.encode(signal) if obs.encoder else forcing_states(obs, signal)
    zhat = jax.lax.stop_gradient(zhat)
    n_forced = model.n_latent if not model.partial_forcing else model.n_obs

    def body(z, zh):
        new = gtf_blend(model.step(z).astype(z.dtype), zh, alpha, n_forced)
        return new, new

    _, zs = jax.lax.scan(body, zhat[0], zhat[1:])
    return jnp.concatenate([zhat[:1], zs])
