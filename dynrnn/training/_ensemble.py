"""`dr.fit_ensemble`: many fits at once (seeds and hyperparameter settings).

DSR practice trains 20+ models per setting (Hess et al. 2023 report medians over 20 runs).
All members share the data, the objective and the batch shape; they differ in their initial
parameters (seeds), and optionally in a constant GTF α and the learning rate. The update of
`dr.fit` (`_update.trainer`) is `jax.vmap`-ed over the members, and with a `mesh` the member
axis is sharded over its devices (`NamedSharding`), so one compiled program trains them all.
A mesh over several processes places on each process only its own devices' members; the
losses and the trained members are gathered into every process (`_distributed.py`).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr

from .._errors import DynrnnValueError, check_positive
from ..forcing import GTF
from ..models._base import model_dtype
from ._distributed import Processes
from ._fit import _key_data
from ._hooks import Checkpointing
from ._loop import ProgressBar, Run, step_function, wall_clock
from ._objective import Reconstruction, fingerprint, objective_from
from ._update import set_learning_rate, trainer


@dataclasses.dataclass
class EnsembleResult:
    """What `dr.fit_ensemble` returns: `models` (one per member), `history` (`loss`, `alpha`
    on dims `member` × `step`, `learning_rate` per member), `diverged` (per member, the update
    at which it stopped, or -1) and `wall_time`."""

    models: list
    history: xr.Dataset
    diverged: np.ndarray
    wall_time: float


def _check_members(models, alphas, learning_rates, objective):
    if not isinstance(models, list | tuple) or len(models) == 0:
        raise DynrnnValueError("`models` must be a non-empty list of models.")
    n = len(models)
    structures = {jax.tree_util.tree_structure(eqx.filter(m, eqx.is_inexact_array))
                  for m in models}
    if len(structures) != 1:
        raise DynrnnValueError("all `models` must have the same structure (type and sizes).")
    if alphas is not None:
        if len(alphas) != n:
            raise DynrnnValueError(f"`alphas` needs {n} values (one per model), got {len(alphas)}.")
        tf = objective.teacher_forcing if isinstance(objective, Reconstruction) else None
        if not isinstance(tf, GTF) or tf.adaptive:
            raise DynrnnValueError(
                "per-member `alphas` need a constant `teacher_forcing=dr.GTF(a)`."
            )
        bad = [a for a in alphas if not (isinstance(a, int | float) and 0.0 <= a <= 1.0)]
        if bad:
            raise DynrnnValueError(f"`alphas` must lie in [0, 1], got {bad}.")
    lrs = [1e-3] * n if learning_rates is None else list(learning_rates)
    if len(lrs) != n:
        raise DynrnnValueError(
            f"`learning_rates` needs {n} values (one per model), got {len(lrs)}."
        )
    bad = [lr for lr in lrs if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0)]
    if bad:
        raise DynrnnValueError(f"`learning_rates` must be finite and > 0, got {bad}.")
    return lrs


def _member_state(step, params, lr, final_lr, alpha, dtype):
    """A member's initial training state with its own learning rates (and constant α)."""
    s = step.init(params)
    s = eqx.tree_at(lambda t: t.opt_state, s, set_learning_rate(
        s.opt_state, jnp.asarray(lr, dtype), jnp.asarray(final_lr, dtype)))
    if alpha is not None:
        s = eqx.tree_at(lambda t: t.objective, s, jnp.asarray(alpha, dtype))
    return s


def _train_members(run: Run, run_chunk, prepared, keys, steps_per_call: int, progress: bool,
                   checkpoint=None):
    """The host loop over chunks of the vmapped update, with a progress bar and, given a
    `Checkpointing`, checkpoints after chunks as its `every` allows (resuming from one
    first); returns the
    stacked parameters and states and the per-member `loss`/`alpha` histories."""
    n_steps = run.n_steps
    n = keys.shape[0]
    run.history = {k: np.full((n, n_steps), np.nan) for k in ("loss", "alpha")}
    hooks = ([] if checkpoint is None else [checkpoint]) + [ProgressBar(progress)]
    for h in hooks:
        h.start(run)  # a checkpoint's start may resume: params, state, history and step
    P, S, hist = run.params, run.state, run.history
    try:
        for c in range(run.step // steps_per_call, math.ceil(n_steps / steps_per_call)):
            start = c * steps_per_call
            (P, S), outs = run_chunk(P, S, prepared, keys, jnp.asarray(start))
            v, a, _ = run.processes.fetch(outs)
            end = min(start + steps_per_call, n_steps)
            hist["loss"][:, start:end] = np.asarray(v).T[:, : end - start]
            hist["alpha"][:, start:end] = np.asarray(a).T[:, : end - start]
            run.params, run.state = P, S
            run.step, run.logs = end, {"loss": float(np.nanmean(hist["loss"][:, start:end]))}
            for h in hooks:
                h.after_chunk(run)
    finally:
        for h in hooks:
            h.end(run)
    return P, S, hist


def fit_ensemble(
    models,
    data,
    *,
    loss=None,
    teacher_forcing=None,
    alphas=None,
    learning_rates=None,
    final_learning_rate_ratio: float = 1e-3,
    n_steps: int,
    batch_size: int = 16,
    seq_len: int = 200,
    key,
    steps_per_call: int = 50,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
    checkpoint_dir=None,
) -> EnsembleResult:
    """Train several models of the same structure at once.

    **Arguments:**
    - `models`: a list of models with identical structure (e.g. built from different keys).
    - `data`, `loss`, `teacher_forcing`, `n_steps`, `batch_size`, `seq_len`, `steps_per_call`,
      `progress`: as in `dr.fit`.
    - `alphas`: optional per-member constant GTF α (requires a constant `GTF`).
    - `learning_rates`: optional per-member initial learning rate of the objective's default
      optimiser (default 1e-3); each decays (reconstruction: the reference's staircase
      schedule) to `final_learning_rate_ratio` of its start.
    - `key`: member `i` uses `fold_in(key, i)` (so member `i` repeats
      `dr.fit(..., key=fold_in(key, i))` with the same optimiser).
    - `mesh`: a `jax.sharding.Mesh` with an axis `"ensemble"`: members are sharded over it.
      A mesh over the devices of several JAX processes trains across them (every process
      makes the same call; each materialises and trains the members of its own devices, shows
      progress only in process 0, and gets all trained members back; an error in any process
      is raised in all).
    - `checkpoint_dir`: a folder (or a `dr.training.Checkpointing`): write `last.eqx` (every
      member's parameters and optimiser state, the histories) after every host call, and
      resume from it when the folder holds one written with the same data, members and
      settings, as `dr.fit` does; a resumed ensemble ends with the uninterrupted one's members.

    **Returns:** an `EnsembleResult`. A member whose loss becomes non-finite stops there (its
    last good parameters are kept; `diverged` says where) while the others go on.
    """
    processes = Processes(mesh)

    def setup():
        check_positive(n_steps, "n_steps", integer=True)
        check_positive(steps_per_call, "steps_per_call", integer=True)
        key_data = _key_data(key)
        objective = objective_from(loss, teacher_forcing, None, seq_len)
        lrs = _check_members(models, alphas, learning_rates, objective)
        if mesh is not None and "ensemble" not in mesh.axis_names:
            raise DynrnnValueError(
                f"`mesh` must have an axis named 'ensemble', got {mesh.axis_names}."
            )
        prepared = objective.prepare(models[0], data)
        params = [eqx.filter(m, eqx.is_inexact_array) for m in models]
        # what the processes must agree on, and what a checkpoint must have been written with
        config = dict(objective=objective.describe(), n_steps=n_steps, batch_size=batch_size,
                      steps_per_call=steps_per_call, key=key_data, alphas=alphas,
                      learning_rates=lrs, final_learning_rate_ratio=final_learning_rate_ratio,
                      data=fingerprint(prepared), parameters=fingerprint(params))
        return objective, lrs, prepared, params, config

    # With several processes, an error in any of them stops all, and they must agree on the
    # data, the settings and the members (`_distributed.Processes.agree`).
    objective, lrs, prepared, params, config = processes.agree(setup, same=lambda r: r[-1])
    n = len(models)
    optimizer = objective.default_optimizer(n_steps)
    static = eqx.partition(models[0], eqx.is_inexact_array)[1]
    step = trainer(objective, optimizer, static)
    dtype = model_dtype(models[0]) or jnp.result_type(float)
    states = [_member_state(step, p, lr, lr * final_learning_rate_ratio,
                            None if alphas is None else alphas[i], dtype)
              for i, (p, lr) in enumerate(zip(params, lrs))]
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    P, S = stack(params), stack(states)
    keys = jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(n))
    if mesh is not None:
        from jax.sharding import PartitionSpec

        P, S, keys = processes.place((P, S, keys), PartitionSpec("ensemble"))
        if processes.spans:
            prepared = processes.place(prepared)
    one = jax.vmap(step_function(step, objective, batch_size, n_steps, dtype),
                   in_axes=(0, 0, None, 0, None))

    @eqx.filter_jit
    def run_chunk(P, S, prepared, keys, start):
        def body(carry, s):
            p, st, out = one(*carry, prepared, keys, s)
            return (p, st), out

        return jax.lax.scan(body, (P, S), start + jnp.arange(steps_per_call))

    t0 = wall_clock()
    run = Run(P, static, S, n_steps, config, name=f"fit_ensemble ×{n}", processes=processes)
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = (checkpoint_dir if isinstance(checkpoint_dir, Checkpointing)
                      else Checkpointing(checkpoint_dir))
    P, S, hist = _train_members(run, run_chunk, prepared, keys, steps_per_call, progress,
                                checkpoint)
    P, S = processes.fetch((P, S))
    stop = np.asarray(S.stop)
    for i, s in enumerate(stop):
        if s >= 0:
            hist["loss"][i, s + 1:] = np.nan
    out = [eqx.combine(jax.tree.map(lambda x, i=i: x[i], P), static) for i in range(n)]
    history = xr.Dataset(
        {"loss": (("member", "step"), hist["loss"]), "alpha": (("member", "step"), hist["alpha"]),
         "learning_rate": ("member", np.asarray(lrs, float))},
        coords={"member": np.arange(n), "step": np.arange(1, n_steps + 1)},
    )
    return EnsembleResult(models=out, history=history, diverged=stop,
                          wall_time=wall_clock() - t0)
