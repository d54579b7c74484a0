"""Observation models: how latent states are seen in the data, and how data force states."""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import DynrnnTypeError, DynrnnValueError
from .._base import AbstractObservation
from .calcium import CalciumObservation as CalciumObservation, LinearGaussian as LinearGaussian
from .linear import Affine as Affine, Identity as Identity, glorot_uniform as glorot_uniform


OBSERVATIONS = {
    "identity": Identity,
    "affine": Affine,
    "calcium": CalciumObservation,
    "linear_gaussian": LinearGaussian,
}


def make_observation(observation, obs: int, latent: int, *, key, dtype=None):
    """The observation model of a latent model with `obs` observed and `latent` state units.

    **Arguments:**
    - `observation`: `None` (`Identity` when `obs <= latent`, `Affine` otherwise), a name
      (`"identity"`, `"affine"`, `"calcium"`, `"linear_gaussian"`), a table
      `{"type": name, **arguments}` (e.g. `{"type": "affine", "penalty_weight": 1e-6}`, as in a
      TOML `[model]` table), or an observation model instance (its sizes are checked).
    - `obs`, `latent`, `key`, `dtype`: passed to the constructor.

    **Raises:** `ValueError` for an unknown name or mismatched sizes; `TypeError` for anything
    else.
    """
    if isinstance(observation, AbstractObservation):
        if observation.n_obs != obs or observation.n_latent != latent:
            raise DynrnnValueError(
                f"`observation` has n_obs={observation.n_obs}, n_latent={observation.n_latent}; "
                f"the model needs n_obs={obs}, n_latent={latent}."
            )
        return observation
    kwargs = {}
    if isinstance(observation, Mapping):
        kwargs = dict(observation)
        observation = kwargs.pop("type", None)
        if observation is None:
            raise DynrnnValueError(
                f"an `observation` table needs a `type` ({', '.join(OBSERVATIONS)}), got "
                f"{dict(kwargs)!r}."
            )
    if observation is None:
        observation = "identity" if obs <= latent else "affine"
    if not isinstance(observation, str):
        raise DynrnnTypeError(
            "`observation` must be None, a name, a table with a `type` or an observation model, "
            f"got {type(observation).__name__}."
        )
    cls = OBSERVATIONS.get(observation.lower())
    if cls is None:
        raise DynrnnValueError(
            f"`observation` must be one of {', '.join(repr(k) for k in OBSERVATIONS)} or an "
            f"observation model, got {observation!r}."
        )
    return cls(obs, latent, key=key, dtype=dtype, **kwargs)
