"""Building any latent family from a configuration table (a TOML `[model]` table)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping

from jaxtyping import PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError
from ._base import AbstractLatentModel


def families() -> dict[str, type]:
    """The concrete latent families exported by `dynrnn.models`, by class name."""
    from .. import models

    return {
        name: obj for name, obj in vars(models).items()
        if isinstance(obj, type) and issubclass(obj, AbstractLatentModel)
        and not inspect.isabstract(obj) and not name.startswith("Abstract")
    }


def family(name) -> type | None:
    """The latent family called `name`: a class name of `dynrnn.models` or a short name the
    family declares (`aliases = ("ESN",)`), case ignored; `None` if there is none."""
    known = families()
    by_lower = {n.lower(): cls for n, cls in known.items()}
    for cls in known.values():
        by_lower.update({alias.lower(): cls for alias in cls.aliases})
    return known.get(name) or by_lower.get(str(name).lower())


def build(table: Mapping, *, obs: int | None = None, key: PRNGKeyArray) -> AbstractLatentModel:
    """A latent model from a configuration table.

    `table` holds `type` (a class name of `dynrnn.models`, e.g. `"ShallowPLRNN"`, `"CfC"`,
    `"NeuralODE"`, or a short name a family declares, e.g. `"ESN"`, `"AR"`; case is ignored)
    and the constructor's keyword arguments in the common vocabulary (`latent`, `obs`, then
    the family's own, e.g. `hidden`, `wiring`, `width`).
    Nested tables build observation models (`observation = {type = "affine",
    penalty_weight = 1e-6}`) and wirings (`wiring = {type = "AutoNCP", units = 16,
    output_size = 3}`).

    **Arguments:**
    - `table`: the `[model]` table.
    - `obs`: the data's dimension; fills `obs` (and must agree with it when the table gives
      one).
    - `key`: PRNG key of the initialisation.

    **Returns:** the model.

    **Raises:** `ValueError` naming the unknown type or keyword and listing what the family
    accepts.
    """
    cls, kw = resolve(table, obs=obs)
    return cls(**kw, key=key)


def resolve(table: Mapping, *, obs: int | None = None) -> tuple[type, dict]:
    """The family class and the keyword arguments `build` would call it with, after every
    check `build` makes (known family, known keywords, `obs` agreeing with the data), without
    building the model (cheap: nothing is drawn or compiled).

    **Raises:** as `build`.
    """
    if not isinstance(table, Mapping):
        raise DynrnnTypeError(f"a [model] table must be a mapping, got {type(table).__name__}.")
    kw = dict(table)
    kind = kw.pop("type", None)
    known = families()
    if kind is None:
        raise DynrnnValueError(f"the [model] table needs a `type`, one of {sorted(known)}.")
    cls = family(kind)
    if cls is None:
        raise DynrnnValueError(
            f"[model] type {kind!r} is not a latent family of dynrnn.models; choose one of "
            f"{', '.join(sorted(known))}."
        )
    if obs is not None:
        given = kw.setdefault("obs", obs)
        if given != obs:
            raise DynrnnValueError(f"[model] obs = {given} but the data has {obs} dimensions.")
    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in params.items() if n not in ("self", "key")
                and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DynrnnValueError(
            f"[model] type {cls.__name__!r} does not take {', '.join(map(repr, unknown))}{hint}; "
            f"it takes {', '.join(accepted)}."
        )
    return cls, kw
