"""`dr.fit_ensemble`: many reconstruction fits at once (seeds and hyperparameter settings).

DSR practice trains 20+ models per setting (Hess et al. 2023 report medians over 20 runs).
All members share the data, the teacher-forcing scheme and the batch shape; they differ in
their initial parameters (seeds), and optionally in a constant GTF α and the learning rate.
The update of `dr.fit` is `jax.vmap`-ed over the members, and with a `mesh` the member axis
is sharded over its devices (`NamedSharding`), so one compiled program trains them all.
"""

from __future__ import annotations

import dataclasses
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import xarray as xr

from .._errors import DynrnnValueError, check_positive
from ._fit import fit
from ._forcing import GTF


@dataclasses.dataclass
class EnsembleResult:
    """What `dr.fit_ensemble` returns: `models` (one per member), `history` (`loss`, `alpha`
    on dims `member` × `step`), `diverged` (per member, the update at which it stopped, or -1)
    and `wall_time`."""

    models: list
    history: xr.Dataset
    diverged: np.ndarray
    wall_time: float


def _relative_radam(n_steps: int, final_ratio: float, learning_rate: float = 1e-3):
    epochs = max(n_steps / 50.0, 1.0)
    factor = math.exp(math.log(final_ratio) / epochs)
    rel = optax.exponential_decay(1.0, transition_steps=50, decay_rate=factor, staircase=True,
                                  end_value=final_ratio)
    return optax.chain(
        optax.scale_by_radam(b1=0.9, b2=0.999, eps=1e-8),
        optax.scale_by_schedule(rel),
        optax.inject_hyperparams(optax.scale)(step_size=-learning_rate),
    )


def fit_ensemble(
    models,
    data,
    *,
    teacher_forcing=None,
    alphas=None,
    learning_rates=None,
    final_learning_rate_ratio: float = 1e-3,
    n_steps: int,
    batch_size: int = 16,
    seq_len: int = 200,
    key,
    noise: float = 0.0,
    steps_per_call: int = 50,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
) -> EnsembleResult:
    """Train several latent models of the same structure at once.

    **Arguments:**
    - `models`: a list of models with identical structure (e.g. built from different keys).
    - `data`, `teacher_forcing`, `n_steps`, `batch_size`, `seq_len`, `noise`,
      `steps_per_call`: as in `dr.fit`.
    - `alphas`: optional per-member constant GTF α (requires a constant `GTF`).
    - `learning_rates`: optional per-member initial learning rate (default 1e-3); each decays
      by the reference's staircase schedule to `final_learning_rate_ratio` of its start.
    - `key`: member `i` uses `fold_in(key, i)` (so member `i` repeats `dr.fit(..., key=
      fold_in(key, i))` with the same optimiser).
    - `mesh`: a `jax.sharding.Mesh` with an axis `"ensemble"`: members are sharded over it.

    **Returns:** an `EnsembleResult`.
    """
    from tqdm.auto import tqdm

    if not isinstance(models, list | tuple) or len(models) == 0:
        raise DynrnnValueError("`models` must be a non-empty list of models.")
    check_positive(n_steps, "n_steps", integer=True)
    n = len(models)
    structures = {jax.tree_util.tree_structure(eqx.filter(m, eqx.is_inexact_array))
                  for m in models}
    if len(structures) != 1:
        raise DynrnnValueError("all `models` must have the same structure (type and sizes).")
    tf = teacher_forcing if teacher_forcing is not None else GTF("adaptive")
    if alphas is not None:
        if len(alphas) != n:
            raise DynrnnValueError(
                f"`alphas` needs {n} values (one per model), got {len(alphas)}."
            )
        if not isinstance(tf, GTF) or tf.adaptive:
            raise DynrnnValueError(
                "per-member `alphas` need a constant `teacher_forcing=dr.GTF(a)`."
            )
    lrs = [1e-3] * n if learning_rates is None else list(learning_rates)
    if len(lrs) != n:
        raise DynrnnValueError(
            f"`learning_rates` needs {n} values (one per model), got {len(lrs)}."
        )
    optimizer = _relative_radam(n_steps, final_learning_rate_ratio)
    parts = fit(models[0], data, teacher_forcing=tf, n_steps=n_steps, batch_size=batch_size,
                seq_len=seq_len, key=key, noise=noise, steps_per_call=steps_per_call,
                optimizer=optimizer, progress=False, _return_update=True)
    static, one_update, dtype = parts["static"], parts["one_update"], parts["dtype"]
    params = [eqx.partition(m, eqx.is_inexact_array)[0] for m in models]
    states = []
    for p, lr in zip(params, lrs):
        st = optimizer.init(p)
        st = (st[0], st[1], st[2]._replace(
            hyperparams={"step_size": jnp.asarray(-lr, dtype)}))
        states.append(st)
    stack = lambda trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    P, S = stack(params), stack(states)
    alpha0 = jnp.asarray([tf.initial_alpha() if alphas is None else a for a in
                          (alphas or [None] * n)], dtype)
    keys = jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(n))
    # strongly typed, as the call returns it (a weak type made the second call compile again)
    stop0 = jnp.full((n,), -1, jax.dtypes.canonicalize_dtype(jnp.int64))
    if mesh is not None:
        from jax.sharding import NamedSharding, PartitionSpec

        if "ensemble" not in mesh.axis_names:
            raise DynrnnValueError(
                f"`mesh` must have an axis named 'ensemble', got {mesh.axis_names}."
            )
        shard = NamedSharding(mesh, PartitionSpec("ensemble"))
        P, S, alpha0, keys, stop0 = jax.device_put((P, S, alpha0, keys, stop0), shard)

    member_update = jax.vmap(one_update, in_axes=(0, None, 0))

    @eqx.filter_jit
    def run_chunk(carry, start):
        steps = start + jnp.arange(steps_per_call)
        return jax.lax.scan(lambda c, s: member_update(c, s, keys), carry, steps)

    t0 = time.perf_counter()
    losses = np.full((n, n_steps), np.nan)
    alphas_h = np.full((n, n_steps), np.nan)
    carry = (P, S, alpha0, stop0)
    n_chunks = math.ceil(n_steps / steps_per_call)
    with tqdm(total=n_steps, disable=not progress, desc=f"fit_ensemble ×{n}") as bar:
        for c in range(n_chunks):
            start = c * steps_per_call
            carry, (v, a, _) = run_chunk(carry, jnp.asarray(start))
            end = min(start + steps_per_call, n_steps)
            losses[:, start:end] = np.asarray(v).T[:, : end - start]
            alphas_h[:, start:end] = np.asarray(a).T[:, : end - start]
            bar.update(end - start)
            bar.set_postfix(loss=f"{np.nanmean(losses[:, start:end]):.4g}")
    P, _, _, stop = carry
    stop = np.asarray(stop)
    for i, s in enumerate(stop):
        if s >= 0:
            losses[i, s + 1:] = np.nan
    out = [eqx.combine(jax.tree_util.tree_map(lambda x, i=i: x[i], P), static) for i in range(n)]
    history = xr.Dataset(
        {"loss": (("member", "step"), losses), "alpha": (("member", "step"), alphas_h),
         "learning_rate": ("member", np.asarray(lrs, float))},
        coords={"member": np.arange(n), "step": np.arange(1, n_steps + 1)},
    )
    return EnsembleResult(models=out, history=history, diverged=stop,
                          wall_time=time.perf_counter() - t0)
