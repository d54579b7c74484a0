"""The common interface of the continuous-time dynamical systems in `dynrnn.systems`.

A system is an Equinox module whose fields are its parameters and whose `vector_field(t, y, args)`
has the signature of `diffrax.ODETerm`, so `diffrax.ODETerm(system.vector_field)` integrates it.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class AbstractSystem(eqx.Module):
    """An autonomous flow `dy/dt = f(y)` with parameters stored as fields.

    Subclasses are final Equinox modules that define their parameters as fields (with the
    defaults of the published system), implement `vector_field`, and set the class-level
    metadata below. Parameters are plain numbers by default (so `simulate` compiles once per
    parameter set) and may be JAX arrays (so they can be differentiated).

    Class-level metadata:
    - `default_y0`: an initial condition on (or near) the attractor;
    - `reference_lyapunov`: a reference Lyapunov spectrum (per time unit) for the default
      parameters, or `None` where none is known;
    - `reference_source`: where that spectrum comes from;
    - `citation`: the paper that introduced the system.
    """

    default_y0: ClassVar[tuple[float, ...]]
    reference_lyapunov: ClassVar[tuple[float, ...] | None] = None
    reference_source: ClassVar[str] = ""
    citation: ClassVar[str] = ""

    @abc.abstractmethod
    def vector_field(self, t, y: Float[Array, " dim"], args) -> Float[Array, " dim"]:
        """`dy/dt` at state `y` (time `t` and `args` are unused by autonomous systems)."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def dim(self) -> int:
        """The number of state variables."""
        return len(self.default_y0)

    @property
    def y0(self) -> Float[Array, " dim"]:
        """The default initial condition, as an array of the default floating dtype."""
        return jnp.asarray(self.default_y0, dtype=float)

    def parameters(self) -> dict[str, float | list]:
        """The parameters (every non-static field) as JSON-safe Python numbers or lists."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            arr = np.asarray(value)
            out[f.name] = arr.item() if arr.ndim == 0 else arr.tolist()
        return out

    def lyapunov_spectrum(self) -> tuple[float, ...] | None:
        """The reference Lyapunov spectrum (per time unit, descending) if the parameters are the
        published defaults and one is known, else `None`."""
        if self.reference_lyapunov is None or not self._has_default_parameters():
            return None
        return tuple(self.reference_lyapunov)

    def _has_default_parameters(self) -> bool:
        for f in dataclasses.fields(self):
            if f.default is dataclasses.MISSING:
                return False
            try:
                same = np.array_equal(np.asarray(getattr(self, f.name)), np.asarray(f.default))
            except jax.errors.ConcretizationTypeError:
                return False
            if not same:
                return False
        return True

    def jacobian(self, t, y: Float[Array, " dim"], args=None) -> Float[Array, "dim dim"]:
        """The Jacobian `∂f/∂y` of the vector field at `y` (forward-mode autodiff)."""
        return jax.jacfwd(lambda yy: self.vector_field(t, yy, args))(y)

    def divergence(self, t, y: Float[Array, " dim"], args=None) -> Float[Array, ""]:
        """The trace of the Jacobian, the local rate of phase-space volume change."""
        return jnp.trace(self.jacobian(t, y, args))
