"""Run configurations (TOML): reading, validating, building models and data, writing back.

A configuration has the tables `[data]` (`train`, `test`, and for recordings `rate`, `layout`,
`allow_pickle`), `[preprocess]` (`cli/_prepare.py`), `[model]`, `[teacher_forcing]`,
`[training]` and `[evaluation]` (`lyapunov_steps`, `prediction_steps`) and `[output]`;
`dynrnn datasets list` shows the shipped recipes of the published settings (`recipe:NAME`).
"""

from __future__ import annotations

import copy
import json
import pathlib
import tomllib

import numpy as np

from .._errors import DynrnnValueError
from ._schema import validate


DEFAULT_RECONSTRUCT = {
    "name": "lorenz63_shplrnn",
    "data": {"train": "dataset:lorenz63_train", "test": "dataset:lorenz63_test"},
    "model": {
        "type": "ShallowPLRNN", "latent": 3, "hidden": 100, "clipped": True,
        "observation": "identity",
    },
    "teacher_forcing": {
        "type": "GTF", "alpha": "adaptive", "method": "product_upper_bound", "gamma": 0.99,
        "update_every": 5,
    },
    "training": {
        "n_steps": 30_000, "batch_size": 16, "seq_len": 50, "learning_rate": 5e-3,
        "final_learning_rate": 1e-5, "noise": 0.0, "seed": 0, "eval_every": 10_000,
        "steps_per_call": 500, "members": 2,
    },
    "output": {"dir": "runs"},
}



def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def read_config(path) -> dict:
    """A run configuration from a TOML file or a shipped recipe (`recipe:NAME`), merged into
    the defaults of `dynrnn reconstruct`."""
    from .. import datasets

    path = datasets.resolve_recipe(path)
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise DynrnnValueError(f"config file {str(path)!r} is not valid TOML: {e}") from e
    validate(cfg, repr(str(path)))
    if "model" not in cfg or "type" not in cfg["model"]:
        raise DynrnnValueError(f"config {str(path)!r} needs a [model] table with a `type`.")
    cfg.setdefault("name", path.stem)
    # [model] and [teacher_forcing] are taken whole from the recipe: merging the default
    # adaptive-GTF keys into a recipe's constant `alpha` would silently make it adaptive.
    whole = ("model", "teacher_forcing") if "teacher_forcing" in cfg else ("model",)
    # [data] too once it names a training series: the default Lorenz-63 test set must not be
    # merged in under a recording (without `test` the last 20 % of `train` is held out).
    if "train" in cfg.get("data", {}):
        whole += ("data",)
    out = merge({k: v for k, v in DEFAULT_RECONSTRUCT.items() if k not in whole}, cfg)
    # Several members (parallel processes) only where a config asks for them: the main job's
    # default must not turn every `dynrnn fit` of another recipe into two runs.
    out["training"]["members"] = cfg.get("training", {}).get("members", 1)
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(i) for i in v) + "]"
    raise DynrnnValueError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def dumps_toml(cfg: dict) -> str:
    """TOML text of a configuration (top-level scalars, then one table per section)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for section, table in cfg.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def add_reader_options(p) -> None:
    """`--rate`, `--layout`, `--allow-pickle`: how to read a recording (the [data] keys), and
    `--held-out-neurons` (`[evaluation] held_out_neurons`)."""
    p.add_argument("--rate", type=float, help="sampling rate in Hz (required for recordings "
                   "that hold none: CSV, suite2p without a readable ops.npy; overrides the "
                   "file's rate otherwise)")
    p.add_argument("--layout", choices=("time-major", "neuron-major"),
                   help="orientation of a CSV/.npy recording: rows are frames (time-major, "
                   "default) or neurons (neuron-major)")
    p.add_argument("--allow-pickle", action="store_true", default=None,
                   help="allow reading pickled files (suite2p ops.npy, stat.npy, object "
                   "arrays); loading a pickle can run arbitrary code, so only for trusted "
                   "files")
    p.add_argument("--held-out-neurons", metavar="auto|K|I,J,...",
                   help="neurons kept out of the fit for co-smoothing: 'auto' (default: every "
                   "5th neuron of a recording with >= 10 neurons), K (every K-th; 0: none) or "
                   "a comma-separated list of positions (one position: '3,')")


def apply_reader_options(cfg: dict, args) -> None:
    held = getattr(args, "held_out_neurons", None)
    if held is not None:
        from ._prepare import parse_held_out

        cfg.setdefault("evaluation", {})["held_out_neurons"] = parse_held_out(held)
    data = cfg.setdefault("data", {})
    if args.rate is not None:
        data["rate"] = args.rate
    if args.layout is not None:
        data["layout"] = args.layout
    if args.allow_pickle:
        data["allow_pickle"] = True


def load_series(spec: str, *, name: str = "data", rate: float | None = None,
                **reader_options):
    """A `(time, dims)` array and attrs from `dataset:NAME`, `.npy`, `.nc`/`.h5` or a recording."""
    from .. import datasets

    if spec.startswith("dataset:"):
        ds = datasets.load(spec.split(":", 1)[1])
        return np.asarray(ds["state"].values, np.float64), dict(ds.attrs)
    path = pathlib.Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"`{name}` file {spec!r} does not exist.")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=reader_options.get("allow_pickle") or False)
        except (ValueError, EOFError, OSError) as e:
            pickled = "allow_pickle" in str(e)
            raise DynrnnValueError(
                f"`{name}` file {spec!r} "
                + ("holds pickled Python objects; loading a pickle can run arbitrary code, so "
                   "it is refused (allow_pickle = true in [data] if you trust the file)"
                   if pickled else f"is not a readable .npy file (empty or truncated): {e}")
                + "."
            ) from e
        if arr.dtype.kind not in "fiu":
            raise DynrnnValueError(
                f"`{name}` file {spec!r} must hold a numeric array, got dtype {arr.dtype}."
            )
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DynrnnValueError(
                f"`{name}` must hold a (time, dims) array, got shape {arr.shape} in {spec!r}."
            )
        return np.asarray(arr, np.float64), {"source": str(path)}
    from .. import io as dio

    opts = {k: v for k, v in reader_options.items() if v is not None}
    ds = dio.open_recording(path, **({"rate": rate} if rate else {}), **opts)
    var = "state" if "state" in ds.data_vars else next(iter(ds.data_vars))
    da = ds[var]
    if "time" in da.dims:
        da = da.transpose("time", ...)
    arr = np.asarray(da.values, np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr, dict(ds.attrs)


def build_model(cfg_model: dict, n_obs: int, key):
    """Any latent family from the `[model]` table (`dr.models.build`), `obs` from the data.

    `observation_penalty = λ` (recipes of 0.1.0) is the affine observation's penalty weight:
    `observation = {type = "affine", penalty_weight = λ}`.
    """
    from .. import models

    kw = dict(cfg_model)
    obs_penalty = kw.pop("observation_penalty", None)
    if obs_penalty:
        if kw.get("observation") not in ("affine", None):
            raise DynrnnValueError(
                "[model] observation_penalty needs observation = \"affine\", got "
                f"{kw.get('observation')!r}."
            )
        kw["observation"] = {"type": "affine", "penalty_weight": float(obs_penalty)}
    return models.build(kw, obs=n_obs, key=key)


def build_teacher_forcing(cfg_tf: dict):
    from .. import training

    kw = dict(cfg_tf)
    kind = kw.pop("type", "GTF")
    if kind == "GTF":
        return training.GTF(kw.pop("alpha", "adaptive"), **kw)
    if kind == "STF":
        return training.STF(**kw)
    raise DynrnnValueError(f"[teacher_forcing] type must be 'GTF' or 'STF', got {kind!r}.")


def model_key(cfg) -> tuple:
    seed = int(cfg["training"].get("seed", 0))
    import jax.random as jr

    k_model, k_fit = jr.split(jr.PRNGKey(seed))
    return k_model, k_fit


def set_data(cfg: dict, args) -> None:
    """The [data] table from `--data`/`--test` and the reader options (`--rate`, `--layout`,
    `--allow-pickle`), shared by the fixed-settings and the automatic job."""
    if args.data:
        cfg["data"] = {"train": args.data, "test": args.test}
        cfg["name"] = "reconstruct"
    elif args.test:
        cfg["data"]["test"] = args.test
    apply_reader_options(cfg, args)
