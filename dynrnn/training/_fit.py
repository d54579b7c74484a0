"""`dr.fit`: training loops for latent models (teacher forcing) and supervised sequence models.

The whole update (batch sampling, α schedule, loss, gradient, optimiser step, NaN guard) is one
jitted function, run `steps_per_call` times per host call with `lax.scan`; the random key of
update `s` is `fold_in(key, s)`, so a run resumed from a checkpoint repeats exactly what an
uninterrupted run would have done.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import xarray as xr

from .._errors import (
    CheckpointError,
    DynrnnTypeError,
    DynrnnValueError,
    TrainingDivergedError,
    check_array,
    check_positive,
)
from ..models._base import AbstractLatentModel
from . import _checkpoint
from ._data import as_series_list
from ._forcing import GTF, AbstractTeacherForcing, forced_loss, uses_step_stats
from ._parallel import data_parallel


@dataclasses.dataclass
class FitResult:
    """What `dr.fit` returns.

    **Attributes:**
    - `model`: the trained model (the last good one if training diverged).
    - `history`: `xr.Dataset` with `loss`, `alpha`, `learning_rate` on dimension `step`, and
      held-out measures (`D_stsp`, `D_H`, `PE`) on dimension `eval_step` when `eval_data` is given.
    - `best_model`: the model with the best held-out D_stsp (or lowest running loss).
    - `alpha`: the final forcing strength (latent models).
    - `steps`: number of updates done.
    - `wall_time`: seconds spent in this call.
    """

    model: eqx.Module
    history: xr.Dataset
    best_model: eqx.Module | None = None
    alpha: float | None = None
    steps: int = 0
    wall_time: float = 0.0


def default_optimizer(n_steps: int, learning_rate: float = 1e-3, final_learning_rate=1e-6):
    """RAdam (β 0.9/0.999, ε 1e-8) with the reference's staircase exponential decay: the rate
    falls by a constant factor every 50 updates, from `learning_rate` to `final_learning_rate`
    at the end of the run (Hess et al. 2023: 1e-3 → 1e-6 over 5 000 epochs of 50 batches)."""
    epochs = max(n_steps / 50.0, 1.0)
    factor = math.exp(math.log(final_learning_rate / learning_rate) / epochs)
    schedule = optax.exponential_decay(
        learning_rate, transition_steps=50, decay_rate=factor, staircase=True,
        end_value=final_learning_rate,
    )
    return optax.radam(schedule, b1=0.9, b2=0.999, eps=1e-8), schedule


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


class _Windows(eqx.Module):
    """Training series stacked `(n_series, T_max, dims)` plus the table of valid windows."""

    series: jax.Array
    starts: jax.Array  # (n_windows, 2): series index, start index
    length: int = eqx.field(static=True)

    def sample(self, key, batch_size):
        idx = jr.randint(key, (batch_size,), 0, self.starts.shape[0])
        rows = self.starts[idx]

        def one(r):
            return jax.lax.dynamic_slice_in_dim(self.series[r[0]], r[1], self.length, axis=0)

        return jax.vmap(one)(rows)


def _make_windows(series: list[np.ndarray], length: int, dtype) -> _Windows:
    t_max = max(s.shape[0] for s in series)
    dims = series[0].shape[1]
    stacked = np.zeros((len(series), t_max, dims), dtype)
    starts = []
    for i, s in enumerate(series):
        stacked[i, : s.shape[0]] = s
        n = s.shape[0] - length + 1
        starts.append(np.stack([np.full(n, i), np.arange(n)], axis=1))
    return _Windows(jnp.asarray(stacked), jnp.asarray(np.concatenate(starts), jnp.int32), length)


def _supervised_loss_fn(loss):
    if callable(loss):
        return loss
    if loss == "mse":

        def mse(model, inputs, targets, *, key=None):
            pred = jax.vmap(model)(inputs)
            return jnp.mean((pred - targets) ** 2)

        return mse
    if loss == "cross_entropy":

        def ce(model, inputs, targets, *, key=None):
            logits = jax.vmap(model)(inputs)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))

        return ce
    raise DynrnnValueError(
        f"`loss` must be 'mse', 'cross_entropy' or a callable (model, inputs, targets, *, key), "
        f"got {loss!r}."
    )


def fit(
    model: eqx.Module,
    data,
    *,
    loss: str | Callable | None = None,
    teacher_forcing: AbstractTeacherForcing | None = None,
    regularizer=None,
    optimizer: optax.GradientTransformation | None = None,
    n_steps: int,
    batch_size: int = 16,
    seq_len: int | None = 200,
    key,
    progress: bool = True,
    checkpoint_dir=None,
    callbacks: Sequence[Callable] = (),
    eval_data=None,
    eval_every: int | None = None,
    noise: float = 0.0,
    steps_per_call: int = 50,
    learning_rate: float = 1e-3,
    final_learning_rate: float = 1e-6,
    mesh: jax.sharding.Mesh | None = None,
    _return_update: bool = False,
) -> FitResult:
    """Train `model` on `data`.

    **Two modes.**
    - *Reconstruction* (the model is an `AbstractLatentModel`, `data` an array `(time, obs)`,
      a list of them or a recording): each update draws `batch_size` windows of `seq_len + 1`
      steps (start indices uniform with replacement), runs the model under `teacher_forcing`
      (default `GTF("adaptive")`) and minimises the mean squared error of the unforced
      predictions plus `model.penalty()` (Hess et al., ICML 2023, Sec. 3).
    - *Supervised* (`data=(inputs, targets)` with a leading sample axis): `loss` is `"mse"`,
      `"cross_entropy"` (integer targets, the model returns logits), or a callable
      `loss(model, inputs, targets, *, key) -> scalar` on a batch drawn with replacement.
      A latent model with a callable `loss` and `data=(inputs, targets)` is trained in this
      mode too (e.g. `dr.models.PredictionLoss`, k-step-ahead prediction from data-inferred
      states).

    **Arguments:**
    - `regularizer`: a solver regulariser from `dr.regularizers` (applied inside the
      teacher-forced rollout through the model's `step_with_stats`, i.e. to the trajectory being
      trained), or any callable `regularizer(model, batch) -> scalar` added to the loss.
    - `optimizer`: an Optax transformation; default RAdam with the reference's exponential
      decay from `learning_rate` to `final_learning_rate` (`default_optimizer`).
    - `n_steps`: number of updates; `batch_size`; `seq_len` (reconstruction only).
    - `key`: PRNG key; update `s` uses `fold_in(key, s)`.
    - `progress`: show a progress bar (loss, α, held-out D_stsp / D_H).
    - `checkpoint_dir`: write `last.eqx` (model, optimiser state, α, history) after every host
      call and `best.eqx` when the held-out D_stsp (or the running loss) improves; if
      `last.eqx` exists the run resumes from it.
    - `callbacks`: callables `cb(step, model, logs)` called after every host call; returning
      `True` stops training.
    - `eval_data`, `eval_every`: held-out series for D_stsp / D_H (every `eval_every` updates,
      default 10 host calls).
    - `noise`: sd of Gaussian noise added to each batch (targets too, as in the reference).
    - `steps_per_call`: updates per jitted host call.
    - `mesh`: a `jax.sharding.Mesh` with a `"batch"` axis: the batch is sharded over its
      devices (data parallel; `batch_size` must be divisible by their number): each device
      differentiates the loss of its slice (`dr.training.data_parallel`) and the gradients
      are averaged, so the loss must be a mean over the batch (the teacher-forced MSE,
      `"mse"` and `"cross_entropy"` are); `model.penalty()` and `regularizer` are evaluated
      once on the whole batch. A callable supervised `loss` gets a different key on each
      device (`fold_in` of the device index).

    **Returns:** a `FitResult`.

    **Raises:** `ValueError`/`TypeError` for bad data or arguments; `TrainingDivergedError`
    (with `.result`, holding the last good model) when the loss or parameters become
    non-finite, naming the update.
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(steps_per_call, "steps_per_call", integer=True)
    if not isinstance(model, eqx.Module):
        raise DynrnnTypeError(f"`model` must be an Equinox module, got {type(model).__name__}.")
    # A latent model with a callable loss (e.g. `dr.models.PredictionLoss`) is trained on
    # prepared (inputs, targets) windows too; with the default loss it reconstructs.
    if isinstance(data, tuple) and len(data) == 2 and (
        not isinstance(model, AbstractLatentModel) or callable(loss)
    ):
        return _fit_supervised(
            model, data, loss=loss or "mse", regularizer=regularizer, optimizer=optimizer,
            n_steps=n_steps, batch_size=batch_size, key=key, progress=progress,
            checkpoint_dir=checkpoint_dir, callbacks=callbacks, steps_per_call=steps_per_call,
            learning_rate=learning_rate, final_learning_rate=final_learning_rate, mesh=mesh,
        )
    if not isinstance(model, AbstractLatentModel):
        raise DynrnnTypeError(
            f"`model` ({type(model).__name__}) is not a latent model; pass `data=(inputs, "
            "targets)` for supervised training, or a model with the common state interface."
        )
    if loss not in (None, "mse"):
        raise DynrnnValueError(
            f"reconstruction training uses the teacher-forced MSE; got `loss={loss!r}`."
        )
    if seq_len is None:
        raise DynrnnValueError("`seq_len` is required to train a latent model.")
    check_positive(seq_len, "seq_len", integer=True)
    tf = teacher_forcing if teacher_forcing is not None else GTF("adaptive")
    if not isinstance(tf, AbstractTeacherForcing):
        raise DynrnnTypeError(
            f"`teacher_forcing` must be dr.GTF(...) or dr.STF(...), got {type(tf).__name__}."
        )
    series = as_series_list(data)
    dims = {s.shape[1] for s in series}
    if len(dims) != 1:
        raise DynrnnValueError(f"all series in `data` must have the same dims, got {dims}.")
    (n_obs,) = dims
    if n_obs != model.n_obs:
        raise DynrnnValueError(
            f"`data` has {n_obs} dimensions but the model observes {model.n_obs} "
            f"(data shape {series[0].shape}); build the model with obs={n_obs}."
        )
    longest = max(s.shape[0] for s in series)
    if seq_len + 1 > longest:
        raise DynrnnValueError(
            f"`seq_len`={seq_len} needs windows of {seq_len + 1} steps but the longest series "
            f"in `data` has {longest}."
        )
    series = [s for s in series if s.shape[0] >= seq_len + 1]
    leaves = [x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x)]
    dtype = jnp.result_type(*leaves)
    windows = _make_windows(series, seq_len + 1, np.dtype(dtype))
    eval_x = None
    if eval_data is not None:
        eval_x = as_series_list(eval_data, "eval_data")[0]
        check_array(eval_x, "eval_data", dims=n_obs)

    if optimizer is None:
        optimizer, schedule = default_optimizer(n_steps, learning_rate, final_learning_rate)
    else:
        schedule = None
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    alpha0 = jnp.asarray(tf.initial_alpha(), dtype)
    batch_sharding = _batch_sharding(mesh)

    in_rollout = regularizer is not None and uses_step_stats(model, regularizer)
    if in_rollout and hasattr(regularizer, "check"):
        regularizer.check(model)

    def data_loss(p, xb, keys, alpha):
        m = eqx.combine(p, static)
        losses, _ = jax.vmap(
            lambda x, k: forced_loss(m, x, tf, alpha, regularizer=regularizer if in_rollout
                                     else None, key=k)
        )(xb, keys)
        return jnp.mean(losses)

    def other_loss(p, xb):
        m = eqx.combine(p, static)
        value = m.penalty()
        if regularizer is not None and not in_rollout:
            value = value + regularizer(m, xb)
        return value

    def total_loss(p, xb, alpha, key):
        return data_loss(p, xb, jr.split(key, xb.shape[0]), alpha) + other_loss(p, xb)

    if mesh is not None:
        _check_divisible(mesh, batch_size)
        sharded_data_grad = data_parallel(jax.value_and_grad(data_loss), mesh, n_sharded=2)

    def value_and_grad(p, xb, alpha, key):
        if mesh is None:
            return jax.value_and_grad(total_loss)(p, xb, alpha, key)
        # Data parallel: each device differentiates the mean loss of its slice of the batch
        # (same per-sample keys as on one device); the rest (penalty, batch regulariser) once.
        v1, g1 = sharded_data_grad(p, xb, jr.split(key, xb.shape[0]), alpha)
        v2, g2 = jax.value_and_grad(other_loss)(p, xb)
        return v1 + v2, jax.tree.map(jnp.add, g1, g2)

    def one_update(carry, step, key):
        p, o, alpha, stop = carry
        k = jr.fold_in(key, step)
        kb, kn, kr = jr.split(k, 3)
        xb = windows.sample(kb, batch_size)
        if batch_sharding is not None:
            xb = jax.lax.with_sharding_constraint(xb, batch_sharding)
        if noise:
            xb = xb + noise * jr.normal(kn, xb.shape, xb.dtype)
        m = eqx.combine(p, static)
        zhat = jax.lax.stop_gradient(jax.vmap(jax.vmap(m.forcing_signal))(xb[:, 1:]))
        new_alpha, _ = tf.update_alpha(m, alpha, zhat, step + 1)
        value, grads = value_and_grad(p, xb, new_alpha, kr)
        updates, new_o = optimizer.update(grads, o, p)
        new_p = eqx.apply_updates(p, updates)
        active = (step < n_steps) & (stop < 0)
        ok = jnp.isfinite(value) & _all_finite(new_p)
        accept = active & ok
        new_stop = jnp.where(active & ~ok, step, stop)
        p = _select(accept, new_p, p)
        o = _select(accept, new_o, o)
        alpha = jnp.where(accept, new_alpha, alpha)
        lr = schedule(step) if schedule is not None else jnp.nan
        return (p, o, alpha, new_stop), (value, new_alpha, jnp.asarray(lr, dtype))

    if _return_update:
        return dict(params=params, static=static, opt_state=opt_state, alpha=alpha0,
                    one_update=one_update, optimizer=optimizer, dtype=dtype)

    @eqx.filter_jit
    def run_chunk(p, o, alpha, start):
        steps = start + jnp.arange(steps_per_call)
        carry, outs = jax.lax.scan(
            lambda c, s: one_update(c, s, key), (p, o, alpha, jnp.asarray(-1)), steps
        )
        return carry, outs

    def evaluate_fn(m):
        from ._evaluate import evaluate

        n = min(eval_x.shape[0], 10_000)
        return evaluate(m, eval_x[:n], prediction_steps=None, lyapunov=False)

    return _training_loop(
        kind="reconstruction", model=model, params=params, static=static, opt_state=opt_state,
        alpha=alpha0, run_chunk=run_chunk, n_steps=n_steps, steps_per_call=steps_per_call,
        progress=progress, checkpoint_dir=checkpoint_dir, callbacks=callbacks,
        evaluate_fn=evaluate_fn if eval_x is not None else None, eval_every=eval_every,
        key=key, config=dict(
            n_steps=n_steps, batch_size=batch_size, seq_len=seq_len, noise=noise,
            teacher_forcing=_describe(tf), steps_per_call=steps_per_call,
        ), mesh=mesh,
    )


def _describe(obj) -> dict:
    out = {"type": type(obj).__name__}
    for f in dataclasses.fields(obj):
        out[f.name] = getattr(obj, f.name)
    return out


def _check_divisible(mesh, batch_size):
    n = mesh.shape["batch"]
    if batch_size % n:
        raise DynrnnValueError(
            f"`batch_size`={batch_size} must be divisible by the {n} devices of the mesh's "
            "'batch' axis (each device takes an equal slice)."
        )


def _batch_sharding(mesh):
    if mesh is None:
        return None
    from jax.sharding import NamedSharding, PartitionSpec

    if "batch" not in mesh.axis_names:
        raise DynrnnValueError(
            f"`mesh` must have an axis named 'batch', got axes {mesh.axis_names}."
        )
    return NamedSharding(mesh, PartitionSpec("batch"))


def _fit_supervised(
    model, data, *, loss, regularizer, optimizer, n_steps, batch_size, key, progress,
    checkpoint_dir, callbacks, steps_per_call, learning_rate, final_learning_rate, mesh,
):
    inputs, targets = data
    inputs = jnp.asarray(check_array(inputs, "data[0] (inputs)", finite=True))
    targets = jnp.asarray(check_array(targets, "data[1] (targets)", floating=False))
    if inputs.shape[0] != targets.shape[0]:
        raise DynrnnValueError(
            f"inputs and targets must have the same number of samples, got {inputs.shape[0]} "
            f"(shape {tuple(inputs.shape)}) and {targets.shape[0]} (shape {tuple(targets.shape)})."
        )
    loss_fn = _supervised_loss_fn(loss)
    if optimizer is None:
        schedule = optax.cosine_decay_schedule(
            learning_rate, n_steps, final_learning_rate / learning_rate
        )
        optimizer = optax.adam(schedule)
    else:
        schedule = None
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    dtype = jnp.result_type(*[x for x in jax.tree_util.tree_leaves(params)] or [float])
    n = inputs.shape[0]

    def total_loss(p, ub, yb, k):
        m = eqx.combine(p, static)
        value = loss_fn(m, ub, yb, key=k)
        if regularizer is not None:
            value = value + regularizer(m, ub)
        return value

    if mesh is not None:

        def shard_loss(p, ub, yb, k):
            # Each device's slice gets its own key (dropout masks independent across devices).
            k = jr.fold_in(k, jax.lax.axis_index("batch"))
            return loss_fn(eqx.combine(p, static), ub, yb, key=k)

        # `data_parallel` checks the mesh's axis name, so before the divisibility check.
        sharded_grad = data_parallel(jax.value_and_grad(shard_loss), mesh, n_sharded=2)
        _check_divisible(mesh, batch_size)

    def value_and_grad(p, ub, yb, k):
        if mesh is None:
            return jax.value_and_grad(total_loss)(p, ub, yb, k)
        # Data parallel: the loss (a mean over the batch) per device slice, averaged; the
        # regulariser once on the whole batch.
        value, grads = sharded_grad(p, ub, yb, k)
        if regularizer is not None:
            v2, g2 = jax.value_and_grad(
                lambda p: regularizer(eqx.combine(p, static), ub))(p)
            value, grads = value + v2, jax.tree.map(jnp.add, grads, g2)
        return value, grads

    def one_update(carry, step):
        p, o, alpha, stop = carry
        k = jr.fold_in(key, step)
        kb, kl = jr.split(k)
        idx = jr.randint(kb, (batch_size,), 0, n)
        ub, yb = inputs[idx], targets[idx]
        value, grads = value_and_grad(p, ub, yb, kl)
        updates, new_o = optimizer.update(grads, o, p)
        new_p = eqx.apply_updates(p, updates)
        active = (step < n_steps) & (stop < 0)
        ok = jnp.isfinite(value) & _all_finite(new_p)
        accept = active & ok
        new_stop = jnp.where(active & ~ok, step, stop)
        p = _select(accept, new_p, p)
        o = _select(accept, new_o, o)
        lr = schedule(step) if schedule is not None else jnp.nan
        return (p, o, alpha, new_stop), (value, alpha, jnp.asarray(lr, dtype))

    @eqx.filter_jit
    def run_chunk(p, o, alpha, start):
        steps = start + jnp.arange(steps_per_call)
        return jax.lax.scan(one_update, (p, o, alpha, jnp.asarray(-1)), steps)

    return _training_loop(
        kind="supervised", model=model, params=params, static=static, opt_state=opt_state,
        alpha=jnp.asarray(jnp.nan, dtype), run_chunk=run_chunk, n_steps=n_steps,
        steps_per_call=steps_per_call, progress=progress, checkpoint_dir=checkpoint_dir,
        callbacks=callbacks, evaluate_fn=None, eval_every=None, key=key,
        config=dict(n_steps=n_steps, batch_size=batch_size, steps_per_call=steps_per_call,
                    loss=loss if isinstance(loss, str) else getattr(loss, "__name__", "callable")),
        mesh=mesh,
    )


def _key_data(key) -> list:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)
    return np.asarray(key).tolist()


def _training_loop(
    *, kind, model, params, static, opt_state, alpha, run_chunk, n_steps, steps_per_call,
    progress, checkpoint_dir, callbacks, evaluate_fn, eval_every, key, config, mesh=None,
):
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    n_chunks = math.ceil(n_steps / steps_per_call)
    if eval_every is None:
        eval_every = steps_per_call * 10
    eval_every = max(steps_per_call, (eval_every // steps_per_call) * steps_per_call)
    n_evals = n_steps // eval_every + 1
    hist = {
        "loss": np.full(n_steps, np.nan),
        "alpha": np.full(n_steps, np.nan),
        "learning_rate": np.full(n_steps, np.nan),
        "eval_step": np.full(n_evals, -1, np.int64),
        "D_stsp": np.full(n_evals, np.nan),
        "D_H": np.full(n_evals, np.nan),
    }
    best_score = np.inf
    best_params = params
    start_chunk = 0
    n_done_evals = 0
    config = dict(config, kind=kind, key=_key_data(key))
    ckpt = pathlib.Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and (ckpt / "last.eqx").exists():
        (params, opt_state, alpha, start_chunk, hist, best_score, n_done_evals) = _resume(
            ckpt, model, params, static, opt_state, alpha, hist, config
        )
        best_file = ckpt / "best.eqx"
        if best_file.exists():
            best_params = eqx.partition(
                _checkpoint.load(best_file, like=eqx.combine(params, static)), eqx.is_inexact_array
            )[0]

    if mesh is not None:
        # Replicated on the mesh from the first call on, as every call returns them: otherwise
        # the second call would compile the whole update again for the new placement.
        from jax.sharding import NamedSharding, PartitionSpec

        params, opt_state, alpha = jax.device_put(
            (params, opt_state, alpha), NamedSharding(mesh, PartitionSpec()))
    bar = tqdm(total=n_steps, initial=min(start_chunk * steps_per_call, n_steps),
               disable=not progress, desc=f"fit {type(model).__name__}", unit="step",
               dynamic_ncols=True)
    last_logs: dict = {}
    diverged_at = None
    try:
        for chunk in range(start_chunk, n_chunks):
            start = chunk * steps_per_call
            (params, opt_state, alpha, stop), (losses, alphas, lrs) = run_chunk(
                params, opt_state, alpha, jnp.asarray(start)
            )
            stop = int(stop)
            losses, alphas, lrs = (np.asarray(v, np.float64) for v in (losses, alphas, lrs))
            end = min(start + steps_per_call, n_steps)
            n_valid = end - start
            hist["loss"][start:end] = losses[:n_valid]
            hist["alpha"][start:end] = alphas[:n_valid]
            hist["learning_rate"][start:end] = lrs[:n_valid]
            if stop >= 0:
                diverged_at = stop
                hist["loss"][stop + 1 : end] = np.nan
                break
            logs = {"loss": float(np.mean(losses[:n_valid]))}
            if kind == "reconstruction":
                logs["alpha"] = float(alphas[n_valid - 1])
            score = logs["loss"]
            if evaluate_fn is not None and (end % eval_every == 0 or end == n_steps):
                measures = evaluate_fn(eqx.combine(params, static))
                logs["D_stsp"] = float(measures["D_stsp"])
                logs["D_H"] = float(measures["D_H"])
                if n_done_evals < n_evals:
                    hist["eval_step"][n_done_evals] = end
                    hist["D_stsp"][n_done_evals] = logs["D_stsp"]
                    hist["D_H"][n_done_evals] = logs["D_H"]
                    n_done_evals += 1
                score = logs["D_stsp"] if np.isfinite(logs["D_stsp"]) else np.inf
            elif evaluate_fn is not None:
                score = None
            if score is not None and score < best_score:
                best_score = score
                best_params = params
                if ckpt is not None:
                    _checkpoint.save(ckpt / "best.eqx", eqx.combine(params, static),
                                     step=end, score=float(score), config=config)
            bar.update(n_valid)
            bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
            last_logs = logs
            if ckpt is not None:
                _save_last(ckpt, params, static, opt_state, alpha, chunk + 1, hist, best_score,
                           n_done_evals, config)
            stop_now = False
            for cb in callbacks:
                if cb(end, eqx.combine(params, static), logs) is True:
                    stop_now = True
            if stop_now:
                break
    finally:
        bar.close()

    n_run = n_steps
    history = _history_dataset(hist, n_done_evals, n_run, config)
    model_out = eqx.combine(params, static)
    result = FitResult(
        model=model_out,
        history=history,
        best_model=eqx.combine(best_params, static),
        alpha=float(alpha) if kind == "reconstruction" else None,
        steps=diverged_at if diverged_at is not None else n_steps,
        wall_time=time.perf_counter() - t_start,
    )
    if diverged_at is not None:
        err = TrainingDivergedError(
            f"training diverged at update {diverged_at}: the loss or the parameters became "
            f"non-finite (loss {hist['loss'][diverged_at]!r}). The last good model (before "
            "update {0}) is kept in `error.result.model`; lower the learning rate or the "
            "forcing interval.".format(diverged_at)
        )
        err.result = result
        err.step = diverged_at
        raise err
    del last_logs
    return result


def _history_dataset(hist, n_evals, n_steps, config) -> xr.Dataset:
    ds = xr.Dataset(
        {
            "loss": ("step", hist["loss"][:n_steps]),
            "alpha": ("step", hist["alpha"][:n_steps]),
            "learning_rate": ("step", hist["learning_rate"][:n_steps]),
        },
        coords={"step": np.arange(1, n_steps + 1)},
        attrs={"kind": config["kind"]},
    )
    if n_evals:
        ds = ds.assign(
            D_stsp=("eval_step", hist["D_stsp"][:n_evals]),
            D_H=("eval_step", hist["D_H"][:n_evals]),
        ).assign_coords(eval_step=hist["eval_step"][:n_evals])
    return ds


def _save_last(ckpt, params, static, opt_state, alpha, next_chunk, hist, best_score,
               n_done_evals, config):
    extra = {"opt_state": opt_state, "alpha": alpha,
             "history": {k: jnp.asarray(v) for k, v in hist.items()}}
    _checkpoint.save(
        ckpt / "last.eqx", eqx.combine(params, static), extra=extra,
        next_chunk=next_chunk, best_score=float(best_score) if np.isfinite(best_score) else None,
        n_done_evals=n_done_evals, config=config,
    )


def _resume(ckpt, model, params, static, opt_state, alpha, hist, config):
    like_extra = {"opt_state": opt_state, "alpha": alpha,
                  "history": {k: jnp.asarray(v) for k, v in hist.items()}}
    try:
        m, meta, extra = _checkpoint.load(
            ckpt / "last.eqx", like=eqx.combine(params, static), extra_like=like_extra,
            return_metadata=True,
        )
    except CheckpointError as e:
        raise CheckpointError(
            f"cannot resume from `checkpoint_dir` {str(ckpt)!r}: {e}. Delete the folder or pick "
            "another to start afresh."
        ) from e
    saved = meta.get("config", {})
    for name in ("kind", "n_steps", "batch_size", "seq_len", "key", "steps_per_call"):
        if name in config and saved.get(name) != config.get(name):
            raise CheckpointError(
                f"`checkpoint_dir` {str(ckpt)!r} holds a run with {name}={saved.get(name)!r}, "
                f"but this call has {name}={config.get(name)!r}; use another folder to start a "
                "different run."
            )
    params = eqx.partition(m, eqx.is_inexact_array)[0]
    hist = {k: np.array(v) for k, v in extra["history"].items()}
    best = meta.get("best_score")
    return (params, extra["opt_state"], extra["alpha"], int(meta["next_chunk"]), hist,
            np.inf if best is None else best, int(meta.get("n_done_evals", 0)))
