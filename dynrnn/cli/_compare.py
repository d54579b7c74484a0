"""`dynrnn compare CONFIG`: train every architecture on the same tasks (`dr.compare`) and write
the table, the dataset and a figure.

The configuration is a TOML file (or a shipped recipe, `recipe:compare_dsr`):

```toml
n_steps = 3000          # updates per model and task (the same budget for every family)
seeds = 5               # seeds per setting, trained as one vmapped ensemble
learning_rates = [1e-3, 5e-3]   # grid; the best on the validation split is kept
batch_size = 16
d_model = 32            # width of the DSF mixers' sequence models
n_layers = 2
seed = 0
measures = ["D_stsp", "D_H", "PE20", "lambda_max"]
baselines = true        # add the ESN and AR baselines when no table names their family
out = "compare-dsr"     # folder for compare.nc, compare.md and compare.png

[models.shPLRNN]        # one table per model: a family of dr.models and its keywords ...
type = "ShallowPLRNN"
hidden = 64

[models.esn]            # ... a regression baseline (lists are searched on validation) ...
type = "ESN"
spectral_radius = [0.6, 0.9, 1.2]

[models.s6]             # ... or a DSF mixer with its arguments
mixer = "s6"
d_state = 8

[tasks.lorenz63]        # one table per task: its kind and arguments
kind = "lorenz63"

[tasks.flows]           # a list of dysts flows: one task each
kind = "catalogue"
systems = ["Rossler", "Aizawa"]
```

A family table without `latent` gets the data's dimension (when the family has no default
for it). Task kinds: `lorenz63`, `dataset` (`name`), `system` (`system`, `dt`, `n_train`,
`noise`, ...), `catalogue` (`system` or `systems`, `catalogue` = path of dysts' JSON),
`files` (`train`, `test`), `mqar`, `digits`.
"""

from __future__ import annotations

import argparse
import pathlib
import tomllib

from .._errors import DynrnnValueError
from ._schema import FLAG, INT, NUMBER, TEXT, Key, check_value, did_you_mean


def _positive(v):
    return v > 0


TOP_KEYS = {
    "name": Key(TEXT, expected="a name for the comparison"),
    "n_steps": Key(INT, _positive, "an integer >= 1"),
    "seeds": Key(INT, _positive, "a number of seeds >= 1"),
    "learning_rates": Key((list, *NUMBER), None, "a learning rate or a list of them"),
    "learning_rate": Key(NUMBER, _positive, "a learning rate > 0 (one-element grid)"),
    "batch_size": Key(INT, _positive, "an integer >= 1"),
    "d_model": Key(INT, _positive, "an integer >= 1"),
    "n_layers": Key(INT, _positive, "an integer >= 1"),
    "seed": Key(INT, lambda v: v >= 0, "an integer >= 0"),
    "measures": Key((list,), None, "a list of measure names"),
    "out": Key(TEXT, expected="a folder for the results"),
    "output": Key(TEXT, expected="a path for the NetCDF file"),
    "markdown": Key(TEXT, expected="a path for the Markdown table"),
    "figure": Key(TEXT + FLAG, expected="a path for the figure, or false"),
    "progress": Key(FLAG, expected="true or false"),
    "baselines": Key(FLAG, expected="true or false (add the ESN and AR baselines)"),
    "models": Key((dict, list), None, "a table of model tables or a list of names"),
    "tasks": Key((dict, list), None, "a table of task tables or a list of kinds"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train several architectures on the same tasks; write a table, NetCDF and figure",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("config", help="TOML configuration file, or recipe:NAME (e.g. "
                   "recipe:compare_dsr)")
    p.add_argument("--steps", "--n-steps", dest="n_steps", type=int, default=None,
                   help="updates per model and task (overrides `n_steps` of the file)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (overrides "
                   "`seeds` of the file)")
    p.add_argument("--out", "--output", dest="out", type=pathlib.Path, default=None,
                   help="folder for compare.nc, compare.md and compare.png (default: `out` of "
                   "the file, else runs/<config name>, prefixed compare- if it is not)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="show training progress bars (default: off)")
    p.set_defaults(func=run)


def load_config(spec: str) -> tuple[dict, pathlib.Path]:
    """The checked configuration and the folder relative paths in it refer to."""
    from ..datasets import is_recipe_spec, resolve_recipe

    path = resolve_recipe(spec) if is_recipe_spec(spec) else pathlib.Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {str(path)!r} does not exist.")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise DynrnnValueError(f"configuration {str(path)!r} is not valid TOML: {e}") from e
    where = f"configuration {path.name}:"
    for key, value in cfg.items():
        if key not in TOP_KEYS:
            raise DynrnnValueError(
                f"{where} unknown key {key!r}{did_you_mean(key, TOP_KEYS)} "
                f"(keys: {', '.join(TOP_KEYS)})."
            )
        check_value(where, key, value, TOP_KEYS[key])
    for required in ("models", "tasks", "n_steps"):
        if required not in cfg:
            raise DynrnnValueError(f"{where} needs `{required}`.")
    for table in ("models", "tasks"):
        if not cfg[table]:
            raise DynrnnValueError(f"{where} `{table}` is empty: name at least one.")
        if isinstance(cfg[table], dict):
            for name, value in cfg[table].items():
                if not isinstance(value, dict | str):
                    raise DynrnnValueError(
                        f"{where} [{table}.{name}] must be a table, got {value!r}."
                    )
    base = path.resolve().parent
    return cfg, base


def _fill_latent(models: dict, tasks) -> dict:
    """Family tables without `latent` get the data's dimension when the family needs one."""
    import inspect

    from ..models._build import family
    from ..tasks import Reconstruction

    dims = {t.n_dims for t in tasks.values() if isinstance(t, Reconstruction)}
    out = {}
    for name, spec in models.items():
        spec = dict(spec) if isinstance(spec, dict) else spec
        if isinstance(spec, dict) and "type" in spec and "latent" not in spec and dims:
            cls = family(spec["type"])
            if cls is not None:
                p = inspect.signature(cls.__init__).parameters.get("latent")
                if p is not None and p.default is p.empty:
                    spec["latent"] = max(dims)
        out[name] = spec
    return out


def run(args: argparse.Namespace) -> int:
    import jax.random as jr

    from ..plot import compare as plot_compare
    from ..training._compare import _task_specs, compare, to_markdown

    cfg, base = load_config(str(args.config))
    n_steps = args.n_steps if args.n_steps is not None else cfg["n_steps"]
    seeds = args.seeds if args.seeds is not None else cfg.get("seeds", 1)
    lrs = cfg.get("learning_rates", cfg.get("learning_rate", (1e-3, 5e-3)))
    tasks = _task_specs(cfg["tasks"])
    models = cfg["models"]
    if isinstance(models, dict):
        models = _fill_latent(models, tasks)
    name = cfg.get("name") or pathlib.Path(str(args.config).split(":")[-1]).stem

    def report(model, task, row):
        cells = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in row.items())
        print(f"  {task} / {model}: {cells}", flush=True)

    ds = compare(
        models, tasks, n_steps=n_steps, seeds=seeds, learning_rates=lrs,
        key=jr.PRNGKey(int(cfg.get("seed", 0))),
        batch_size=int(cfg.get("batch_size", 16)), d_model=int(cfg.get("d_model", 32)),
        n_layers=int(cfg.get("n_layers", 2)), measures=cfg.get("measures"),
        baselines=bool(cfg.get("baselines", True)),
        progress=bool(args.progress or cfg.get("progress", False)), callback=report,
    )
    table = to_markdown(ds)
    print(table)
    folder = args.out if args.out is not None else (
        base / cfg["out"] if "out" in cfg else pathlib.Path("runs") / (
            name if name.startswith("compare") else f"compare-{name}"))
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def place(key, default):
        value = cfg.get(key)
        if value is None or value is True:
            return folder / default
        p = pathlib.Path(value)
        return p if p.is_absolute() else base / p

    nc, md = place("output", "compare.nc"), place("markdown", "compare.md")
    ds.to_netcdf(nc, engine="h5netcdf")
    md.write_text(f"# {name}\n\n{n_steps} updates per model, {ds.sizes['seed']} seeds; median "
                  "[interquartile range] over seeds on held-out test data.\n\n" + table + "\n")
    written = [nc, md]
    if cfg.get("figure", True) is not False:
        import matplotlib.pyplot as plt

        fig = plot_compare(ds)
        png = place("figure", "compare.png")
        fig.savefig(png, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(png)
    for p in written:
        print(f"wrote {p}")
    return 0
