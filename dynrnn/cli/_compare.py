"""`dynrnn compare CONFIG`: train several architectures on the same tasks (`dr.compare`).

The configuration is a TOML file:

```toml
n_steps = 500          # training updates per model and task
batch_size = 32
d_model = 32           # equal width for every architecture
n_layers = 2
learning_rate = 1e-3
seed = 0
output = "compare.nc"  # optional: the xr.Dataset (NetCDF); relative to the config file
markdown = "compare.md"  # optional: the table

[models.softmax]       # one table per architecture: a mixer name plus its arguments
mixer = "softmax"
d_qk = 16

[models.s6]
mixer = "s6"
d_state = 8

[tasks.mqar]           # one table per task: its kind plus its arguments
kind = "mqar"
vocab_size = 64
seq_len = 64
n_pairs = 4
```

`models` may also be a list of mixer names, and `tasks` a list of task kinds.
"""

from __future__ import annotations

import argparse
import pathlib
import tomllib

from .._errors import DynrnnValueError


_TOP_KEYS = {"n_steps", "batch_size", "d_model", "n_layers", "learning_rate",
             "final_learning_rate", "seed", "output", "markdown", "models", "tasks", "progress"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train several sequence architectures on the same tasks and print a table",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("config", type=pathlib.Path, help="TOML configuration file")
    p.add_argument("--steps", "--n-steps", dest="n_steps", type=int, default=None,
                   help="number of updates per run (overrides `n_steps` of the file)")
    p.add_argument("--out", "--output", dest="output", type=pathlib.Path, default=None,
                   help="write the result dataset here (NetCDF)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="show training progress bars (default: off)")
    p.set_defaults(func=run)


def _load_config(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {str(path)!r} does not exist.")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise DynrnnValueError(f"configuration {str(path)!r} is not valid TOML: {e}") from e
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise DynrnnValueError(
            f"configuration {str(path)!r} has unknown key(s) {sorted(unknown)}; allowed: "
            f"{sorted(_TOP_KEYS)}."
        )
    for required in ("models", "tasks", "n_steps"):
        if required not in cfg:
            raise DynrnnValueError(f"configuration {str(path)!r} needs `{required}`.")
    return cfg


def run(args: argparse.Namespace) -> int:
    import jax.random as jr

    from ..training._compare import compare, to_markdown

    cfg = _load_config(args.config)
    base = args.config.resolve().parent
    n_steps = args.n_steps if args.n_steps is not None else cfg["n_steps"]

    def report(model, task, row):
        print(f"  {task} / {model}: {row}", flush=True)

    ds = compare(
        cfg["models"], cfg["tasks"], n_steps=n_steps, key=jr.PRNGKey(int(cfg.get("seed", 0))),
        batch_size=int(cfg.get("batch_size", 32)), d_model=int(cfg.get("d_model", 32)),
        n_layers=int(cfg.get("n_layers", 2)),
        learning_rate=float(cfg.get("learning_rate", 1e-3)),
        final_learning_rate=float(cfg.get("final_learning_rate", 1e-5)),
        progress=bool(args.progress or cfg.get("progress", False)), callback=report,
    )
    table = to_markdown(ds)
    print(table)
    output = args.output if args.output is not None else cfg.get("output")
    if output is not None:
        out = pathlib.Path(output)
        out = out if out.is_absolute() else base / out
        ds.to_netcdf(out, engine="h5netcdf")
        print(f"wrote {out}")
    if cfg.get("markdown"):
        md = pathlib.Path(cfg["markdown"])
        md = md if md.is_absolute() else base / md
        md.write_text(table + "\n")
        print(f"wrote {md}")
    return 0
