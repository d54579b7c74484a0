"""Tasks on which `dr.compare` trains and scores sequence architectures.

A task makes its data from a key (every architecture sees the same data), builds a
`dr.dsf.layers.SequenceModel` of the right input and output sizes around a mixer, supplies the
training loss in the contract of `dr.fit` (`loss(model, inputs, targets, *, key)`) and scores a
trained model on held-out data.

- `MQAR`: multi-query associative recall (Arora et al. 2024, Zoology; the DSF paper's task).
- `SequentialDigits`: the scikit-learn 8×8 digits read pixel by pixel (a small sequential MNIST).
- `Lorenz63Reconstruction`: next-step prediction on the shipped Lorenz-63 data, scored by the
  state-space divergence of a freely generated trajectory.
"""

from __future__ import annotations

import abc
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray

from .._errors import DynrnnValueError, check_array, check_positive
from ..dsf._layers import SequenceModel
from ..models import AbstractLatentModel
from ..models._base import model_dtype


IGNORE = -1  # target of unscored positions


class TaskData(NamedTuple):
    """Training and held-out inputs and targets, each with a leading sample axis."""

    train_inputs: Array
    train_targets: Array
    test_inputs: Array
    test_targets: Array


class AbstractTask(eqx.Module):
    """A supervised sequence task: data, model shape, loss and score.

    Subclasses set the class attributes `metric` (name of the main score) and
    `higher_is_better`, and implement `make_data`, `make_model`, `loss` and `score`.
    """

    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    seq_len: eqx.AbstractVar[int]

    @abc.abstractmethod
    def make_data(self, key: PRNGKeyArray) -> TaskData:
        """The task's data, deterministic given `key`."""

    @abc.abstractmethod
    def make_model(self, mixer, *, d_model: int, n_layers: int, key: PRNGKeyArray,
                   mixer_kwargs: dict | None = None) -> SequenceModel:
        """A `SequenceModel` around `mixer` with this task's input and output sizes."""

    @abc.abstractmethod
    def loss(self, model, inputs, targets, *, key=None):
        """The training loss on a batch (the `dr.fit` contract)."""

    @abc.abstractmethod
    def score(self, model, data: TaskData) -> dict[str, float]:
        """Held-out scores; the first entry is `metric`."""


def _masked_accuracy(model, inputs, targets, batch: int = 256) -> float:
    """Accuracy over the scored (`target != IGNORE`) positions, in batches."""
    fwd = eqx.filter_jit(lambda m, x: jnp.argmax(jax.vmap(m)(x), axis=-1))
    correct = total = 0
    for s in range(0, inputs.shape[0], batch):
        pred = np.asarray(fwd(model, inputs[s:s + batch]))
        t = np.asarray(targets[s:s + batch])
        scored = t != IGNORE
        correct += int(np.sum((pred == t) & scored))
        total += int(np.sum(scored))
    return correct / max(total, 1)


def _masked_cross_entropy(model, inputs, targets, *, key=None):
    logits = jax.vmap(model)(inputs)
    scored = targets != IGNORE
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(scored, targets, 0))
    return jnp.sum(jnp.where(scored, ce, 0.0)) / jnp.maximum(jnp.sum(scored), 1)


# -- MQAR -----------------------------------------------------------------------------------


def mqar(
    key: PRNGKeyArray,
    n_examples: int,
    *,
    vocab_size: int = 128,
    seq_len: int = 64,
    n_pairs: int = 8,
    power_a: float = 0.01,
) -> tuple[Int[Array, "n L"], Int[Array, "n L"]]:
    """Multi-query associative recall examples (Arora et al. 2024, Zoology, `multiquery_ar`
    with `random_non_queries=False`, as in the DSF paper's configs).

    Each example starts with `n_pairs` key-value pairs `k_1 v_1 … k_P v_P` (distinct keys from
    `[1, V/2)`, distinct values from `[V/2, V)`); every key is then queried once, at position
    `2P + 2g` with the gaps `g` drawn without replacement from `p(g) ∝ (g + 1)^{a − 1}`
    (`g < (L − 2P)/2`, `a = power_a`: most queries come soon after the context). All other
    positions are 0. The target at a query position is the value of its key; all other targets
    are `IGNORE` (−1).

    **Arguments:**
    - `key`: PRNG key (the examples are a deterministic function of it).
    - `n_examples`: number of sequences.
    - `vocab_size`: `V` (the paper: 8 192; CPU-sized: 64–256).
    - `seq_len`: `L`, even.
    - `n_pairs`: `P`, with `4P ≤ L` and `P < V/2`.
    - `power_a`: the power-law exponent (0.01 in the paper).

    **Returns:** `(inputs, targets)`, int32 arrays `(n_examples, seq_len)`.

    **Raises:** `DynrnnValueError` for inconsistent sizes.
    """
    check_positive(n_examples, "n_examples", integer=True)
    check_positive(n_pairs, "n_pairs", integer=True)
    check_positive(seq_len, "seq_len", integer=True)
    check_positive(vocab_size, "vocab_size", integer=True)
    if seq_len % 2:
        raise DynrnnValueError(f"`seq_len` must be even, got {seq_len}.")
    if 4 * n_pairs > seq_len:
        raise DynrnnValueError(
            f"`n_pairs` must satisfy 4·n_pairs <= seq_len, got n_pairs={n_pairs}, "
            f"seq_len={seq_len}."
        )
    if n_pairs > vocab_size // 2 - 1:
        raise DynrnnValueError(
            f"`vocab_size` {vocab_size} has only {vocab_size // 2 - 1} key tokens, fewer than "
            f"`n_pairs`={n_pairs}."
        )
    half, ctx = vocab_size // 2, 2 * n_pairs
    space = (seq_len - ctx) // 2
    g = np.arange(1, space + 1, dtype=np.float64)
    p = jnp.asarray(power_a * g ** (power_a - 1) / np.sum(power_a * g ** (power_a - 1)))

    def one(k):
        kk, kv, kg = jr.split(k, 3)
        keys = jr.permutation(kk, jnp.arange(1, half, dtype=jnp.int32))[:n_pairs]
        vals = jr.permutation(kv, jnp.arange(half, vocab_size, dtype=jnp.int32))[:n_pairs]
        gaps = jr.choice(kg, space, (n_pairs,), replace=False, p=p).astype(jnp.int32)
        inputs = jnp.zeros(seq_len, jnp.int32)
        inputs = inputs.at[0:ctx:2].set(keys).at[1:ctx:2].set(vals)
        pos = ctx + 2 * gaps
        inputs = inputs.at[pos].set(keys)
        targets = jnp.full(seq_len, IGNORE, jnp.int32).at[pos].set(vals)
        return inputs, targets

    return jax.vmap(one)(jr.split(key, n_examples))


class MQAR(AbstractTask):
    """Multi-query associative recall (see `mqar`); score: accuracy on the queries.

    **Arguments:** `vocab_size` (128), `seq_len` (64), `n_pairs` (8), `n_train` (4 000),
    `n_test` (500), `power_a` (0.01).
    """

    vocab_size: int = eqx.field(static=True, default=128)
    seq_len: int = eqx.field(static=True, default=64)
    n_pairs: int = eqx.field(static=True, default=8)
    n_train: int = eqx.field(static=True, default=4000)
    n_test: int = eqx.field(static=True, default=500)
    power_a: float = eqx.field(static=True, default=0.01)
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    def make_data(self, key):
        k1, k2 = jr.split(key)
        kw = dict(vocab_size=self.vocab_size, seq_len=self.seq_len, n_pairs=self.n_pairs,
                  power_a=self.power_a)
        return TaskData(*mqar(k1, self.n_train, **kw), *mqar(k2, self.n_test, **kw))

    def make_model(self, mixer, *, d_model, n_layers, key, mixer_kwargs=None):
        return SequenceModel(self.vocab_size, self.vocab_size, mixer, d_model=d_model,
                             n_layers=n_layers, max_length=self.seq_len, tokens=True,
                             mixer_kwargs=mixer_kwargs, key=key)

    def loss(self, model, inputs, targets, *, key=None):
        return _masked_cross_entropy(model, inputs, targets)

    def score(self, model, data):
        return {"accuracy": _masked_accuracy(model, data.test_inputs, data.test_targets)}


# -- sequential digits ----------------------------------------------------------------------


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the sequential-digits task needs scikit-learn (its 8×8 digits data set ships with "
            "it): pip install 'dynrnn[digits]' or pip install scikit-learn"
        ) from e
    d = load_digits()
    return d.images.reshape(len(d.images), -1, 1) / 16.0, d.target


class SequentialDigits(AbstractTask):
    """The scikit-learn 8×8 handwritten digits (1 797 images) read as sequences of 64 pixels
    (values in [0, 1]) and classified from the last step; score: held-out accuracy.

    **Arguments:** `test_fraction` (0.2; the split is a random permutation drawn from the key).

    **Raises:** `ImportError` with instructions if scikit-learn is not installed.
    """

    test_fraction: float = eqx.field(static=True, default=0.2)
    seq_len: int = eqx.field(static=True, default=64)
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    def make_data(self, key):
        x, y = _load_digits()
        perm = np.asarray(jr.permutation(key, len(y)))
        n_test = int(round(self.test_fraction * len(y)))
        te, tr = perm[:n_test], perm[n_test:]
        x, y = jnp.asarray(x), jnp.asarray(y, jnp.int32)
        return TaskData(x[tr], y[tr], x[te], y[te])

    def make_model(self, mixer, *, d_model, n_layers, key, mixer_kwargs=None):
        return SequenceModel(1, 10, mixer, d_model=d_model, n_layers=n_layers,
                             max_length=self.seq_len, tokens=False, pool="last",
                             mixer_kwargs=mixer_kwargs, key=key)

    def loss(self, model, inputs, targets, *, key=None):
        logits = jax.vmap(model)(inputs)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))

    def score(self, model, data):
        fwd = eqx.filter_jit(lambda m, x: jnp.argmax(jax.vmap(m)(x), axis=-1))
        pred = np.asarray(fwd(model, data.test_inputs))
        return {"accuracy": float(np.mean(pred == np.asarray(data.test_targets)))}


# -- Lorenz-63 reconstruction ---------------------------------------------------------------


def _load_lorenz(name: str):
    from .. import datasets

    ds = datasets.load(name)
    var = "state" if "state" in ds else next(iter(ds.data_vars))
    return np.asarray(ds[var].values, dtype=np.float64)


class Lorenz63Reconstruction(AbstractTask):
    """Dynamical-systems reconstruction of Lorenz-63 by a sequence model: trained on next-step
    prediction (MSE) over windows of `seq_len + 1` steps of the training series, then run freely
    (each new point is predicted from the last `seq_len` generated ones, starting from the first
    `seq_len` test points) for `n_generate` steps and scored by the state-space divergence
    `D_stsp` (binned, `dr.metrics.state_space_divergence`; lower is better) and the power-spectrum
    distance `D_H` (`dr.metrics.power_spectrum_distance`) against the test series.

    **Arguments:**
    - `train`, `test`: `(time, 3)` series; by default the shipped data sets
      `dr.datasets.load("lorenz63_train")` and `"lorenz63_test"`.
    - `seq_len` (64), `n_windows` (2 000 training windows drawn from the key), `n_generate`
      (5 000), `n_bins` (30, for D_stsp).
    """

    train: np.ndarray | None = None
    test: np.ndarray | None = None
    seq_len: int = eqx.field(static=True, default=64)
    n_windows: int = eqx.field(static=True, default=2000)
    n_generate: int = eqx.field(static=True, default=5000)
    n_bins: int = eqx.field(static=True, default=30)
    metric: ClassVar[str] = "D_stsp"
    higher_is_better: ClassVar[bool] = False

    def _series(self):
        train = _load_lorenz("lorenz63_train") if self.train is None else self.train
        test = _load_lorenz("lorenz63_test") if self.test is None else self.test
        train = np.asarray(check_array(train, "train", ndim=2, min_len=self.seq_len + 2))
        test = np.asarray(check_array(test, "test", ndim=2, min_len=self.seq_len + 2,
                                      dims=train.shape[1]))
        return train, test

    def train_series(self) -> np.ndarray:
        """The training series `(time, dims)`."""
        return self._series()[0]

    def make_data(self, key):
        train, test = self._series()
        starts = np.asarray(jr.randint(key, (self.n_windows,), 0,
                                       train.shape[0] - self.seq_len - 1))
        idx = starts[:, None] + np.arange(self.seq_len + 1)
        win = jnp.asarray(train[idx])
        n_gen = min(self.n_generate, test.shape[0])
        test = jnp.asarray(test[:n_gen])
        return TaskData(win[:, :-1], win[:, 1:], test[None, : self.seq_len], test[None])

    def make_model(self, mixer, *, d_model, n_layers, key, mixer_kwargs=None):
        n = 3 if self.train is None else np.shape(self.train)[1]
        return SequenceModel(n, n, mixer, d_model=d_model, n_layers=n_layers,
                             max_length=self.seq_len, tokens=False,
                             mixer_kwargs=mixer_kwargs, key=key)

    def loss(self, model, inputs, targets, *, key=None):
        return jnp.mean((jax.vmap(model)(inputs) - targets) ** 2)

    def generate(self, model, context, n_steps: int):
        """Free-running prediction: `n_steps` points after the `(seq_len, dims)` context."""

        @eqx.filter_jit
        def run(m, ctx):
            # The window carries the model's precision (a float64 model on float32 data
            # would otherwise change the carry's dtype inside the scan).
            params = jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array))
            ctx = ctx.astype(jnp.result_type(ctx, *params))

            def step(window, _):
                nxt = m(window)[-1].astype(window.dtype)
                return jnp.concatenate([window[1:], nxt[None]]), nxt

            return jax.lax.scan(step, ctx, None, length=n_steps)[1]

        return run(model, context)

    def score(self, model, data):
        """`D_stsp` and `D_H` of a freely generated series against the test series: a
        sequence model continues the first `seq_len` test points (`generate`); a latent model
        (`dr.models.AbstractLatentModel`) runs from `init_state` of the first test point."""
        from .. import metrics

        true = data.test_targets[0]
        if isinstance(model, AbstractLatentModel):
            gen = _latent_orbit(model, true[0], true.shape[0])
        else:
            gen = self.generate(model, data.test_inputs[0], true.shape[0] - self.seq_len)
            gen = jnp.concatenate([data.test_inputs[0], gen])
        if not bool(jnp.all(jnp.isfinite(gen))):
            return {"D_stsp": float("inf"), "D_H": 1.0}
        d_stsp = metrics.state_space_divergence(true, gen, n_bins=self.n_bins)
        d_h = metrics.power_spectrum_distance(true, gen)
        return {"D_stsp": float(d_stsp), "D_H": float(d_h)}


@eqx.filter_jit
def _latent_orbit(model, x0, n: int):
    x0 = x0.astype(model_dtype(model) or x0.dtype)
    z1 = model.init_state(x0)
    zs = jnp.concatenate([z1[None], model.rollout(z1, n - 1)])
    return jax.vmap(model.observe)(zs)


TASKS = {"mqar": MQAR, "digits": SequentialDigits, "lorenz63": Lorenz63Reconstruction}


def make_task(name: str, **kwargs) -> AbstractTask:
    """A task by name: `"mqar"`, `"digits"`, `"lorenz63"`, with its keyword arguments.

    **Raises:** `DynrnnValueError` for an unknown name.
    """
    if name not in TASKS:
        raise DynrnnValueError(f"task `kind` must be one of {sorted(TASKS)}, got {name!r}.")
    return TASKS[name](**kwargs)
