"""Fit latent dynamics to the zebrafish optic-tectum population and compare held-out forward
prediction with linear autoregressive baselines.

**Needs data that does not ship with dynrnn:** the activity matrix of Triplett, Avitan &
Goodhill (2018), `zf_20170215-f3_activity_matrix.csv`, in
`$DYNRNN_SHARED_DATA/zebrafish_tectum/` (default `../shared/data/zebrafish_tectum/` beside a
checkout). To try the same pipeline without it, start from the synthetic recording of
`docs/tutorials/suite2p_to_xarray.py` (`dr.io.synthetic_suite2p`).

Data: 75 neurons × 5 660 frames of dF/F at 2.2 Hz (Triplett, Avitan & Goodhill 2018), read
from `../shared/data/zebrafish_tectum` (neurons-first CSV). Pipeline: z-score per neuron, first
80 % of the frames for training, PCA on the training part to `--pcs` dimensions (the same
projection applied to the test part, scores whitened), a shallow PLRNN trained with
generalized teacher forcing
(`dr.fit`), then the R² of 1…`--horizon`-step-ahead predictions on the held-out 20 %, next to
least-squares AR(1) and AR(`--ar-order`) models fitted on the same training data.

    python examples/zebrafish_tectum.py [--steps 3000] [--pcs 10]
    python examples/zebrafish_tectum.py --prediction   # shPLRNN started at AR(p), see below

`run_prediction` starts a delay-embedded shallow PLRNN at the least-squares AR(p)
(`dr.training.ar_init`) and trains it with the k-step prediction loss (`dr.training.PredictionLoss`)
and validation early stopping (`dr.training.EarlyStopping`) on the training part only.

The model's state at `t` is inferred either from `x_t` alone (`init_state`) or, like the
AR(p) baseline that sees `p` frames, by running the model forced by the data
(`dr.forcing.infer_states`, α = 1) over `x_{t−p+1} … x_t`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import dynrnn as dr


SHARED = pathlib.Path(os.environ.get(
    "DYNRNN_SHARED_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DATA = SHARED / "zebrafish_tectum"


def load(path: pathlib.Path = DATA):
    if not (path / "zf_20170215-f3_activity_matrix.csv").is_file():
        raise FileNotFoundError(
            f"zebrafish tectum recording not found in {path}: this example needs "
            "zf_20170215-f3_activity_matrix.csv there (set DYNRNN_SHARED_DATA to the folder "
            "holding zebrafish_tectum/); it does not ship with dynrnn."
        )
    ds = dr.io.open_recording(path / "zf_20170215-f3_activity_matrix.csv", rate=2.2,
                              layout="neuron-major")
    ds = dr.preprocess.zscore(ds)
    return dr.preprocess.split_time(ds, 0.8)


def pca(train: np.ndarray, test: np.ndarray, k: int):
    mu = train.mean(0)
    _, s, vt = np.linalg.svd(train - mu, full_matrices=False)
    explained = float((s[:k] ** 2).sum() / (s**2).sum())
    # Whitened scores: every component at unit variance on the training part, so the model
    # sees data of the scale its initialisation assumes and the pooled R² weighs the
    # components equally.
    sd = s[:k] / np.sqrt(train.shape[0])
    return (train - mu) @ vt[:k].T / sd, (test - mu) @ vt[:k].T / sd, explained


def run(*, steps: int = 3000, pcs: int = 10, latent: int = 15, hidden: int = 50,
        horizon: int = 5, ar_order: int = 5, alpha: float | str = 0.5, seq_len: int = 3,
        learning_rate: float = 5e-3, batch_size: int = 32, noise: float = 0.3, seed: int = 0,
        progress: bool = False) -> dict:
    train, test = load()
    x_train = train["activity"].values
    x_test = test["activity"].values
    if pcs:
        x_train, x_test, explained = pca(x_train, x_test, pcs)
    else:
        explained = 1.0
    n = x_train.shape[1]
    key = jr.PRNGKey(seed)
    model = dr.models.ShallowPLRNN(latent=latent, hidden=hidden, obs=n, key=key)
    tf = dr.GTF("adaptive") if alpha == "adaptive" else dr.GTF(float(alpha))
    t0 = time.perf_counter()
    result = dr.fit(model, x_train,
                    loss=dr.training.Reconstruction(tf, seq_len=seq_len, noise=noise),
                    n_steps=steps, batch_size=batch_size, key=jr.fold_in(key, 1),
                    progress=progress, optimizer=dr.training.default_optimizer(
                        steps, learning_rate, learning_rate / 100))
    fit_s = time.perf_counter() - t0
    first = ar_order - 1
    rows = {
        f"shPLRNN + GTF({alpha}), state from x_t": dr.metrics.forward_prediction_r2(
            result.model, x_test, horizon, first=first),
        f"shPLRNN + GTF({alpha}), state from x_(t-{first})..x_t": dr.metrics.forward_prediction_r2(
            result.model, x_test, horizon, first=first, warmup=first),
    }
    for p in sorted({1, ar_order}):
        A, c = dr.metrics.fit_ar(x_train, p)
        rows[f"AR({p}) least squares"] = dr.metrics.forward_prediction_r2(
            dr.metrics.ar_predictor(A, c), x_test, horizon, first=first)
    rows["persistence x̂_{t+k} = x_t"] = dr.metrics.forward_prediction_r2(
        lambda h, k: np.repeat(h[-1:], k, axis=0), x_test, horizon, first=first)
    return dict(rows=rows, dims=n, explained=explained, fit_s=fit_s, steps=steps,
                train=x_train.shape[0], test=x_test.shape[0], model=result.model,
                x_train=x_train, x_test=x_test)


class LinearDelayModel(dr.models.AbstractLatentModel):
    """Control for `run_prediction`: the linear map `z_{t+1} = M z_t + h` on the same state and
    observation as the shPLRNN, started at the same AR(p) and trained the same way, so that
    what the ReLU units add can be told from what the k-step objective adds."""

    M: jax.Array
    h: jax.Array
    observation: dr.models.Identity

    def __init__(self, plrnn: dr.models.ShallowPLRNN, order: int):
        # the AR map held by `ar_init`: W1 relu(W2 z) = W1[:, :P] z[:P] on the first 2P units
        units = plrnn.n_obs * order
        self.M = jnp.zeros((plrnn.n_latent, plrnn.n_latent), plrnn.W1.dtype).at[:, :units].set(
            plrnn.W1[:, :units])
        self.h = plrnn.h1
        self.observation = plrnn.observation

    @property
    def n_inputs(self):
        return 0

    def step(self, z, u=None, *, key=None):
        return self.M @ z + self.h


def run_prediction(*, pcs: int = 10, horizon: int = 5, max_order: int = 10,
                   validation: float = 0.15, extra_latent: int = 20, extra_hidden: int = 20,
                   burn_in: int | None = None, steps: int = 2000, learning_rate: float = 3e-5,
                   weight_decay: float = 1e-2, batch_size: int = 64, patience: int = 5,
                   seed: int = 0, n_boot: int = 2000) -> dict:
    """A shallow PLRNN started at the least-squares AR(p) and trained for forward prediction.

    The training part is split in time into a fitting part and the last `validation` fraction
    (the test part is never used for a choice). The AR order `p ≤ max_order` with the best mean
    R² over horizons 1…`horizon` on the validation part is chosen; the model, a delay-embedded
    shPLRNN (`clipped=False`, `latent = pcs·p + extra_latent`, `hidden = 2·pcs·p +
    extra_hidden`), is set to the AR(p) of the fitting part (`dr.training.ar_init`) and trained by
    `dr.fit` with `dr.training.PredictionLoss(p − 1, horizon)` (AdamW), keeping the model with the
    lowest validation loss (`dr.training.EarlyStopping`, evaluated every 100 updates). Test R² at
    horizons 1…`horizon` next to AR(1) and AR(p) fitted on the whole training part, with a
    block-bootstrap 95 % interval of R²(model) − R²(AR(p)) (blocks of 50 starts).
    """
    import optax

    train, test = load()
    x_train, x_test, explained = pca(train["activity"].values, test["activity"].values, pcs)
    n_fit = int(round((1 - validation) * x_train.shape[0]))
    x_fit, x_val = x_train[:n_fit], x_train[n_fit:]
    first = max_order - 1  # the same test starts for every order
    val_r2 = {}
    for p in range(1, max_order + 1):
        A, c = dr.metrics.fit_ar(x_fit, p)
        val_r2[p] = dr.metrics.forward_prediction_r2(dr.metrics.ar_predictor(A, c), x_val, horizon,
                                                    first=first)
    order = max(val_r2, key=lambda p: val_r2[p].mean())
    burn_in = order - 1 if burn_in is None else burn_in
    n = pcs
    key = jr.PRNGKey(seed)
    model = dr.models.ShallowPLRNN(latent=n * order + extra_latent,
                                   hidden=2 * n * order + extra_hidden, obs=n,
                                   clipped=False, observation="identity", key=key)
    model = dr.training.ar_init(model, x_fit, order)
    loss = dr.training.PredictionLoss(burn_in, horizon)
    fit_windows = loss.windows(x_fit, dtype=np.float32)
    val_windows = loss.windows(x_val, dtype=np.float32)

    def train(start):
        """The same training for the model and its linear control; the early stopper."""
        stopper = dr.training.EarlyStopping(loss, *val_windows, patience=patience, initial=start)
        dr.fit(start, fit_windows, loss=loss, n_steps=steps, batch_size=batch_size,
               key=jr.fold_in(key, 1), progress=False, steps_per_call=100,
               optimizer=optax.adamw(learning_rate, weight_decay=weight_decay),
               callbacks=[stopper])
        return stopper

    t0, c0 = time.perf_counter(), time.process_time()
    stopper = train(model)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    lin_stopper = train(LinearDelayModel(model, order))

    def preds(predictor, **kw):
        return dr.metrics.forward_predictions(predictor, x_test, horizon, first=first, **kw)

    ar = {p: dr.metrics.ar_predictor(*dr.metrics.fit_ar(x_train, p)) for p in sorted({1, order})}
    out_ar = {p: preds(f) for p, f in ar.items()}
    init_pred, targets = preds(model, warmup=burn_in, alpha=1.0)
    fit_pred, _ = preds(stopper.best_model, warmup=burn_in, alpha=1.0)
    lin_pred, _ = preds(lin_stopper.best_model, warmup=burn_in, alpha=1.0)
    persistence, _ = preds(lambda h, k: np.repeat(h[-1:], k, axis=0))

    def r2(pred):
        return dr.metrics.prediction_r2(pred, targets)

    rows = {
        f"shPLRNN, delay state ({order} frames), trained for {horizon}-step prediction "
        f"(early-stopped at update {stopper.best_step})": r2(fit_pred),
        f"same model at its AR({order}) initialisation (AR fitted on the fitting part)":
            r2(init_pred),
        f"linear control: same state, AR({order}) start, loss and early stopping (update "
        f"{lin_stopper.best_step})": r2(lin_pred),
        "AR(1) least squares": r2(out_ar[1][0]),
        f"AR({order}) least squares (order chosen on validation)": r2(out_ar[order][0]),
        "persistence x̂_{t+k} = x_t": r2(persistence),
    }
    def against(other):
        return dr.metrics.bootstrap_r2_difference(fit_pred, other, targets, block=50,
                                                 n_boot=n_boot, seed=seed)

    # against AR(p), and the gain of training alone: against the model's own starting point
    # and against the linear control
    diffs = {f"AR({order})": against(out_ar[order][0]),
             f"its AR({order}) initialisation": against(init_pred),
             "linear control": against(lin_pred)}
    return dict(rows=rows, order=order, val_r2=val_r2, diffs=diffs,
                lin_val=lin_stopper.best_loss,
                val_loss=stopper.best_loss,
                best_step=stopper.best_step, history=stopper.history, fit_s=fit_s,
                fit_cpu=fit_cpu, dims=n, explained=explained, train=x_fit.shape[0],
                val=x_val.shape[0], test=x_test.shape[0], starts=targets.shape[0])


def headroom(*, pcs: int = 10, lags: int = 5, horizon: int = 5, features=(200, 1000),
             ridges=(1.0, 10.0, 100.0, 1000.0), seed: int = 0) -> dict:
    """How much a nonlinear regression adds to a linear one (no dynamics model involved).

    Direct least-squares regression of `x_{t+k}` on the `lags` frames `x_t … x_{t−lags+1}`
    (with intercept), and the same regressors plus random ReLU features `relu(X W + b)`
    (`W`, `b` standard normal, `W` scaled by `1/√dim`) whose weights only are ridge-penalised;
    fitted on the training part, test R² per horizon (starts `t ≥ 9`, as `run_prediction`).
    """
    train, test = load()
    x_train, x_test, _ = pca(train["activity"].values, test["activity"].values, pcs)

    def lagged(x, k):
        idx = np.arange(max(lags - 1, 9), x.shape[0] - k)
        X = np.concatenate([x[idx - j] for j in range(lags)], axis=1)
        return X, x[idx + k]

    def r2(pred, y):
        return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())

    rng = np.random.default_rng(seed)
    out = {"direct linear": []}
    for k in range(1, horizon + 1):
        X, Y = lagged(x_train, k)
        Xt, Yt = lagged(x_test, k)
        X1, Xt1 = np.c_[X, np.ones(len(X))], np.c_[Xt, np.ones(len(Xt))]
        coef = np.linalg.lstsq(X1, Y, rcond=None)[0]
        out["direct linear"].append(r2(Xt1 @ coef, Yt))
        for nf in features:
            W = rng.normal(size=(X.shape[1], nf)) / np.sqrt(X.shape[1])
            b = rng.normal(size=nf)
            F = np.c_[X1, np.maximum(X @ W + b, 0)]
            Ft = np.c_[Xt1, np.maximum(Xt @ W + b, 0)]
            for lam in ridges:
                reg = lam * np.eye(F.shape[1])
                reg[: X1.shape[1], : X1.shape[1]] = 0.0
                c2 = np.linalg.solve(F.T @ F + reg, F.T @ Y)
                out.setdefault(f"linear + {nf} random ReLU features, ridge {lam:g}", []).append(
                    r2(Ft @ c2, Yt))
    return {name: np.array(v) for name, v in out.items()}


def cosmoothing(*, steps: int = 3000, pcs: int = 10, latent: int = 15, hidden: int = 50,
                every: int = 5, seed: int = 0, alpha: float = 0.5) -> dict:
    """Co-smoothing: every `every`-th neuron is held out; the model is fitted to `pcs` whitened
    PCs of the held-in neurons, and ridge read-outs of the held-out neurons are fitted on the
    training part from (a) the model's data-driven latent states and (b) the held-in PCs
    themselves; R² on the held-out time."""
    train, test = load()
    a_tr, a_te = train["activity"].values, test["activity"].values
    out_idx = np.arange(0, a_tr.shape[1], every)
    in_idx = np.setdiff1d(np.arange(a_tr.shape[1]), out_idx)
    p_tr, p_te, _ = pca(a_tr[:, in_idx], a_te[:, in_idx], pcs)
    key = jr.PRNGKey(seed)
    model = dr.models.ShallowPLRNN(latent=latent, hidden=hidden, obs=pcs, key=key)
    result = dr.fit(model, p_tr, loss=dr.training.Reconstruction(dr.GTF(alpha), seq_len=3,
                                                                 noise=0.3),
                    n_steps=steps, batch_size=32, key=jr.fold_in(key, 1), progress=False,
                    optimizer=dr.training.default_optimizer(steps, 5e-3, 5e-5))
    full_tr = np.concatenate([p_tr, a_tr[:, out_idx]], axis=1)
    full_te = np.concatenate([p_te, a_te[:, out_idx]], axis=1)
    held = np.arange(pcs, pcs + out_idx.size)
    return {
        f"latent states of the shPLRNN (forced, α = {alpha})": dr.metrics.cosmoothing_r2(
            result.model, full_tr, full_te, held, alpha=alpha),
        f"held-in activity ({pcs} PCs)": dr.metrics.cosmoothing_r2(None, full_tr, full_te, held),
    }


def evaluate_recording(*, pcs: int = 10, every: int = 5, steps: int = 3000, horizon: int = 5,
                       ar_order: int = 5, seed: int = 0, n_boot: int = 2000,
                       prediction_steps: int = 2000) -> dict:
    """One `dr.evaluate` call per model on the test part of the recording: forward prediction
    (model, AR(`ar_order`) fitted on the training part, persistence, bootstrap intervals) and
    co-smoothing of the held-out neurons, with the reconstruction measures.

    Every `every`-th neuron is held out before anything is fitted; `pcs` whitened principal
    components of the training part of the **held-in** neurons are what the models see (the
    `projection` passed to `dr.evaluate`). Two models: a clipped shallow PLRNN trained with
    GTF(0.5) for reconstruction (as `run`), and an unclipped delay-embedded shallow PLRNN started
    at the least-squares AR(`ar_order`) of the first 85 % of the training part and trained for
    `horizon`-step prediction with validation early stopping on the last 15 % (as
    `run_prediction`, with the order fixed instead of chosen). Returns
    `{name: (evaluation, seconds of training)}` and the split sizes.
    """
    import optax

    train, test = load()
    n = train.sizes["neuron"]
    held_out = np.arange(0, n, every)
    held_in = np.setdiff1d(np.arange(n), held_out)
    a_tr = train["activity"].values[:, held_in]
    mu = a_tr.mean(0)
    _, s, vt = np.linalg.svd(a_tr - mu, full_matrices=False)
    sd = s[:pcs] / np.sqrt(a_tr.shape[0])

    def projection(x):
        return (x - mu) @ vt[:pcs].T / sd

    x_tr = projection(a_tr)
    key = jr.PRNGKey(seed)
    models, seconds = {}, {}

    t0 = time.perf_counter()
    gtf = dr.fit(dr.models.ShallowPLRNN(latent=15, hidden=50, obs=pcs, key=key), x_tr,
                 loss=dr.training.Reconstruction(dr.GTF(0.5), seq_len=3, noise=0.3),
                 n_steps=steps, batch_size=32, key=jr.fold_in(key, 1), progress=False,
                 optimizer=dr.training.default_optimizer(steps, 5e-3, 5e-5))
    models["shPLRNN + GTF(0.5), reconstruction objective"] = (gtf.model, 0)
    seconds["shPLRNN + GTF(0.5), reconstruction objective"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_fit = int(round(0.85 * x_tr.shape[0]))
    start = dr.models.ShallowPLRNN(latent=pcs * ar_order + 20, hidden=2 * pcs * ar_order + 20,
                                   obs=pcs, clipped=False, observation="identity", key=key)
    start = dr.training.ar_init(start, x_tr[:n_fit], ar_order)
    loss = dr.training.PredictionLoss(ar_order - 1, horizon)
    stopper = dr.training.EarlyStopping(loss, *loss.windows(x_tr[n_fit:], dtype=np.float32),
                                        patience=5, initial=start)
    dr.fit(start, loss.windows(x_tr[:n_fit], dtype=np.float32), loss=loss,
           n_steps=prediction_steps, batch_size=64, key=jr.fold_in(key, 1), progress=False,
           steps_per_call=100, optimizer=optax.adamw(3e-5, weight_decay=1e-2),
           callbacks=[stopper])
    name = (f"shPLRNN started at AR({ar_order}), trained for {horizon}-step prediction "
            f"(early-stopped at update {stopper.best_step})")
    models[name] = (stopper.best_model, ar_order - 1)
    seconds[name] = time.perf_counter() - t0

    boot = dr.metrics.BlockBootstrap(block=50, n_boot=n_boot, level=0.95, seed=seed)
    out = {}
    for name, (model, warmup) in models.items():
        t0 = time.perf_counter()
        ev = dr.evaluate(model, test, train=train, held_out=held_out, projection=projection,
                         horizon=horizon, ar_order=ar_order, warmup=warmup, bootstrap=boot)
        out[name] = (ev, seconds[name], time.perf_counter() - t0)
    return dict(models=out, held_out=held_out, train=x_tr.shape[0], test=test.sizes["time"],
                pcs=pcs, explained=float((s[:pcs] ** 2).sum() / (s**2).sum()))


def prediction_table(out: dict) -> str:
    """The rows of `run_prediction` and the bootstrap row as a Markdown table."""
    lines = [table(out, digits=4)]
    for i, (name, (diff, lo, hi)) in enumerate(out["diffs"].items()):
        cells = " | ".join(f"{d:+.4f} [{a:+.4f}, {b:+.4f}]" for d, a, b in zip(diff, lo, hi))
        ci = "95 % block-bootstrap CI" if i == 0 else "same CI"
        lines.append(f"| R²(shPLRNN) − R²({name}), {ci} | {cells} |")
    return "\n".join(lines)


def cosmoothing_table(rows: dict) -> str:
    """The rows of `cosmoothing` as a Markdown table."""
    lines = ["| regressors | mean R² | median R² |", "|---|---|---|"]
    lines += [f"| {name} | {np.mean(r2):.3f} | {np.median(r2):.3f} |" for name, r2 in rows.items()]
    return "\n".join(lines)


def table(out: dict, digits: int = 3) -> str:
    horizon = len(next(iter(out["rows"].values())))
    head = "| model | " + " | ".join(f"R² {k + 1}-step" for k in range(horizon)) + " |"
    lines = [head, "|---|" + "---|" * horizon]
    for name, r2 in out["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.{digits}f}" for v in r2) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--pcs", type=int, default=10, help="0: all 75 neurons")
    parser.add_argument("--latent", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--alpha", default="0.5")
    parser.add_argument("--seq-len", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cosmooth", action="store_true", help="also run co-smoothing")
    parser.add_argument("--prediction", action="store_true",
                        help="only the shPLRNN started at AR(p) and trained for prediction")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", False)
    if args.prediction:
        out = run_prediction(pcs=args.pcs or 10, seed=args.seed)
        print(f"AR order chosen on validation: {out['order']}; {out['train']} fitting / "
              f"{out['val']} validation / {out['test']} test frames")
        print(prediction_table(out))
        return
    out = run(steps=args.steps, pcs=args.pcs, latent=args.latent, hidden=args.hidden,
              alpha=args.alpha if args.alpha == "adaptive" else float(args.alpha),
              seq_len=args.seq_len, learning_rate=args.lr, noise=args.noise, seed=args.seed,
              progress=True)
    print(f"zebrafish tectum: {out['dims']} dims ({out['explained']:.0%} of the variance), "
          f"{out['train']} train / {out['test']} test frames at 2.2 Hz, {out['steps']} updates "
          f"in {out['fit_s']:.0f} s")
    print(table(out))
    if args.cosmooth:
        rows = cosmoothing(steps=args.steps, pcs=args.pcs or 10, seed=args.seed)
        print("\nco-smoothing (every 5th neuron held out): test R² of held-out neurons")
        print(cosmoothing_table(rows))


if __name__ == "__main__":
    main()
