"""`dr.evaluate` on a recording: forward prediction against AR and persistence, co-smoothing of
held-out neurons, and the reconstruction measures, with time in seconds.

The protocol (Pei et al. 2021, Neural Latents Benchmark, for co-smoothing; the forecasting
baselines of `dynrnn.metrics`):

- the model observes the **held-in** neurons, mapped by `projection` (e.g. the principal
  components it was trained on); the reconstruction measures (`D_stsp`, `D_H`, `PE`,
  `max_lyapunov`) are computed in that space, as `dr.evaluate` does on arrays;
- **forecast**: from every start `t ≥ first` of the test part, `k = 1 … horizon` steps ahead,
  the model (state from `x_{t−warmup} … x_t`), a least-squares AR(`ar_order`) fitted on `train`
  and persistence `x̂_{t+k} = x_t`, all on the same starts and targets; R² pooled over the
  observed dimensions (`dr.metrics.prediction_r2`), and `R²(model) − R²(baseline)` with a
  paired moving-block bootstrap interval over starts;
- **co-smoothing**: a ridge read-out of the held-out neurons is fitted on `train` from the
  model's states inferred from the held-in activity (`dr.forcing.infer_states`) and, as the
  baseline, from the held-in activity the model sees; R² per held-out neuron on the test part
  and `mean R²(states) − mean R²(activity)` with a block-bootstrap interval over test frames.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive


def is_recording(x) -> bool:
    """An `xr.Dataset` or `xr.DataArray` (the recording path of `evaluate`)."""
    return isinstance(x, xr.Dataset | xr.DataArray)


def activity(rec, name: str) -> xr.DataArray:
    """The `(time, neuron)` main variable of a recording (`activity`, else the first variable
    on `time`), with the recording's attrs."""
    if isinstance(rec, xr.Dataset):
        timed = [k for k, v in rec.data_vars.items() if "time" in v.dims]
        if not timed:
            raise DynrnnValueError(f"`{name}` has no variable on a `time` dimension "
                                   f"(variables: {list(rec.data_vars)}).")
        var = "activity" if "activity" in timed else timed[0]
        da = rec[var]
        da.attrs = {**rec.attrs, **da.attrs}
    elif isinstance(rec, xr.DataArray):
        da = rec
    else:
        raise DynrnnTypeError(f"`{name}` must be an xr.Dataset or xr.DataArray recording, got "
                              f"{type(rec).__name__}.")
    if "time" not in da.dims or da.ndim != 2:
        raise DynrnnValueError(
            f"`{name}` must be a recording on dims ('time', 'neuron'), got dims {da.dims} "
            "(select one trial of a trial-structured recording first)."
        )
    other = next(d for d in da.dims if d != "time")
    return da.transpose("time", other)


def rate_of(da: xr.DataArray, name: str) -> tuple[float, float]:
    """`(rate in Hz, time of the first frame in s)`: the `rate` attr, else the spacing of the
    `time` coordinate."""
    t = np.asarray(da["time"].values, np.float64) if "time" in da.coords else None
    t0 = float(t[0]) if t is not None and t.size else 0.0
    rate = da.attrs.get("rate")
    if rate is not None:
        return float(rate), t0
    if t is not None and t.size > 1:
        step = float(np.median(np.diff(t)))
        if np.isfinite(step) and step > 0:
            return 1.0 / step, t0
    raise DynrnnValueError(
        f"`{name}` has neither a `rate` attribute nor a `time` coordinate in seconds; "
        f"evaluating a recording needs its frame rate (e.g. dr.io.from_array(x, rate=HZ))."
    )


def held_indices(held_out, n: int):
    """`(held_in, held_out)` index arrays; `held_out` must be distinct indices in `[0, n)` that
    leave at least one neuron in."""
    if held_out is None:
        return np.arange(n), np.arange(0)
    out = np.asarray(held_out).reshape(-1)
    if out.size and not np.issubdtype(out.dtype, np.integer):
        raise DynrnnValueError(f"`held_out` must be integer neuron indices (positions), got "
                               f"{out.tolist()!r}.")
    out = out.astype(int)
    if out.size == 0 or np.any((out < 0) | (out >= n)) or np.unique(out).size != out.size:
        raise DynrnnValueError(
            f"`held_out` must be distinct neuron indices (positions) in [0, {n}), got "
            f"{out.tolist()}."
        )
    if out.size >= n:
        raise DynrnnValueError(
            f"`held_out` holds out all {n} neurons; at least one must be held in (the model "
            "observes the held-in neurons)."
        )
    return np.setdiff1d(np.arange(n), out), np.sort(out)


def _project(projection, x: np.ndarray, name: str) -> np.ndarray:
    if projection is None:
        return x
    y = np.asarray(projection(x), np.float64)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise DynrnnValueError(
            f"`projection` must map ({x.shape[0]}, {x.shape[1]}) held-in activity of `{name}` "
            f"to (time, obs), got shape {y.shape}."
        )
    return y


def persistence(history, n_steps):
    """`x̂_{t+k} = x_t` (a predictor for `dr.metrics.forward_predictions`)."""
    return np.repeat(history[-1:], n_steps, axis=0)


def evaluate_recording(model, recording, *, train, held_out, projection, horizon, ar_order,
                       warmup, bootstrap, cosmoothing_alpha, evaluate_array, **kw) -> dict:
    """The recording path of `dr.evaluate` (see its docstring)."""
    from .. import metrics

    check_positive(horizon, "horizon", integer=True)
    check_positive(ar_order, "ar_order", integer=True)
    check_positive(warmup, "warmup", integer=True, strict=False)
    boot = metrics.BlockBootstrap() if bootstrap is None else bootstrap
    if not isinstance(boot, metrics.BlockBootstrap):
        raise DynrnnTypeError(f"`bootstrap` must be a dr.metrics.BlockBootstrap, got "
                              f"{type(boot).__name__}.")
    test = activity(recording, "x_test")
    rate, t0 = rate_of(test, "x_test")
    neuron_dim = test.dims[1]
    n = test.sizes[neuron_dim]
    held_in, out = held_indices(held_out, n)
    if out.size and train is None:
        raise DynrnnValueError("`held_out` needs `train=`: the read-out of the held-out neurons "
                               "is fitted on the training part.")
    a_te = np.asarray(test.values, np.float64)
    x_te = _project(projection, a_te[:, held_in], "x_test")
    if x_te.shape[1] != model.n_obs:
        what = ("`projection`'s output" if projection is not None else
                f"the {held_in.size} held-in neurons (`held_out` = {out.tolist()})" if out.size
                else f"the {n} neurons")
        raise DynrnnValueError(
            f"`x_test`: the model observes {model.n_obs} dimensions but {what} give "
            f"{x_te.shape[1]}; train the model on the held-in neurons (after `projection`)."
        )
    a_tr = x_tr = None
    if train is not None:
        tr = activity(train, "train")
        if tr.sizes[tr.dims[1]] != n:
            raise DynrnnValueError(f"`train` has {tr.sizes[tr.dims[1]]} neurons but `x_test` "
                                   f"has {n}; pass the same neurons (the training part).")
        a_tr = np.asarray(tr.values, np.float64)
        x_tr = _project(projection, a_tr[:, held_in], "train")

    result = evaluate_array(model, x_te, **kw)
    gen = result.get("generated")
    if gen is not None:
        drop = int(0.25 * x_te.shape[0])
        obs_dim, labels = _obs_coords(test, neuron_dim, held_in, projection, x_te.shape[1])
        result["generated"] = xr.DataArray(
            gen, dims=("time", obs_dim),
            coords={"time": ("time", t0 + (drop + np.arange(len(gen))) / rate, {"units": "s"}),
                    obs_dim: labels},
            attrs={"rate": rate, "units": test.attrs.get("units", "a.u."),
                   "description": f"free run from init_state(x_test[0]), steps {drop} to "
                                  f"{drop + len(gen) - 1} (the reference protocol)"},
        )
    result["forecast"] = _forecast(model, x_te, x_tr, horizon=horizon, ar_order=ar_order,
                                   warmup=warmup, boot=boot, rate=rate,
                                   max_starts=kw["max_prediction_points"])
    result["cosmoothing"] = None
    if out.size:
        result["cosmoothing"] = _cosmoothing(
            model, x_tr, x_te, a_tr[:, out], a_te[:, out], test[neuron_dim].values[out],
            neuron_dim, alpha=cosmoothing_alpha, boot=boot)
    return result


def _obs_coords(test, neuron_dim, held_in, projection, k):
    if projection is None:
        return neuron_dim, test[neuron_dim].values[held_in]
    return "component", np.arange(k)


def _forecast(model, x_te, x_tr, *, horizon, ar_order, warmup, boot, rate,
              max_starts) -> xr.Dataset:
    from .. import metrics

    first = max(ar_order - 1, warmup)
    stride = max(1, -(-(x_te.shape[0] - horizon - first) // int(max_starts)))
    pred_model, targets = metrics.forward_predictions(model, x_te, horizon, first=first,
                                                      stride=stride, warmup=warmup, alpha=1.0)
    names = ["model"]
    preds = [pred_model]
    if x_tr is not None:
        A, c = metrics.fit_ar(x_tr, ar_order)
        preds.append(metrics.forward_predictions(metrics.ar_predictor(A, c), x_te, horizon,
                                                 first=first, stride=stride)[0])
        names.append(f"AR({ar_order})")
    preds.append(metrics.forward_predictions(persistence, x_te, horizon, first=first,
                                             stride=stride)[0])
    names.append("persistence")
    r2 = np.stack([metrics.prediction_r2(p, targets) for p in preds])
    diffs = []
    for p in preds[1:]:
        def statistic(idx, p=p):
            return (metrics.prediction_r2(pred_model[idx], targets[idx])
                    - metrics.prediction_r2(p[idx], targets[idx]))

        diffs.append(boot.interval(statistic, targets.shape[0]))
    diff, low, high = (np.stack([d[i] for d in diffs]) for i in range(3))
    k = np.arange(1, horizon + 1)
    return xr.Dataset(
        {"r2": (("model", "horizon"), r2),
         "difference": (("baseline", "horizon"), diff),
         "low": (("baseline", "horizon"), low),
         "high": (("baseline", "horizon"), high)},
        coords={"model": names, "baseline": names[1:], "horizon": k,
                "lead_time": ("horizon", k / rate, {"units": "s"})},
        attrs={"description": "R² of k-step-ahead predictions on the test part, pooled over "
                              "the observed dimensions; difference = R²(model) − "
                              "R²(baseline) with a paired moving-block bootstrap interval "
                              "over starts",
               "starts": int(targets.shape[0]), "first_start": int(first),
               "stride": int(stride),
               "warmup": int(warmup), "ar_order": int(ar_order),
               "ar_fitted_on": "train" if x_tr is not None else "(no train given: no AR row)",
               "block": boot.block, "n_boot": boot.n_boot, "level": boot.level,
               "seed": boot.seed, "rate": rate},
    )


def _r2_columns(pred, true):
    ss_res = np.sum((pred - true) ** 2, axis=0)
    ss_tot = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    return 1.0 - ss_res / ss_tot


def _cosmoothing(model, x_tr, x_te, y_tr, y_te, labels, neuron_dim, *, alpha,
                 boot) -> xr.Dataset:
    from .. import forcing, metrics

    s_tr = forcing.infer_states(model, x_tr, alpha=alpha)
    s_te = forcing.infer_states(model, x_te, alpha=alpha)
    pred_states = metrics.readout_predictions(s_tr, s_te, y_tr)
    pred_input = metrics.readout_predictions(x_tr, x_te, y_tr)
    r2 = np.stack([_r2_columns(pred_states, y_te), _r2_columns(pred_input, y_te)])

    def statistic(idx):
        return (np.mean(_r2_columns(pred_states[idx], y_te[idx]))
                - np.mean(_r2_columns(pred_input[idx], y_te[idx])))

    diff, low, high = boot.interval(statistic, y_te.shape[0])
    sources = ["latent states", "held-in activity"]
    return xr.Dataset(
        {"r2": (("regressors", neuron_dim), r2),
         "mean_r2": ("regressors", r2.mean(1)),
         "median_r2": ("regressors", np.median(r2, axis=1)),
         "difference": ((), float(diff)), "low": ((), float(low)), "high": ((), float(high))},
        coords={"regressors": sources, neuron_dim: labels},
        attrs={"description": "co-smoothing: test R² of each held-out neuron from a ridge "
                              "read-out fitted on the training part; regressors: the model's "
                              "latent states inferred from the held-in activity, or that "
                              "activity itself (what the model sees); difference = mean R² "
                              "(states) − mean R² (activity) with a moving-block bootstrap "
                              "interval over test frames",
               "alpha": float(alpha), "ridge": 1e-3, "block": boot.block,
               "n_boot": boot.n_boot, "level": boot.level, "seed": boot.seed},
    )


def _ci(d, lo, hi, digits):
    return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def evaluation_markdown(evaluation: dict, *, digits: int = 4) -> str:
    """The forward-prediction and co-smoothing tables of `dr.evaluate` on a recording, as
    Markdown.

    **Arguments:**
    - `evaluation`: what `dr.evaluate(model, recording, ...)` returns (its `forecast` and
      `cosmoothing` entries are used).
    - `digits`: decimals of R².

    **Returns:** the tables and a line on the protocol of each, as one string.
    """
    lines = []
    fc = evaluation.get("forecast")
    if fc is not None:
        ks = fc["horizon"].values
        lead = fc["lead_time"].values
        lines += [
            f"Forward prediction: R² of k-step-ahead predictions on the test part "
            f"({fc.attrs['starts']} starts from frame {fc.attrs['first_start']}; model state "
            + (f"forced over {fc.attrs['warmup']} earlier frames" if fc.attrs["warmup"]
               else "from x_t") + f"; AR fitted on {fc.attrs['ar_fitted_on']}).",
            "",
            "| predictor | " + " | ".join(f"{k}-step ({t:.3g} s)" for k, t in zip(ks, lead))
            + " |",
            "|---|" + "---|" * len(ks),
        ]
        for name in fc["model"].values:
            lines.append(f"| {name} | " + " | ".join(
                f"{v:.{digits}f}" for v in fc["r2"].sel(model=name).values) + " |")
        level = round(100 * fc.attrs["level"])
        for b in fc["baseline"].values:
            cells = " | ".join(_ci(*(fc[v].sel(baseline=b).values[i]
                                     for v in ("difference", "low", "high")), digits)
                               for i in range(len(ks)))
            lines.append(f"| R²(model) − R²({b}), {level} % CI | {cells} |")
        lines += ["", f"(intervals: moving-block bootstrap over starts, blocks of "
                  f"{fc.attrs['block']}, {fc.attrs['n_boot']} resamples, paired)"]
    cs = evaluation.get("cosmoothing")
    if cs is not None:
        dim = next(d for d in cs["r2"].dims if d != "regressors")
        level = round(100 * cs.attrs["level"])
        lines += [
            "" if lines else None,
            f"Co-smoothing: test R² of the {cs.sizes[dim]} held-out neurons from a ridge "
            "read-out fitted on the training part.",
            "",
            "| regressors | mean R² | median R² |",
            "|---|---|---|",
        ]
        for name in cs["regressors"].values:
            lines.append(f"| {name} | {float(cs['mean_r2'].sel(regressors=name)):.{digits}f} | "
                         f"{float(cs['median_r2'].sel(regressors=name)):.{digits}f} |")
        lines.append(f"| mean R²(latent states) − mean R²(held-in activity), {level} % CI | "
                     + _ci(float(cs["difference"]), float(cs["low"]), float(cs["high"]), digits)
                     + " | |")
        lines += ["", f"(interval: moving-block bootstrap over test frames, blocks of "
                  f"{cs.attrs['block']}, {cs.attrs['n_boot']} resamples)"]
    return "\n".join(line for line in lines if line is not None)
