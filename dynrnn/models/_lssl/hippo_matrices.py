"""HiPPO transition matrices, discretisations of `x' = A x + B u`, and the Krylov kernel.

Gu, Dao, Ermon, Rudra, Ré, "HiPPO: Recurrent Memory with Optimal Polynomial Projections",
NeurIPS 2020; Gu, Johnson, Goel, Saab, Dao, Rudra, Ré, "Combining Recurrent, Convolutional, and
Continuous-time Models with Linear State-Space Layers", NeurIPS 2021 (LSSL), Sec. 2-3 and
App. B. The matrices follow the reference implementation's `hippo.py` (state-spaces/s4), which
its author names as authoritative over the LSSL appendix.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..._errors import DynrnnTypeError, DynrnnValueError


HIPPO_KINDS = ("legs", "legt", "lmu", "lagt", "tlagt")
DISCRETIZATIONS = ("bilinear", "forward_euler", "backward_euler", "zoh")


def hippo(kind: str, n: int, **kw) -> tuple[np.ndarray, np.ndarray]:
    """The HiPPO matrices `(A, B)` of the continuous memory update `x'(t) = A x(t) + B u(t)`.

    With `n` the row and `k` the column (0-based):

    | `kind` | `A[n, k]` | `B[n]` |
    |---|---|---|
    | `"legs"` | `−√(2n+1)√(2k+1)` (n>k), `−(n+1)` (n=k), 0 (n<k) | `√(2n+1)` |
    | `"legt"` | `−½ √(2n+1)√(2k+1) · (1 if n≥k else (−1)^(n−k))` | `½ √(2n+1)` |
    | `"lmu"` | `(2n+1)/θ · (−1 if n<k else (−1)^(n−k+1))` | `(−1)^n (2n+1)/θ` |
    | `"lagt"` | `½ I − tril(1)` | `β` |
    | `"tlagt"` | `(1−β)/2 · I − tril(1)` | `β` |

    (`legs`: scaled Legendre; `legt`: translated Legendre; `lmu`: translated Legendre in the
    normalisation of the Legendre Memory Unit; `lagt`: translated Laguerre; `tlagt`: tilted
    Laguerre.)

    `legt` is halved (A and B) as in the reference `hippo.py`; its standalone LSSL file omits
    the halving. LegS is the default of `LSSL` (its eigenvalues are `−(n+1)`). Note that LegS
    is a *time-scaled* measure: the HiPPO-LegS memory update is `x' = A x / t + B u / t`; the
    LSSL uses the same `(A, B)` with a fixed step instead.

    **Arguments:**
    - `kind`: one of `"legs"`, `"legt"`, `"lmu"`, `"lagt"`, `"tlagt"`.
    - `n`: state size `N ≥ 1`.
    - `**kw`: `beta` (default 1.0) for `"lagt"` and `"tlagt"`; `theta` (default 1.0, the
      window length) for `"lmu"`. Other keywords are rejected.

    **Returns:** `(A, B)`, NumPy float64 arrays of shapes `(n, n)` and `(n,)`.

    **Raises:** `DynrnnValueError` for an unknown `kind`, `n < 1`, a non-positive `theta` or
    an unexpected keyword; `DynrnnTypeError` if `n` is not an integer.
    """
    if not isinstance(kind, str) or kind.lower() not in HIPPO_KINDS:
        raise DynrnnValueError(
            f"`kind` must be one of {', '.join(repr(k) for k in HIPPO_KINDS)}, got {kind!r}."
        )
    kind = kind.lower()
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise DynrnnTypeError(f"`n` (the state size) must be an integer, got {n!r}.")
    if n < 1:
        raise DynrnnValueError(f"`n` (the state size) must be >= 1, got {n}.")
    allowed = {"lagt": {"beta"}, "tlagt": {"beta"}, "lmu": {"theta"}}.get(kind, set())
    extra = set(kw) - allowed
    if extra:
        raise DynrnnValueError(
            f"hippo({kind!r}) accepts the keyword(s) {sorted(allowed) or 'none'}, "
            f"got {sorted(extra)}."
        )
    n = int(n)
    q = np.arange(n, dtype=np.float64)
    row, col = q[:, None], q[None, :]
    r = np.sqrt(2 * q + 1)
    if kind == "legs":
        A = np.where(row > col, -r[:, None] * r[None, :], 0.0) - np.diag(q + 1)
        B = r.copy()
    elif kind == "legt":
        sign = np.where(row >= col, 1.0, (-1.0) ** (row - col))
        A = -0.5 * r[:, None] * sign * r[None, :]
        B = 0.5 * r
    elif kind == "lmu":
        theta = float(kw.get("theta", 1.0))
        if not math.isfinite(theta) or theta <= 0:
            raise DynrnnValueError(f"`theta` must be a positive window length, got {theta!r}.")
        sign = np.where(row < col, -1.0, (-1.0) ** (row - col + 1))
        A = sign * (2 * row + 1) / theta
        B = (-1.0) ** q * (2 * q + 1) / theta
    else:
        beta = float(kw.get("beta", 1.0))
        diag = 0.5 if kind == "lagt" else (1.0 - beta) / 2
        A = diag * np.eye(n) - np.tril(np.ones((n, n)))
        B = beta * np.ones(n)
    return A, B


def _forward_substitution(T, R):
    """`T⁻¹ R` for lower-triangular `T` `(n, n)` and `R` `(n, k)`, row by row."""

    def row(X, i):
        # Rows ≥ i of X are still zero, so `T[i] @ X` is the sum over the solved rows k < i.
        return X.at[i].set((R[i] - T[i] @ X) / T[i, i]), None

    return jax.lax.scan(row, jnp.zeros_like(R), jnp.arange(T.shape[-1]))[0]


def _tril_solve(T, R):
    """Solve `T X = R` for lower-triangular `T`, in XLA operations only.

    `jnp.linalg.solve` and `jax.scipy.linalg.solve_triangular` lower to LAPACK custom calls on
    CPU (`getrf`/`trsm`, through SciPy's OpenBLAS); inside a jitted training step those are the
    only non-XLA kernels of the layer. Forward substitution is the same O(n² k) algorithm as
    `trsm`; `lax.custom_linear_solve` differentiates it implicitly (the tangent solve reuses it,
    the cotangent solve is back substitution with `Tᵀ`), like `jnp.linalg.solve`.
    """
    flip = lambda M: M[::-1, ::-1]  # noqa: E731  (reverses an upper-triangular Tᵀ to lower)

    def transpose_solve(_, b):
        return _forward_substitution(flip(T.T), b[::-1])[::-1]

    return jax.lax.custom_linear_solve(
        lambda X: T @ X, R, solve=lambda _, b: _forward_substitution(T, b),
        transpose_solve=transpose_solve,
    )


def _gbt(A, B, dt, alpha, lower):
    n = A.shape[-1]
    eye = jnp.eye(n, dtype=A.dtype)
    rhs = eye + (1 - alpha) * dt * A
    if alpha == 0.0:  # forward Euler: nothing to invert
        return rhs, dt * B
    # One solve with both right-hand sides [I + (1−α)ΔA, B] (one factorisation of I − αΔA).
    R = jnp.concatenate([rhs, B[:, None]], axis=1)
    lhs = eye - alpha * dt * A
    X = _tril_solve(lhs, R) if lower else jnp.linalg.solve(lhs, R)
    return X[:, :n], dt * X[:, n]


def _zoh(A, B, dt):
    # `A⁻¹(e^{ΔA} − I)B` fails for singular A (LagT with β = 1 is not, but tLagT and trained
    # matrices can be); the block exponential `exp([[A, B], [0, 0]] Δ) = [[Ā, B̄], [0, 1]]`
    # gives the same B̄ without inverting A (Van Loan 1978).
    n = A.shape[-1]
    aug = jnp.zeros((n + 1, n + 1), A.dtype)
    aug = aug.at[:n, :n].set(A).at[:n, n].set(B)
    E = jax.scipy.linalg.expm(aug * dt)
    return E[:n, :n], E[:n, n]


def discretize(
    A: Float[Array, "n n"],
    B: Float[Array, " n"],
    dt: Float[Array, ""] | float,
    method: str = "bilinear",
    alpha: float | None = None,
) -> tuple[Float[Array, "n n"], Float[Array, " n"]]:
    """Discretise `x' = A x + B u` with step `Δ = dt` into `x_k = Ā x_{k−1} + B̄ u_k`.

    Generalized bilinear transform (GBT, LSSL Sec. 2.2 and App. C.1):

        Ā = (I − αΔA)⁻¹ (I + (1−α)ΔA),    B̄ = Δ (I − αΔA)⁻¹ B,

    with `α = ½` (`"bilinear"`, Tustin; the LSSL default), `α = 0` (`"forward_euler"`) or
    `α = 1` (`"backward_euler"`). Zero-order hold (`"zoh"`): `Ā = e^{ΔA}`,
    `B̄ = A⁻¹(e^{ΔA} − I)B`, computed as the exponential of the augmented matrix
    `[[A, B], [0, 0]] Δ` so that singular `A` is fine.

    One system per call; batch over channels with `jax.vmap` (differentiable in `A`, `B`, `dt`).
    A concrete lower-triangular `A` (LegS, LagT, tLagT) is solved by forward substitution in
    XLA operations; any other `A` goes through `jnp.linalg.solve` (LU; a LAPACK call on CPU),
    and zero-order hold through `jax.scipy.linalg.expm`.

    **Arguments:**
    - `A`: `(n, n)` state matrix; `B`: `(n,)` input vector.
    - `dt`: the step `Δ > 0` (a scalar).
    - `method`: `"bilinear"`, `"forward_euler"`, `"backward_euler"` or `"zoh"`.
    - `alpha`: the GBT parameter in `[0, 1]` for `method="bilinear"` (default ½); other methods
      take no `alpha`.

    **Returns:** `(Ā, B̄)` of shapes `(n, n)` and `(n,)`.

    **Raises:** `DynrnnValueError` for an unknown method, shapes that do not fit, `alpha`
    outside `[0, 1]` or given with another method, or a non-positive `dt` (checked when `dt`
    is concrete, not under `jit`).
    """
    if method not in DISCRETIZATIONS:
        raise DynrnnValueError(
            f"`method` must be one of {', '.join(repr(m) for m in DISCRETIZATIONS)}, "
            f"got {method!r}."
        )
    A = jnp.asarray(A)
    B = jnp.asarray(B)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise DynrnnValueError(f"`A` must be a square (n, n) matrix, got shape {A.shape}.")
    if B.shape != (A.shape[0],):
        raise DynrnnValueError(
            f"`B` must have shape ({A.shape[0]},) to match `A` {A.shape}, got shape {B.shape}."
        )
    check_dt(dt)
    dt = jnp.asarray(dt, dtype=jnp.result_type(A.dtype, B.dtype))
    if dt.ndim != 0:
        raise DynrnnValueError(
            f"`dt` must be a scalar (vmap over channels), got shape {dt.shape}."
        )
    if method == "bilinear":
        alpha = 0.5 if alpha is None else float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise DynrnnValueError(f"`alpha` must lie in [0, 1], got {alpha}.")
    elif alpha is not None:
        raise DynrnnValueError(
            f"`alpha` only applies to method='bilinear' (the generalized bilinear transform), "
            f"got alpha={alpha!r} with method={method!r}."
        )
    else:
        alpha = method_alpha(method)
    return _discretize(A, B, dt, method, alpha, is_lower_triangular(A))


def is_lower_triangular(A) -> bool:
    """Whether a concrete `A` has no entries above the diagonal (`False` for a traced `A`)."""
    if isinstance(A, jax.core.Tracer):
        return False
    A = np.asarray(A)
    return A.ndim >= 2 and not np.triu(A, 1).any()


def method_alpha(method: str) -> float | None:
    """The GBT parameter of a named discretisation (`None` for zero-order hold)."""
    return {"bilinear": 0.5, "forward_euler": 0.0, "backward_euler": 1.0}.get(method)


@eqx.filter_jit
def _discretize(A, B, dt, method, alpha, lower):
    if method == "zoh":
        return _zoh(A, B, dt)
    return _gbt(A, B, dt, alpha, lower)


def check_dt(dt, name: str = "dt") -> None:
    """Reject non-positive or non-finite step sizes when they are concrete values."""
    if isinstance(dt, jax.core.Tracer):
        return
    values = np.asarray(dt, dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise DynrnnValueError(
            f"`{name}` must be positive and finite, got {values[bad].ravel()[0]!r}"
            + (f" (shape {values.shape})." if values.ndim else ".")
        )


def krylov(length: int, A: Float[Array, "n n"], b: Float[Array, " n"]) -> Float[Array, "length n"]:
    """The Krylov sequence `[b, A b, A² b, …, A^{L−1} b]` in `⌈log₂ L⌉` matrix products.

    Doubling (LSSL App. B.3): starting from `X = [b]`, repeat `X ← [X, A^{2^j} X]`,
    `A^{2^{j+1}} ← (A^{2^j})²` until `L` columns exist, then truncate.

    **Arguments:**
    - `length`: `L ≥ 1` (a Python integer; it sets the output shape).
    - `A`: `(n, n)`; `b`: `(n,)`.

    **Returns:** `(L, n)`, row `l` being `A^l b`. The LSSL kernel is `K̄_l = C Ā^l B̄`,
    i.e. `krylov(L, Ā, B̄) @ C.T`.

    **Raises:** `DynrnnValueError` if `length < 1`.
    """
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise DynrnnValueError(f"`length` must be an integer >= 1, got {length!r}.")
    X = b[None, :]
    power = A
    while X.shape[0] < length:
        # Only the rows still needed are multiplied in the last round.
        need = min(X.shape[0], length - X.shape[0])
        X = jnp.concatenate([X, X[:need] @ power.T], axis=0)
        if X.shape[0] < length:
            power = power @ power
    return X
