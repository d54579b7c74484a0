"""What the piecewise-linear RNNs share: a diagonal `A`, a bias, linear inputs `C u_t`, the
latent penalty, and the reference initialisations.

External inputs enter linearly, `+ C u_t`. All have analytic Jacobians (`jacobian`) and the
parameter bound used by adaptive teacher forcing (`jacobian_norm_bound`).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from ..._errors import DynrnnValueError
from .._base import AbstractLatentModel


def normalized_positive_definite(key, m: int, dtype=None) -> Float[Array, " m"]:
    """Diagonal of `K = RᵀR/M + I` divided by `λ_max(K)`, `R ~ N(0,1)` (Talathi & Vartak 2016).

    The result lies in (0, 1]: a contracting diagonal to start from.
    """
    return diagonal_and_coupling(key, m, dtype or jnp.result_type(float))[0]


def diagonal_and_coupling(key, m: int, dtype):
    """`A` (diagonal) and `W` (off-diagonal) of `I + RᵀR/M` scaled by its largest eigenvalue
    (the PLRNN/dendPLRNN reference initialisation)."""
    r = jr.normal(key, (m, m), dtype)
    k = jnp.eye(m, dtype=dtype) + r.T @ r / m
    k = k / jnp.max(jnp.abs(jnp.linalg.eigvalsh(k)))
    return jnp.diag(k), k - jnp.diag(jnp.diag(k))


def zero_diagonal(W):
    return W * (1.0 - jnp.eye(W.shape[0], dtype=W.dtype))


def uniform(key, shape, bound, dtype):
    return jr.uniform(key, shape, dtype, minval=-bound, maxval=bound)


class AbstractPLRNN(AbstractLatentModel):
    """Shared pieces of the piecewise-linear RNNs: diagonal `A`, bias, inputs, penalty."""

    A: eqx.AbstractVar[Float[Array, " latent"]]
    C: eqx.AbstractVar[Float[Array, "latent input"] | None]
    penalty_weight: eqx.AbstractVar[float]

    @property
    def n_inputs(self) -> int:
        return 0 if self.C is None else self.C.shape[1]

    def _input(self, z, u):
        if u is None or self.C is None:
            if u is not None and self.C is None and u.shape[-1] != 0:
                raise DynrnnValueError(
                    f"`u` has {u.shape[-1]} input dimensions but the model was built with "
                    "inputs=0; pass `inputs=K` to the constructor."
                )
            return jnp.zeros_like(z)
        return self.C @ u

    def _latent_penalty(self, arrays) -> Float[Array, ""]:
        if self.penalty_weight == 0.0:
            return jnp.zeros((), self.A.dtype)
        total = jnp.sum((1.0 - self.A) ** 2)
        for a in arrays:
            if a is not None:
                total = total + jnp.sum(a**2)
        return self.penalty_weight * total
