"""The Dynamical Systems Framework: one linear time-varying system for many sequence layers.

Sieber, Amo Alonso, Didier, Zeilinger, Orvieto, "Understanding the differences in Foundation
Models: Attention, State Space Models, and Recurrent Neural Networks", NeurIPS 2024, Sec. 2
(eqs. 1-3). Every layer of the family is written as

    h_i = Λ_i h_{i−1} + B_i u_i,    y_i = C_i h_i + D_i u_i,    h_{−1} = 0,

and, unrolled, as one lower-triangular matrix `y = Φ u` with blocks

    Φ_ij = C_i Λ_i ⋯ Λ_{j+1} B_j  (j < i),    Φ_ii = C_i B_i + D_i,    Φ_ij = 0 (j > i).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact

from .._errors import DynrnnTypeError, DynrnnValueError, is_array
from ..scan import linear as scan_linear


STRUCTURES = ("diagonal", "dense", "channelwise", "matrix")
METHODS = ("recurrent", "parallel", "matrix")

_NO_RECURRENCE = (
    "this DSF holds only its matrix Φ (method='matrix'): softmax attention has no finite "
    "recurrent form, because exp(q·k) = ⟨φ(q), φ(k)⟩ needs the infinite-dimensional feature "
    "map φ of the exponential kernel, so its state would have N → ∞ dimensions"
)


def _shape(x) -> tuple[int, ...]:
    return tuple(x.shape)


def _as_array(x, name: str):
    if x is None:
        return None
    if not is_array(x):
        try:
            x = jnp.asarray(x)
        except TypeError as e:
            raise DynrnnTypeError(f"`{name}` must be an array, got {type(x).__name__}.") from e
    if jnp.dtype(x.dtype).kind not in "fciu":
        raise DynrnnTypeError(f"`{name}` must have a numeric dtype, got dtype {x.dtype}.")
    return jnp.asarray(x, dtype=float) if jnp.dtype(x.dtype).kind in "iu" else jnp.asarray(x)


def _broadcastable(a: int, b: int) -> bool:
    return a == b or a == 1 or b == 1


class DSF(eqx.Module):
    """A sequence layer written as a linear time-varying system (the DSF of Sieber et al. 2024).

    `h_i = Λ_i h_{i−1} + B_i u_i`, `y_i = C_i h_i + D_i u_i`, `i = 0 … L−1`, `h_{−1} = 0`.

    The per-step matrices are stored in one of four structures (the static field `structure`):

    - `"diagonal"`: `Lambda` `(L, N)` holds `diag(Λ_i)`; `B` `(L, N, d)`; `C` `(L, d_out, N)`;
      `D` `(L, d_out, d)` or `None` (zero).
    - `"dense"`: as `"diagonal"` with a full `Lambda` `(L, N, N)`.
    - `"channelwise"`: the Kronecker structure `Λ_i = ⊕_c diag(λ_i^c)`, `B_i = ⊕_c b_i^c`,
      `C_i = ⊕_c (c_i^c)ᵀ` of attention, selective SSMs and gated RNNs in the paper: every
      channel `c` of `u` drives its own `n`-dimensional diagonal system (state size
      `N = d·n`) and is read out into channel `c` of `y`. `Lambda`, `B`, `C` are `(L, c, n)`
      and `D` is `(L, c)` or `None`; a channel axis of size 1 means "the same for every
      channel" (`I_d ⊗ ·`, as for attention, whose converters do not know `d`), and `Lambda`
      may also have a state axis of size 1 (one scalar per channel, e.g. SSD).
      `to_flat(d)` gives the equivalent `"diagonal"` system with state index `c·n + k`.
    - `"matrix"`: only `Phi` is held (a converter for softmax attention returns this, see
      `from_softmax_attention`): `(L, L, c)` channel-wise or `(L, L, d_out, d)`.

    If any matrix is complex (the LRU), the output is the real part, `y_i = Re(C_i h_i) + D_i u_i`.

    **Arguments:**
    - `Lambda`, `B`, `C`, `D`: the per-step matrices in the shapes above (`D=None` for none).
    - `structure`: `"diagonal"`, `"dense"` or `"channelwise"`; by default `"diagonal"` for a
      2-D and `"dense"` for a 3-D `Lambda`.
    - `Phi`: give only this (and no `Lambda`, `B`, `C`, `D`) for a matrix-only system.

    **Raises:** `DynrnnValueError` if shapes disagree (mismatched state sizes name both
    shapes), `DynrnnTypeError` for non-numeric arrays.
    """

    Lambda: Inexact[Array, "*shape"] | None
    B: Inexact[Array, "*shape"] | None
    C: Inexact[Array, "*shape"] | None
    D: Inexact[Array, "*shape"] | None
    Phi: Float[Array, "*shape"] | None
    structure: str = eqx.field(static=True)

    def __init__(self, Lambda=None, B=None, C=None, D=None, *, structure=None, Phi=None):
        if Phi is not None:
            if any(x is not None for x in (Lambda, B, C, D)):
                raise DynrnnValueError(
                    "a matrix-only DSF takes `Phi` alone; got `Phi` together with "
                    "`Lambda`/`B`/`C`/`D`."
                )
            if structure not in (None, "matrix"):
                raise DynrnnValueError(
                    "`structure` must be 'matrix' (or None) when `Phi` is given, got "
                    f"{structure!r}."
                )
            Phi = _as_array(Phi, "Phi")
            if Phi.ndim not in (3, 4) or Phi.shape[0] != Phi.shape[1]:
                raise DynrnnValueError(
                    "`Phi` must have shape (L, L, c) or (L, L, d_out, d), got shape "
                    f"{_shape(Phi)}."
                )
            self.Lambda = self.B = self.C = self.D = None
            self.Phi = Phi
            self.structure = "matrix"
            return
        Lambda, B, C, D = (_as_array(x, n) for x, n in zip((Lambda, B, C, D), "Lambda B C D"))
        for x, n in ((Lambda, "Lambda"), (B, "B"), (C, "C")):
            if x is None:
                raise DynrnnValueError(f"`{n}` is required (got None); give `Phi` alone for a "
                                       "matrix-only DSF.")
        if structure is None:
            if Lambda.ndim not in (2, 3):
                raise DynrnnValueError(
                    "`Lambda` must have shape (L, N) (diagonal) or (L, N, N) (dense), got shape "
                    f"{_shape(Lambda)}."
                )
            structure = "diagonal" if Lambda.ndim == 2 else "dense"
        if structure not in ("diagonal", "dense", "channelwise"):
            raise DynrnnValueError(
                "`structure` must be 'diagonal', 'dense' or 'channelwise', got "
                f"{structure!r}."
            )
        if structure == "channelwise":
            _check_channelwise(Lambda, B, C, D)
        else:
            _check_flat(Lambda, B, C, D, structure)
        self.Lambda, self.B, self.C, self.D = Lambda, B, C, D
        self.Phi = None
        self.structure = structure

    # -- sizes ----------------------------------------------------------------------------

    @property
    def length(self) -> int:
        """`L`, the number of steps the per-step matrices cover."""
        return (self.Phi if self.structure == "matrix" else self.Lambda).shape[0]

    @property
    def channels(self) -> int | None:
        """Channel-wise systems: the channel count `c` (1 = shared by every channel)."""
        if self.structure == "channelwise":
            return max(self.Lambda.shape[1], self.B.shape[1], self.C.shape[1],
                       1 if self.D is None else self.D.shape[1])
        if self.structure == "matrix" and self.Phi.ndim == 3:
            return self.Phi.shape[2]
        return None

    def state_size(self, d: int | None = None) -> int | None:
        """`N`, the state dimension (`d·n` for channel-wise systems, which needs `d` when the
        system is shared by every channel); `None` for a matrix-only system (N → ∞)."""
        if self.structure == "matrix":
            return None
        if self.structure == "channelwise":
            c = self.channels
            if c == 1 and d is not None:
                c = d
            return c * self.B.shape[2]
        return self.B.shape[1]

    @property
    def is_complex(self) -> bool:
        arrays = (self.Phi,) if self.structure == "matrix" else (self.Lambda, self.B, self.C)
        return any(jnp.iscomplexobj(x) for x in arrays if x is not None)

    # -- conversions ----------------------------------------------------------------------

    def to_flat(self, d: int | None = None) -> DSF:
        """The equivalent `"diagonal"` system of a channel-wise one: `N = d·n`, state index
        `c·n + k`, `B_i = ⊕_c b_i^c`, `C_i = ⊕_c (c_i^c)ᵀ` (the paper's `I_d ⊗ ·` form).

        **Arguments:**
        - `d`: the number of channels; required when the system is shared by every channel.

        **Returns:** a `DSF` with `structure="diagonal"` (self if already flat).

        **Raises:** `DynrnnValueError` for a matrix-only system or a missing/mismatched `d`.
        """
        if self.structure in ("diagonal", "dense"):
            return self
        if self.structure == "matrix":
            raise DynrnnValueError(
                f"cannot write a matrix-only DSF as a recurrence: {_NO_RECURRENCE}."
            )
        c = self.channels
        if d is None:
            if c == 1:
                raise DynrnnValueError(
                    "`d` (the number of channels) is required to flatten a DSF that is shared "
                    "by every channel (channel axis of size 1)."
                )
            d = c
        if c not in (1, d):
            raise DynrnnValueError(f"`d` must be {c} for this DSF (its channel count), got {d}.")
        L, n = self.length, self.B.shape[2]
        lam = jnp.broadcast_to(self.Lambda, (L, d, n)).reshape(L, d * n)
        eye = jnp.eye(d, dtype=self.B.dtype)
        Bc = jnp.broadcast_to(self.B, (L, d, n))
        Cc = jnp.broadcast_to(self.C, (L, d, n))
        B = jnp.einsum("lck,ce->lcke", Bc, eye).reshape(L, d * n, d)
        C = jnp.einsum("lck,ec->leck", Cc, eye).reshape(L, d, d * n)
        D = None
        if self.D is not None:
            D = jnp.broadcast_to(self.D, (L, d))[:, :, None] * jnp.eye(d, dtype=self.D.dtype)
        return DSF(lam, B, C, D, structure="diagonal")


def _check_flat(Lambda, B, C, D, structure):
    if structure == "diagonal" and Lambda.ndim != 2:
        raise DynrnnValueError(
            f"a diagonal `Lambda` must have shape (L, N), got shape {_shape(Lambda)}."
        )
    if structure == "dense" and (Lambda.ndim != 3 or Lambda.shape[1] != Lambda.shape[2]):
        raise DynrnnValueError(
            f"a dense `Lambda` must have shape (L, N, N), got shape {_shape(Lambda)}."
        )
    if B.ndim != 3:
        raise DynrnnValueError(f"`B` must have shape (L, N, d), got shape {_shape(B)}.")
    if C.ndim != 3:
        raise DynrnnValueError(f"`C` must have shape (L, d_out, N), got shape {_shape(C)}.")
    L, N = Lambda.shape[0], Lambda.shape[1]
    for x, name in ((B, "B"), (C, "C"), (D, "D")):
        if x is not None and x.shape[0] != L:
            raise DynrnnValueError(
                f"`Lambda` and `{name}` must cover the same number of steps L, got shapes "
                f"{_shape(Lambda)} and {_shape(x)}."
            )
    if B.shape[1] != N:
        raise DynrnnValueError(
            f"state sizes differ: `Lambda` has N = {N} (shape {_shape(Lambda)}) but `B` "
            f"(L, N, d) has shape {_shape(B)}."
        )
    if C.shape[2] != N:
        raise DynrnnValueError(
            f"state sizes differ: `Lambda` has N = {N} (shape {_shape(Lambda)}) but `C` "
            f"(L, d_out, N) has shape {_shape(C)}."
        )
    if D is not None and (D.ndim != 3 or D.shape[1:] != (C.shape[1], B.shape[2])):
        raise DynrnnValueError(
            f"`D` must have shape (L, d_out, d) = {(L, C.shape[1], B.shape[2])} to match "
            f"`B` {_shape(B)} and `C` {_shape(C)}, got shape {_shape(D)}."
        )


def _check_channelwise(Lambda, B, C, D):
    for x, name in ((Lambda, "Lambda"), (B, "B"), (C, "C")):
        if x.ndim != 3:
            raise DynrnnValueError(
                f"a channel-wise `{name}` must have shape (L, c, n), got shape {_shape(x)}."
            )
    L = Lambda.shape[0]
    for x, name in ((B, "B"), (C, "C"), (D, "D")):
        if x is not None and x.shape[0] != L:
            raise DynrnnValueError(
                f"`Lambda` and `{name}` must cover the same number of steps L, got shapes "
                f"{_shape(Lambda)} and {_shape(x)}."
            )
    if B.shape[2] != C.shape[2]:
        raise DynrnnValueError(
            f"state sizes differ: `B` (L, c, n) has shape {_shape(B)} and `C` (L, c, n) has "
            f"shape {_shape(C)}."
        )
    if Lambda.shape[2] not in (1, B.shape[2]):
        raise DynrnnValueError(
            f"state sizes differ: `Lambda` (L, c, n or 1) has shape {_shape(Lambda)} and `B` "
            f"(L, c, n) has shape {_shape(B)}."
        )
    chans = [(Lambda, "Lambda"), (B, "B"), (C, "C")]
    if D is not None:
        if D.ndim != 2:
            raise DynrnnValueError(
                f"a channel-wise `D` must have shape (L, c), got shape {_shape(D)}."
            )
        chans.append((D, "D"))
    for i, (x, nx) in enumerate(chans):
        for y, ny in chans[i + 1:]:
            if not _broadcastable(x.shape[1], y.shape[1]):
                raise DynrnnValueError(
                    f"channel counts differ: `{nx}` has shape {_shape(x)} and `{ny}` has shape "
                    f"{_shape(y)} (each channel axis must be c or 1)."
                )


# -- the linear scan ----------------------------------------------------------------------


def _scan(a, b, method: str):
    """`h_t = a_t ∘ h_{t−1} + b_t` from `h_{−1} = 0` (∘ elementwise for `a` (L, N), matrix
    product for `a` (L, N, N)), sequentially or by an associative scan."""
    return scan_linear(a, b, method="sequential" if method == "recurrent" else "associative")


# -- apply and materialise ----------------------------------------------------------------


def _check_u(dsf: DSF, u):
    u = _as_array(u, "u")
    if u.ndim != 2:
        raise DynrnnValueError(f"`u` must have shape (L, d), got shape {_shape(u)}.")
    if u.shape[0] != dsf.length:
        raise DynrnnValueError(
            f"`u` must have L = {dsf.length} steps to match the DSF, got shape {_shape(u)}."
        )
    d = u.shape[1]
    if dsf.structure in ("diagonal", "dense") and dsf.B.shape[2] != d:
        raise DynrnnValueError(
            f"`u` must have d = {dsf.B.shape[2]} channels to match `B` {_shape(dsf.B)}, got "
            f"shape {_shape(u)}."
        )
    c = dsf.channels
    if c is not None and c not in (1, d):
        raise DynrnnValueError(
            f"`u` must have d = {c} channels to match the channel-wise DSF, got shape "
            f"{_shape(u)}."
        )
    if dsf.structure == "matrix" and dsf.Phi.ndim == 4 and dsf.Phi.shape[3] != d:
        raise DynrnnValueError(
            f"`u` must have d = {dsf.Phi.shape[3]} channels to match `Phi` "
            f"{_shape(dsf.Phi)}, got shape {_shape(u)}."
        )
    return u


def _real_if(x, complex_system: bool):
    return jnp.real(x) if complex_system else x


@eqx.filter_jit
def apply(
    dsf: DSF, u: Float[Array, "L d"], method: str = "recurrent"
) -> Float[Array, "L d_out"]:
    """Run a DSF on an input sequence: `y_i = C_i h_i + D_i u_i`, `h_i = Λ_i h_{i−1} + B_i u_i`.

    **Arguments:**
    - `dsf`: the system.
    - `u`: the input `(L, d)`.
    - `method`: `"recurrent"` (a sequential `dr.scan.linear`), `"parallel"` (an associative
      `dr.scan.linear`, depth O(log L)) or `"matrix"` (`y = Φ u` with `Φ = materialize(dsf)`).

    **Returns:** `y`, `(L, d_out)` (real part for complex systems).

    **Raises:** `DynrnnValueError` for an unknown `method`, an input whose shape does not match,
    or `"recurrent"`/`"parallel"` on a matrix-only DSF (softmax attention: no finite state).
    """
    if method not in METHODS:
        raise DynrnnValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    u = _check_u(dsf, u)
    if method == "matrix":
        Phi = materialize(dsf)
        if Phi.ndim == 3:
            return jnp.einsum("ijc,jc->ic", Phi, u)
        return jnp.einsum("ijab,jb->ia", Phi, u)
    if dsf.structure == "matrix":
        raise DynrnnValueError(f"`method={method!r}` is not available: {_NO_RECURRENCE}.")
    cplx = dsf.is_complex
    L, d = u.shape
    if dsf.structure == "channelwise":
        n = dsf.B.shape[2]
        lam = jnp.broadcast_to(dsf.Lambda, (L, d, n))
        b = jnp.broadcast_to(dsf.B * u[:, :, None], (L, d, n))
        dtype = jnp.result_type(lam, b)
        h = _scan(lam.reshape(L, d * n).astype(dtype), b.reshape(L, d * n).astype(dtype), method)
        y = jnp.sum(dsf.C * h.reshape(L, d, n), axis=-1)
        y = _real_if(y, cplx)
        if dsf.D is not None:
            y = y + dsf.D * u
        return y
    b = jnp.einsum("lnd,ld->ln", dsf.B, u)
    dtype = jnp.result_type(dsf.Lambda, b)
    h = _scan(dsf.Lambda.astype(dtype), b.astype(dtype), method)
    y = _real_if(jnp.einsum("lon,ln->lo", dsf.C, h), cplx)
    if dsf.D is not None:
        y = y + _real_if(jnp.einsum("lod,ld->lo", dsf.D, u), cplx)
    return y


def _transitions(Lambda):
    """Dense `Λ` `(L, N, N)`: `T[i, j] = Λ_i ⋯ Λ_{j+1}` for `j ≤ i` (identity at `j = i`),
    0 for `j > i`; a running product over `i` (one `lax.scan` step per row)."""
    L, N = Lambda.shape[0], Lambda.shape[1]
    idx = jnp.arange(L)
    eye = jnp.eye(N, dtype=Lambda.dtype)

    def row(M, inp):
        lam, i = inp
        M = jnp.where((idx == i)[:, None, None], eye, jnp.einsum("nm,jmk->jnk", lam, M))
        M = jnp.where((idx <= i)[:, None, None], M, 0)
        return M, M

    _, T = jax.lax.scan(row, jnp.zeros((L, N, N), Lambda.dtype), (Lambda, idx))
    return T


def _materialize_structured(dsf: DSF):
    """Φ of a system held as per-step matrices (every structure but "matrix")."""
    L = dsf.length
    cplx = dsf.is_complex
    eye_L = jnp.eye(L, dtype=bool)
    if dsf.structure == "channelwise":
        c = dsf.channels
        n = dsf.B.shape[2]
        lam = jnp.broadcast_to(dsf.Lambda, (L, c, n))
        T = _transitions_diag(lam)  # (L, L, c, n)
        Phi = jnp.einsum("ick,ijck,jck->ijc",
                         jnp.broadcast_to(dsf.C, (L, c, n)), T,
                         jnp.broadcast_to(dsf.B, (L, c, n)))
        Phi = _real_if(Phi, cplx)
        if dsf.D is not None:
            Dc = jnp.broadcast_to(dsf.D, (L, c))
            Phi = Phi + jnp.where(eye_L[:, :, None], Dc[:, None, :], 0)
        return Phi
    if dsf.structure == "diagonal":
        T = _transitions_diag(dsf.Lambda)  # (L, L, N)
        Phi = jnp.einsum("ion,ijn,jnd->ijod", dsf.C, T, dsf.B)
    else:
        T = _transitions(dsf.Lambda)  # (L, L, N, N)
        Phi = jnp.einsum("ion,ijnm,jmd->ijod", dsf.C, T, dsf.B)
    Phi = _real_if(Phi, cplx)
    if dsf.D is not None:
        Phi = Phi + jnp.where(eye_L[:, :, None, None], _real_if(dsf.D, cplx)[:, None], 0)
    return Phi


def _transitions_diag(Lambda):
    """Diagonal `Λ` of any trailing shape: `T[i, j] = Λ_i ⊙ ⋯ ⊙ Λ_{j+1}` (j ≤ i), else 0.

    A running product over `i`, never a ratio of cumulative products (which would divide by
    numbers that underflow for contracting systems)."""
    L = Lambda.shape[0]
    idx = jnp.arange(L)
    ones = (1,) * (Lambda.ndim - 1)

    def row(M, inp):
        lam, i = inp
        M = jnp.where((idx == i).reshape((L,) + ones), 1, lam[None] * M)
        M = jnp.where((idx <= i).reshape((L,) + ones), M, 0)
        return M, M

    M0 = jnp.zeros((L,) + Lambda.shape[1:], Lambda.dtype)
    _, T = jax.lax.scan(row, M0, (Lambda, idx))
    return T


@eqx.filter_jit
def materialize(dsf: DSF) -> Float[Array, "L L ..."]:
    """The matrix `Φ` of a DSF, so that `y = Φ u` (Sieber et al. 2024, eq. 3):

    `Φ_ij = C_i Λ_i ⋯ Λ_{j+1} B_j` for `j < i`, `Φ_ii = C_i B_i + D_i`, `Φ_ij = 0` for `j > i`.

    The products `Λ_i ⋯ Λ_{j+1}` are running products over `i` (no Python loop over L²).

    **Arguments:**
    - `dsf`: the system.

    **Returns:** for `"diagonal"`/`"dense"` systems (and matrix-only ones stored that way)
    `Phi` of shape `(L, L, d_out, d)` with `y_i = Σ_j Phi[i, j] @ u_j` (the block matrix of
    the paper is `Phi.transpose(0, 2, 1, 3).reshape(L·d_out, L·d)`); for channel-wise systems
    only the channel-diagonal, `(L, L, c)` with `y_i^c = Σ_j Phi[i, j, c] u_j^c` (c = 1: the
    same for every channel). Real (the real part for complex systems).
    """
    if dsf.structure == "matrix":
        return dsf.Phi
    return _materialize_structured(dsf)
