"""Reconstruction tasks: learn a system's dynamics from a (noisy) training trajectory, then run
freely and compare the generated trajectory with held-out test data.

A task holds a training series (its last `validation_fraction` held out for choosing
hyperparameters), a test series, the sampling interval `dt` and, where known, the data's
largest Lyapunov exponent. It makes its data from a shipped dataset, a `dr.systems` system
simulated on the fly, a flow of the dysts catalogue, or a user's files. Every model is scored
the same way on the test series:

- `D_stsp`: state-space divergence of a free run of the test's length (binned for ≤ 5
  dimensions, Gaussian mixture above; `dr.metrics.state_space_divergence(method="auto")`);
- `D_H`: power-spectrum distance of the same run (`dr.metrics.power_spectrum_distance`);
- `PE20`: mean squared error 20 steps ahead, from `n_starts` start points spread over the test
  series (each model reads the data up to the start point its own way: `init_state` of the
  point for latent models, the `window` observations up to it for regression models, the
  `seq_len` points up to it for sequence models);
- `lambda_max`: the largest Lyapunov exponent of the model's map along its free run, per
  time unit (`dr.metrics.max_lyapunov` ÷ `dt`; NaN for sequence models, which have no state
  map); the data's value is the task's `lyapunov`.
"""

from __future__ import annotations

import json
import pathlib
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._errors import DynrnnValueError, check_array, check_positive
from ..dsf._layers import SequenceModel
from ..models import AbstractLatentModel, AbstractRegressionModel
from ..models._base import model_dtype
from ._tasks import AbstractTask, TaskData


MEASURES = ("D_stsp", "D_H", "PE20", "lambda_max")
#: Whether a higher value of each measure is better.
HIGHER_IS_BETTER = {"D_stsp": False, "D_H": False, "PE20": False, "lambda_max": False,
                    "accuracy": True}


def _standardise(train, test):
    mean, sd = train.mean(0), train.std(0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    return (train - mean) / sd, (test - mean) / sd


class Reconstruction(AbstractTask):
    """Dynamical-systems reconstruction of one series (see the module's docstring).

    Build it from data with the class methods `from_dataset`, `from_system`,
    `from_catalogue` and `from_files`, or directly:

    **Arguments:**
    - `train`, `test`: `(time, dims)` series.
    - `dt`: sampling interval in time units (`None`: 1, exponents then per step).
    - `lyapunov`: the data's largest Lyapunov exponent per time unit (`None`: unknown).
    - `standardize`: z-score both series with the training series' mean and sd (default
      `True`, so that every model sees data of unit scale).
    - `validation_fraction`: the end of the training series held out for choosing settings
      (0.2).
    - `seq_len`: training window of every model and context of sequence models (64).
    - `n_windows`: training windows of sequence models (2 000).
    - `n_generate`: length of the free run and of the test series scored (100 000, or the
      test series' length if shorter). D_stsp needs long series: with 30 bins per dimension,
      two 5 000-point pieces of the true Lorenz-63 attractor differ by D_stsp ≈ 1.0, two
      100 000-point ones by 0.16.
    - `n_bins`: bins per dimension of `D_stsp` (30).
    - `n_starts`: start points of `PE20` (200).
    """

    train: np.ndarray | None = None
    test: np.ndarray | None = None
    dt: float | None = eqx.field(static=True, default=None)
    lyapunov: float | None = eqx.field(static=True, default=None)
    standardize: bool = eqx.field(static=True, default=True)
    validation_fraction: float = eqx.field(static=True, default=0.2)
    seq_len: int = eqx.field(static=True, default=64)
    n_windows: int = eqx.field(static=True, default=2000)
    n_generate: int = eqx.field(static=True, default=100_000)
    n_bins: int = eqx.field(static=True, default=30)
    n_starts: int = eqx.field(static=True, default=200)
    metric: ClassVar[str] = "D_stsp"
    higher_is_better: ClassVar[bool] = False
    measures: ClassVar[tuple[str, ...]] = MEASURES

    def __check_init__(self):
        frac = self.validation_fraction
        if not (isinstance(frac, int | float) and 0.0 <= frac < 0.9):
            raise DynrnnValueError(f"`validation_fraction` must lie in [0, 0.9), got {frac!r}.")
        for name in ("seq_len", "n_windows", "n_generate", "n_bins", "n_starts"):
            check_positive(getattr(self, name), name, integer=True)
        if self.dt is not None:
            check_positive(self.dt, "dt")

    # -- data ------------------------------------------------------------------------------

    def _series(self) -> tuple[np.ndarray, np.ndarray]:
        if self.train is None or self.test is None:
            raise DynrnnValueError("a Reconstruction task needs `train` and `test` series.")
        train = np.asarray(check_array(self.train, "train", ndim=2, min_len=self.seq_len + 2),
                           np.float64)
        test = np.asarray(check_array(self.test, "test", ndim=2, min_len=self.seq_len + 2,
                                      dims=train.shape[1]), np.float64)
        if self.standardize:
            train, test = _standardise(train, test)
        return train, test

    @property
    def n_dims(self) -> int:
        """Dimension of the series."""
        return int(np.shape(self.train)[1])

    def _split(self):
        train, test = self._series()
        n_val = int(self.validation_fraction * train.shape[0])
        if n_val and n_val < 2 * (self.seq_len + 2):
            raise DynrnnValueError(
                f"the validation part ({n_val} points) is shorter than two training windows "
                f"(seq_len={self.seq_len}); use a longer series or a smaller seq_len."
            )
        fit = train[: train.shape[0] - n_val] if n_val else train
        val = train[train.shape[0] - n_val:] if n_val else None
        return fit, val, test

    def train_series(self) -> np.ndarray:
        """The part of the training series models are fitted to (validation part removed)."""
        return self._split()[0]

    def validation_series(self) -> np.ndarray | None:
        """The held-out end of the training series (`None` when `validation_fraction` is 0)."""
        return self._split()[1]

    def test_series(self) -> np.ndarray:
        """The test series as the models see it (standardised like the training data)."""
        return self._split()[2]

    def make_data(self, key):
        """Training windows for sequence models (`seq_len + 1` points from the fitting part;
        inputs and next-step targets) and the test series."""
        fit, _, test = self._split()
        starts = np.asarray(jr.randint(key, (self.n_windows,), 0,
                                       fit.shape[0] - self.seq_len - 1))
        win = jnp.asarray(fit[starts[:, None] + np.arange(self.seq_len + 1)])
        test = jnp.asarray(test[: min(self.n_generate, test.shape[0])])
        return TaskData(win[:, :-1], win[:, 1:], test[None, : self.seq_len], test[None])

    def make_model(self, mixer, *, d_model, n_layers, key, mixer_kwargs=None):
        n = self.n_dims
        return SequenceModel(n, n, mixer, d_model=d_model, n_layers=n_layers,
                             max_length=self.seq_len, tokens=False,
                             mixer_kwargs=mixer_kwargs, key=key)

    def loss(self, model, inputs, targets, *, key=None):
        return jnp.mean((jax.vmap(model)(inputs) - targets) ** 2)

    # -- free runs -------------------------------------------------------------------------

    def generate(self, model, context, n_steps: int):
        """Free-running prediction of a sequence model: `n_steps` points after the
        `(seq_len, dims)` context."""
        return _generate_sequence(model, jnp.asarray(context), n_steps)

    def free_run(self, model, data: np.ndarray, n: int | None = None) -> jax.Array:
        """A free run of `model` of `n` points (default `len(data)`) that starts as the data
        does: latent models from `init_state(data[0])`, regression models after reading
        their `window`, sequence models after `seq_len` points (the points read are part of
        the returned run)."""
        data = jnp.asarray(data)
        n = data.shape[0] if n is None else n
        if isinstance(model, AbstractRegressionModel):
            return _regression_run(model, data[: model.window], n)
        if isinstance(model, AbstractLatentModel):
            return _latent_run(model, data[0], n)
        ctx = data[: self.seq_len]
        return jnp.concatenate([ctx, self.generate(model, ctx, n - self.seq_len)])

    def prediction_error(self, model, data: np.ndarray, n: int = 20) -> float:
        """Mean squared error `n` steps ahead from `n_starts` start points of `data`."""
        data = jnp.asarray(data)
        if isinstance(model, AbstractRegressionModel):
            lead = model.window
        elif isinstance(model, AbstractLatentModel):
            lead = 1
        else:
            lead = self.seq_len
        last = data.shape[0] - n
        if last <= lead:
            return float("nan")
        starts = np.unique(np.linspace(lead, last, min(self.n_starts, last - lead + 1))
                           .astype(int))
        if isinstance(model, AbstractLatentModel):
            preds = _latent_predictions(model, data, jnp.asarray(starts), n, lead,
                                        isinstance(model, AbstractRegressionModel))
        else:
            preds = jnp.stack([self.generate(model, data[s - lead: s], n)[-1] for s in starts])
        err = (preds - data[starts + n - 1]) ** 2
        return float(jnp.mean(err))

    def validation_score(self, model) -> float:
        """`D_stsp` of a free run as long as the validation series (inf for a non-finite
        run); `nan` without a validation part."""
        val = self.validation_series()
        if val is None:
            return float("nan")
        gen = self.free_run(model, val)
        return _d_stsp(val, gen, self.n_bins)

    def score(self, model, data: TaskData | None = None, *,
              measures=MEASURES) -> dict[str, float]:
        """The `measures` (default `D_stsp`, `D_H`, `PE20`, `lambda_max`) of `model` on the
        test series (`data` is not needed: the task holds its series)."""
        test = self.test_series()
        test = test[: min(self.n_generate, test.shape[0])]
        return self._score_run(model, test, self.free_run(model, test), measures)

    def _score_run(self, model, test, gen, measures=MEASURES) -> dict[str, float]:
        """`score` of `model` given its free run `gen = free_run(model, test)` (`test`: the
        test series' first `n_generate` points), which is not made again."""
        from .. import metrics
        from ..metrics._spectrum import smoothing_for_length

        out = {"D_stsp": _d_stsp(test, gen, self.n_bins)}
        finite = bool(jnp.all(jnp.isfinite(gen)))
        if "D_H" in measures:
            # 20 bins, fewer for a test series too short for them (a short recording)
            out["D_H"] = (float(metrics.power_spectrum_distance(
                test, gen, smoothing=smoothing_for_length(test.shape[0]))) if finite else 1.0)
        if "PE20" in measures:
            out["PE20"] = self.prediction_error(model, test)
        if "lambda_max" in measures:
            out["lambda_max"] = float("nan")
        if "lambda_max" in measures and isinstance(model, AbstractLatentModel) and finite:
            if isinstance(model, AbstractRegressionModel):
                z0 = model.state_from(jnp.asarray(test[: model.window]))
            else:
                z0 = model.init_state(jnp.asarray(test[0], model_dtype(model)))
            n = min(4000, max(500, test.shape[0]))
            lam = metrics.max_lyapunov(model, z0, n_steps=n, transient=min(500, n // 4))
            out["lambda_max"] = float(lam) / (self.dt or 1.0)
        return out

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def from_dataset(cls, name: str, **kwargs) -> Reconstruction:
        """A task on a shipped dataset: `NAME_train`/`NAME_test` when both exist (e.g.
        `"lorenz63"`), else the dataset `NAME` split 80/20 in time."""
        from .. import datasets

        known = datasets.names()
        if f"{name}_train" in known and f"{name}_test" in known:
            tr, te = datasets.load(f"{name}_train"), datasets.load(f"{name}_test")
        elif name in known:
            tr = te = datasets.load(name)
        else:
            raise DynrnnValueError(
                f"unknown dataset {name!r}; shipped: {', '.join(sorted(known))} "
                "(a pair NAME_train/NAME_test is used as one task called NAME)."
            )
        train = np.asarray(tr["state"].values, np.float64)
        test = np.asarray(te["state"].values, np.float64)
        if tr is te:
            cut = int(0.8 * train.shape[0])
            train, test = train[:cut], train[cut:]
        kwargs.setdefault("dt", _attr_float(tr.attrs.get("dt")))
        kwargs.setdefault("lyapunov", _max_exponent(tr.attrs.get("lyapunov_spectrum")))
        return cls(train=train, test=test, **kwargs)

    @classmethod
    def from_system(cls, system, *, dt: float | None = None, n_train: int = 20_000,
                    n_test: int = 10_000, noise: float = 0.05, transient: float | None = None,
                    key=None, lyapunov: float | None = None, points_per_period: int = 40,
                    **kwargs) -> Reconstruction:
        """A task simulated from a `dr.systems` system (an instance or a name): a noisy
        training trajectory (observation noise `noise` in units of the data's sd) and a clean
        test trajectory that continues it after a gap, both sampled every `dt` (default: the
        flow's dominant period / `points_per_period`, estimated from its spectrum).

        **Arguments:** `system`; `dt`; `n_train`, `n_test` (points); `noise`; `transient`
        (time dropped first; default 50 dominant periods); `key` (noise; default
        `PRNGKey(0)`); `lyapunov` (default: the system's reference exponent); the task's own
        keywords.
        """
        from .. import systems

        system = systems.get(system) if isinstance(system, str) else system
        check_positive(n_train, "n_train", integer=True)
        check_positive(n_test, "n_test", integer=True)
        check_positive(noise, "noise", strict=False)
        period = None
        if dt is None or transient is None:
            period = dominant_period(system)
        dt = period / points_per_period if dt is None else dt
        transient = 50.0 * period if transient is None else transient
        gap = max(1, int(round(10.0 * (period or dt * points_per_period) / dt)))
        ds = systems.simulate(system, n_steps=n_train + gap + n_test, dt=dt, transient=transient)
        clean = np.asarray(ds["state"].values, np.float64)
        train, test = clean[:n_train].copy(), clean[n_train + gap:]
        if noise > 0:
            key = jr.PRNGKey(0) if key is None else key
            sd = train.std(0, ddof=1)
            train = train + noise * sd * np.asarray(
                jr.normal(key, train.shape, jnp.float64 if jax.config.jax_enable_x64
                          else jnp.float32), np.float64)
        spectrum = system.lyapunov_spectrum()
        if lyapunov is None and spectrum is not None:
            lyapunov = float(max(spectrum))
        return cls(train=train, test=test, dt=float(dt), lyapunov=lyapunov, **kwargs)

    @classmethod
    def from_catalogue(cls, name: str, *, catalogue: str | pathlib.Path | None = None,
                       points_per_period: int = 40, **kwargs) -> Reconstruction:
        """A task on a flow of the dysts catalogue (Gilpin 2021) that `dr.systems` implements,
        simulated as in `from_system`. With `catalogue` (the path of dysts'
        `chaotic_attractors.json`), the sampling interval is the catalogue's `period` /
        `points_per_period` and the data's exponent its `maximum_lyapunov_estimated`;
        without, both come from `dr.systems` (the period estimated from the spectrum)."""
        from .. import systems

        system = systems.get(name)
        if catalogue is not None:
            facts = load_catalogue(catalogue)
            entry = facts.get(type(system).__name__) or facts.get(name)
            if entry is None:
                raise DynrnnValueError(
                    f"system {name!r} is not in the catalogue {str(catalogue)!r}."
                )
            if entry.get("period"):
                kwargs.setdefault("dt", float(entry["period"]) / points_per_period)
                kwargs.setdefault("transient", 50.0 * float(entry["period"]))
            if entry.get("maximum_lyapunov_estimated") is not None:
                kwargs.setdefault("lyapunov", float(entry["maximum_lyapunov_estimated"]))
        return cls.from_system(system, points_per_period=points_per_period, **kwargs)

    @classmethod
    def from_files(cls, train, test=None, *, dt: float | None = None, **kwargs) -> Reconstruction:
        """A task on a user's files (`.npy`, `.csv`, `.nc`, recordings; anything
        `dynrnn fit` reads, `dataset:NAME` too): `test` defaults to the last 20 % of
        `train`."""
        from ..cli._config import load_series

        x, attrs = load_series(str(train), name="train")
        if test is None:
            cut = int(0.8 * x.shape[0])
            x, y = x[:cut], x[cut:]
        else:
            y, _ = load_series(str(test), name="test")
        dt = _attr_float(attrs.get("dt")) if dt is None else dt
        return cls(train=x, test=y, dt=dt, **kwargs)


def load_catalogue(path) -> dict:
    """The dysts catalogue (`chaotic_attractors.json`) as a dict by system name."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise DynrnnValueError(f"cannot read the catalogue {str(path)!r}: {e}") from e
    except json.JSONDecodeError as e:
        raise DynrnnValueError(f"the catalogue {str(path)!r} is not valid JSON: {e}") from e


def dominant_period(system, *, n_steps: int = 16_384, dt: float = 0.01) -> float:
    """The period of the strongest peak of a flow's power spectrum (first coordinate, after a
    transient), from a simulation of `n_steps` points every `dt` (refined once at the scale
    found). Used to choose a sampling interval for systems without a known one."""
    from .. import systems

    for _ in range(2):
        ds = systems.simulate(system, n_steps=n_steps, dt=dt, transient=200 * dt)
        x = np.asarray(ds["state"].values, np.float64)
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
        power = np.abs(np.fft.rfft(x, axis=0)) ** 2
        power = power.sum(1)
        power[0] = 0.0
        k = int(np.argmax(power[1:]) + 1)
        period = n_steps * dt / k
        if 20 * dt <= period <= n_steps * dt / 20:
            return float(period)
        dt = period / 40.0
    return float(period)


def _attr_float(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _max_exponent(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    return float(arr.max()) if arr.size and np.isfinite(arr).all() else None


def _d_stsp(true, gen, n_bins) -> float:
    from .. import metrics

    if not bool(jnp.all(jnp.isfinite(gen))):
        return float("inf")
    return float(metrics.state_space_divergence(jnp.asarray(true), gen, n_bins=n_bins,
                                                method="auto", key=jr.PRNGKey(0)))


@eqx.filter_jit
def _latent_run(model, x0, n: int):
    x0 = x0.astype(model_dtype(model) or x0.dtype)
    z1 = model.init_state(x0)
    zs = jnp.concatenate([z1[None], model.rollout(z1, n - 1)])
    return jax.vmap(model.observe)(zs)


@eqx.filter_jit
def _regression_run(model, window, n: int):
    window = window.astype(model_dtype(model) or window.dtype)
    z = model.state_from(window)
    k = window.shape[0]
    zs = jnp.concatenate([z[None], model.rollout(z, n - k - 1)])
    return jnp.concatenate([window, jax.vmap(model.observe)(zs)])


@eqx.filter_jit
def _latent_predictions(model, data, starts, n: int, lead: int, regression: bool):
    data = data.astype(model_dtype(model) or data.dtype)

    def one(s):
        if regression:
            z = model.state_from(jax.lax.dynamic_slice_in_dim(data, s - lead, lead))
            steps = n - 1  # the state read predicts the point after the window already
        else:
            z = model.init_state(data[s - 1])
            steps = n
        z = jax.lax.fori_loop(0, steps, lambda _, q: model.step(q), z)
        return model.observe(z)

    return jax.lax.map(one, starts)


@eqx.filter_jit
def _generate_sequence(model, context, n_steps: int):
    params = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    ctx = context.astype(jnp.result_type(context, *params))

    def step(window, _):
        nxt = model(window)[-1].astype(window.dtype)
        return jnp.concatenate([window[1:], nxt[None]]), nxt

    return jax.lax.scan(step, ctx, None, length=n_steps)[1]


class Lorenz63Reconstruction(Reconstruction):
    """Reconstruction of Lorenz-63 on the shipped data (`dr.datasets.load("lorenz63_train")`
    and `"lorenz63_test"`, Δt = 0.01, λ_max = 0.9056) unless `train`/`test` are given; the
    arguments are those of `Reconstruction`."""

    train: np.ndarray | None = None
    test: np.ndarray | None = None
    dt: float | None = eqx.field(static=True, default=0.01)
    lyapunov: float | None = eqx.field(static=True, default=0.9056)

    def _series(self):
        if self.train is None or self.test is None:
            from .. import datasets

            load = lambda n: np.asarray(datasets.load(n)["state"].values, np.float64)  # noqa: E731
            train = load("lorenz63_train") if self.train is None else self.train
            test = load("lorenz63_test") if self.test is None else self.test
            return Reconstruction(train=train, test=test, standardize=self.standardize,
                                  seq_len=self.seq_len)._series()
        return super()._series()

    @property
    def n_dims(self) -> int:
        return 3 if self.train is None else int(np.shape(self.train)[1])
