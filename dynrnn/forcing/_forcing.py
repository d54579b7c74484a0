"""Teacher forcing: generalized (GTF, with the adaptive α schedule) and sparse (STF).

Hess, Monfared, Brenner, Durstewitz, "Generalized Teacher Forcing for Learning Chaotic
Dynamics", ICML 2023 (Eq. 8 and Sec. 3.3); Mikhaeil, Monfared, Durstewitz, NeurIPS 2022 (STF).

On a window `x_1 … x_{T+1}` with forcing signals `ẑ_t` (the observation model's inverse,
no gradient), starting from `z̃ = init_state(x_1)`:

    z_t = F(z̃)                                  (kept for the loss)
    z̃[:D] = (1 − α) z_t[:D] + α ẑ_t[:D],  z̃[D:] = z_t[D:]

and the loss is the mean of `(observe(z_t) − x_t)²`: the *unforced* prediction enters the loss.
The gradient of the blend is `(1 − α)Δ` to `z_t` and `αΔ` to `ẑ_t`; α = 1 is identity
teacher forcing, α = 0 free running. `D = N` with partial forcing, else `M`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DynrnnValueError


ALPHA_METHODS = (
    "constant",
    "jacobian_upper_bound",
    "batch_maximum",
    "product_upper_bound",
    "arithmetic_mean",
    "explog_approx",
)


def gtf_blend(z: Array, zhat: Array, alpha, n_forced: int) -> Array:
    """`(1 − α) z + α ẑ` on the first `n_forced` units, `z` on the rest."""
    head = (1.0 - alpha) * z[..., :n_forced] + alpha * zhat[..., :n_forced]
    if n_forced == z.shape[-1]:
        return head
    return jnp.concatenate([head, z[..., n_forced:]], axis=-1)


def optimal_alpha(norm) -> Array:
    """`α = max(0, 1 − 1/𝒩)`: the smallest α with `(1 − α)𝒩 ≤ 1` (Hess et al. 2023, Thm. 2)."""
    norm = jnp.asarray(norm)
    return jnp.where(norm > 1.0, 1.0 - 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)


class AbstractTeacherForcing(eqx.Module):
    """A teacher-forcing scheme: the forcing strength at every step of a window, and how it
    changes between updates.

    Subclasses set `partial` (force only the first `n_obs` units: `True`; all `n_latent`:
    `False`; the observation model's default: `None`) and implement `initial_alpha` and
    `alphas`; adaptive schemes also override `update_alpha`.
    """

    partial: eqx.AbstractVar[bool | None]

    @abc.abstractmethod
    def initial_alpha(self) -> float:
        """α at the first update."""

    @abc.abstractmethod
    def alphas(self, alpha, n_steps: int, dtype) -> Float[Array, " time"]:
        """Forcing strength at each of the `n_steps` steps of a window."""

    def n_forced(self, model) -> int:
        """How many leading latent units are forced."""
        partial = model.partial_forcing if self.partial is None else self.partial
        return model.n_obs if partial else model.n_latent

    def update_alpha(self, model, alpha, zhat, counter):
        """The α for the next update and the norm estimate it came from (constant schemes
        return `alpha` and 0)."""
        return alpha, jnp.zeros((), jnp.result_type(alpha))


class GTF(AbstractTeacherForcing):
    """Generalized teacher forcing with a constant or adaptive forcing strength α.

    `GTF(0.3)` forces with α = 0.3 throughout. `GTF("adaptive")` starts at `alpha0 = 1` and
    every `update_every` batches estimates `𝒩` from the model's Jacobians at the data-inferred
    states `ẑ` (method below), sets `α_est = max(0, 1 − 1/𝒩)` and then
    `α ← α_est` if `α_est > α` else `α ← γα + (1 − γ)α_est` (Hess et al. 2023, Sec. 3.3).

    | method | 𝒩 |
    |---|---|
    | `jacobian_upper_bound` | `‖A‖_∞ + ‖W1‖₂‖W2‖₂` (parameter bound) |
    | `batch_maximum` | `max_{s,t} ‖J(ẑ_{s,t})‖₂` |
    | `product_upper_bound` (default) | `max_s` geometric mean over t of `‖J(ẑ_{s,t})‖₂` |
    | `arithmetic_mean` | `max_s ‖mean_t J(ẑ_{s,t})‖₂` |
    | `explog_approx` | `max_s ‖exp(mean_t log J(ẑ_{s,t}))‖₂` (matrix log; real part) |

    **Arguments:**
    - `alpha`: a number in [0, 1] (constant, or the starting value when `method` is given), or
      `"adaptive"`.
    - `method`: one of the α estimation methods above or `"constant"`.
    - `update_every`: k, batches between α updates (5).
    - `gamma`: decay factor γ (0.999).
    - `partial`: force only the first N units (`True`), all M (`False`) or the observation
      model's default (`None`: partial for `Identity`, full for `Affine`).
    """

    alpha: float = eqx.field(static=True)
    method: str = eqx.field(static=True)
    update_every: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    partial: bool | None = eqx.field(static=True)

    def __init__(
        self,
        alpha: float | Literal["adaptive"] = "adaptive",
        *,
        method: str | None = None,
        update_every: int = 5,
        gamma: float = 0.999,
        partial: bool | None = None,
    ):
        if isinstance(alpha, str):
            if alpha != "adaptive":
                raise DynrnnValueError(
                    f"`alpha` must be a number in [0, 1] or 'adaptive', got {alpha!r}."
                )
            alpha = 1.0
            method = method or "product_upper_bound"
        method = method or "constant"
        if method not in ALPHA_METHODS:
            raise DynrnnValueError(f"`method` must be one of {ALPHA_METHODS}, got {method!r}.")
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise DynrnnValueError(f"`alpha` must lie in [0, 1], got {alpha}.")
        if int(update_every) < 1:
            raise DynrnnValueError(f"`update_every` must be >= 1, got {update_every}.")
        if not 0.0 <= gamma <= 1.0:
            raise DynrnnValueError(f"`gamma` must lie in [0, 1], got {gamma}.")
        self.alpha = alpha
        self.method = method
        self.update_every = int(update_every)
        self.gamma = float(gamma)
        self.partial = partial

    @property
    def adaptive(self) -> bool:
        return self.method != "constant"

    def initial_alpha(self) -> float:
        return self.alpha

    def alphas(self, alpha, n_steps, dtype):
        return jnp.full((n_steps,), alpha, dtype)

    def estimate_norm(self, model, zhat: Float[Array, "batch time latent"]):
        """𝒩 of the chosen method from the forcing signals `ẑ` of a batch."""
        method = self.method
        if method == "jacobian_upper_bound":
            bound = model.jacobian_norm_bound()
            if bound is None:
                raise DynrnnValueError(
                    f"GTF method 'jacobian_upper_bound' needs a model with a parameter bound; "
                    f"{type(model).__name__}.jacobian_norm_bound() returns None."
                )
            return bound
        if method in ("batch_maximum", "product_upper_bound"):
            norms = jacobian_norms(model, zhat)  # (S, T)
            if method == "batch_maximum":
                return jnp.max(norms)
            return jnp.max(jnp.exp(jnp.mean(jnp.log(norms), axis=1)))
        jac = jax.vmap(jax.vmap(model.jacobian))(zhat)  # (S, T, M, M)
        if method == "arithmetic_mean":
            return jnp.max(jnp.linalg.norm(jnp.mean(jac, axis=1), ord=2, axis=(-2, -1)))
        if method == "explog_approx":
            mean_log = jnp.mean(_logm(jac), axis=1)
            return jnp.max(
                jnp.linalg.norm(jnp.real(_expm_complex(mean_log)), ord=2, axis=(-2, -1))
            )
        raise DynrnnValueError(f"unknown α method {method!r}")  # pragma: no cover

    def update_alpha(self, model, alpha, zhat, counter):
        """Adaptive schedule; `counter` counts batches (the update happens when
        `counter % update_every == 0`). Returns `(new_alpha, norm)`."""
        if not self.adaptive:
            return alpha, jnp.zeros((), jnp.result_type(alpha))

        def estimate(_):
            norm = jnp.asarray(self.estimate_norm(model, zhat), jnp.result_type(alpha))
            est = optimal_alpha(norm)
            new = jnp.where(est > alpha, est, self.gamma * alpha + (1.0 - self.gamma) * est)
            return new.astype(jnp.result_type(alpha)), norm

        def keep(_):
            return alpha, jnp.full((), jnp.nan, jnp.result_type(alpha))

        return jax.lax.cond(counter % self.update_every == 0, estimate, keep, None)


# Up to this latent size the Jacobians are formed and their norms taken by SVD; above it, by
# Lanczos iterations on Jᵀ J through Jacobian-vector products (docs/decisions.md, session 14).
EXACT_NORM_SIZE = 24
LANCZOS_STEPS = 24


def jacobian_norms(model, zhat: Float[Array, "*batch latent"]) -> Float[Array, "*batch"]:
    """`‖∂ step(ẑ)/∂z‖₂` at every forcing signal `ẑ` (the last axis is the latent state).

    For a latent size up to `EXACT_NORM_SIZE` the Jacobians are formed (`model.jacobian`) and
    their largest singular values computed exactly. Above it, forming `M × M` Jacobians at
    every point of a batch and taking their SVDs costs more than the training update itself
    (an LSSL with 99 latent units: 15× the update), so the norm is the largest Ritz value of
    `min(M, LANCZOS_STEPS)` Lanczos steps on `Jᵀ J`, applied as a Jacobian-vector product
    followed by a vector-Jacobian product of `step` (with full reorthogonalisation). The Ritz
    value never exceeds the norm and converges to it from below; the tests hold it within
    1e-4 of the SVD.
    """
    m = zhat.shape[-1]
    flat = zhat.reshape((-1, m))
    if m <= EXACT_NORM_SIZE:
        jac = jax.vmap(model.jacobian)(flat)
        norms = jnp.linalg.norm(jac, ord=2, axis=(-2, -1))
    else:
        norms = jax.vmap(lambda z: _lanczos_norm(model, z, min(m, LANCZOS_STEPS)))(flat)
    return norms.reshape(zhat.shape[:-1])


def _lanczos_norm(model, z, steps: int):
    """Largest singular value of `∂ step(z)/∂z` from `steps` Lanczos steps on `Jᵀ J`."""
    m = z.shape[-1]
    dtype = z.dtype
    # One forward pass: the transpose of the linearised step is its vector-Jacobian product.
    _, jvp = jax.linearize(lambda s: model.step(s).astype(dtype), z)
    vjp = jax.linear_transpose(jvp, z)

    def gram(v):
        return vjp(jvp(v))[0]

    # A fixed start with every component nonzero and no symmetry (so it is not orthogonal to
    # the leading singular vector of a structured Jacobian by accident).
    q0 = jnp.cos(jnp.arange(1, m + 1, dtype=dtype) * 1.618034) + 0.5
    q0 = q0 / jnp.linalg.norm(q0)
    Q = jnp.zeros((steps, m), dtype).at[0].set(q0)
    rel = jnp.sqrt(jnp.finfo(dtype).eps)

    def body(j, carry):
        Q, alphas, betas = carry
        q = Q[j]
        w = gram(q)
        a = jnp.dot(q, w)
        scale = jnp.linalg.norm(w)
        # Full reorthogonalisation against every vector so far (rows after j are zero).
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        # Nothing but rounding left (b ≤ √ε ‖Jᵀ J q‖): the Krylov space is invariant, and a
        # normalised rounding residue would not be orthogonal to it. The next vectors are
        # zero and add only zero Ritz values, below the largest one of the PSD `Jᵀ J`.
        go_on = b > rel * scale
        nxt = jnp.where(go_on, w / jnp.where(b > 0, b, 1.0), 0.0)
        # (At the last step this overwrites the vector just used; only α and β are kept.)
        Q = Q.at[jnp.minimum(j + 1, steps - 1)].set(nxt)
        return Q, alphas.at[j].set(a), betas.at[j].set(jnp.where(go_on, b, 0.0))

    _, alphas, betas = jax.lax.fori_loop(
        0, steps, body, (Q, jnp.zeros((steps,), dtype), jnp.zeros((steps,), dtype))
    )
    T = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    top = jnp.linalg.eigvalsh(T)[-1]
    return jnp.sqrt(jnp.maximum(top, 0.0))


def _logm(mats):
    """Principal matrix logarithm through the eigendecomposition (complex)."""
    w, v = jnp.linalg.eig(mats)
    logw = jnp.log(w.astype(jnp.complex128 if w.dtype == jnp.complex128 else jnp.complex64))
    return v @ (logw[..., None] * jnp.linalg.inv(v))


def _expm_complex(mats):
    w, v = jnp.linalg.eig(mats)
    return v @ (jnp.exp(w)[..., None] * jnp.linalg.inv(v))


class STF(AbstractTeacherForcing):
    """Sparse teacher forcing (Mikhaeil et al., NeurIPS 2022): free running, with the forced
    units replaced by the data, `z[:D] ← ẑ_t[:D]`, whenever `(t − 1) mod τ = 0` (t = 2, 3, …
    indexes the predicted step, as in the GTF reference code).

    **Arguments:**
    - `interval`: τ ≥ 1.
    - `partial`: as for `GTF`.
    """

    interval: int = eqx.field(static=True)
    partial: bool | None = eqx.field(static=True)

    def __init__(self, interval: int, *, partial: bool | None = None):
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise DynrnnValueError(f"`interval` must be an integer >= 1, got {interval!r}.")
        self.interval = interval
        self.partial = partial

    def initial_alpha(self) -> float:
        return 1.0

    def alphas(self, alpha, n_steps, dtype):
        t = jnp.arange(2, n_steps + 2)
        return ((t - 1) % self.interval == 0).astype(dtype)


def forced_rollout(
    model,
    x: Float[Array, "time obs"],
    tf: AbstractTeacherForcing,
    alpha,
    inputs: Float[Array, "time input"] | None = None,
    *,
    step: Callable | None = None,
    key: PRNGKeyArray | None = None,
):
    """Run a latent model over one window `x` `(T+1, obs)` under teacher forcing.

    `z̃_1 = init_state(x_1)`; for t = 2 … T+1: `z_t = F(z̃_{t−1}, u_t)` (kept for the loss),
    then `z̃_t` = the blend of `z_t` and `ẑ_t = forcing_signal(x_t)` with strength `α_t` on the
    forced units (see the module docstring).

    **Arguments:**
    - `model`: a latent model (`dynrnn.models.AbstractLatentModel`).
    - `x`: the window; `inputs`: `(T+1, input)` inputs aligned with `x` (`inputs[t]` drives the
      step that lands on `x[t]`).
    - `tf`, `alpha`: the scheme and its current strength.
    - `step`: replaces `model.step`: `step(z, u, key) -> (z_new, penalty)` (e.g. a solver
      regulariser's step, which also returns the penalty of that step); the penalties are
      summed over the window.
    - `key`: split into one key per step, passed to the step (the noise of a stochastic model).

    **Returns:** `(predictions (T, obs), forcing signals ẑ (T, latent), penalty)`, the
    predictions being `observe(F(z̃_{t−1}))` for t = 2 … T+1.
    """
    zhat = jax.lax.stop_gradient(jax.vmap(model.forcing_signal)(x[1:]))
    z1 = model.init_state(x[0])
    n_forced = tf.n_forced(model)
    n = x.shape[0] - 1
    alphas = tf.alphas(alpha, n, zhat.dtype)
    keys = None if key is None else jax.random.split(key, n)

    def body(carry, step_in):
        z, pen = carry
        zh, a, u, k = step_in
        if step is None:
            z_new = model.step(z, u, key=k)
        else:
            z_new, p = step(z, u, k)
            pen = pen + p
        z_new = z_new.astype(z.dtype)
        return (gtf_blend(z_new, zh, a, n_forced), pen), z_new

    us = inputs[1:] if inputs is not None else None
    (_, penalty), zs = jax.lax.scan(body, (z1, jnp.zeros((), zhat.dtype)),
                                    (zhat, alphas, us, keys))
    return jax.vmap(model.observe)(zs), zhat, penalty


def forced_loss(model, x, tf: AbstractTeacherForcing, alpha, inputs=None, *, step=None,
                key=None):
    """Mean squared error of the teacher-forced predictions on one window, plus the penalty
    of a replaced `step` (see `forced_rollout`). Returns `(loss, ẑ)`."""
    pred, zhat, penalty = forced_rollout(model, x, tf, alpha, inputs, step=step, key=key)
    return jnp.mean((pred - x[1:]) ** 2) + penalty, zhat
