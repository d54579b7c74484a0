"""Describing a model as JSON by public class names and constructor arguments, and building
it back.

A model (any dynrnn module with a public name) is `{"class": "dynrnn.models.LTC",
"hyperparameters": {...}}`, its hyperparameters being its constructor keywords
(`model.hyperparameters` for latent and observation models, else the constructor arguments
read from the instance); nested observation models and wirings are described the same way,
Diffrax solvers and adjoints and other dataclasses by their fields (`{"class": ..., "fields":
...}`), arrays by their values (`{"array": ..., "dtype": ...}`). Only classes importable from
the public namespaces of dynrnn, Equinox, Diffrax, Lineax and Optax are named, and only those
are imported back: a file cannot make `dr.load` import anything else.

Files written by dynrnn 0.1.0 named private module paths (`dynrnn.models._ltc:LTC`); they are
read through `ALIASES`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._errors import CheckpointError, DynrnnTypeError
from ..models import AbstractLatentModel, AbstractObservation
from ..models._base import constructor_arguments


# Public namespaces searched for a class's name, in order.
PUBLIC_MODULES = (
    "dynrnn.models", "dynrnn.models.wirings", "dynrnn.engines", "dynrnn.forcing",
    "dynrnn.regularizers", "dynrnn.dsf", "dynrnn.dsf.layers", "dynrnn.systems",
    "dynrnn.tasks", "dynrnn.training", "diffrax", "equinox", "equinox.nn", "lineax", "optax",
)

# Classes of dynrnn 0.1.0 files (private paths) -> public names.
ALIASES = {
    "dynrnn.models._plrnn:ShallowPLRNN": "dynrnn.models.ShallowPLRNN",
    "dynrnn.models._plrnn:PLRNN": "dynrnn.models.PLRNN",
    "dynrnn.models._plrnn:DendPLRNN": "dynrnn.models.DendPLRNN",
    "dynrnn.models._plrnn:ALRNN": "dynrnn.models.ALRNN",
    "dynrnn.models._ltc:LTC": "dynrnn.models.LTC",
    "dynrnn.models._cfc:CfC": "dynrnn.models.CfC",
    "dynrnn.models._lssl:LSSL": "dynrnn.models.LSSL",
    "dynrnn.models._lssl:DeepLSSL": "dynrnn.models.DeepLSSL",
    "dynrnn.models._neural_ode:NeuralODE": "dynrnn.models.NeuralODE",
    "dynrnn.models._neural_sde:NeuralSDE": "dynrnn.models.NeuralSDE",
    "dynrnn.models._fernn:FlowEquivariantRNN": "dynrnn.models.FlowEquivariantRNN",
}


class NotDescribable(Exception):
    """A value that has no JSON description (a user's own module or function)."""


def public_name(cls: type) -> str:
    """`"package.Name"` under which `cls` is exported by a public namespace."""
    for module in PUBLIC_MODULES:
        if cls.__module__.split(".")[0] != module.split(".")[0]:
            continue
        mod = importlib.import_module(module)
        if vars(mod).get(cls.__name__) is cls:
            return f"{module}.{cls.__name__}"
    raise NotDescribable(
        f"{cls.__module__}.{cls.__qualname__} is not exported by a public namespace of "
        "dynrnn, Equinox, Diffrax, Lineax or Optax"
    )


def resolve(name: str) -> type:
    """The class named by `public_name` (or a 0.1.0 alias); nothing outside the public
    namespaces is imported."""
    name = ALIASES.get(name, name)
    module, _, attr = name.rpartition(".")
    if module not in PUBLIC_MODULES:
        raise CheckpointError(
            f"the file names class {name!r}, which is not in a public namespace of dynrnn or "
            "its libraries; refusing to import it. Pass `like=` (a model of the right "
            "structure) to load its parameters."
        )
    obj = vars(importlib.import_module(module)).get(attr)
    if not isinstance(obj, type):
        raise CheckpointError(f"the file names class {name!r}, which does not exist here.")
    return obj


def encode(value):
    """The JSON description of `value` (see the module docstring)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | jax.Array):
        a = np.asarray(value)
        return {"array": a.tolist(), "dtype": str(a.dtype)}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): encode(v) for k, v in value.items()}}
    if isinstance(value, type):
        raise NotDescribable(f"a class ({value.__name__})")
    if isinstance(value, eqx.Module) and type(value).__module__.startswith("dynrnn."):
        try:
            if isinstance(value, AbstractLatentModel | AbstractObservation):
                hp = value.hyperparameters
            else:
                hp = constructor_arguments(value)
        except DynrnnTypeError as e:
            raise NotDescribable(str(e)) from e
        return {"class": public_name(type(value)),
                "hyperparameters": {k: encode(v) for k, v in hp.items()}}
    if dataclasses.is_dataclass(value):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                  if f.init}
        return {"class": public_name(type(value)), "fields": fields}
    raise NotDescribable(f"a value of type {type(value).__name__}")


def decode(value):
    """Build back what `encode` described."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return jnp.asarray(np.asarray(value["array"], dtype=value["dtype"]))
    if "tuple" in value:
        return tuple(decode(v) for v in value["tuple"])
    if "dict" in value:
        return {k: decode(v) for k, v in value["dict"].items()}
    cls = resolve(value["class"])
    if "fields" in value:
        return cls(**{k: decode(v) for k, v in value["fields"].items()})
    return build(cls, {k: decode(v) for k, v in value["hyperparameters"].items()})


def build(cls: type, hyperparameters: dict):
    """`cls(**hyperparameters)` with a fixed key where the constructor takes one (the values
    it initialises are overwritten by the saved leaves)."""
    if "key" in inspect.signature(cls.__init__).parameters:
        return cls(**hyperparameters, key=jr.PRNGKey(0))
    return cls(**hyperparameters)
