"""What a fit minimises: an objective prepares its data once, draws a batch, keeps a small
state between updates (the forcing strength of adaptive GTF) and gives the loss of a batch.

- `Reconstruction`: teacher-forced reconstruction of series by a latent model (Hess et al.,
  ICML 2023, Sec. 3): windows of `seq_len + 1` steps, the mean squared error of the unforced
  predictions under a teacher-forcing scheme, plus the model's penalty.
- `Supervised`: `loss(model, inputs, targets, *, key)` on batches of `(inputs, targets)` pairs.

The data-dependent part of the loss (`loss`) is a mean over the batch, so data-parallel
training can average it over slices of the batch; the rest (`extra_loss`: the model's penalty,
a regulariser of the whole batch) is evaluated once.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import types
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._errors import DynrnnTypeError, DynrnnValueError, check_array, check_positive
from ..forcing import GTF, AbstractTeacherForcing, forced_loss
from ..models import AbstractLatentModel, AbstractSolverStatsModel, AbstractStochasticModel
from ..models._base import model_dtype
from ..regularizers import AbstractSolverRegularizer
from ._data import as_series_list
from ._update import cosine_adam, default_optimizer


class AbstractObjective(eqx.Module):
    """A training objective (see the module docstring)."""

    @abc.abstractmethod
    def prepare(self, model, data) -> PyTree:
        """Check `data` against `model` and turn it into arrays (once, on the host)."""

    @abc.abstractmethod
    def sample(self, prepared: PyTree, key: PRNGKeyArray, batch_size: int) -> PyTree:
        """A batch drawn from the prepared data (inside the compiled update)."""

    @abc.abstractmethod
    def loss(self, model, batch: PyTree, state: PyTree, key: PRNGKeyArray) -> Float[Array, ""]:
        """The data loss of a batch: a mean over its samples."""

    def extra_loss(self, model, batch: PyTree) -> Float[Array, ""]:
        """Terms evaluated once per update on the whole batch (penalties)."""
        return jnp.zeros((), model_dtype(model) or jnp.result_type(float))

    def init_state(self, model) -> PyTree:
        """The objective's state at the first update."""
        return jnp.zeros((), model_dtype(model) or jnp.result_type(float))

    def update_state(self, model, state: PyTree, batch: PyTree, step) -> PyTree:
        """The state for this update's loss, from the model before the update."""
        return state

    def default_optimizer(self, n_steps: int, learning_rate: float = 1e-3,
                          final_learning_rate: float = 1e-6) -> optax.GradientTransformation:
        """The optimiser `dr.fit` uses when none is given (`dr.training.default_optimizer`:
        RAdam with the GTF reference's staircase decay)."""
        return default_optimizer(n_steps, learning_rate, final_learning_rate)

    def describe(self) -> dict:
        """The settings as JSON (recorded with checkpoints; a resumed run must match)."""
        out = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _describe(value)
        return out


def _describe(value):
    if isinstance(value, eqx.Module):
        out = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = _describe(getattr(value, f.name))
        return out
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_describe(v) for v in value]
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        return value.__qualname__
    return type(value).__qualname__


def fingerprint(tree: PyTree) -> str:
    """SHA-256 of the shapes, dtypes and bytes of the arrays of `tree` (the identity of a run's
    data, so that a checkpoint is resumed only with the same data)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class Windows(eqx.Module):
    """Training series stacked `(n_series, T_max, dims)` plus the table of valid windows."""

    series: Array
    starts: Array  # (n_windows, 2): series index, start index
    length: int = eqx.field(static=True)

    def sample(self, key, batch_size):
        idx = jr.randint(key, (batch_size,), 0, self.starts.shape[0])
        rows = self.starts[idx]

        def one(r):
            return jax.lax.dynamic_slice_in_dim(self.series[r[0]], r[1], self.length, axis=0)

        return jax.vmap(one)(rows)


def make_windows(series: list[np.ndarray], length: int, dtype) -> Windows:
    t_max = max(s.shape[0] for s in series)
    dims = series[0].shape[1]
    stacked = np.zeros((len(series), t_max, dims), dtype)
    starts = []
    for i, s in enumerate(series):
        stacked[i, : s.shape[0]] = s
        n = s.shape[0] - length + 1
        starts.append(np.stack([np.full(n, i), np.arange(n)], axis=1))
    return Windows(jnp.asarray(stacked), jnp.asarray(np.concatenate(starts), jnp.int32), length)


class Reconstruction(AbstractObjective):
    """Teacher-forced reconstruction of one or several series by a latent model.

    Each update draws `batch_size` windows of `seq_len + 1` steps (start indices uniform with
    replacement over all series), adds Gaussian noise of sd `noise` (targets too, as the
    reference code), runs the model under `teacher_forcing` and takes the mean squared error
    of the unforced predictions (`dynrnn.forcing.forced_loss`), plus `model.penalty()`.

    **Arguments:**
    - `teacher_forcing`: `dr.GTF(...)` or `dr.STF(...)` (default `GTF("adaptive")`).
    - `seq_len`: predicted steps per window.
    - `noise`: sd of the noise added to each batch.
    - `regularizer`: a solver regulariser of `dynrnn.regularizers` (applied inside the
      rollout, to the trajectory being trained, through the model's `step_with_stats`) or any
      callable `regularizer(model, batch) -> scalar` added once per update.
    """

    teacher_forcing: AbstractTeacherForcing
    seq_len: int = eqx.field(static=True)
    noise: float = eqx.field(static=True)
    regularizer: Callable | None

    def __init__(self, teacher_forcing: AbstractTeacherForcing | None = None, *,
                 seq_len: int = 200, noise: float = 0.0, regularizer: Callable | None = None):
        tf = GTF("adaptive") if teacher_forcing is None else teacher_forcing
        if not isinstance(tf, AbstractTeacherForcing):
            raise DynrnnTypeError(
                f"`teacher_forcing` must be dr.GTF(...) or dr.STF(...), got {type(tf).__name__}."
            )
        check_positive(seq_len, "seq_len", integer=True)
        if not (np.isfinite(noise) and noise >= 0):
            raise DynrnnValueError(f"`noise` must be a finite number >= 0, got {noise!r}.")
        if regularizer is not None and not callable(regularizer):
            raise DynrnnTypeError(
                f"`regularizer` must be a dr.regularizers regulariser or a callable "
                f"(model, batch) -> scalar, got {type(regularizer).__name__}."
            )
        self.teacher_forcing = tf
        self.seq_len = int(seq_len)
        self.noise = float(noise)
        self.regularizer = regularizer

    def _in_rollout(self, model) -> bool:
        return isinstance(self.regularizer, AbstractSolverRegularizer) and isinstance(
            model, AbstractSolverStatsModel)

    def prepare(self, model, data) -> Windows:
        if not isinstance(model, AbstractLatentModel):
            raise DynrnnTypeError(
                f"reconstruction needs a latent model (dr.models.AbstractLatentModel), got "
                f"{type(model).__name__}; for a sequence model pass `data=(inputs, targets)` "
                "with a supervised `loss` ('mse', 'cross_entropy' or a callable)."
            )
        if isinstance(self.regularizer, AbstractSolverRegularizer):
            self.regularizer.check(model)
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
        if self.seq_len + 1 > longest:
            raise DynrnnValueError(
                f"`seq_len`={self.seq_len} needs windows of {self.seq_len + 1} steps but the "
                f"longest series in `data` has {longest}."
            )
        series = [s for s in series if s.shape[0] >= self.seq_len + 1]
        dtype = np.dtype(model_dtype(model) or jnp.result_type(float))
        return make_windows(series, self.seq_len + 1, dtype)

    def sample(self, prepared, key, batch_size):
        kb, kn, kr = jr.split(key, 3)
        xb = prepared.sample(kb, batch_size)
        if self.noise:
            xb = xb + self.noise * jr.normal(kn, xb.shape, xb.dtype)
        # One key per window travels with the batch, so a data-parallel update gives each
        # window the key it would get on one device.
        return xb, jr.split(kr, batch_size)

    def init_state(self, model):
        dtype = model_dtype(model) or jnp.result_type(float)
        return jnp.asarray(self.teacher_forcing.initial_alpha(), dtype)

    def update_state(self, model, alpha, batch, step):
        xb, _ = batch
        zhat = jax.lax.stop_gradient(jax.vmap(jax.vmap(model.forcing_signal))(xb[:, 1:]))
        return self.teacher_forcing.update_alpha(model, alpha, zhat, step + 1)[0]

    def loss(self, model, batch, alpha, key):
        xb, keys = batch
        step = None
        if self._in_rollout(model):
            reg = self.regularizer

            def step(z, u, k):
                return reg.step(model, z, u, key=k)
        noisy = step is not None or isinstance(model, AbstractStochasticModel)
        tf = self.teacher_forcing

        def one(x, k):
            return forced_loss(model, x, tf, alpha, step=step, key=k if noisy else None)[0]

        return jnp.mean(jax.vmap(one)(xb, keys))

    def extra_loss(self, model, batch):
        value = model.penalty()
        if self.regularizer is not None and not self._in_rollout(model):
            value = value + self.regularizer(model, batch[0])
        return value


def _supervised_loss(loss):
    if callable(loss):
        return loss
    if loss == "mse":

        def mse(model, inputs, targets, *, key=None):
            return jnp.mean((jax.vmap(model)(inputs) - targets) ** 2)

        return mse
    if loss == "cross_entropy":

        def cross_entropy(model, inputs, targets, *, key=None):
            logits = jax.vmap(model)(inputs)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))

        return cross_entropy
    raise DynrnnValueError(
        "`loss` must be 'mse', 'cross_entropy', a callable (model, inputs, targets, *, key) or "
        f"an objective (dr.training.Reconstruction / Supervised), got {loss!r}."
    )


class Supervised(AbstractObjective):
    """`loss(model, inputs, targets, *, key)` on batches drawn with replacement from
    `data = (inputs, targets)` (leading sample axis).

    **Arguments:**
    - `loss`: `"mse"`, `"cross_entropy"` (integer targets, the model returns logits) or a
      callable (a mean over the batch; e.g. `dr.training.PredictionLoss`).
    - `regularizer`: a callable `regularizer(model, inputs) -> scalar` added once per update.
    """

    loss_fn: Callable
    regularizer: Callable | None
    name: str = eqx.field(static=True)

    def __init__(self, loss="mse", *, regularizer: Callable | None = None):
        self.loss_fn = _supervised_loss(loss)
        self.regularizer = regularizer
        self.name = loss if isinstance(loss, str) else _describe(loss)
        if isinstance(self.name, dict):
            self.name = self.name["type"]

    def default_optimizer(self, n_steps: int, learning_rate: float = 1e-3,
                          final_learning_rate: float = 1e-5) -> optax.GradientTransformation:
        """Adam with a cosine decay (`dr.training.cosine_adam`): on supervised sequence tasks
        it trains markedly better than RAdam with the staircase decay (measured in
        `docs/decisions.md`)."""
        return cosine_adam(n_steps, learning_rate, final_learning_rate)

    def prepare(self, model, data):
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise DynrnnTypeError(
                "supervised training needs `data=(inputs, targets)` with a leading sample "
                f"axis, got {type(data).__name__}."
            )
        inputs = jnp.asarray(check_array(data[0], "data[0] (inputs)", finite=True))
        targets = jnp.asarray(check_array(data[1], "data[1] (targets)", floating=False))
        if inputs.shape[0] != targets.shape[0]:
            raise DynrnnValueError(
                f"inputs and targets must have the same number of samples, got "
                f"{inputs.shape[0]} (shape {tuple(inputs.shape)}) and {targets.shape[0]} "
                f"(shape {tuple(targets.shape)})."
            )
        return inputs, targets

    def sample(self, prepared, key, batch_size):
        inputs, targets = prepared
        idx = jr.randint(key, (batch_size,), 0, inputs.shape[0])
        return inputs[idx], targets[idx]

    def loss(self, model, batch, state, key):
        return self.loss_fn(model, batch[0], batch[1], key=key)

    def extra_loss(self, model, batch):
        if self.regularizer is None:
            return super().extra_loss(model, batch)
        return self.regularizer(model, batch[0])

    def describe(self) -> dict:
        return {"type": "Supervised", "loss": self.name,
                "regularizer": _describe(self.regularizer)}


def objective_from(loss, teacher_forcing, regularizer, seq_len) -> AbstractObjective:
    """The objective `dr.fit` trains with: `loss` decides (an objective; `None`: teacher-forced
    reconstruction; a name or callable: supervised)."""
    if isinstance(loss, AbstractObjective):
        if teacher_forcing is not None or regularizer is not None:
            raise DynrnnValueError(
                "`teacher_forcing` and `regularizer` are settings of the objective; pass them "
                f"to {type(loss).__name__}(...) instead of dr.fit."
            )
        return loss
    if loss is None:
        return Reconstruction(teacher_forcing, seq_len=seq_len, regularizer=regularizer)
    if teacher_forcing is not None:
        raise DynrnnValueError(
            f"`teacher_forcing` applies to reconstruction (loss=None), not to loss={loss!r}."
        )
    return Supervised(loss, regularizer=regularizer)
