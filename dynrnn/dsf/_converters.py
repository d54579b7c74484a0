"""Converters: the DSF (`Λ_i, B_i, C_i, D_i`) of attention, state-space and gated RNN layers.

Sieber, Amo Alonso, Didier, Zeilinger, Orvieto, NeurIPS 2024, Sec. 3 (attention, eqs. 8-13;
selective SSMs, eqs. 14-17; RNNs, eqs. 18-21), and their reference code (dsf-mqar, a Zoology
fork). Each converter takes the per-step quantities the original layer computes from its input
(queries and keys, step sizes, gate pre-activations ...). The *values* are the DSF input `u`:
a layer with a value projection `W_V` applies the DSF to `W_V u`, or passes `W_V=` to fold it
into `B` (`B_i = (I ⊗ k_i) W_V`, the table of the paper), which gives a flat system.

Channel-wise systems (see `DSF`) are returned wherever the layer has the paper's `I_d ⊗ ·`
structure, so that a `d`-channel layer stores `O(L·d·n)` numbers instead of `O(L·d²·n)`.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float

from .._errors import DynrnnTypeError, DynrnnValueError, is_array
from ._dsf import DSF


def _arr(x, name: str, ndim: int | tuple[int, ...], desc: str):
    if x is None:
        raise DynrnnValueError(f"`{name}` is required, got None.")
    if not is_array(x):
        try:
            x = jnp.asarray(x)
        except TypeError as e:
            raise DynrnnTypeError(f"`{name}` must be an array, got {type(x).__name__}.") from e
    kind = np.dtype(x.dtype).kind
    if kind not in "fciu" or kind == "b":
        raise DynrnnTypeError(f"`{name}` must be a numeric array, got dtype {x.dtype}.")
    # NumPy inputs become JAX arrays (float64 only where x64 is enabled)
    x = jnp.asarray(x, dtype=float) if kind in "iu" else jnp.asarray(x)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in allowed:
        raise DynrnnValueError(f"`{name}` must have shape {desc}, got shape {tuple(x.shape)}.")
    return x


def _same(a, b, axis_a: int, axis_b: int, name_a: str, name_b: str, what: str):
    if a.shape[axis_a] != b.shape[axis_b]:
        raise DynrnnValueError(
            f"{what} differ: `{name_a}` has shape {tuple(a.shape)} and `{name_b}` has shape "
            f"{tuple(b.shape)}."
        )


def _qk(q, k):
    q = _arr(q, "q", 2, "(L, m)")
    k = _arr(k, "k", 2, "(L, m)")
    _same(q, k, 0, 0, "q", "k", "sequence lengths")
    _same(q, k, 1, 1, "q", "k", "head sizes (query/key dimension m)")
    return q, k


def _fold_values(dsf: DSF, W_V) -> DSF:
    """`B_i ← B_i W_V` for a system shared by every value channel (`I_{d_v} ⊗ ·`)."""
    if W_V is None:
        return dsf
    W_V = _arr(W_V, "W_V", 2, "(d_v, d)")
    if dsf.structure == "matrix":
        Phi = dsf.Phi[:, :, 0, None, None] * W_V
        return DSF(Phi=Phi)
    flat = dsf.to_flat(W_V.shape[0])
    return DSF(flat.Lambda, jnp.einsum("lnv,vd->lnd", flat.B, W_V), flat.C, None)


_FEATURE_MAPS: dict[str, Callable] = {
    "elu1": lambda x: jax.nn.elu(x) + 1.0,
    "relu": jax.nn.relu,
    "identity": lambda x: x,
    "exp": jnp.exp,
}


def _feature_map(feature_map):
    if callable(feature_map):
        return feature_map
    if feature_map not in _FEATURE_MAPS:
        raise DynrnnValueError(
            f"`feature_map` must be one of {sorted(_FEATURE_MAPS)} or a callable, got "
            f"{feature_map!r}."
        )
    return _FEATURE_MAPS[feature_map]


def _ratio_transition(eta):
    """`Λ_i = η_{i−1}/η_i` with `Λ_0 = 0` (its value is irrelevant since `h_{−1} = 0`)."""
    prev = jnp.concatenate([jnp.zeros_like(eta[:1]), eta[:-1]])
    return prev / eta


def from_softmax_attention(
    q: Float[Array, "L m"],
    k: Float[Array, "L m"],
    *,
    scale: float | None = None,
    mask: Bool[Array, "L L"] | None = None,
    W_V: Float[Array, "d_v d"] | None = None,
) -> DSF:
    """Causal softmax attention as a matrix-only DSF (Sieber et al. 2024, Sec. 3.1, eq. 9):

    `y_i = Σ_{j≤i} softmax_j(s q_iᵀ k_j) u_j`, `Φ_ij = exp(s q_iᵀk_j) / Σ_{l≤i} exp(s q_iᵀk_l)`.

    Softmax attention is linear attention with the feature map `ψ` of the exponential kernel,
    `exp(qᵀk) = ⟨ψ(q), ψ(k)⟩`, so formally `Λ_i = η_{i−1}/η_i`, `B_i = I ⊗ ψ(k_i)/η_i`,
    `C_i = I ⊗ ψ(q_i)ᵀ`. But `ψ` lists every monomial of `q` scaled by `1/√(p!)` (the Taylor
    series of exp), which is infinite-dimensional: the state would need `N → ∞`. A finite
    recurrence must instead keep all past keys and values (a cache growing with `i`), which is
    not a fixed linear system. Hence this DSF holds `Φ` only, and `apply(..., method=
    "recurrent" | "parallel")` raises.

    **Arguments:**
    - `q`, `k`: queries and keys `(L, m)`.
    - `scale`: `s`, default `1/√m`.
    - `mask`: optional boolean `(L, L)`, True where `i` may attend to `j`; it must be causal
      (no True above the diagonal) and leave every row at least one True. By default the
      causal (lower-triangular) mask.
    - `W_V`: optional value projection `(d_v, d)` folded in: `Φ_ij ⊗ W_V`.

    **Returns:** a matrix-only `DSF`, `Phi` `(L, L, 1)` (every value channel alike), or
    `(L, L, d_v, d)` with `W_V`.

    **Raises:** `DynrnnValueError` for mismatched `q`/`k` shapes (the message names both) or a
    non-causal mask (checked under `jit` too, as a runtime error).
    """
    q, k = _qk(q, k)
    L, m = q.shape
    s = 1.0 / np.sqrt(m) if scale is None else scale
    causal = jnp.tril(jnp.ones((L, L), dtype=bool))
    if mask is None:
        allowed = causal
    else:
        if not is_array(mask):
            mask = np.asarray(mask)
        if tuple(mask.shape) != (L, L):
            raise DynrnnValueError(
                f"`mask` must have shape (L, L) = {(L, L)} to match `q` {tuple(q.shape)}, got "
                f"shape {tuple(mask.shape)}."
            )
        if np.dtype(mask.dtype).kind != "b":
            raise DynrnnTypeError(
                f"`mask` must be boolean (True = may attend), got dtype {mask.dtype}."
            )
        if isinstance(mask, jax.core.Tracer):
            mask = eqx.error_if(
                mask, jnp.any(mask & ~causal),
                "`mask` is not causal: position i may attend to a later j > i",
            )
        else:
            m_np = np.asarray(mask)
            bad = np.argwhere(m_np & ~np.tril(np.ones((L, L), bool)))
            if bad.size:
                i, j = (int(x) for x in bad[0])
                raise DynrnnValueError(
                    "`mask` must be causal (no True above the diagonal): a DSF is a causal "
                    f"system, but position i = {i} may attend to j = {j} > i "
                    f"({len(bad)} such entries)."
                )
            empty = np.flatnonzero(~m_np.any(axis=1))
            if empty.size:
                raise DynrnnValueError(
                    f"`mask` leaves row(s) {empty[:5].tolist()} with nothing to attend to; "
                    "every row needs at least one True."
                )
        allowed = mask
    scores = jnp.where(allowed, s * q @ k.T, -jnp.inf)
    Phi = jax.nn.softmax(scores, axis=-1)
    return _fold_values(DSF(Phi=Phi[:, :, None]), W_V)


def from_linear_attention(
    q: Float[Array, "L m"],
    k: Float[Array, "L m"],
    *,
    feature_map: str | Callable = "elu1",
    W_V: Float[Array, "d_v d"] | None = None,
) -> DSF:
    """Causal (normalised) linear attention (Katharopoulos et al. 2020; Sieber et al. 2024,
    eqs. 10-11):

    `y_i = Σ_{j≤i} ψ(q_i)ᵀψ(k_j) u_j / η_i`, `η_i = ψ(q_i)ᵀ Σ_{j≤i} ψ(k_j)`, so

    `Λ_i = (η_{i−1}/η_i) I` (may exceed 1), `B_i = I ⊗ ψ(k_i)/η_i`, `C_i = I ⊗ ψ(q_i)ᵀ`, `D_i = 0`.

    **Arguments:**
    - `q`, `k`: queries and keys `(L, m)` before the feature map.
    - `feature_map`: `"elu1"` (`elu(x) + 1`, the default), `"relu"`, `"identity"`, `"exp"`, or a
      callable applied elementwise.
    - `W_V`: optional value projection `(d_v, d)` folded into `B`.

    **Returns:** a channel-wise `DSF` (`n = m`, shared by every channel), or a flat one with
    `W_V`.

    **Raises:** `DynrnnValueError` for mismatched `q`/`k` shapes or an unknown feature map.
    """
    q, k = _qk(q, k)
    psi = _feature_map(feature_map)
    pq, pk = psi(q), psi(k)
    eta = jnp.sum(pq * jnp.cumsum(pk, axis=0), axis=-1)
    message = (
        "the normaliser η_i = ψ(q_i)ᵀ Σ_{j≤i} ψ(k_j) of linear attention is zero at some step, "
        f"so the outputs would be NaN or Inf: the feature map ψ (feature_map={feature_map!r}) "
        "must give positive features (the default 'elu1' does)."
    )
    if not isinstance(eta, jax.core.Tracer):
        if np.any(np.asarray(eta) == 0):
            raise DynrnnValueError(message)
    else:
        eta = eqx.error_if(eta, jnp.any(eta == 0), message)
    lam = _ratio_transition(eta)
    dsf = DSF(lam[:, None, None], (pk / eta[:, None])[:, None, :], pq[:, None, :],
              structure="channelwise")
    return _fold_values(dsf, W_V)


def from_normalized_attention(
    q: Float[Array, "L m"],
    k: Float[Array, "L m"],
    n: Float[Array, " L"],
    *,
    W_V: Float[Array, "d_v d"] | None = None,
) -> DSF:
    """Normalised attention (Sieber et al. 2024, Sec. 4.2, eq. 23): linear attention with the
    identity feature map and a learned normaliser `η_i = exp(n_i)`, `n_i = W_n u_i (+ b)`:

    `y_i = Σ_{j≤i} (q_iᵀk_j) u_j / η_i`, so `Λ_i = η_{i−1}/η_i = exp(n_{i−1} − n_i)`,
    `B_i = I ⊗ k_i/η_i`, `C_i = I ⊗ q_iᵀ`, `D_i = 0`.

    The follow-up parametrisation `Λ_i = ν_i/ν_{i−1}`, `ν_i = exp(−g(x_i))` is the same with
    `n_i = g(x_i)`.

    **Arguments:**
    - `q`, `k`: queries and keys `(L, m)`.
    - `n`: normaliser logits `(L,)` (`η_i = exp(n_i)`).
    - `W_V`: optional value projection `(d_v, d)` folded into `B`.

    **Returns:** a channel-wise `DSF` shared by every channel (flat with `W_V`).

    **Raises:** `DynrnnValueError` for mismatched shapes (the message names both).
    """
    q, k = _qk(q, k)
    n = _arr(n, "n", (1, 2), "(L,)")
    if n.ndim == 2:
        if n.shape[1] != 1:
            raise DynrnnValueError(f"`n` must have shape (L,) or (L, 1), got {tuple(n.shape)}.")
        n = n[:, 0]
    _same(q, n, 0, 0, "q", "n", "sequence lengths")
    prev = jnp.concatenate([jnp.full_like(n[:1], -jnp.inf), n[:-1]])
    lam = jnp.exp(prev - n)
    B = k * jnp.exp(-n)[:, None]
    dsf = DSF(lam[:, None, None], B[:, None, :], q[:, None, :], structure="channelwise")
    return _fold_values(dsf, W_V)


def _s6_discretize(delta_A, delta, A, B, discretization: str):
    """`B̄` for `Λ = exp(ΔA)`: Euler `ΔB` (Mamba's code) or ZOH `(exp(ΔA) − 1)/A · B`."""
    if discretization == "euler":
        return delta * B
    if discretization == "zoh":
        return jnp.expm1(delta_A) / A * B
    raise DynrnnValueError(
        f"`discretization` must be 'euler' or 'zoh', got {discretization!r}."
    )


def from_s6(
    delta: Float[Array, "L d"],
    A: Float[Array, "d n"],
    B: Float[Array, "L n"],
    C: Float[Array, "L n"],
    D: Float[Array, " d"] | None = None,
    *,
    discretization: str = "euler",
) -> DSF:
    """The selective SSM S6 of Mamba (Gu & Dao 2023, Alg. 2; Sieber et al. 2024, eqs. 14-16):

    `Λ_i = diag(exp(Δ_i ⊗ A))` (zero-order hold), `B_i = diag(Δ_i) ⊗ b_i` (Euler, as Mamba's
    code), `C_i = I_d ⊗ c_iᵀ`, `D_i = diag(D)`: per channel `c` and state `k`,
    `h_i^{ck} = exp(Δ_i^c A_{ck}) h_{i−1}^{ck} + Δ_i^c b_i^k u_i^c`,
    `y_i^c = Σ_k c_i^k h_i^{ck} + D_c u_i^c`.

    **Arguments:**
    - `delta`: step sizes `Δ` `(L, d)`, already positive (`softplus(W_Δ u + b_Δ)`).
    - `A`: continuous state matrix, diagonal per channel, `(d, n)` (`−exp(A_log)`).
    - `B`, `C`: the input-dependent `(L, n)` (`W_B u_i`, `W_C u_i`).
    - `D`: skip `(d,)`, or None.
    - `discretization`: `"euler"` (default, `B̄ = ΔB`) or `"zoh"` (`B̄ = (e^{ΔA} − 1)/A · B`).

    **Returns:** a channel-wise `DSF` with `N = d·n`.

    **Raises:** `DynrnnValueError` if channel counts or state sizes disagree (both shapes named).
    """
    delta = _arr(delta, "delta", 2, "(L, d)")
    A = _arr(A, "A", 2, "(d, n)")
    B = _arr(B, "B", 2, "(L, n)")
    C = _arr(C, "C", 2, "(L, n)")
    _same(delta, A, 1, 0, "delta", "A", "channel counts d")
    _same(A, B, 1, 1, "A", "B", "state sizes n")
    _same(A, C, 1, 1, "A", "C", "state sizes n")
    _same(delta, B, 0, 0, "delta", "B", "sequence lengths")
    _same(delta, C, 0, 0, "delta", "C", "sequence lengths")
    dA = delta[:, :, None] * A[None]
    Bbar = _s6_discretize(dA, delta[:, :, None], A[None], B[:, None, :], discretization)
    Dm = None
    if D is not None:
        D = _arr(D, "D", 1, "(d,)")
        _same(delta, D, 1, 0, "delta", "D", "channel counts d")
        Dm = jnp.broadcast_to(D, delta.shape)
    return DSF(jnp.exp(dA), Bbar, C[:, None, :], Dm, structure="channelwise")


def from_ssd(
    delta: Float[Array, " L"] | Float[Array, "L d"],
    a: float | Float[Array, ""],
    B: Float[Array, "L n"],
    C: Float[Array, "L n"],
    D: Float[Array, " d"] | None = None,
) -> DSF:
    """The scalar-transition SSM of Mamba-2 (SSD; Dao & Gu 2024; "S6-2" in Sieber et al. 2024):
    S6 with one scalar `A = −a` shared by every state,

    `Λ_i = exp(−a Δ_i)` (a scalar per token, or per token and channel), `B_i = Δ_i ⊗ b_i`,
    `C_i = I ⊗ c_iᵀ`, `D_i = diag(D)`.

    With `Δ_i = softplus(x_i)` and `a = 1`, `Λ_i = exp(−softplus(x_i)) = σ(−x_i)`: the
    "reversed sigmoid" forget gate of the qLSTM (`from_qlstm(..., reversed=True)`).

    **Arguments:**
    - `delta`: positive step sizes `(L,)` (one per token) or `(L, d)` (per channel).
    - `a`: the positive decay rate (`exp(A_log)`).
    - `B`, `C`: `(L, n)`.
    - `D`: skip `(d,)` or None (needs `delta` per channel or gives the channel count itself).

    **Returns:** a channel-wise `DSF` (shared by every channel when `delta` is `(L,)` and `D`
    is None).

    **Raises:** `DynrnnValueError` for mismatched shapes.
    """
    delta = _arr(delta, "delta", (1, 2), "(L,) or (L, d)")
    B = _arr(B, "B", 2, "(L, n)")
    C = _arr(C, "C", 2, "(L, n)")
    a = jnp.asarray(a)
    if a.ndim != 0:
        raise DynrnnValueError(f"`a` must be a scalar, got shape {tuple(a.shape)}.")
    _same(delta, B, 0, 0, "delta", "B", "sequence lengths")
    _same(B, C, 1, 1, "B", "C", "state sizes n")
    _same(B, C, 0, 0, "B", "C", "sequence lengths")
    dl = delta[:, None] if delta.ndim == 1 else delta  # (L, c)
    lam = jnp.exp(-a * dl)[:, :, None]
    Bbar = dl[:, :, None] * B[:, None, :]
    Dm = None
    if D is not None:
        D = _arr(D, "D", 1, "(d,)")
        if dl.shape[1] not in (1, D.shape[0]):
            raise DynrnnValueError(
                f"channel counts differ: `delta` has shape {tuple(delta.shape)} and `D` has "
                f"shape {tuple(D.shape)}."
            )
        Dm = jnp.broadcast_to(D, (dl.shape[0], D.shape[0]))
    return DSF(lam, Bbar, C[:, None, :], Dm, structure="channelwise")


_GBT = {"bilinear": 0.5, "forward_euler": 0.0, "backward_euler": 1.0}


def from_lssl(
    A: Float[Array, "n n"],
    B: Float[Array, " n"],
    C: Float[Array, "d n"],
    D: Float[Array, " d"] | None = None,
    *,
    dt: float | Float[Array, " d"],
    length: int,
    discretization: str = "bilinear",
) -> DSF:
    """A linear state-space layer (LSSL; Gu et al. 2021, eqs. 3-4) with `d` channels, each a
    SISO system `x' = A x + B u^c`, `y^c = C_c x + D_c u^c` discretised with its own step
    `Δ_c`:

    `Λ = ⊕_c Ā_c`, `Ā = (I − αΔA)⁻¹(I + (1−α)ΔA)`, `B̄ = Δ(I − αΔA)⁻¹B` (generalised bilinear
    transform; α = ½ bilinear, 0 forward, 1 backward Euler) or ZOH `Ā = e^{ΔA}`,
    `B̄ = A⁻¹(Ā − I)B`. Time-invariant, so every step gets the same matrices.

    **Arguments:**
    - `A` `(n, n)`, `B` `(n,)`: the continuous system (e.g. `dr.models.hippo("legs", n)`).
    - `C`: read-out `(d, n)` (one row per channel) or `(n,)` for one channel.
    - `D`: skip `(d,)` or None.
    - `dt`: the step `Δ`, a scalar or one per channel `(d,)`.
    - `length`: `L`, the number of steps.
    - `discretization`: `"bilinear"` (default, LSSL), `"forward_euler"`, `"backward_euler"`,
      `"zoh"`.

    **Returns:** a `"dense"` `DSF` with `N = d·n` (block-diagonal `Λ`).

    **Raises:** `DynrnnValueError` for mismatched state sizes or an unknown discretisation.
    """
    A = _arr(A, "A", 2, "(n, n)")
    B = _arr(B, "B", 1, "(n,)")
    C = _arr(C, "C", (1, 2), "(d, n) or (n,)")
    C = C[None] if C.ndim == 1 else C
    if A.shape[0] != A.shape[1]:
        raise DynrnnValueError(f"`A` must be square (n, n), got shape {tuple(A.shape)}.")
    _same(A, B, 0, 0, "A", "B", "state sizes n")
    _same(A, C, 0, 1, "A", "C", "state sizes n")
    d, n = C.shape
    dt = jnp.broadcast_to(jnp.asarray(dt, dtype=A.dtype), (d,))
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise DynrnnValueError(f"`length` must be a positive integer, got {length!r}.")
    eye = jnp.eye(n, dtype=A.dtype)
    if discretization == "zoh":
        Abar = jax.vmap(lambda s: jax.scipy.linalg.expm(s * A))(dt)
        Bbar = jax.vmap(lambda Ab: jnp.linalg.solve(A, (Ab - eye) @ B))(Abar)
    elif discretization in _GBT:
        al = _GBT[discretization]

        def gbt(s):
            M = eye - al * s * A
            return jnp.linalg.solve(M, eye + (1 - al) * s * A), s * jnp.linalg.solve(M, B)

        Abar, Bbar = jax.vmap(gbt)(dt)
    else:
        raise DynrnnValueError(
            "`discretization` must be 'bilinear', 'forward_euler', 'backward_euler' or 'zoh', "
            f"got {discretization!r}."
        )
    N = d * n
    lam = jax.scipy.linalg.block_diag(*[Abar[c] for c in range(d)])
    Bf = jnp.einsum("ck,ce->cke", Bbar, jnp.eye(d, dtype=A.dtype)).reshape(N, d)
    Cf = jnp.einsum("ck,ec->eck", C, jnp.eye(d, dtype=A.dtype)).reshape(d, N)
    L = int(length)
    Dm = None
    if D is not None:
        D = _arr(D, "D", 1, "(d,)")
        _same(C, D, 0, 0, "C", "D", "channel counts d")
        Dm = jnp.broadcast_to(jnp.diag(D), (L, d, d))
    return DSF(jnp.broadcast_to(lam, (L, N, N)), jnp.broadcast_to(Bf, (L, N, d)),
               jnp.broadcast_to(Cf, (L, d, N)), Dm)


def from_lru(
    nu_log: Float[Array, " N"],
    theta_log: Float[Array, " N"],
    gamma_log: Float[Array, " N"],
    B: Complex[Array, "N d"],
    C: Complex[Array, "d_out N"],
    D: Float[Array, " d"] | None = None,
    *,
    length: int,
) -> DSF:
    """The linear recurrent unit (LRU; Orvieto et al. 2023, eqs. 6-7):

    `Λ = diag(exp(−e^ν + i e^θ))` (time-invariant, complex), `B_i = diag(γ) B` with
    `γ = e^{γ_log}`, `C_i = C`, `D_i = diag(D)`; the output is `y_i = Re(C h_i) + D ⊙ u_i`.

    **Arguments:**
    - `nu_log`, `theta_log`, `gamma_log`: the LRU's log-parametrised modulus, phase and input
      normalisation `(N,)`.
    - `B` `(N, d)` and `C` `(d_out, N)`: complex input and output matrices.
    - `D`: real skip `(d,)` (needs `d_out = d`) or None.
    - `length`: `L`, the number of steps.

    **Returns:** a complex `"diagonal"` `DSF`.

    **Raises:** `DynrnnValueError` for mismatched state sizes (both shapes named).
    """
    nu_log = _arr(nu_log, "nu_log", 1, "(N,)")
    theta_log = _arr(theta_log, "theta_log", 1, "(N,)")
    gamma_log = _arr(gamma_log, "gamma_log", 1, "(N,)")
    B = _arr(B, "B", 2, "(N, d)")
    C = _arr(C, "C", 2, "(d_out, N)")
    _same(nu_log, theta_log, 0, 0, "nu_log", "theta_log", "state sizes N")
    _same(nu_log, gamma_log, 0, 0, "nu_log", "gamma_log", "state sizes N")
    _same(nu_log, B, 0, 0, "nu_log", "B", "state sizes N")
    _same(nu_log, C, 0, 1, "nu_log", "C", "state sizes N")
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise DynrnnValueError(f"`length` must be a positive integer, got {length!r}.")
    L, (N, d), d_out = int(length), B.shape, C.shape[0]
    lam = jnp.exp(-jnp.exp(nu_log) + 1j * jnp.exp(theta_log))
    Bn = jnp.exp(gamma_log)[:, None] * B
    Dm = None
    if D is not None:
        D = _arr(D, "D", 1, "(d,)")
        _same(B, D, 1, 0, "B", "D", "input sizes d")
        if d_out != d:
            raise DynrnnValueError(
                f"a diagonal skip `D` {tuple(D.shape)} needs d_out = d, but `B` has shape "
                f"{tuple(B.shape)} and `C` has shape {tuple(C.shape)}."
            )
        Dm = jnp.broadcast_to(jnp.diag(D), (L, d, d))
    return DSF(jnp.broadcast_to(lam, (L, N)), jnp.broadcast_to(Bn, (L, N, d)),
               jnp.broadcast_to(C, (L, d_out, N)), Dm)


def from_rglru(
    gate_a: Float[Array, "L d"],
    gate_x: Float[Array, "L d"],
    Lambda: Float[Array, " d"],
    *,
    c: float = 8.0,
) -> DSF:
    """The real-gated LRU of Griffin/Hawk (De et al. 2024, eqs. 1-4):

    `r_i = σ(gate_a_i)`, `i_i = σ(gate_x_i)`, `a_i = a^{c r_i}` with `a = σ(Λ)`:
    `Λ_i = diag(a_i)`, `B_i = diag(√(1 − a_i²) ⊙ i_i)`, `C_i = I`, `D_i = 0`.

    **Arguments:**
    - `gate_a`, `gate_x`: the recurrence- and input-gate pre-activations `(L, d)`
      (`W_a u_i + b_a`, `W_x u_i + b_x`).
    - `Lambda`: the decay parameter `(d,)` before the sigmoid.
    - `c`: the fixed exponent scale (8 in the paper).

    **Returns:** a channel-wise `DSF` with one state per channel.

    **Raises:** `DynrnnValueError` for mismatched shapes.
    """
    gate_a = _arr(gate_a, "gate_a", 2, "(L, d)")
    gate_x = _arr(gate_x, "gate_x", 2, "(L, d)")
    Lambda = _arr(Lambda, "Lambda", 1, "(d,)")
    if gate_a.shape != gate_x.shape:
        raise DynrnnValueError(
            f"`gate_a` and `gate_x` must have the same shape, got {tuple(gate_a.shape)} and "
            f"{tuple(gate_x.shape)}."
        )
    _same(gate_a, Lambda, 1, 0, "gate_a", "Lambda", "channel counts d")
    # log a = log σ(Λ) = −softplus(−Λ), computed stably
    log_a = c * jax.nn.sigmoid(gate_a) * (-jax.nn.softplus(-Lambda))
    a = jnp.exp(log_a)
    Bm = jnp.sqrt(-jnp.expm1(2 * log_a)) * jax.nn.sigmoid(gate_x)
    ones = jnp.ones((gate_a.shape[0], 1, 1), a.dtype)
    return DSF(a[:, :, None], Bm[:, :, None], ones, structure="channelwise")


def from_qlstm(
    f: Float[Array, "L d"],
    i: Float[Array, "L d"],
    o: Float[Array, "L d"],
    *,
    reversed: bool = False,
    alpha: float | Float[Array, ""] = 1.0,
) -> DSF:
    """The quasi-LSTM (an LSTM without state feedback in its gates; Sieber et al. 2024,
    eqs. 18-21, and the dsf-mqar code):

    `h_i = f_i ⊙ h_{i−1} + σ(i_i) ⊙ u_i`, `y_i = σ(o_i) ⊙ h_i`, with the forget gate
    `σ(f_i)` or, reversed, `σ(−f_i)^{relu(α)}`: `Λ_i = diag(forget)`, `B_i = diag(σ(i_i))`,
    `C_i = diag(σ(o_i))`, `D_i = 0`.

    **Arguments:**
    - `f`, `i`, `o`: forget, input and output gate pre-activations `(L, d)`.
    - `reversed`: use the reversed sigmoid `σ(−f)^{relu(α)}` (the code's default).
    - `alpha`: the exponent of the reversed sigmoid.

    **Returns:** a channel-wise `DSF` with one state per channel.

    **Raises:** `DynrnnValueError` for mismatched shapes.
    """
    f = _arr(f, "f", 2, "(L, d)")
    i = _arr(i, "i", 2, "(L, d)")
    o = _arr(o, "o", 2, "(L, d)")
    for x, name in ((i, "i"), (o, "o")):
        if x.shape != f.shape:
            raise DynrnnValueError(
                f"`f` and `{name}` must have the same shape, got {tuple(f.shape)} and "
                f"{tuple(x.shape)}."
            )
    if reversed:
        lam = jnp.exp(jax.nn.relu(alpha) * jax.nn.log_sigmoid(-f))
    else:
        lam = jax.nn.sigmoid(f)
    return DSF(lam[:, :, None], jax.nn.sigmoid(i)[:, :, None], jax.nn.sigmoid(o)[:, :, None],
               structure="channelwise")


def from_retnet(
    q: Float[Array, "L m"],
    k: Float[Array, "L m"],
    gamma: float | Float[Array, ""],
    *,
    W_V: Float[Array, "d_v d"] | None = None,
) -> DSF:
    """Retention (RetNet; Sun et al. 2023, eq. 1), one head, without the xPos rotation (rotate
    `q`, `k` beforehand if wanted): `y_i = Σ_{j≤i} γ^{i−j} (q_iᵀk_j) u_j`, so

    `Λ_i = γ I`, `B_i = I ⊗ k_i`, `C_i = I ⊗ q_iᵀ`, `D_i = 0`.

    **Arguments:**
    - `q`, `k`: `(L, m)`.
    - `gamma`: the scalar decay.
    - `W_V`: optional value projection folded into `B`.

    **Returns:** a channel-wise `DSF` shared by every channel (flat with `W_V`).

    **Raises:** `DynrnnValueError` for mismatched shapes.
    """
    q, k = _qk(q, k)
    gamma = jnp.asarray(gamma, dtype=q.dtype)
    if gamma.ndim != 0:
        raise DynrnnValueError(f"`gamma` must be a scalar, got shape {tuple(gamma.shape)}.")
    lam = jnp.broadcast_to(gamma, (q.shape[0], 1, 1))
    return _fold_values(DSF(lam, k[:, None], q[:, None], structure="channelwise"), W_V)


def from_gla(
    q: Float[Array, "L m"],
    k: Float[Array, "L m"],
    alpha: Float[Array, "L m"],
    *,
    W_V: Float[Array, "d_v d"] | None = None,
) -> DSF:
    """Gated linear attention (GLA; Yang et al. 2024, eq. 3), one head:
    `S_i = diag(α_i) S_{i−1} + k_i u_iᵀ`, `y_i = S_iᵀ q_i`, so

    `Λ_i = diag(α_i) ⊗ I`, `B_i = I ⊗ k_i`, `C_i = I ⊗ q_iᵀ`, `D_i = 0`.

    **Arguments:**
    - `q`, `k`: `(L, m)`.
    - `alpha`: the gates `(L, m)` in (0, 1] (GLA uses `σ(x)^{1/τ}`).
    - `W_V`: optional value projection folded into `B`.

    **Returns:** a channel-wise `DSF` shared by every channel (flat with `W_V`).

    **Raises:** `DynrnnValueError` for mismatched shapes.
    """
    q, k = _qk(q, k)
    alpha = _arr(alpha, "alpha", 2, "(L, m)")
    if alpha.shape != k.shape:
        raise DynrnnValueError(
            f"`alpha` must have the shape of `k`, got {tuple(alpha.shape)} and {tuple(k.shape)}."
        )
    return _fold_values(DSF(alpha[:, None], k[:, None], q[:, None], structure="channelwise"), W_V)
