"""`dr.fit`: train one model. The parts: an objective (`_objective.py`), the pure update
(`_update.py`), the host loop and its hooks (`_loop.py`, `_hooks.py`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError, TrainingDivergedError, check_positive
from ..models._base import model_dtype
from ._distributed import Processes
from ._hooks import Checkpointing, Evaluation
from ._loop import (
    AbstractHook,
    BestModel,
    Callback,
    ProgressBar,
    Run,
    chunk_function,
    step_function,
    train,
    wall_clock,
)
from ._objective import AbstractObjective, fingerprint, objective_from
from ._update import trainer


@dataclasses.dataclass
class FitResult:
    """What `dr.fit` returns.

    **Attributes:**
    - `model`: the trained model (the last good one if training diverged).
    - `history`: `xr.Dataset` with `loss`, `alpha`, `learning_rate` on dimension `step`, and
      held-out measures (`D_stsp`, `D_H`) on dimension `eval_step` when an `Evaluation` ran.
    - `best_model`: the model with the best held-out D_stsp (or lowest running loss).
    - `alpha`: the final forcing strength (reconstruction).
    - `steps`: number of updates done.
    - `wall_time`: seconds spent in this call.
    """

    model: eqx.Module
    history: xr.Dataset
    best_model: eqx.Module | None = None
    alpha: float | None = None
    steps: int = 0
    wall_time: float = 0.0


def _key_data(key) -> list:
    if not isinstance(key, jax.Array):
        raise DynrnnTypeError(f"`key` must be a JAX PRNG key (jax.random.key(0)), got {key!r}.")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).tolist()


def _optimizer_config(optimizer, params) -> dict | str:
    state = optimizer.init(params)
    lr = optax.tree_utils.tree_get(state, "learning_rate")
    final = optax.tree_utils.tree_get(state, "final_learning_rate")
    if lr is None or final is None:
        return "custom"
    return {"learning_rate": float(lr), "final_learning_rate": float(final)}


def _replicate(mesh, tree):
    from jax.sharding import NamedSharding, PartitionSpec

    # Placed on the mesh before the first call, as every call returns them: otherwise the
    # second call would compile the whole update again for the new placement.
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def _check_mesh(mesh, batch_size):
    if mesh is None:
        return
    if "batch" not in mesh.axis_names:
        raise DynrnnValueError(f"`mesh` must have an axis named 'batch', got {mesh.axis_names}.")
    if batch_size % mesh.shape["batch"]:
        raise DynrnnValueError(
            f"`batch_size`={batch_size} must be divisible by the {mesh.shape['batch']} devices "
            "of the mesh's 'batch' axis (each device takes an equal slice)."
        )


def fit(
    model: eqx.Module,
    data,
    *,
    loss: str | Callable | AbstractObjective | None = None,
    teacher_forcing=None,
    regularizer=None,
    optimizer: optax.GradientTransformation | None = None,
    n_steps: int,
    batch_size: int = 16,
    seq_len: int = 200,
    key,
    progress: bool = True,
    checkpoint_dir=None,
    callbacks: Sequence[Callable | AbstractHook] = (),
    mesh: jax.sharding.Mesh | None = None,
    steps_per_call: int = 50,
) -> FitResult:
    """Train `model` on `data`.

    **What is minimised** is decided by `loss` alone:
    - `None` (default): teacher-forced reconstruction of series by a latent model
      (`dr.training.Reconstruction(teacher_forcing, seq_len=seq_len, regularizer=...)`): `data`
      is an array `(time, obs)`, a list of them or a recording; each update draws `batch_size`
      windows of `seq_len + 1` steps, runs the model under `teacher_forcing` (default
      `GTF("adaptive")`) and minimises the mean squared error of the unforced predictions
      plus `model.penalty()` (Hess et al., ICML 2023, Sec. 3).
    - `"mse"`, `"cross_entropy"` or a callable `loss(model, inputs, targets, *, key)`:
      supervised training on `data=(inputs, targets)` (leading sample axis), batches drawn
      with replacement (`dr.training.Supervised`).
    - an objective (`dr.training.Reconstruction(..., noise=0.05)`, `Supervised(...)`): its
      own settings.

    **Arguments:**
    - `teacher_forcing`: `dr.GTF(...)` or `dr.STF(...)` for reconstruction.
    - `regularizer`: a solver regulariser of `dr.regularizers` (applied inside the
      teacher-forced rollout to the trajectory being trained) or any callable
      `regularizer(model, batch) -> scalar` added to the loss.
    - `optimizer`: an Optax transformation; default the objective's: for reconstruction
      `dr.training.default_optimizer(n_steps)` (RAdam, 1e-3 decaying to 1e-6 by the GTF
      reference's staircase schedule), for supervised training `dr.training.cosine_adam(
      n_steps)` (Adam, 1e-3 decaying to 1e-5 along a cosine).
    - `n_steps`: number of updates; `batch_size`; `seq_len` (reconstruction).
    - `key`: PRNG key; update `s` uses `fold_in(key, s)`.
    - `progress`: show a progress bar.
    - `checkpoint_dir`: a folder: write `last.eqx` after every host call and `best.eqx` when
      the run's best model improves; if `last.eqx` exists the run resumes from it (and says
      so), but only if it was written with the same data and settings (else
      `CheckpointError`, naming what differs); the folder is checked for writing before the
      first update. `dr.training.Checkpointing(folder, overwrite=True)` starts afresh instead.
    - `callbacks`: hooks (`dr.training.Evaluation(x_val, every=...)` for held-out `D_stsp`/`D_H`
      during training, `dr.training.EarlyStopping`, ...) or callables
      `cb(step, model, logs)`, called after every host call; returning `True` stops training.
    - `mesh`: a `jax.sharding.Mesh` with a `"batch"` axis: data parallel over its devices
      (`batch_size` divisible by their number; the data loss must be a mean over the batch).
      A mesh over the devices of several JAX processes (`jax.distributed.initialize()`, then
      `Mesh(jax.devices(), ("batch",))`) trains across them: every process makes the same
      call with the same data, model and key; each device differentiates its slice of the
      batch; process 0 alone writes checkpoints and shows progress, every process resumes
      from process 0's checkpoint, and an error in any process is raised in all of them. The
      result (in every process) equals a single-process fit on a mesh of as many devices.
    - `steps_per_call`: updates per compiled host call.

    **Returns:** a `FitResult`.

    **Raises:** `ValueError`/`TypeError` for bad data or arguments; `CheckpointError` for a
    checkpoint folder of another run; `TrainingDivergedError` (with `.result`, holding the last
    good model) when the loss or parameters become non-finite, naming the update.
    """
    processes = Processes(mesh)

    def setup():
        check_positive(n_steps, "n_steps", integer=True)
        check_positive(batch_size, "batch_size", integer=True)
        check_positive(steps_per_call, "steps_per_call", integer=True)
        if not isinstance(model, eqx.Module):
            raise DynrnnTypeError(
                f"`model` must be an Equinox module, got {type(model).__name__}.")
        key_data = _key_data(key)
        _check_mesh(mesh, batch_size)
        objective = objective_from(loss, teacher_forcing, regularizer, seq_len)
        prepared = objective.prepare(model, data)
        opt = objective.default_optimizer(n_steps) if optimizer is None else optimizer
        params, static = eqx.partition(model, eqx.is_inexact_array)
        config = dict(objective=objective.describe(), optimizer=_optimizer_config(opt, params),
                      n_steps=n_steps, batch_size=batch_size, steps_per_call=steps_per_call,
                      key=key_data, model=type(model).__name__, data=fingerprint(prepared))
        return objective, prepared, opt, params, static, config

    # With several processes, an error in any of them (bad data on one host) stops all, and
    # they must agree on the data, the settings and the initial model (`Processes.agree`).
    objective, prepared, optimizer, params, static, config = processes.agree(
        setup, same=lambda r: dict(r[-1], parameters=fingerprint(r[3])))
    step = trainer(objective, optimizer, static, mesh=mesh)
    state = step.init(params)
    if mesh is not None and not processes.spans:
        params, state = _replicate(mesh, (params, state))
    run = Run(params, static, state, n_steps, config, name=f"fit {type(model).__name__}",
              processes=processes)
    hooks = [h if isinstance(h, AbstractHook) else Callback(h) for h in callbacks]
    evaluating = any(isinstance(h, Evaluation) for h in hooks)
    hooks.append(BestModel("D_stsp" if evaluating else "loss"))
    if checkpoint_dir is not None:
        hooks.append(checkpoint_dir if isinstance(checkpoint_dir, Checkpointing)
                     else Checkpointing(checkpoint_dir))
    hooks.append(ProgressBar(progress))
    dtype = model_dtype(model) or jnp.result_type(float)
    one = step_function(step, objective, batch_size, n_steps, dtype)
    t0 = wall_clock()
    train(run, chunk_function(one, steps_per_call), prepared, key, steps_per_call, hooks)
    alpha = run.history["alpha"][max(run.step - 1, 0)]
    result = FitResult(
        model=run.model, history=run.history_dataset(), best_model=run.best_model,
        alpha=float(alpha) if np.isfinite(alpha) else None,
        steps=run.diverged_at if run.diverged_at is not None else run.step,
        wall_time=wall_clock() - t0,
    )
    if run.diverged_at is not None:
        raise _diverged(result, run)
    return result


def _diverged(result: FitResult, run: Run) -> TrainingDivergedError:
    at = run.diverged_at
    err = TrainingDivergedError(
        f"training diverged at update {at}: the loss or the parameters became non-finite "
        f"(loss {run.history['loss'][at]!r}). The last good model (before update {at}) is kept "
        "in `error.result.model`; lower the learning rate or the forcing interval, or check "
        "the data's scale."
    )
    err.result = result
    err.step = at
    return err
