"""Fidelity benchmark: flow-equivariant RNNs on flowing digits (Keller 2025, arXiv:2507.14793,
Sec. 5.1, Moving MNIST next-frame prediction), at a CPU size.

Claims checked, FERNN against its controls (G-RNN: r = 0; G-RNN+: learned per-velocity kernels
instead of exact shifts; a plain dense RNN on flattened frames), all with the same circular
convolutional decoder, trained with `dr.fit` (Adam 1e-3, gradient clipping 1.0, MSE over the
predicted frames) on sequences of `n_obs` observed + `n_pred` predicted frames (default 10 + 10,
the reference's `--seq_len 20 --input_frames 10`), predictions fed back autoregressively:

1. training speed: loss against update (FERNN reaches a given loss in fewer updates);
2. length generalisation: trained to predict `n_pred` frames, tested on 40-frame sequences
   (`n_obs` observed, the other 30 predicted autoregressively, never fed a true frame), on the
   training velocities; `--protocol length` trains on every velocity of the FERNN's V, as the
   reference's Table 1 / Fig. 3 runs (`--v_range 2 --data_v_range 2`);
3. velocity generalisation (`--protocol velocity`, the default): trained on a subset of V
   ({−1, 0, 1} of {−2..2} in 1-D, the reference's Fig. 4 protocol `--data_v_range 1`; in 2-D,
   where the CPU budget allows only V = {−1..1}², the axis-aligned velocities), tested on the
   velocities of V left out of training;
4. the trained models' flow-equivariance error (`dr.metrics.equivariance_error`);
5. a diagnostic of the rollouts: one-step error when the true frames are fed instead of the
   model's own predictions, and the hidden state's size over the rollout.

`--task classify` instead trains the same RNNs with a linear head on grid-averaged features
(`GridClassifierHead`) to name the moving digit, and reports accuracy on training and on unseen
velocities (the analogue of the paper's KTH velocity-generalisation test, Sec. 5.2).

Run: `python benchmarks/fernn.py` (2-D, 16×16 grid) or `--dims 1` (a 32-point ring, digits summed
over rows); defaults 8 channels, 256 training sequences, 200 updates of batch 8; `--models`
picks a subset, `--decoder-layers 4 --detach-feedback` is the reference's decoder and its
`prev.detach()`. The recorded runs' options are in `benchmarks/log/RESULTS.md`. Prints Markdown.
"""

from __future__ import annotations

import argparse
import itertools
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import dynrnn as dr


# Velocity sets: V of the FERNN / G-RNN+ (radius r), the training velocities, and the unseen
# rest of V used for the velocity-generalisation test. As in the reference's Moving MNIST
# protocol (train on |v| <= 1 with the FERNN's V = {-2..2}), V is larger than the training set;
# in 2-D the CPU budget allows only V = {-1..1}², so training uses the axis-aligned velocities and
# the diagonals are held out.
SETTINGS = {
    2: dict(r=1, train=[(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)], flows=[(1, 0), (-1, 1)]),
    1: dict(r=2, train=[(-1,), (0,), (1,)], flows=[(1,), (-2,)]),
}


MODEL_KEYS = ("fernn", "grnn", "grnn+", "plain")


def build_rnns(channels, grid, hidden_size, r, key, which=MODEL_KEYS) -> dict[str, eqx.Module]:
    k = jr.split(key, 4)
    d = len(grid)
    conv = dict(spatial_dims=d)
    makers = {
        "fernn": (f"FERNN (V={{-{r}..{r}}}^{d})", lambda kk: dr.models.FlowEquivariantRNN(
            1, channels, velocities=r, key=kk, **conv
        )),
        "grnn": ("G-RNN (r=0)", lambda kk: dr.models.FlowEquivariantRNN(
            1, channels, velocities=0, key=kk, **conv
        )),
        "grnn+": ("G-RNN+ (learned shifts)", lambda kk: dr.models.FlowEquivariantRNN(
            1, channels, velocities=r, learned_shifts=True, key=kk, **conv
        )),
        "plain": ("plain RNN (dense)", lambda kk: dr.models.FrameRNN(
            1, channels, grid, hidden_size=hidden_size, activation="tanh", key=kk
        )),
    }
    # keys fixed per model kind, so that a subset of models is initialised as in the full run
    return {
        makers[m][0]: makers[m][1](kk) for m, kk in zip(MODEL_KEYS, k, strict=True) if m in which
    }


def build_models(
    channels, grid, hidden_size, r, key, which=MODEL_KEYS, decoder_layers=1, detach=False
) -> dict[str, eqx.Module]:
    """Next-frame predictors: each RNN with the same kind of circular convolutional decoder."""
    k_rnn, k_dec = jr.split(key)
    rnns = build_rnns(channels, grid, hidden_size, r, k_rnn, which)
    decs = {
        m: dr.models.ConvDecoder(
            channels, 1, spatial_dims=len(grid), n_layers=decoder_layers, key=kk
        )
        for m, kk in zip(MODEL_KEYS, jr.split(k_dec, len(MODEL_KEYS)), strict=True)
        if m in which
    }
    return {
        name: dr.models.NextFramePredictor(rnn, dec, detach_feedback=detach)
        for (name, rnn), dec in zip(rnns.items(), decs.values(), strict=True)
    }


class SequenceClassifier(eqx.Module):
    """Digit class from a whole sequence: RNN features → `GridClassifierHead` (logits)."""

    rnn: eqx.Module
    head: dr.models.GridClassifierHead

    def __call__(self, frames):
        return self.head(self.rnn(frames))


def classify(a, grid, r, train_v, unseen_v, key):
    """Classification of the moving digit; accuracy on training and on unseen velocities."""
    k_tr, k_te, k_un, k_mod, k_head, k_fit = jr.split(key, 6)
    n_frames = a.n_obs + a.n_pred
    gen = lambda n, v, split, k: dr.datasets.flowing_digits(
        n, n_frames=n_frames, grid=grid, velocities=v, split=split, key=k
    )
    train = gen(a.n_train, train_v, "train", k_tr)
    seen = gen(a.n_test, train_v, "test", k_te)
    unseen = gen(a.n_test, unseen_v, "test", k_un)
    rnns = build_rnns(a.channels, grid, a.hidden_size, r, k_mod)
    heads = jr.split(k_head, len(rnns))
    rows = []
    for (name, rnn), kh in zip(rnns.items(), heads, strict=True):
        model = SequenceClassifier(rnn, dr.models.GridClassifierHead(a.channels, 10, key=kh))
        n_params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
        opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(a.lr))
        t0 = time.perf_counter()
        fit = dr.fit(
            model, (train.frames, train.labels), loss="cross_entropy", optimizer=opt,
            n_steps=a.steps, batch_size=a.batch, steps_per_call=min(25, a.steps), key=k_fit,
            progress=False,
        )
        wall = time.perf_counter() - t0
        predict = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
        acc = [
            float(jnp.mean(jnp.argmax(predict(fit.model, ds.frames), axis=-1) == ds.labels))
            for ds in (train, seen, unseen)
        ]
        rows.append((name, n_params, wall, smooth(np.asarray(fit.history["loss"]))[-1], acc))
        print(f"trained {name}: {wall:.0f} s", flush=True)
    ref_wall = rows[1][2]
    print(f"\nFlowing digits classification, {'×'.join(map(str, grid))} grid, {n_frames} frames, "
          f"{a.channels} channels, {a.n_train} training sequences with velocities {train_v}, "
          f"{a.steps} updates of batch {a.batch}, Adam {a.lr:g}, clip 1.0, seed {a.seed}.\n")
    print("| model | params | final train loss | train acc | test acc, training velocities "
          f"| test acc, unseen {unseen_v} | wall time / G-RNN |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n_params, wall, final, acc in rows:
        print(f"| {name} | {n_params} | {final:.3f} | {acc[0]:.3f} | {acc[1]:.3f} | {acc[2]:.3f} "
              f"| {wall / ref_wall:.2f} |")


def per_frame_mse(model, frames, n_obs, batch=16):
    """MSE of each predicted frame, averaged over sequences: `(n_frames − n_obs,)`."""
    n_future = frames.shape[1] - n_obs
    run = eqx.filter_jit(lambda m, u: jax.vmap(lambda f: m(f, n_future))(u))
    errs = []
    for i in range(0, frames.shape[0], batch):
        chunk = frames[i : i + batch]
        pred = run(model, chunk[:, :n_obs])
        errs.append(jnp.mean((pred - chunk[:, n_obs:]) ** 2, axis=tuple(range(2, pred.ndim))))
    return np.asarray(jnp.concatenate(errs).mean(axis=0))


def rollout_diagnostics(model, frames, n_obs, batch=16):
    """Autoregressive rollout vs ground-truth inputs on the same sequences: per predicted frame
    the one-step MSE when the true frames are fed (`gt_mse`), and the RMS of the hidden state
    after the last observed and after each predicted frame, fed its own predictions (`ar_rms`)
    or the true frames (`gt_rms`)."""
    n_future = frames.shape[1] - n_obs
    rms = lambda h: jnp.sqrt(jnp.mean(h**2))

    def one(m, f):
        rnn = m.rnn
        h0 = rnn.initial_hidden(tuple(f.shape[2:]), f.dtype)
        h, _ = jax.lax.scan(lambda h, x: (rnn.cell(h, x), None), h0, f[:n_obs])

        def ar(h, _):
            pred = m.predict_next(h).astype(f.dtype)
            h = rnn.cell(h, pred)
            return h, rms(h)

        _, ar_rms = jax.lax.scan(ar, h, None, length=n_future)
        hs = rnn.hidden_states(f)  # h_0 … h_{T-1} with the true frames
        preds = jax.vmap(m.predict_next)(hs[n_obs - 1 : -1])
        gt_mse = jnp.mean((preds - f[n_obs:]) ** 2, axis=tuple(range(1, preds.ndim)))
        gt_rms = jax.vmap(rms)(hs[n_obs - 1 :])
        return gt_mse, jnp.concatenate([rms(h)[None], ar_rms]), gt_rms

    run = eqx.filter_jit(lambda m, u: jax.vmap(lambda f: one(m, f))(u))
    outs = [run(model, frames[i : i + batch]) for i in range(0, frames.shape[0], batch)]
    gt_mse, ar_rms, gt_rms = (np.asarray(jnp.concatenate(o).mean(axis=0)) for o in zip(*outs))
    return dict(gt_mse=gt_mse, ar_rms=ar_rms, gt_rms=gt_rms)


def copy_last_mse(frames, n_obs):
    last = frames[:, n_obs - 1 : n_obs]
    axes = (0,) + tuple(range(2, frames.ndim))
    return np.asarray(jnp.mean((frames[:, n_obs:] - last) ** 2, axis=axes))


def smooth(x, w=10):
    x = np.asarray(x, float)
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty_like(x)
    for i in range(len(x)):
        lo = max(0, i - w + 1)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, default=2, choices=(1, 2), help="1-D or 2-D frames")
    p.add_argument("--grid", type=int, default=None, help="grid side (default 16 / 32)")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--hidden-size", type=int, default=256, help="plain RNN state size")
    p.add_argument("--n-train", type=int, default=256)
    p.add_argument("--n-test", type=int, default=64)
    p.add_argument("--n-obs", type=int, default=10, help="observed frames (reference: 10)")
    p.add_argument("--n-pred", type=int, default=10, help="predicted frames in training (10)")
    p.add_argument("--test-frames", type=int, default=40)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--task", default="predict", choices=("predict", "classify"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--protocol", default="velocity", choices=("velocity", "length"),
        help="training velocities: 'velocity' = a subset of V (the rest is the unseen test set, "
        "reference Fig. 4); 'length' = all of V (reference Table 1 / Fig. 3)",
    )
    p.add_argument("--models", default=",".join(MODEL_KEYS),
                   help=f"comma-separated subset of {MODEL_KEYS}")
    p.add_argument("--decoder-layers", type=int, default=1, help="hidden decoder layers (ref: 4)")
    p.add_argument("--detach-feedback", action="store_true",
                   help="no gradient through fed-back predictions (the reference's prev.detach())")
    a = p.parse_args()
    which = tuple(m.strip() for m in a.models.split(","))
    if not set(which) <= set(MODEL_KEYS) or not which:
        p.error(f"--models must be a comma-separated subset of {MODEL_KEYS}, got {a.models!r}")

    cfg = SETTINGS[a.dims]
    side = a.grid or (16 if a.dims == 2 else 32)
    grid = (side,) * a.dims
    r = cfg["r"]
    all_v = [tuple(v) for v in itertools.product(range(-r, r + 1), repeat=a.dims)]
    train_v = all_v if a.protocol == "length" else cfg["train"]
    unseen_v = [v for v in all_v if v not in train_v]
    key = jr.PRNGKey(a.seed)
    if a.task == "classify":
        return classify(a, grid, r, train_v, unseen_v, key)
    k_tr, k_te, k_un, k_mod, k_fit, k_eq = jr.split(key, 6)
    train = dr.datasets.flowing_digits(
        a.n_train, n_frames=a.n_obs + a.n_pred, grid=grid, velocities=train_v, split="train",
        key=k_tr,
    ).frames
    test_seen = dr.datasets.flowing_digits(
        a.n_test, n_frames=a.test_frames, grid=grid, velocities=train_v, split="test", key=k_te
    ).frames
    test_unseen = None if not unseen_v else dr.datasets.flowing_digits(
        a.n_test, n_frames=a.test_frames, grid=grid, velocities=unseen_v, split="test", key=k_un
    ).frames
    inputs, targets = train[:, : a.n_obs], train[:, a.n_obs :]

    n_pred = a.n_pred

    def loss(model, u, y, *, key=None):
        pred = jax.vmap(lambda f: model(f, n_pred))(u)
        return jnp.mean((pred - y) ** 2)

    models = build_models(
        a.channels, grid, a.hidden_size, r, k_mod, which, a.decoder_layers, a.detach_feedback
    )
    results = {}
    for name, model in models.items():
        n_params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
        opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(a.lr))
        t0 = time.perf_counter()
        fit = dr.fit(
            model, (inputs, targets), loss=loss, optimizer=opt, n_steps=a.steps,
            batch_size=a.batch, steps_per_call=min(25, a.steps), key=k_fit, progress=False,
        )
        wall = time.perf_counter() - t0
        trained = fit.model
        results[name] = dict(
            params=n_params, wall=wall, loss=np.asarray(fit.history["loss"]),
            seen=per_frame_mse(trained, test_seen, a.n_obs),
            unseen=None if test_unseen is None else per_frame_mse(trained, test_unseen, a.n_obs),
            diag=rollout_diagnostics(trained, test_seen, a.n_obs), model=trained,
        )
        print(f"trained {name}: {wall:.0f} s", flush=True)

    base_train = float(copy_last_mse(train, a.n_obs).mean())
    base_seen = copy_last_mse(test_seen, a.n_obs)
    base_unseen = None if test_unseen is None else copy_last_mse(test_unseen, a.n_obs)
    ref_name = "G-RNN (r=0)" if "G-RNN (r=0)" in results else next(iter(results))
    ref_wall = results[ref_name]["wall"]

    print(f"\nFlowing digits, {'×'.join(map(str, grid))} grid, 1 digit, {a.channels} channels, "
          f"{a.n_train} training sequences ({a.n_obs} observed + {a.n_pred} predicted frames), "
          f"velocities {train_v} in training, {a.steps} updates of batch {a.batch}, "
          f"Adam {a.lr:g}, clip 1.0, seed {a.seed}, {a.decoder_layers}+1 decoder layers, "
          f"feedback {'detached' if a.detach_feedback else 'differentiated'}. "
          f"Devices: {jax.devices()[0].platform}.\n")

    # 1. training speed
    marks = [m for m in (1, 10, 25, 50, 100, 150, 200, 300, 400, 600) if m <= a.steps]
    if a.steps not in marks:
        marks.append(a.steps)
    print("### Training loss (MSE, mean of the last 10 updates) against update\n")
    print("| model | params | " + " | ".join(f"step {m}" for m in marks)
          + f" | wall time / {ref_name} |")
    print("|---|---:|" + "---:|" * len(marks) + "---:|")
    for name, r in results.items():
        s = smooth(r["loss"])
        cells = " | ".join(f"{s[m - 1]:.4f}" for m in marks)
        print(f"| {name} | {r['params']} | {cells} | {r['wall'] / ref_wall:.2f} |")
    print(f"\n(copy-last-frame MSE on the training targets: {base_train:.4f})\n")

    levels = [base_train, 0.5 * base_train, 0.25 * base_train]
    print("### Updates until the smoothed training loss first falls below a level\n")
    print("| model | " + " | ".join(f"< {lv:.4f}" for lv in levels) + " |")
    print("|---|" + "---:|" * len(levels))
    for name, r in results.items():
        s = smooth(r["loss"])
        cells = []
        for lv in levels:
            hit = np.nonzero(s < lv)[0]
            cells.append(str(int(hit[0]) + 1) if hit.size else f"> {a.steps}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n(levels: copy-last-frame MSE on the training targets × 1, 0.5, 0.25)\n")

    # 2./3. length and velocity generalisation
    n_future = a.test_frames - a.n_obs
    spans = [(1, a.n_pred), (a.n_pred + 1, min(2 * a.n_pred, n_future)),
             (min(2 * a.n_pred, n_future) + 1, n_future)]
    spans = [(lo, hi) for lo, hi in spans if lo <= hi]
    tables = [("seen", "training velocities, new digits", base_seen)]
    if test_unseen is not None:
        tables.append(("unseen", f"unseen velocities {unseen_v}, new digits", base_unseen))
    for key_, title, base in tables:
        print(f"### Test MSE per predicted frame, {title} ({a.test_frames}-frame sequences, "
              f"{a.n_obs} observed; trained on {a.n_pred} predicted)\n")
        print("| model | " + " | ".join(f"frames {lo}–{hi}" for lo, hi in spans) + " |")
        print("|---|" + "---:|" * len(spans))
        rows = [(name, r[key_]) for name, r in results.items()]
        rows.append(("copy last observed frame", base))
        for name, e in rows:
            cells = " | ".join(f"{e[lo - 1 : hi].mean():.4f}" for lo, hi in spans)
            print(f"| {name} | {cells} |")
        print()

    # why (not): autoregressive rollout against ground-truth inputs, and the state's size
    print("### Rollouts on the training velocities: autoregressive (AR) against ground-truth "
          "inputs (GT: the true frames are fed, one-step predictions), per predicted frame\n")
    print("| model | " + " | ".join(f"AR {lo}–{hi}" for lo, hi in spans) + " | "
          + " | ".join(f"GT {lo}–{hi}" for lo, hi in spans)
          + f" | state RMS AR: frame {n_future} / frame 0 | GT: frame {n_future} / frame 0 |")
    print("|---|" + "---:|" * (2 * len(spans) + 2))
    for name, r in results.items():
        d = r["diag"]
        cells = [f"{r['seen'][lo - 1 : hi].mean():.4f}" for lo, hi in spans]
        cells += [f"{d['gt_mse'][lo - 1 : hi].mean():.4f}" for lo, hi in spans]
        cells += [f"{d[k][-1] / d[k][0]:.2f}" for k in ("ar_rms", "gt_rms")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n(state RMS: root mean square of the whole hidden state, lifted over V for the "
          "FERNN/G-RNN+, after the last observed frame (frame 0) and after predicted frame "
          f"{n_future})\n")

    # 4. equivariance of the trained models
    x_eq = (test_seen if test_unseen is None else test_unseen)[:8, :20]
    print("### Flow-equivariance error of the trained RNNs (max over 20 frames, 8 sequences)\n")
    flows = cfg["flows"]
    print(f"| model | ν̂ = {flows[0]} | ν̂ = {flows[1]} | compared |")
    print("|---|---:|---:|---|")
    for name, r in results.items():
        rnn = r["model"].rnn
        lifted = hasattr(rnn, "lifted") and len(rnn.velocities) > 1
        cells = []
        for v in flows:
            e = dr.metrics.equivariance_error(
                rnn, x_eq, dr.metrics.TranslationFlow(v), lifted=lifted
            )
            cells.append(f"{float(jnp.max(e)):.1e}")
        what = "lifted h_t(ν), interior ν" if lifted else "pooled output"
        print(f"| {name} | {cells[0]} | {cells[1]} | {what} |")
        if lifted and not getattr(rnn, "learned_shifts", False):
            e = [
                float(jnp.max(dr.metrics.equivariance_error(
                    rnn, x_eq, dr.metrics.TranslationFlow(v), lifted=False
                )))
                for v in flows
            ]
            print(f"| {name}, pooled output | {e[0]:.1e} | {e[1]:.1e} | max over V |")


if __name__ == "__main__":
    main()
