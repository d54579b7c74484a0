"""Callbacks for `dr.fit` beyond the built-in hooks."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp

from .._errors import check_positive
from ..models._base import model_dtype


class EarlyStopping:
    """A `dr.fit` callback that keeps the model with the lowest validation loss.

    After every host call of `dr.fit` it evaluates `loss(model, inputs, targets)` on the
    validation windows; `best_model` is the best model seen (the `initial` model counts, so
    training that never improves on the validation data returns its starting point), and
    training stops once `patience` evaluations in a row did not improve.

    **Arguments:**
    - `loss`: a loss `(model, inputs, targets, *, key) -> scalar`, e.g. `PredictionLoss`.
    - `inputs`, `targets`: validation windows (e.g. `loss.windows(validation_series)`); take
      them from the end of the training part, never from the test part.
    - `patience`: evaluations without improvement before stopping (`None`: never stop).
    - `initial`: the model before training, evaluated first.

    **Attributes:** `best_model`, `best_loss`, `best_step` (0 for `initial`), `history`
    (list of `(step, validation loss)`).
    """

    def __init__(self, loss, inputs, targets, *, patience: int | None = None, initial=None):
        if patience is not None:
            check_positive(patience, "patience", integer=True)
        self.loss = loss
        self.inputs = jnp.asarray(inputs)
        self.targets = jnp.asarray(targets)
        self.patience = patience
        self.best_model = None
        self.best_loss = math.inf
        self.best_step = -1
        self.history: list[tuple[int, float]] = []
        self._since = 0
        self._eval = eqx.filter_jit(lambda m, u, y: loss(m, u, y, key=None))
        if initial is not None:
            self(0, initial, {})

    def __call__(self, step: int, model, logs) -> bool:
        value = float(self._eval(model, self.inputs.astype(model_dtype(model)),
                                 self.targets.astype(model_dtype(model))))
        self.history.append((int(step), value))
        if value < self.best_loss:
            self.best_loss, self.best_model, self.best_step = value, model, int(step)
            self._since = 0
        else:
            self._since += 1
        return self.patience is not None and self._since >= self.patience
