"""The host side of training: a loop over compiled chunks of updates, and hooks that watch it.

A chunk is `steps_per_call` updates in one `lax.scan` (one host call); update `s` draws its
batch and noise from `fold_in(key, s)`, so a run resumed from a checkpoint repeats exactly
what an uninterrupted run would have done. After every chunk the loop records the losses and
calls its hooks in order: evaluation and user callbacks first, then the best-model tracker,
the checkpoint writer and the progress bar. A hook returns `True` to stop training.

When the mesh spans several processes (`_distributed.py`), every process runs this loop; the
hooks see process-local copies of the parameters, their errors and "stop" answers are
exchanged after every host call, and only process 0 writes and shows progress.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr
from jaxtyping import PRNGKeyArray, PyTree

from ._distributed import Processes
from ._update import Trainer, TrainState, current_learning_rate


@dataclasses.dataclass
class Run:
    """A training run as the hooks see it.

    **Attributes:** `params`, `static` (the model is `run.model`), `state` (`TrainState`),
    `step` (updates done), `n_steps`, `history` (per-update `loss`, `alpha`, `learning_rate`
    as NumPy arrays), `evaluations` (lists per measure, with `eval_step`), `logs` (the last
    chunk's summary, which hooks may extend), `best_params`, `best_score`, `improved` (whether
    the last chunk set a new best), `config` (the settings a resumed run must share), `name`,
    `processes` (the processes of the fit's mesh; `processes.writer` is whether this one writes
    files).
    """

    params: PyTree
    static: PyTree
    state: TrainState
    n_steps: int
    config: dict
    name: str = "fit"
    step: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    evaluations: dict = dataclasses.field(default_factory=dict)
    logs: dict = dataclasses.field(default_factory=dict)
    best_params: PyTree = None
    best_score: float = math.inf
    improved: bool = False
    diverged_at: int | None = None
    processes: Processes = dataclasses.field(default_factory=Processes)

    def __post_init__(self):
        for name in ("loss", "alpha", "learning_rate"):
            self.history.setdefault(name, np.full(self.n_steps, np.nan))
        if self.best_params is None:
            self.best_params = self.params

    @property
    def model(self):
        return eqx.combine(self.params, self.static)

    @property
    def best_model(self):
        return eqx.combine(self.best_params, self.static)

    def history_dataset(self) -> xr.Dataset:
        """`loss`, `alpha`, `learning_rate` on `step`; evaluations on `eval_step`."""
        ds = xr.Dataset(
            {k: ("step", np.asarray(v)) for k, v in self.history.items()},
            coords={"step": np.arange(1, self.n_steps + 1)},
            attrs={"kind": self.config.get("objective", {}).get("type", "")},
        )
        ev = {k: v for k, v in self.evaluations.items() if k != "eval_step"}
        if self.evaluations.get("eval_step"):
            ds = ds.assign({k: ("eval_step", np.asarray(v, float)) for k, v in ev.items()})
            ds = ds.assign_coords(eval_step=np.asarray(self.evaluations["eval_step"], np.int64))
        return ds


class AbstractHook:
    """Watches a training run: `start(run)` before the first chunk (or after resuming),
    `after_chunk(run) -> bool` after every chunk (`True` stops training), `end(run)` when the
    loop ends for any reason."""

    def start(self, run: Run) -> None:
        pass

    def after_chunk(self, run: Run) -> bool:
        return False

    def end(self, run: Run) -> None:
        pass


class Callback(AbstractHook):
    """A plain callable `fn(step, model, logs)` as a hook; returning `True` stops training."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def after_chunk(self, run):
        return self.fn(run.step, run.model, run.logs) is True


class BestModel(AbstractHook):
    """Keeps the parameters with the best score: the held-out `D_stsp` where an evaluation
    reported one in this chunk, else (without evaluations) the mean loss of the chunk."""

    def __init__(self, key: str):
        self.key = key

    def after_chunk(self, run):
        score = run.logs.get(self.key)
        run.improved = False
        if score is not None:
            score = float(score) if np.isfinite(score) else math.inf
            if score < run.best_score:
                run.best_score, run.best_params, run.improved = score, run.params, True
        return False


class ProgressBar(AbstractHook):
    """A `tqdm` bar of updates with the last chunk's logs (shown by the writing process)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def start(self, run):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=run.n_steps, initial=run.step,
                        disable=not (self.enabled and run.processes.writer),
                        desc=run.name, unit="step", dynamic_ncols=True)

    def after_chunk(self, run):
        self.bar.update(run.step - self.bar.n)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in run.logs.items()
                              if isinstance(v, float)})
        return False

    def end(self, run):
        if self.bar is not None:
            self.bar.close()


def step_function(trainer: Trainer, objective, batch_size: int, n_steps: int, dtype):
    """One update with its batch drawn from the prepared data: `(params, state, prepared, key,
    step) -> (params, state, (loss, alpha, learning rate))`; updates at `step >= n_steps` are
    not applied (the padding of the last chunk)."""

    def one(params, state, prepared, key, step):
        kb, ku = jr.split(jr.fold_in(key, step))
        batch = objective.sample(prepared, kb, batch_size)
        new_params, new_state, value = trainer.update(params, state, batch, ku, step)
        keep = step < n_steps
        params = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new_params, params)
        state = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new_state, state)
        obj = state.objective
        alpha = obj.astype(dtype) if jnp.ndim(obj) == 0 else jnp.asarray(jnp.nan, dtype)
        lr = current_learning_rate(state.opt_state, dtype)
        return params, state, (jnp.asarray(value, dtype), alpha, lr)

    return one


def chunk_function(one, steps_per_call: int):
    """`steps_per_call` updates from update `start` in one compiled call."""

    @eqx.filter_jit
    def run_chunk(params, state, prepared, key: PRNGKeyArray, start):
        def body(carry, step):
            p, s, out = one(*carry, prepared, key, step)
            return (p, s), out

        return jax.lax.scan(body, (params, state), start + jnp.arange(steps_per_call))

    return run_chunk


def train(run: Run, run_chunk, prepared, key, steps_per_call: int, hooks) -> Run:
    """Run chunks until `n_steps` updates are done, training diverged or a hook stops it."""
    procs = run.processes
    for h in hooks:
        procs.agree(lambda: h.start(run))
    if procs.spans:
        prepared = procs.place(prepared)
    held = placed = None  # the last local parameters and state, and their copies on the mesh
    try:
        while run.step < run.n_steps:
            start = run.step
            if procs.spans and (held is None or held[0] is not run.params
                                or held[1] is not run.state):
                placed = procs.place((run.params, run.state))
            params, state = placed if procs.spans else (run.params, run.state)
            (params, state), outs = run_chunk(params, state, prepared, key, jnp.asarray(start))
            if procs.spans:
                placed = (params, state)
                params, state, outs = procs.fetch((params, state, outs))
                held = (params, state)
            end = min(start + steps_per_call, run.n_steps)
            for name, values in zip(("loss", "alpha", "learning_rate"), outs):
                run.history[name][start:end] = np.asarray(values, np.float64)[: end - start]
            stop = int(state.stop)
            if stop >= 0:  # the guard kept the last good parameters
                run.params, run.state, run.diverged_at = params, state, stop
                run.history["loss"][stop + 1: end] = np.nan
                break
            run.params, run.state, run.step = params, state, end
            losses = run.history["loss"][start:end]
            run.logs = {"loss": float(np.mean(losses)),
                        "alpha": float(run.history["alpha"][end - 1])}
            if not np.isfinite(run.logs["alpha"]):
                del run.logs["alpha"]
            if procs.agree(lambda: any([h.after_chunk(run) for h in hooks]), vote=True):
                break
    finally:
        for h in hooks:
            h.end(run)
    return run


def wall_clock() -> float:
    return time.perf_counter()
