"""`dr.compare`: train several sequence architectures on the same tasks and tabulate them.

Sieber et al. (NeurIPS 2024) compare attention, selective SSMs and gated RNNs written in one
framework (the DSF) on the same tasks at equal model width; this does the same for the mixers of
`dr.dsf.layers` (or any callable that builds a mixer).
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.random as jr
import numpy as np
import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive
from ..dsf._layers import MIXERS, n_parameters
from ..models import AbstractLatentModel, build, families
from ..tasks._tasks import TASKS, AbstractTask, Lorenz63Reconstruction, make_task
from ._fit import fit
from ._update import cosine_adam, default_optimizer


def _model_specs(models) -> dict[str, dict]:
    """Normalise `models` to `{name: {"mixer": name_or_callable, **mixer_kwargs}}`."""
    if isinstance(models, str):
        models = [models]
    if isinstance(models, Sequence):
        models = {m: m for m in models}
    if not isinstance(models, Mapping) or not models:
        raise DynrnnTypeError(
            "`models` must be a non-empty dict {name: mixer name | callable | dict | latent "
            "family table} or a list of mixer or family names, got "
            f"{models!r}."
        )
    specs = {}
    for name, spec in models.items():
        if isinstance(spec, str) and spec in families():
            spec = {"type": spec}
        if isinstance(spec, Mapping) and "type" in spec:
            if spec["type"] not in families():
                raise DynrnnValueError(
                    f"`models[{name!r}]`: unknown latent family {spec['type']!r}; known: "
                    f"{sorted(families())}."
                )
            specs[str(name)] = dict(spec)
            continue
        if isinstance(spec, str) or callable(spec):
            spec = {"mixer": spec}
        elif isinstance(spec, Mapping):
            spec = dict(spec)
            spec.setdefault("mixer", name)
        else:
            raise DynrnnTypeError(
                f"`models[{name!r}]` must be a mixer name, a callable (d_model, key) -> mixer, "
                "a dict with a 'mixer' entry or a latent family table {'type': 'GRU', "
                f"'latent': 16, ...}}, got {type(spec).__name__}."
            )
        if isinstance(spec["mixer"], str) and spec["mixer"] not in MIXERS:
            raise DynrnnValueError(
                f"`models[{name!r}]`: unknown mixer {spec['mixer']!r}; known: {sorted(MIXERS)}."
            )
        specs[str(name)] = spec
    return specs


def _task_specs(tasks) -> dict[str, AbstractTask]:
    if isinstance(tasks, AbstractTask | str):
        tasks = [tasks]
    if isinstance(tasks, Sequence):
        tasks = {(t if isinstance(t, str) else type(t).__name__.lower()): t for t in tasks}
    if not isinstance(tasks, Mapping) or not tasks:
        raise DynrnnTypeError(
            "`tasks` must be a non-empty dict {name: task} or a list of tasks or task names, "
            f"got {tasks!r}."
        )
    out = {}
    for name, task in tasks.items():
        if isinstance(task, str):
            task = make_task(task)
        elif isinstance(task, Mapping):
            task = dict(task)
            task = make_task(task.pop("kind", name), **task)
        if not isinstance(task, AbstractTask):
            raise DynrnnTypeError(
                f"`tasks[{name!r}]` must be a dr.tasks task, a name in {sorted(TASKS)} or a "
                f"dict with 'kind', got {type(task).__name__}."
            )
        out[str(name)] = task
    return out


def _spec_name(spec) -> str:
    if "type" in spec:
        return str(spec["type"])
    mixer = spec["mixer"]
    if isinstance(mixer, str):
        return mixer
    return mixer.__name__ if isinstance(mixer, types.FunctionType) else type(mixer).__name__


def _state_size(model, length) -> int:
    if isinstance(model, AbstractLatentModel):
        return model.n_latent
    return model.state_size(length)


def _train(spec, task, data, *, n_steps, batch_size, d_model, n_layers, key_model, key_fit,
           progress, learning_rate, final_learning_rate):
    """Build one architecture for `task` and train it with `dr.fit` (teacher-forced
    reconstruction for a latent family, the task's supervised loss for a mixer)."""
    spec = dict(spec)
    common = dict(n_steps=n_steps, batch_size=batch_size, key=key_fit, progress=progress,
                  steps_per_call=min(50, n_steps))
    if "type" in spec:
        if not isinstance(task, Lorenz63Reconstruction):
            raise DynrnnValueError(
                f"latent family {spec['type']!r} runs on reconstruction tasks; "
                f"{type(task).__name__} is a sequence task (use a DSF mixer there)."
            )
        train = task.train_series()
        model = build(spec, obs=train.shape[1], key=key_model)
        optimizer = default_optimizer(n_steps, learning_rate, final_learning_rate)
        return fit(model, train, seq_len=task.seq_len, optimizer=optimizer, **common)
    mixer = spec.pop("mixer")
    model = task.make_model(mixer, d_model=d_model, n_layers=n_layers, key=key_model,
                            mixer_kwargs=spec)
    optimizer = cosine_adam(n_steps, learning_rate, final_learning_rate)
    return fit(model, (data.train_inputs, data.train_targets), loss=task.loss,
               optimizer=optimizer, **common)


def compare(
    models,
    tasks,
    *,
    n_steps: int,
    key,
    batch_size: int = 32,
    d_model: int = 32,
    n_layers: int = 2,
    learning_rate: float = 1e-3,
    final_learning_rate: float = 1e-5,
    progress: bool = False,
    callback: Callable[[str, str, dict], None] | None = None,
) -> xr.Dataset:
    """Train every architecture on every task with `dr.fit` and score it on held-out data.

    Each task makes its data once from the key (all architectures see the same data); each
    architecture is built at the same width `d_model` with `n_layers` mixer blocks
    (`dr.dsf.layers.SequenceModel`) and trained for `n_steps` Adam updates with a cosine decay
    from `learning_rate` to `final_learning_rate`.

    **Arguments:**
    - `models`: `{name: spec}` with spec a latent family table (`{"type": "GRU", "latent": 16}`,
      any family of `dr.models`, trained with teacher forcing on reconstruction tasks), a
      mixer name of `dr.dsf.layers.make_mixer`
      (`"softmax"`, `"linear"`, `"normalized"`, `"s6"`, `"ssd"`, `"lru"`, `"rglru"`, `"qlstm"`,
      `"retnet"`, `"gla"`), a dict `{"mixer": name, **mixer_kwargs}` (e.g. `d_qk`, `d_state`),
      or a callable `(d_model, key) -> mixer`; or a list of mixer names.
    - `tasks`: `{name: task}` with `dr.tasks` tasks (`MQAR(...)`, `SequentialDigits()`,
      `Lorenz63Reconstruction(...)`), task names, or dicts `{"kind": name, **arguments}`.
    - `n_steps`, `batch_size`, `learning_rate`, `final_learning_rate`: training.
    - `key`: PRNG key (data, initialisation and batches derive from it).
    - `d_model`, `n_layers`: model size, equal for all architectures.
    - `progress`: show `dr.fit`'s progress bars.
    - `callback`: called as `callback(model_name, task_name, row)` after each run.

    **Returns:** an `xr.Dataset` on dims `("model", "task")` with `score` (the task's main
    metric; coordinate `metric` and `higher_is_better` per task), `parameters`, `state_size`
    (numbers carried between steps at the task's length; softmax attention: its key/value
    cache), `train_time` (seconds, wall clock), `final_loss` (mean training loss over the last
    10 % of updates), and one `score_<name>` variable per further metric a task reports (NaN
    elsewhere). `to_markdown(ds)` formats it.

    **Raises:** `DynrnnValueError`/`DynrnnTypeError` for unknown mixers or tasks.
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(d_model, "d_model", integer=True)
    specs = _model_specs(models)
    task_objs = _task_specs(tasks)
    names, tnames = list(specs), list(task_objs)
    shape = (len(names), len(tnames))
    out = {v: np.full(shape, np.nan) for v in ("score", "parameters", "state_size",
                                              "train_time", "final_loss")}
    extra: dict[str, np.ndarray] = {}
    k_data, k_model, k_fit = jr.split(key, 3)
    for ti, (tname, task) in enumerate(task_objs.items()):
        data = task.make_data(jr.fold_in(k_data, ti))
        for mi, (mname, spec) in enumerate(specs.items()):
            t0 = time.perf_counter()
            result = _train(spec, task, data, n_steps=n_steps, batch_size=batch_size,
                            d_model=d_model, n_layers=n_layers, key_model=jr.fold_in(k_model, mi),
                            key_fit=jr.fold_in(jr.fold_in(k_fit, ti), mi), progress=progress,
                            learning_rate=learning_rate, final_learning_rate=final_learning_rate)
            jax.block_until_ready(jax.tree_util.tree_leaves(result.model))
            elapsed = time.perf_counter() - t0
            scores = task.score(result.model, data)
            losses = np.asarray(result.history["loss"].values, dtype=float)
            tail = losses[-max(1, math.ceil(0.1 * len(losses))):]
            row = {
                "score": scores[task.metric],
                "parameters": n_parameters(result.model),
                "state_size": _state_size(result.model, task.seq_len),
                "train_time": elapsed,
                "final_loss": float(np.nanmean(tail)) if np.isfinite(tail).any() else np.nan,
            }
            for v, val in row.items():
                out[v][mi, ti] = val
            for metric, val in scores.items():
                if metric != task.metric:
                    extra.setdefault(f"score_{metric}", np.full(shape, np.nan))[mi, ti] = val
            if callback is not None:
                callback(mname, tname, dict(row, **scores))
    dims = ("model", "task")
    ds = xr.Dataset(
        {v: (dims, a) for v, a in {**out, **extra}.items()},
        coords={
            "model": names,
            "task": tnames,
            "metric": ("task", [t.metric for t in task_objs.values()]),
            "higher_is_better": ("task", [t.higher_is_better for t in task_objs.values()]),
            "mixer": ("model", [_spec_name(s) for s in specs.values()]),
        },
        attrs=dict(n_steps=n_steps, batch_size=batch_size, d_model=d_model, n_layers=n_layers,
                   learning_rate=learning_rate, final_learning_rate=final_learning_rate,
                   backend=jax.default_backend()),
    )
    ds["parameters"].attrs["units"] = "scalars"
    ds["train_time"].attrs["units"] = "s"
    return ds


def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–" if x is None or np.isnan(x) else str(x)
    if isinstance(x, int | np.integer) or float(x).is_integer() and abs(x) >= 10:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def to_markdown(ds: xr.Dataset, *, sort: bool = True) -> str:
    """A Markdown table of a `compare` result: one row per task and model, best first within
    each task (by the task's own direction when `sort`).

    **Arguments:** `ds`, the dataset `compare` returned; `sort`.

    **Returns:** the table as a string.
    """
    extra = [v for v in ds.data_vars if v.startswith("score_")]
    head = ["task", "model", "metric", "score", *[v[6:] for v in extra], "parameters",
            "state size", "training time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in ds["task"].values:
        sub = ds.sel(task=task)
        order = list(range(sub.sizes["model"]))
        if sort:
            sign = -1.0 if bool(sub["higher_is_better"]) else 1.0
            vals = np.asarray(sub["score"].values, dtype=float)
            order = sorted(order, key=lambda i: (np.isnan(vals[i]), sign * vals[i]))
        for i in order:
            r = sub.isel(model=i)
            cells = [str(task), str(r["model"].values), str(sub["metric"].values),
                     _fmt(float(r["score"]))]
            cells += [_fmt(float(r[v])) for v in extra]
            cells += [_fmt(int(r["parameters"])) if np.isfinite(r["parameters"]) else "–",
                      _fmt(int(r["state_size"])) if np.isfinite(r["state_size"]) else "–",
                      f"{float(r['train_time']):.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
