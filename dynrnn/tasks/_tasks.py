"""Tasks on which `dr.compare` trains and scores sequence architectures.

A task makes its data from a key (every architecture sees the same data), builds a
`dr.dsf.layers.SequenceModel` of the right input and output sizes around a mixer, supplies the
training loss in the contract of `dr.fit` (`loss(model, inputs, targets, *, key)`) and scores a
trained model on held-out data.

- `MQAR`: multi-query associative recall (Arora et al. 2024, Zoology; the DSF paper's task).
- `SequentialDigits`: the scikit-learn 8×8 digits read pixel by pixel (a small sequential MNIST).
- Reconstruction tasks (`dynrnn.tasks.Reconstruction`, in `_reconstruction.py`): learn a
  system's dynamics from a trajectory, scored by free runs against held-out data.
"""

from __future__ import annotations

import abc
import difflib
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray

from .._errors import DynrnnValueError, check_positive
from ..dsf._layers import SequenceModel


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

    return jax.jit(jax.vmap(one))(jr.split(key, n_examples))  # one compile, not one per op


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


TASKS = {"mqar": MQAR, "digits": SequentialDigits}
#: Kinds of reconstruction task and the constructor each calls (`make_task`).
RECONSTRUCTION_KINDS = ("lorenz63", "dataset", "system", "catalogue", "files")


def make_task(kind: str, /, **kwargs) -> AbstractTask:
    """A task by kind, with its keyword arguments:

    - `"mqar"`, `"digits"`: the sequence tasks (`MQAR(**kwargs)`, `SequentialDigits(...)`);
    - `"lorenz63"`: `Lorenz63Reconstruction(**kwargs)` (the shipped Lorenz-63 data);
    - `"dataset"`: `Reconstruction.from_dataset(name, ...)`;
    - `"system"`: `Reconstruction.from_system(system, ...)`;
    - `"catalogue"`: `Reconstruction.from_catalogue(system, ...)` (one flow; `dr.compare`
      expands a list `systems = [...]` into one task per flow);
    - `"files"`: `Reconstruction.from_files(train, test, ...)`.

    **Raises:** `DynrnnValueError` for an unknown kind or a missing argument.
    """
    from ._reconstruction import Lorenz63Reconstruction, Reconstruction

    kinds = sorted([*TASKS, *RECONSTRUCTION_KINDS])
    if kind not in kinds:
        close = difflib.get_close_matches(str(kind), kinds, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DynrnnValueError(f"task `kind` must be one of {kinds}, got {kind!r}{hint}.")
    if kind in TASKS:
        return TASKS[kind](**kwargs)
    if kind == "lorenz63":
        return Lorenz63Reconstruction(**kwargs)
    first = {"dataset": "name", "system": "system", "catalogue": "system", "files": "train"}[kind]
    if first not in kwargs:
        raise DynrnnValueError(f"a task of kind {kind!r} needs `{first}`.")
    arg = kwargs.pop(first)
    make = {"dataset": Reconstruction.from_dataset, "system": Reconstruction.from_system,
            "catalogue": Reconstruction.from_catalogue, "files": Reconstruction.from_files}
    try:
        return make[kind](arg, **kwargs)
    except TypeError as e:
        raise DynrnnValueError(f"task of kind {kind!r}: {e}") from e
