"""Fit latent dynamics to the zebrafish optic-tectum population and compare held-out forward
prediction with linear autoregressive baselines.

Data: 75 neurons × 5 660 frames of dF/F at 2.2 Hz (Triplett, Avitan & Goodhill 2018), read
from `../shared/data/zebrafish_tectum` (neurons-first CSV). Pipeline: z-score per neuron, first
80 % of the frames for training, PCA on the training part to `--pcs` dimensions (the same
projection applied to the test part, scores whitened), a shallow PLRNN trained with
generalized teacher forcing
(`dr.fit`), then the R² of 1…`--horizon`-step-ahead predictions on the held-out 20 %, next to
least-squares AR(1) and AR(`--ar-order`) models fitted on the same training data.

    python examples/zebrafish_tectum.py [--steps 3000] [--pcs 10]

The model's state at `t` is inferred either from `x_t` alone (`init_state`) or, like the
AR(p) baseline that sees `p` frames, by running the model forced by the data
(`dr.models.infer_states`, α = 1) over `x_{t−p+1} … x_t`.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.random as jr
import numpy as np

import dynrnn as dr


DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "zebrafish_tectum"


def load(path: pathlib.Path = DATA):
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
    model = dr.models.ShallowPLRNN(latent, hidden, n, key=key)
    tf = dr.GTF("adaptive") if alpha == "adaptive" else dr.GTF(float(alpha))
    t0 = time.perf_counter()
    result = dr.fit(model, x_train, teacher_forcing=tf, n_steps=steps, batch_size=batch_size,
                    seq_len=seq_len, key=jr.fold_in(key, 1), progress=progress, noise=noise,
                    learning_rate=learning_rate, final_learning_rate=learning_rate / 100)
    fit_s = time.perf_counter() - t0
    first = ar_order - 1
    rows = {
        f"shPLRNN + GTF({alpha}), state from x_t": dr.models.forward_prediction_r2(
            result.model, x_test, horizon, first=first),
        f"shPLRNN + GTF({alpha}), state from x_(t-{first})..x_t": dr.models.forward_prediction_r2(
            result.model, x_test, horizon, first=first, warmup=first),
    }
    for p in sorted({1, ar_order}):
        A, c = dr.models.fit_ar(x_train, p)
        rows[f"AR({p}) least squares"] = dr.models.forward_prediction_r2(
            dr.models.ar_predictor(A, c), x_test, horizon, first=first)
    rows["persistence x̂_{t+k} = x_t"] = dr.models.forward_prediction_r2(
        lambda h, k: np.repeat(h[-1:], k, axis=0), x_test, horizon, first=first)
    return dict(rows=rows, dims=n, explained=explained, fit_s=fit_s, steps=steps,
                train=x_train.shape[0], test=x_test.shape[0], model=result.model,
                x_train=x_train, x_test=x_test)


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
    model = dr.models.ShallowPLRNN(latent, hidden, pcs, key=key)
    result = dr.fit(model, p_tr, teacher_forcing=dr.GTF(alpha), n_steps=steps, batch_size=32,
                    seq_len=3, key=jr.fold_in(key, 1), progress=False, noise=0.3,
                    learning_rate=5e-3, final_learning_rate=5e-5)
    full_tr = np.concatenate([p_tr, a_tr[:, out_idx]], axis=1)
    full_te = np.concatenate([p_te, a_te[:, out_idx]], axis=1)
    held = np.arange(pcs, pcs + out_idx.size)
    return {
        f"latent states of the shPLRNN (forced, α = {alpha})": dr.models.cosmoothing_r2(
            result.model, full_tr, full_te, held, alpha=alpha),
        f"held-in activity ({pcs} PCs)": dr.models.cosmoothing_r2(None, full_tr, full_te, held),
    }


def table(out: dict) -> str:
    horizon = len(next(iter(out["rows"].values())))
    head = "| model | " + " | ".join(f"R² {k + 1}-step" for k in range(horizon)) + " |"
    lines = [head, "|---|" + "---|" * horizon]
    for name, r2 in out["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in r2) + " |")
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
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", False)
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
        print("| regressors | mean R² | median R² |\n|---|---|---|")
        for name, r2 in rows.items():
            print(f"| {name} | {np.mean(r2):.3f} | {np.median(r2):.3f} |")


if __name__ == "__main__":
    main()
