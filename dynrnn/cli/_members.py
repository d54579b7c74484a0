"""Several training runs of one configuration, in parallel processes, keeping the best.

`[training] members = N` trains N models of the same configuration from N initialisations
(member 0 is exactly the single run of `members = 1`: the seed's own keys; member i > 0 uses
`fold_in(PRNGKey(seed), i)`), and keeps the member whose free run best matches the training
series (`_reconstruct.best_member`: lowest product D_stsp × D_H, the rule of the
automatic mode). The test series is never looked at.

On CPU the members run in `[training] workers` processes at once (`"auto"`: as many as there are
members and cores): an ensemble `vmap`-ed in one process is compute bound on CPU (two members
cost 1.6x one per update) and one XLA process uses one core for models this small, so the second
core of a two-core machine is what pays for the second member. Member 0 trains in this process
(with the progress bar); the others in spawned processes, each with its own checkpoint folder
`members/member<i>/checkpoints`, so an interrupted run resumes every member. On a GPU (or with
`workers = 1`) the members train one after another here.
"""

from __future__ import annotations

import math
import os
import pathlib

import numpy as np

from .._errors import TrainingDivergedError


def member_keys(cfg: dict, i: int):
    """`(k_model, k_fit)` of member `i` (member 0: the seed's own keys, as with one member)."""
    import jax.random as jr

    from ._config import model_key

    if i == 0:
        return model_key(cfg)
    seed = int(cfg["training"].get("seed", 0))
    k_model, k_fit = jr.split(jr.fold_in(jr.PRNGKey(seed), i))
    return k_model, k_fit


def member_dir(run_dir: pathlib.Path, i: int) -> pathlib.Path:
    return run_dir / "members" / f"member{i}"


def _train(cfg, i, x_fit, x_val, run_dir, progress, overwrite):
    """Train member `i` (in this or a spawned process); returns `(model, history)` or raises."""
    import dynrnn as dr

    from ._config import build_model, build_teacher_forcing
    from ._run import _fit

    tr = cfg["training"]
    k_model, k_fit = member_keys(cfg, i)
    model = build_model(cfg["model"], x_fit.shape[1], k_model)
    callbacks = []
    if x_val is not None:
        callbacks.append(dr.training.Evaluation(x_val[:10_000],
                                                every=int(tr.get("eval_every", 5000))))
    folder = run_dir if i == 0 else member_dir(run_dir, i)
    result = _fit(dr, model, x_fit, build_teacher_forcing(cfg["teacher_forcing"]), tr,
                  int(tr["n_steps"]), k_fit, progress, folder, overwrite, callbacks)
    return result


def _worker(cfg, i, x_fit, x_val, run_dir, overwrite, x64) -> tuple[int, str | None]:
    """Entry point of a spawned process: trains member `i`, writes its model and history into
    its member folder, returns `(i, None)` or `(i, message)` when training diverged. `x64`:
    the caller's `jax_enable_x64` (a spawned process starts with JAX's default). It ends
    itself when the process that started it is gone."""
    from ..training._reconstruct import _exit_with_parent

    _exit_with_parent(os.getppid())
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import jax

    jax.config.update("jax_enable_x64", bool(x64))
    import dynrnn as dr

    from ..training._checkpoint import atomic_write_bytes

    folder = member_dir(pathlib.Path(run_dir), i)
    try:
        result = _train(cfg, i, x_fit, x_val, pathlib.Path(run_dir), False, overwrite)
    except TrainingDivergedError as e:
        return i, str(e)
    dr.save(folder / "model.eqx", result.model, config=cfg)
    atomic_write_bytes(folder / "history.nc", result.history.to_netcdf(engine="h5netcdf"))
    return i, None


def score(model, x_train: np.ndarray) -> tuple[float, float]:
    """`(D_stsp, D_H)` of a free run against the training series: as long as the series (at
    least 20 000 steps) from its first point, after a transient of a tenth of that."""
    import dynrnn as dr

    from ..training._evaluate import generate
    from ..training._reconstruct import _d_h_on_length, _measures

    n = max(len(x_train), 20_000)
    gen, _ = generate(model, x_train[0], n + n // 10)
    if not np.all(np.isfinite(gen)):
        return math.inf, 1.0
    method_bins = x_train.shape[1] < 6
    if method_bins:
        return _measures(x_train, gen[n // 10:])
    d_stsp = float(dr.metrics.state_space_divergence(x_train, gen[n // 10:], method="gmm"))
    # D_H compares spectra bin by bin: on the series' length, as `_measures` does
    return d_stsp, _d_h_on_length(x_train, gen[n // 10:])


def fit_members(cfg, x_train, x_fit, x_val, run_dir, progress, overwrite, echo):
    """Train `[training] members` runs (see the module docstring) and return
    `(result of the kept member, table rows)`; with one member, `(result, [])`."""
    import multiprocessing

    import dynrnn as dr

    tr = cfg["training"]
    members = int(tr.get("members", 1))
    if members == 1:
        return _train(cfg, 0, x_fit, x_val, run_dir, progress, overwrite), []
    from ..training._reconstruct import n_workers

    workers = n_workers(tr.get("workers", "auto"), members)
    echo(f"training {members} members ({workers} at once), keeping the best on the training "
         "series")
    results: dict[int, object] = {}
    diverged: dict[int, str] = {}
    spawned = [i for i in range(1, members) if i % workers != 0]
    here = [i for i in range(members) if i % workers == 0]
    pool = None
    futures = []
    if spawned:
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(processes=min(workers - 1, len(spawned)))
        import jax

        x64 = bool(jax.config.jax_enable_x64)
        futures = [pool.apply_async(_worker, (cfg, i, x_fit, x_val, str(run_dir), overwrite,
                                              x64)) for i in spawned]
    try:
        for i in here:
            try:
                results[i] = _train(cfg, i, x_fit, x_val, run_dir, progress and i == 0,
                                    overwrite)
            except TrainingDivergedError as e:
                diverged[i] = str(e)
        for f in futures:
            i, message = f.get()
            if message is not None:
                diverged[i] = message
                continue
            folder = member_dir(run_dir, i)
            import xarray as xr

            with xr.open_dataset(folder / "history.nc", engine="h5netcdf") as h:
                history = h.load()
            results[i] = _Loaded(dr.load(folder / "model.eqx"), history)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    if not results:
        first = diverged[min(diverged)]
        raise TrainingDivergedError(f"every one of the {members} members diverged; member 0: "
                                    f"{first}")
    from ..training._reconstruct import best_member

    rows = []
    for i in range(members):
        if i in results:
            d_stsp, d_h = score(results[i].model, x_train)
            loss = float(np.asarray(results[i].history["loss"])[-1])
        else:
            d_stsp, d_h, loss = math.inf, 1.0, math.nan
        rows.append({"member": i, "train_D_stsp": d_stsp, "train_D_H": d_h, "final_loss": loss,
                     "diverged": i in diverged, "kept": False})
    best = best_member([r["train_D_stsp"] for r in rows], [r["train_D_H"] for r in rows])
    rows[best]["kept"] = True
    for r in rows:
        state = "diverged" if r["diverged"] else (
            f"D_stsp {r['train_D_stsp']:.3f}, D_H {r['train_D_H']:.3f}")
        echo(f"  member {r['member']}: {state}{'  <- kept' if r['kept'] else ''}")
    return results[best], rows


class _Loaded:
    """A trained member read back from its folder (`model`, `history` as `dr.fit` returns)."""

    def __init__(self, model, history):
        self.model = model
        self.history = history


def members_markdown(rows) -> str:
    lines = ["| member | D_stsp (free run vs training series) | D_H | final loss | kept |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["diverged"]:
            lines.append(f"| {r['member']} | diverged | | | |")
            continue
        lines.append(f"| {r['member']} | {r['train_D_stsp']:.4f} | {r['train_D_H']:.4f} | "
                     f"{r['final_loss']:.4g} | {'yes' if r['kept'] else ''} |")
    return "\n".join(lines) + "\n"

