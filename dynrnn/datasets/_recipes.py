"""The TOML recipes that ship with dynrnn (package data in `dynrnn/recipes/`) and the spec strings
that name shipped things: `recipe:NAME` for a recipe, `dataset:NAME` for a dataset.

```python
import dynrnn as dr

dr.datasets.recipes()                          # ['ecg_gtf', 'ecg_stf', ...]
path = dr.datasets.resolve_recipe("recipe:ecg_gtf")   # pathlib.Path of the shipped TOML
path = dr.datasets.resolve_recipe("my_run.toml")      # a path is passed through (checked)
```
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib

from .._errors import DynrnnTypeError, DynrnnValueError


RECIPE_PREFIX = "recipe:"


def recipe_dir() -> pathlib.Path:
    """The folder of the shipped recipes inside the installed package (`dynrnn/recipes/`)."""
    return pathlib.Path(str(importlib.resources.files("dynrnn").joinpath("recipes")))


def recipes() -> list[str]:
    """Names of the shipped recipes, as accepted by `resolve_recipe("recipe:NAME")`."""
    return sorted(p.stem for p in recipe_dir().glob("*.toml"))


def is_recipe_spec(spec) -> bool:
    """Whether `spec` is a string of the form `recipe:NAME`."""
    return isinstance(spec, str) and spec.startswith(RECIPE_PREFIX)


def resolve_recipe(spec: str | os.PathLike) -> pathlib.Path:
    """The file a recipe spec names.

    **Arguments:**
    - `spec`: `"recipe:NAME"` (a shipped recipe, `NAME` with or without `.toml`, see
      `recipes()`), or a path to a TOML file of your own.

    **Returns:** the `pathlib.Path` of the TOML file (read it with `path.read_text()`).

    **Raises:** `DynrnnValueError` for an unknown recipe name (listing the shipped ones);
    `FileNotFoundError` for a path that does not exist; `DynrnnTypeError` for anything that is
    neither a string nor a path.
    """
    if is_recipe_spec(spec):
        name = spec[len(RECIPE_PREFIX):].strip()
        if name.endswith(".toml"):
            name = name[: -len(".toml")]
        path = recipe_dir() / f"{name}.toml"
        if not name or "/" in name or "\\" in name or not path.is_file():
            raise DynrnnValueError(
                f"unknown recipe {spec!r}; shipped recipes: "
                f"{', '.join(RECIPE_PREFIX + n for n in recipes())}."
            )
        return path
    if not isinstance(spec, str | os.PathLike):
        raise DynrnnTypeError(
            f"`spec` must be 'recipe:NAME' or a path, got {type(spec).__name__}."
        )
    path = pathlib.Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"recipe file {str(path)!r} does not exist (shipped recipes: "
            f"{', '.join(RECIPE_PREFIX + n for n in recipes())})."
        )
    return path
