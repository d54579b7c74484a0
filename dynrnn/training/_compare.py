"""`dr.compare`: train every architecture on every task, with seeds and a tuned learning rate,
and tabulate held-out measures.

Reconstruction studies report each model family's median over many runs (Hess et al., ICML
2023, 20 runs); Sieber et al. (NeurIPS 2024) compare attention, SSMs and RNNs in one framework
at equal width. `compare` does both for any family of `dr.models` (trained with teacher
forcing), the DSF mixers (`dr.dsf.layers`, as sequence models) and the regression baselines
(echo state network, linear AR; fitted in closed form):

1. every task makes its data once (all models see the same series);
2. every model table expands into a grid: the learning rates, and any key given as a list
   (`hidden = [32, 64]`, an ESN's `spectral_radius = [0.6, 0.9]`);
3. the members of one structure (learning rates × seeds) train as one vmapped ensemble
   (`dr.fit_ensemble`) for the same number of updates as every other family;
4. each setting is scored on the validation part of the training series (free-running D_stsp;
   sequence tasks: the final training loss), the setting with the best median over seeds is
   kept, and its seeds are scored on the test series.
"""

from __future__ import annotations

import itertools
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
from ..models import AbstractLatentModel, AbstractRegressionModel, build, families
from ..models._build import family as _family, resolve
from ..tasks._reconstruction import HIGHER_IS_BETTER, MEASURES, Reconstruction
from ..tasks._tasks import TASKS, AbstractTask, make_task
from ._ensemble import fit_ensemble


DEFAULT_LEARNING_RATES = (1e-3, 5e-3)
#: Settings tried for the regression baselines when their table names none.
DEFAULT_GRIDS = {
    "EchoStateNetwork": {"spectral_radius": [0.6, 0.9, 1.2], "leak": [0.3, 1.0],
                         "ridge": [1e-6, 1e-3]},
    "LinearAR": {"order": [1, 2, 4, 8], "ridge": [0.0]},
}
_SPEC_KEYS = {"learning_rates", "ridge"}  # keys of a model table that are not constructor keys


# -- normalising the arguments ------------------------------------------------------------


def _model_specs(models) -> dict[str, dict]:
    """`{name: spec}` with spec `{"type": family, ...}` or `{"mixer": name|callable, ...}`."""
    if isinstance(models, str):
        models = [models]
    if isinstance(models, Sequence):
        models = {m: m for m in models}
    if not isinstance(models, Mapping) or not models:
        raise DynrnnValueError(
            "`models` must be a non-empty dict {name: family table | mixer name | callable} "
            f"or a list of family or mixer names, got {models!r}."
        )
    specs = {}
    for name, spec in models.items():
        where = f"models[{name!r}]"
        if isinstance(spec, str) and _family(spec) is not None:
            spec = {"type": spec}
        if isinstance(spec, Mapping) and "type" in spec:
            cls = _family(spec["type"])
            if cls is None:
                known = sorted(families())
                raise DynrnnValueError(
                    f"`{where}.type`: unknown model family {spec['type']!r}; known: {known} "
                    f"(or a DSF mixer with `mixer = ...`: {sorted(MIXERS)})."
                )
            specs[str(name)] = dict(spec, type=cls.__name__)
            continue
        if isinstance(spec, str) or callable(spec):
            spec = {"mixer": spec}
        elif isinstance(spec, Mapping):
            spec = dict(spec)
            spec.setdefault("mixer", name)
        else:
            raise DynrnnTypeError(
                f"`{where}` must be a family table {{'type': 'GRU', 'latent': 16}}, a mixer "
                "name, a dict with a 'mixer' entry or a callable (d_model, key) -> mixer, got "
                f"{type(spec).__name__}."
            )
        if isinstance(spec["mixer"], str) and spec["mixer"] not in MIXERS:
            raise DynrnnValueError(
                f"`{where}`: unknown model {spec['mixer']!r}; known families: "
                f"{sorted(families())}; mixers: {sorted(MIXERS)}."
            )
        specs[str(name)] = spec
    return specs


def _task_specs(tasks) -> dict[str, AbstractTask]:
    if isinstance(tasks, AbstractTask | str):
        tasks = [tasks]
    if isinstance(tasks, Sequence):
        tasks = {(t if isinstance(t, str) else type(t).__name__.lower()): t for t in tasks}
    if not isinstance(tasks, Mapping) or not tasks:
        raise DynrnnValueError(
            "`tasks` must be a non-empty dict {name: task} or a list of tasks or task kinds, "
            f"got {tasks!r}."
        )
    out = {}
    for name, task in tasks.items():
        if isinstance(task, str):
            task = make_task(task)
        elif isinstance(task, Mapping):
            task = dict(task)
            kind = task.pop("kind", name)
            if kind == "catalogue" and "systems" in task:
                # one task per flow of the list
                flows = task.pop("systems")
                if not isinstance(flows, list | tuple) or not flows:
                    raise DynrnnValueError(
                        f"`tasks[{name!r}].systems` must be a non-empty list of flow names."
                    )
                for flow in flows:
                    out[f"{name}:{flow}"] = make_task("catalogue", system=flow, **task)
                continue
            try:
                task = make_task(kind, **task)
            except DynrnnValueError as e:
                raise DynrnnValueError(f"`tasks[{name!r}]`: {e}") from e
        if not isinstance(task, AbstractTask):
            raise DynrnnTypeError(
                f"`tasks[{name!r}]` must be a dr.tasks task, a kind in {sorted(TASKS)} or a "
                f"dict with 'kind', got {type(task).__name__}."
            )
        out[str(name)] = task
    return out


def _learning_rates(value, where: str) -> list[float]:
    lrs = [value] if isinstance(value, int | float) else list(value)
    bad = [lr for lr in lrs if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0)]
    if not lrs or bad:
        raise DynrnnValueError(f"`{where}` must be finite numbers > 0, got {value!r}.")
    return [float(lr) for lr in lrs]


def _grid(spec: dict, defaults: dict) -> list[dict]:
    """Every combination of the list-valued keys of `spec` (defaults for keys it lacks)."""
    spec = {**defaults, **spec}
    axes = {k: v for k, v in spec.items() if isinstance(v, list | tuple)}
    fixed = {k: v for k, v in spec.items() if k not in axes}
    return [dict(fixed, **dict(zip(axes, combo)))
            for combo in itertools.product(*axes.values())] or [fixed]


def _describe(setting: dict, keys) -> str:
    return ", ".join(f"{k}={setting[k]:g}" if isinstance(setting[k], float) else
                     f"{k}={setting[k]}" for k in keys) or "–"


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


def _median(values) -> float:
    v = np.asarray(values, float)
    v = np.where(np.isnan(v), np.inf, v)
    return float(np.median(v))


# -- training one model table on one task -------------------------------------------------


class _Outcome:
    """What one model table gave on one task: the kept setting's models (one per seed), its
    description, validation score, final losses, and the wall time of the whole grid."""

    def __init__(self):
        self.models, self.final_loss = [], []
        self.setting, self.validation, self.wall_time = "", math.nan, 0.0
        self.grid: list[tuple[str, float]] = []


def _validate(task, models, losses) -> list[float]:
    if isinstance(task, Reconstruction):
        return [task.validation_score(m) for m in models]
    return list(losses)  # sequence tasks have no validation split: the final training loss


def _keep_best(out: _Outcome, task, candidates) -> None:
    """`candidates`: `(description, models, final losses)` per setting; keep the one with the
    best median validation score."""
    best = None
    for desc, models, losses in candidates:
        scores = _validate(task, models, losses)
        med = _median(scores)
        out.grid.append((desc, med))
        if best is None or med < best[0]:
            best = (med, desc, models, losses)
    out.validation, out.setting, out.models, out.final_loss = best


def _final_losses(history, n_steps) -> np.ndarray:
    loss = np.asarray(history["loss"].values, float)
    tail = loss[:, -max(1, math.ceil(0.1 * n_steps)):]
    with np.errstate(all="ignore"):
        return np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in tail])


def _train_gradient(spec, task, data, *, seeds, lrs, n_steps, batch_size, d_model, n_layers,
                    k_model, k_fit, progress) -> _Outcome:
    out = _Outcome()
    spec = dict(spec)
    spec.pop("ridge", None)
    mixer = spec.pop("mixer", None)
    kind = spec.get("type")
    list_keys = [k for k, v in spec.items() if isinstance(v, list | tuple)]
    candidates = []
    t0 = time.perf_counter()
    for setting in _grid(spec, {}):
        if kind is not None:
            if not isinstance(task, Reconstruction):
                raise DynrnnValueError(
                    f"model family {kind!r} runs on reconstruction tasks; "
                    f"{type(task).__name__} is a sequence task (use a DSF mixer there)."
                )
            members = [build(setting, obs=task.n_dims, key=jr.fold_in(k_model, s))
                       for s in seeds]
            train, loss = task.train_series(), None
        else:
            kw = {k: v for k, v in setting.items()}
            members = [task.make_model(mixer, d_model=d_model, n_layers=n_layers,
                                       key=jr.fold_in(k_model, s), mixer_kwargs=kw or None)
                       for s in seeds]
            train, loss = (data.train_inputs, data.train_targets), task.loss
        models = [m for _ in lrs for m in members]
        rates = [lr for lr in lrs for _ in members]
        keys_seed = jr.fold_in(k_fit, 0)
        result = fit_ensemble(models, train, loss=loss, learning_rates=rates, n_steps=n_steps,
                              batch_size=batch_size, seq_len=task.seq_len, key=keys_seed,
                              steps_per_call=min(100, n_steps), progress=progress)
        losses = _final_losses(result.history, n_steps)
        n = len(seeds)
        for j, lr in enumerate(lrs):
            desc = _describe(dict(setting, learning_rate=lr), [*list_keys, "learning_rate"])
            candidates.append((desc, result.models[j * n:(j + 1) * n], losses[j * n:(j + 1) * n]))
    jax.block_until_ready(jax.tree_util.tree_leaves([c[1] for c in candidates]))
    out.wall_time = time.perf_counter() - t0
    _keep_best(out, task, candidates)
    return out


def _train_regression(spec, task, *, seeds, k_model) -> _Outcome:
    out = _Outcome()
    if not isinstance(task, Reconstruction):
        raise DynrnnValueError(
            f"model family {spec['type']!r} runs on reconstruction tasks; "
            f"{type(task).__name__} is a sequence task."
        )
    spec = {k: v for k, v in spec.items() if k != "learning_rates"}
    defaults = {k: v for k, v in DEFAULT_GRIDS.get(spec["type"], {}).items() if k not in spec}
    list_keys = [k for k, v in {**defaults, **spec}.items() if isinstance(v, list | tuple)]
    train = task.train_series()
    candidates = []
    t0 = time.perf_counter()
    for setting in _grid(spec, defaults):
        table = dict(setting)
        ridge = float(table.pop("ridge", 1e-6))
        models = [build(table, obs=task.n_dims, key=jr.fold_in(k_model, s))
                  .fit_regression(train, ridge=ridge) for s in seeds]
        candidates.append((_describe(setting, list_keys), models, [math.nan] * len(models)))
    out.wall_time = time.perf_counter() - t0
    _keep_best(out, task, candidates)
    return out


def _check_sizes(specs, tasks) -> None:
    """Check every family table against every reconstruction task before any training (the
    checks of `dr.models.build`, without building), so that a table the data does not fit
    (another `obs`, an unknown keyword, a sequence task) stops the comparison at once, naming
    the table."""
    for mname, spec in specs.items():
        if "type" not in spec:
            continue
        cls = _family(spec["type"])
        table = {k: v for k, v in spec.items() if k not in _SPEC_KEYS}
        table = {k: (v[0] if isinstance(v, list | tuple) and v else v)
                 for k, v in {**DEFAULT_GRIDS.get(cls.__name__, {}), **table}.items()}
        table.pop("ridge", None)
        for tname, task in tasks.items():
            if not isinstance(task, Reconstruction):
                raise DynrnnValueError(
                    f"`models[{mname!r}]` (family {cls.__name__}) runs on reconstruction tasks; "
                    f"`tasks[{tname!r}]` is a sequence task ({type(task).__name__}); use a DSF "
                    "mixer there."
                )
            try:
                resolve(table, obs=task.n_dims)
            except (DynrnnValueError, DynrnnTypeError) as e:
                raise DynrnnValueError(f"`models[{mname!r}]` on `tasks[{tname!r}]`: {e}") from e


# -- compare --------------------------------------------------------------------------------


def compare(
    models,
    tasks,
    *,
    n_steps: int,
    key,
    seeds: int | Sequence[int] = 1,
    learning_rates: float | Sequence[float] = DEFAULT_LEARNING_RATES,
    batch_size: int = 16,
    d_model: int = 32,
    n_layers: int = 2,
    measures: Sequence[str] | None = None,
    baselines: bool = True,
    progress: bool = False,
    callback: Callable[[str, str, dict], None] | None = None,
) -> xr.Dataset:
    """Train every model on every task and score it on held-out data.

    **Arguments:**
    - `models`: `{name: spec}` with spec
      - a family table of `dr.models` (`{"type": "ShallowPLRNN", "latent": 3, "hidden": 64}`;
        `"ESN"` and `"AR"` for the regression baselines), trained with generalized teacher
        forcing (adaptive α) on reconstruction tasks, or fitted in closed form;
      - a DSF mixer (`"s6"`, `{"mixer": "softmax", "d_qk": 16}`, a callable
        `(d_model, key) -> mixer`) inside a `dr.dsf.layers.SequenceModel` of width `d_model`
        with `n_layers` blocks, trained on next-step prediction (reconstruction) or the task's
        loss;
      or a list of family or mixer names. A table may give `learning_rates` (its own grid)
      and any key as a list to search over it (an ESN's `spectral_radius`, `leak`, `ridge`;
      an AR model's `order`: defaults in `DEFAULT_GRIDS`).
    - `tasks`: `{name: task}` with `dr.tasks` tasks or tables `{"kind": ..., ...}` (kinds
      `"lorenz63"`, `"dataset"`, `"system"`, `"catalogue"` (with `systems = [...]`: one task
      per flow), `"files"`, `"mqar"`, `"digits"`; see `dr.tasks.make_task`), or a list of
      kinds.
    - `n_steps`: updates per model (the same budget for every family).
    - `key`: PRNG key (data, initialisation, batches).
    - `seeds`: number of seeds (or a list of seed numbers); all seeds of one setting train in
      one vmapped ensemble.
    - `learning_rates`: the default grid of initial learning rates (the first is used alone
      for a single value); the best on the validation split is kept.
    - `batch_size`, `d_model`, `n_layers`: training batch and the mixers' size.
    - `measures`: the reconstruction measures to compute (default all of
      `dr.tasks.MEASURES`; `lambda_max` is the costliest).
    - `baselines`: when every task is a reconstruction task, add the echo state network and
      the linear AR model (as `"ESN"` and `"AR"`, default grids) unless `models` already has a
      table of their family, so that every table shows what a closed-form baseline reaches.
    - `progress`: progress bars of the ensembles.
    - `callback`: `callback(model_name, task_name, row)` after each model and task.

    **Returns:** an `xr.Dataset` with `score` on dims `(model, task, seed, measure)` (the test
    measures of the kept setting: `D_stsp`, `D_H`, `PE20`, `lambda_max` for reconstruction,
    `accuracy` for sequence tasks; NaN where a measure does not apply), `final_loss`
    `(model, task, seed)`, and per `(model, task)`: `parameters`, `state_size`, `train_time`
    (seconds for the whole grid), `validation` (median validation score of the kept setting)
    and `setting` (its description). Coordinates: `family` per model, `metric` (main measure),
    `lambda_data` and `dt` per task, `higher_is_better` per measure; the grid searched is in
    the attrs. `to_markdown(ds)` tabulates it, `dr.plot.compare(ds)` draws it.

    **Raises:** `DynrnnValueError`/`DynrnnTypeError` naming the model or task key for
    unknown families, mixers, task kinds or measures, an empty list, or a sequence task given
    to a latent family.
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(d_model, "d_model", integer=True)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if isinstance(seeds, bool) or not seed_list or not all(
            isinstance(s, int | np.integer) and s >= 0 for s in seed_list):
        raise DynrnnValueError(f"`seeds` must be a positive count or a list of seeds >= 0, "
                               f"got {seeds!r}.")
    default_lrs = _learning_rates(learning_rates, "learning_rates")
    if measures is not None:
        measures = [measures] if isinstance(measures, str) else list(measures)
        unknown = [m for m in measures if m not in MEASURES]
        if unknown or not measures:
            raise DynrnnValueError(
                f"`measures`: unknown measure(s) {unknown or measures!r}; known: {list(MEASURES)}."
            )
    wanted = MEASURES if measures is None else tuple(
        ["D_stsp", *[m for m in measures if m != "D_stsp"]])  # the main measure is always kept
    specs = _model_specs(models)
    task_objs = _task_specs(tasks)
    if baselines and all(isinstance(t, Reconstruction) for t in task_objs.values()):
        present = {s["type"] for s in specs.values() if "type" in s}
        for name, family in (("ESN", "EchoStateNetwork"), ("AR", "LinearAR")):
            if family not in present and name not in specs:
                specs[name] = {"type": family}
    _check_sizes(specs, task_objs)
    measures = []
    for t in task_objs.values():
        for m in (wanted if isinstance(t, Reconstruction) else (t.metric,)):
            if m not in measures:
                measures.append(m)
    names, tnames = list(specs), list(task_objs)
    M, T, S, K = len(names), len(tnames), len(seed_list), len(measures)
    score = np.full((M, T, S, K), np.nan)
    final_loss = np.full((M, T, S), np.nan)
    per = {v: np.full((M, T), np.nan) for v in ("parameters", "state_size", "train_time",
                                                "validation")}
    setting = np.full((M, T), "", dtype=object)
    grids = {}
    k_data, k_model, k_fit = jr.split(key, 3)
    for ti, (tname, task) in enumerate(task_objs.items()):
        data = task.make_data(jr.fold_in(k_data, ti))
        for mi, (mname, spec) in enumerate(specs.items()):
            km, kf = jr.fold_in(k_model, mi), jr.fold_in(jr.fold_in(k_fit, ti), mi)
            cls = _family(spec["type"]) if "type" in spec else None
            if cls is not None and issubclass(cls, AbstractRegressionModel):
                res = _train_regression(spec, task, seeds=seed_list, k_model=km)
            else:
                lrs = _learning_rates(spec["learning_rates"], f"models[{mname!r}].learning_rates"
                                      ) if "learning_rates" in spec else default_lrs
                spec_ = {k: v for k, v in spec.items() if k != "learning_rates"}
                res = _train_gradient(spec_, task, data, seeds=seed_list, lrs=lrs,
                                      n_steps=n_steps, batch_size=batch_size, d_model=d_model,
                                      n_layers=n_layers, k_model=km, k_fit=kf, progress=progress)
            for si, model in enumerate(res.models):
                scores = (task.score(model, data, measures=wanted)
                          if isinstance(task, Reconstruction) else task.score(model, data))
                for k, val in scores.items():
                    score[mi, ti, si, measures.index(k)] = val
            final_loss[mi, ti] = res.final_loss
            per["parameters"][mi, ti] = n_parameters(res.models[0])
            per["state_size"][mi, ti] = _state_size(res.models[0], task.seq_len)
            per["train_time"][mi, ti] = res.wall_time
            per["validation"][mi, ti] = res.validation
            setting[mi, ti] = res.setting
            grids[f"{mname}/{tname}"] = "; ".join(f"{d}: {v:.4g}" for d, v in res.grid)
            if callback is not None:
                row = {m: float(np.nanmedian(score[mi, ti, :, k])) if
                       np.isfinite(score[mi, ti, :, k]).any() else math.nan
                       for k, m in enumerate(measures)}
                callback(mname, tname, dict(row, setting=res.setting,
                                            train_time=res.wall_time))
    dims = ("model", "task")
    recon = [isinstance(t, Reconstruction) for t in task_objs.values()]
    ds = xr.Dataset(
        {"score": (("model", "task", "seed", "measure"), score),
         "final_loss": (("model", "task", "seed"), final_loss),
         **{v: (dims, a) for v, a in per.items()},
         "setting": (dims, setting.astype(str))},
        coords={
            "model": names, "task": tnames, "seed": seed_list, "measure": measures,
            "family": ("model", [_spec_name(s) for s in specs.values()]),
            "metric": ("task", [t.metric for t in task_objs.values()]),
            "lambda_data": ("task", [float(t.lyapunov) if r and t.lyapunov is not None
                                     else np.nan for t, r in zip(task_objs.values(), recon)]),
            "dt": ("task", [float(t.dt) if r and t.dt else np.nan
                            for t, r in zip(task_objs.values(), recon)]),
            "higher_is_better": ("measure", [HIGHER_IS_BETTER.get(m, False) for m in measures]),
        },
        attrs=dict(n_steps=n_steps, batch_size=batch_size, d_model=d_model, n_layers=n_layers,
                   learning_rates=np.asarray(default_lrs), backend=jax.default_backend(),
                   **{f"grid {k}": v for k, v in grids.items()}),
    )
    ds["parameters"].attrs["units"] = "scalars"
    ds["train_time"].attrs["units"] = "s"
    ds["score"].attrs["long_name"] = "held-out measure of each seed of the kept setting"
    return ds


# -- tables ---------------------------------------------------------------------------------


def _fmt(x, digits=3) -> str:
    if x is None or not np.isfinite(x):
        return "–" if x is None or np.isnan(x) else ("∞" if x > 0 else "−∞")
    if float(x).is_integer() and abs(x) >= 10:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def _cell(values) -> str:
    """`median [q25, q75]` over seeds (infinite values count as failures: ∞)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return "–"
    if v.size == 1:
        return _fmt(float(v[0]))
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return f"{_fmt(med)} [{_fmt(q25)}, {_fmt(q75)}]"


def to_markdown(ds: xr.Dataset, *, sort: bool = True) -> str:
    """A Markdown table of a `compare` result: per task, one row per model with the median
    and interquartile range over seeds of every measure, best first by the task's main
    measure (when `sort`), plus parameters, state size, training time and the kept setting.

    **Arguments:** `ds`, the dataset `compare` returned; `sort`.

    **Returns:** the table as a string.
    """
    blocks = []
    for task in ds["task"].values:
        sub = ds.sel(task=task)
        metric = str(sub["metric"].values)
        scores = sub["score"]
        used = [m for m in ds["measure"].values if np.isfinite(scores.sel(measure=m)).any()
                or m == metric]
        lam = float(sub["lambda_data"]) if "lambda_data" in sub.coords else math.nan
        heads = []
        for m in used:
            h = str(m)
            if m == "lambda_max" and np.isfinite(lam):
                h = f"lambda_max (data {lam:.3g})"
            heads.append(h)
        head = ["task", "model", *heads, "parameters", "training time (s)", "setting"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        order = list(range(sub.sizes["model"]))
        if sort:
            hib = bool(ds["higher_is_better"].sel(measure=metric))
            med = []
            for i in order:
                v = np.asarray(scores.sel(measure=metric).isel(model=i).values, float)
                v = v[~np.isnan(v)]
                med.append(np.median(v) if v.size else np.nan)
            sign = -1.0 if hib else 1.0
            order = sorted(order, key=lambda i: (np.isnan(med[i]), sign * med[i]))
        for i in order:
            r = sub.isel(model=i)
            cells = [str(task), str(r["model"].values)]
            cells += [_cell(r["score"].sel(measure=m).values) for m in used]
            p = float(r["parameters"])
            cells += [_fmt(p) if np.isfinite(p) else "–", f"{float(r['train_time']):.1f}",
                      str(r["setting"].values)]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
