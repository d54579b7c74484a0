"""The reconstruction job behind `dynrnn reconstruct` and `dynrnn fit`."""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import time

import numpy as np

from .._errors import DynrnnValueError
from ._config import (
    build_model,
    build_teacher_forcing,
    dumps_toml,
    model_key,
)
from ._prepare import prepare
from ._schema import validate


def _run_dir(cfg, out: str | None) -> pathlib.Path:
    if out is not None:
        return pathlib.Path(out)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path(cfg["output"].get("dir", "runs")) / f"{stamp}-{cfg['name']}"


def _per_time_unit(value, dt):
    return value / dt if dt else value


MIN_VALIDATION = 160  # points: D_H's smoothing kernel (sigma 20, radius 4 sigma) on both sides


def _load_data(cfg, echo=print):
    """Training, validation and test series, their attrs and the preprocessing history from
    the [data] and [preprocess] tables (`_prepare.prepare`)."""
    tr = cfg["training"]
    data = prepare(cfg, seq_len=int(tr["seq_len"]), echo=echo)
    x_train, x_test = data.train, data.test
    n_val = int(float(tr.get("validation_fraction", 0.1)) * x_train.shape[0])
    # The held-out measures need a part longer than a training window and long enough for
    # D_H's spectral smoothing (160 points at sigma 20); a shorter series trains on all of it.
    x_fit, x_val = (x_train[:-n_val], x_train[-n_val:]) if n_val > max(
        tr["seq_len"], MIN_VALIDATION) else (x_train, None)
    dt = data.dt if data.dt is not None else data.attrs.get("dt")
    attrs = dict(data.attrs, dt=float(dt) if dt else None)
    if data.recording is not None:
        # Not a file attr: the neurons before the projection, which `_report` evaluates on
        # (the automatic job passes these attrs on to `_report` unchanged).
        attrs["recording"] = data.recording
    return x_train, x_fit, x_val, x_test, attrs, data


def _open_run_folder(cfg, out, overwrite: bool) -> pathlib.Path:
    """The run folder, with `config.toml` written only once it is clear that the folder does
    not hold another run (which would be resumed with the wrong settings)."""
    import tomllib

    from ..training._checkpoint import atomic_write_bytes
    from ..training._hooks import first_difference

    run_dir = _run_dir(cfg, out)
    saved = run_dir / "config.toml"
    if saved.exists() and (run_dir / "checkpoints" / "last.eqx").exists() and not overwrite:
        difference = first_difference(tomllib.loads(saved.read_text()), cfg)
        if difference is not None:
            where, there, now = difference
            raise DynrnnValueError(
                f"run folder {str(run_dir)!r} holds a run with {where} = {there!r} (now "
                f"{now!r}); resume it with the same configuration, pass another --out, or "
                "--overwrite to start afresh there."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(saved, dumps_toml(cfg).encode())
    return run_dir


def run_reconstruction(cfg: dict, *, out: str | None = None, progress: bool = True,
                       overwrite: bool = False, echo=print, mesh=None) -> dict:
    """Train, evaluate and write a run folder. Returns the measures.

    With a `mesh` over several processes (`dynrnn fit --distributed`) every process loads the
    data and trains; an error in any of them stops all; process 0 alone writes the run folder,
    prints and evaluates (the others return `{}`).
    """
    import dynrnn as dr

    from ..training._distributed import Processes

    processes = Processes(mesh)
    if not processes.writer:
        echo = _quiet
    validate(cfg, "(after the command line's options)")
    t0 = time.perf_counter()

    def setup():
        loaded = _load_data(cfg, echo)
        k_model, k_fit = model_key(cfg)
        model = build_model(cfg["model"], loaded[0].shape[1], k_model)
        return loaded, k_fit, model, build_teacher_forcing(cfg["teacher_forcing"])

    (x_train, x_fit, x_val, x_test, attrs, data), k_fit, model, tf = processes.agree(setup)
    tr = cfg["training"]
    # The writer opens the folder (its name may hold the time); every process gets the name.
    run_dir = pathlib.Path(processes.on_writer(
        lambda: str(_open_run_folder(cfg, out, overwrite)).encode()).decode())
    echo(f"run folder: {run_dir}")
    model_table = {k: v for k, v in cfg["model"].items() if k != "type"}
    echo(f"model: {type(model).__name__} {json.dumps(model_table)}")
    n_steps = int(tr["n_steps"])
    callbacks = []
    if x_val is not None:
        callbacks.append(dr.training.Evaluation(x_val[:10_000],
                                                every=int(tr.get("eval_every", 5000))))
    members = []
    try:
        if int(tr.get("members", 1)) > 1:
            if mesh is not None:
                raise DynrnnValueError("[training] members > 1 trains its members in separate "
                                       "processes; it cannot be combined with --distributed.")
            from ._members import fit_members

            result, members = fit_members(cfg, x_train, x_fit, x_val, run_dir, progress,
                                          overwrite, echo)
        else:
            result = _fit(dr, model, x_fit, tf, tr, n_steps, k_fit, progress, run_dir,
                          overwrite, callbacks, mesh)
    except dr.TrainingDivergedError as e:
        if data.standardised:
            raise
        # Raw fluorescence in the thousands makes the first updates of a model initialised at
        # unit scale overflow: name that cause before the generic advice.
        err = dr.TrainingDivergedError(
            f"{e} Likely cause: the data's scale; it was not standardised ({data.scale}). Set "
            "[preprocess] zscore = true (or leave it at 'auto')."
        )
        err.result, err.step = getattr(e, "result", None), getattr(e, "step", None)
        raise err from e
    if not processes.writer:
        return {}
    train_time = time.perf_counter() - t0
    # The final model is reported (reference protocol); `checkpoints/best.eqx` keeps the one
    # with the best held-out D_stsp on the validation piece.
    dr.save(run_dir / "model.eqx", result.model, config=cfg, train_time=train_time)
    if members:
        from ..training._checkpoint import atomic_write_bytes
        from ._members import members_markdown

        atomic_write_bytes(run_dir / "members.md", members_markdown(members).encode())
    history = result.history
    history.attrs["preprocessing"] = json.dumps(data.history)
    history.to_netcdf(run_dir / "history.nc", engine="h5netcdf")
    # the data's own measures and the recording tables: the training part as recorded (before
    # [preprocess] denoise)
    recorded = data.recorded if data.recorded is not None else x_train
    measures, x_gen = _report(cfg, result.model, recorded, x_test, attrs, echo)
    verdict, message, suggestions = judge(recorded, x_test, x_gen, n_steps=n_steps)
    echo("")
    echo(message)
    for s in suggestions:
        echo(f"  - {s}")
    (run_dir / "verdict.txt").write_text(message + "\n" + "".join(f"  - {s}\n"
                                                                  for s in suggestions))
    total = time.perf_counter() - t0
    measures.update(verdict=verdict, message=message, suggestions=suggestions,
                    train_time_s=train_time, total_time_s=total, n_steps=n_steps,
                    preprocessing=data.history)
    _write_outputs(cfg, run_dir, measures, x_test, x_gen, attrs["dt"], history, echo,
                   data.history)
    extra = "".join(f", {name}" for name in ("members.md", "evaluation.md", "evaluation.nc",
                                               "projection.nc") if (run_dir / name).exists())
    echo(f"\nwrote {run_dir} (model.eqx, config.toml, history.nc, measures.json, verdict.txt, "
         f"generated.nc"
         f"{extra}{', figures' if cfg.get('output', {}).get('figures', True) else ''}) in "
         f"{total:.0f} s")
    return measures


def _quiet(*args, **kwargs):
    pass


def judge(x_train, x_test, x_gen, *, n_steps: int):
    """`(verdict, message, suggestions)` for a model trained with fixed settings: the free run
    `x_gen` (from the test series' first point, as long as it) judged by the rules of the
    automatic mode (`dr.training._reconstruct.diagnose`) in units of the training series'
    sd, so that a fixed-point or divergent model is named as one instead of printed as a
    row of numbers (issue 22, item 2)."""
    import jax.numpy as jnp

    from ..tasks._reconstruction import _d_stsp
    from ..training._reconstruct import _measures, _standardise, constant_d_h, diagnose

    train_s, test_s, mean, scale = _standardise(np.asarray(x_train, np.float64),
                                                np.asarray(x_test, np.float64))
    gen_s = (np.asarray(x_gen, np.float64) - mean) / scale
    n = min(len(test_s), len(gen_s))
    n_bins = 30  # as the automatic mode scores (`_measures`' default)
    d_stsp, d_h = _measures(test_s[:n], gen_s[:n], n_bins)
    d_h_constant = constant_d_h(test_s[:n])
    d_stsp_data = _d_stsp(test_s[:n], jnp.asarray(train_s), n_bins)
    verdict = diagnose(gen_s[:n], d_h=d_h, d_h_constant=d_h_constant, d_stsp=d_stsp,
                       d_stsp_data=d_stsp_data)
    scores = (f"D_stsp {d_stsp:.3g} (the training series against the test series: "
              f"{d_stsp_data:.3g}), D_H {d_h:.3g} (a constant: {d_h_constant:.3g})")
    if verdict == "ok":
        return verdict, f"Reconstructed: the free run stays on the data's range and moves; " \
                        f"{scores}.", []
    what = {
        "divergent": "the model's free run diverges (it leaves the data's range by more than "
                     "20 sd)",
        "fixed point": "the model settles on a fixed point: it does not move once running "
                       "freely",
        "no better than a constant": "the model's power spectrum is no closer to the data's "
                                     "than a constant's",
        "poor": "the model moves, but its state-space distribution is far from the data's",
    }[verdict]
    word = "POOR" if verdict == "poor" else "FAILED"
    message = f"The reconstruction {word}: {what}. On the test series: {scores}."
    suggestions = ["the automatic mode (`dynrnn reconstruct --data FILE` without "
                   "--steps/--hidden/--latent/--config, or --budget 10min): a grid of settings "
                   "scored on held-out data"]
    suggestions.append(f"more updates (--steps {max(2 * n_steps, 10_000)})")
    if verdict == "divergent":
        suggestions.append("a smaller learning rate ([training] learning_rate = 1e-4)")
    else:
        suggestions.append("stronger forcing ([teacher_forcing] alpha = 0.5) or a longer "
                           "training window ([training] seq_len)")
    return verdict, message, suggestions


def _fit(dr, model, x_fit, tf, tr, n_steps, k_fit, progress, run_dir, overwrite, callbacks,
         mesh=None):
    return dr.fit(
        model, x_fit,
        loss=dr.training.Reconstruction(tf, seq_len=int(tr["seq_len"]),
                                        noise=float(tr.get("noise", 0.0))),
        optimizer=dr.training.default_optimizer(
            n_steps, float(tr.get("learning_rate", 1e-3)),
            float(tr.get("final_learning_rate", 1e-6))),
        n_steps=n_steps, batch_size=int(tr["batch_size"]), key=k_fit, progress=progress,
        checkpoint_dir=dr.training.Checkpointing(run_dir / "checkpoints", overwrite=overwrite),
        callbacks=callbacks, steps_per_call=int(tr.get("steps_per_call", 250)), mesh=mesh,
    )


def _report(cfg, model, x_train, x_test, attrs, echo):
    """The measures of the model and, for comparison, of the data; printed as a table."""
    import dynrnn as dr

    dt = attrs["dt"]
    ev_cfg = cfg.get("evaluation", {})
    pe_n = int(ev_cfg.get("prediction_steps", 20))
    kw = dict(lyapunov=True, prediction_steps=pe_n,
              lyapunov_steps=int(ev_cfg.get("lyapunov_steps", 10_000)))
    view = None
    if attrs.get("recording") is not None:
        view = recording_view(attrs["recording"], x_train, x_test, dt, echo,
                              standardisation=attrs.get("standardisation"))
    if view is not None:
        test_rec, train_rec, held_out, projection, stored = view
        ev = dr.evaluate(
            model, test_rec, train=train_rec, held_out=held_out if held_out.size else None,
            projection=projection, horizon=int(ev_cfg.get("horizon", 5)),
            ar_order=int(ev_cfg.get("ar_order", 5)),
            bootstrap=dr.metrics.BlockBootstrap(block=int(ev_cfg.get("block", 50)),
                                                n_boot=int(ev_cfg.get("n_boot", 2000))),
            **kw)
        recording = {"forecast": ev.pop("forecast"), "cosmoothing": ev.pop("cosmoothing"),
                     "held_out": [str(v) for v in attrs["recording"].neurons[held_out]],
                     "projection": stored}
        ev["generated"] = np.asarray(ev["generated"].values)
    else:
        ev = dr.evaluate(model, x_test, **kw)
    x_gen = ev.pop("generated")
    # Data column: the same measures for the training data against the test set, the
    # persistence forecast for PE(n), and the system's exponent where the data card has it.
    from ..metrics._spectrum import smoothing_for_length

    n = min(len(x_test), len(x_train))
    method = "bins" if x_test.shape[1] < 6 else "gmm"
    data_col = {
        "D_stsp": float(dr.metrics.state_space_divergence(x_test, x_train[:n], method=method)),
        "D_H": float(dr.metrics.power_spectrum_distance(
            x_test[:n], x_train[:n], smoothing=smoothing_for_length(n))),
        "PE": float(np.mean((x_test[pe_n:] - x_test[:-pe_n]) ** 2)),
        "max_lyapunov": math.nan,
    }
    spectrum = attrs.get("lyapunov_spectrum")
    if isinstance(spectrum, str):
        spectrum = json.loads(spectrum)
    if spectrum is not None:
        data_col["max_lyapunov"] = float(np.max(np.asarray(spectrum, float)))
    model_col = dict(ev)
    model_col["max_lyapunov"] = _per_time_unit(ev["max_lyapunov"], dt)
    unit = "per time unit" if dt else "per step"
    rows = [
        ("D_stsp", "state-space divergence"),
        ("D_H", "power-spectrum distance"),
        ("PE", f"prediction error PE({pe_n})"),
        ("max_lyapunov", f"largest Lyapunov exponent ({unit})"),
    ]
    echo("")
    echo(f"{'measure':<44}{'model':>12}{'data':>12}")
    for k, label in rows:
        echo(f"{label:<44}{model_col[k]:>12.4f}{data_col[k]:>12.4f}")
    echo("(data: training series vs test set; PE: persistence forecast; λ: data card)")
    measures = {"model": model_col, "data": data_col, "dt": dt}
    if view is not None:
        echo("")
        echo(dr.training.evaluation_markdown(dict(recording)))
        measures["recording"] = recording
    return measures, x_gen


def recording_view(rec, x_train, x_test, dt, echo, standardisation=None):
    """`(test, train, held_out, projection, stored)` for `dr.evaluate` on the recording `rec`
    (the neurons before the projection, `_prepare.Recording`), such that the projection of the
    held-in neurons is exactly the series the model was trained and tested on; `stored` is
    that map as a dataset (`projection.nc`). The sub-sampling is read from `dt`; the automatic
    job (`dr.reconstruct`) also sets constant channels aside and standardises again, which it
    hands over as `standardisation` (`channels`, `mean`, `scale` of the sub-sampled series,
    as `dr.reconstruct` returns them: the denoised training series' when it was denoised).
    When the projection does not reproduce the series the model saw, the recording measures
    are skipped with a note (`None`)."""
    import dynrnn as dr

    held_in = rec.held_in
    base = rec.projection or (lambda x: x)
    step = 1
    if dt is not None and abs(dt * rec.rate - 1) > 1e-6:
        step = int(round(dt * rec.rate))
    tr_in, te_in = rec.train[::step, held_in], rec.test[::step, held_in]

    def close(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5)

    projection = base
    steps = {"subsample": step} if step > 1 else {}
    if standardisation is not None:
        # dr.reconstruct: the channels it kept, standardised as its (denoised) training series
        channels, mean, scale = (np.asarray(standardisation[k])
                                 for k in ("channels", "mean", "scale"))

        def projection(x):
            return (base(x)[:, channels] - mean) / scale

        steps.update(channels=channels, channel_mean=mean, channel_scale=scale)
    if not (close(projection(tr_in), x_train)
            and close(projection(te_in)[: len(x_test)], x_test)):
        echo("note: the forecast and co-smoothing tables are skipped: the series the "
             "model saw could not be matched to the recording's neurons")
        return None
    n_test = len(x_test)
    rate = rec.rate / step

    def as_recording(x, t0):
        return dr.io.from_array(x, rate=rate, units=rec.units).assign_coords(
            time=t0 + np.arange(len(x)) / rate, neuron=rec.neurons)

    return (as_recording(rec.test[::step][:n_test], rec.t0_test),
            as_recording(rec.train[::step], rec.t0_train), rec.held_out, projection,
            rec.to_dataset(**steps))


def _write_recording_tables(run_dir, recording, measures):
    """`evaluation.md`, `evaluation.nc` (groups `forecast`, `cosmoothing`), `projection.nc`
    (what maps the recording's neurons to the model's input, `_prepare.PROJECTION_FORMULA`)
    and a summary in `measures.json`."""
    import dynrnn as dr

    fc, cs = recording["forecast"], recording["cosmoothing"]
    (run_dir / "evaluation.md").write_text(
        "# Evaluation on the recording's test part\n\n"
        + dr.training.evaluation_markdown(recording) + "\n")
    fc.to_netcdf(run_dir / "evaluation.nc", group="forecast", engine="h5netcdf")
    recording["projection"].to_netcdf(run_dir / "projection.nc", engine="h5netcdf")
    summary = {"forecast_r2": {str(m): fc["r2"].sel(model=m).values.tolist()
                               for m in fc["model"].values},
               "horizon": fc["horizon"].values.tolist()}
    if cs is not None:
        cs.to_netcdf(run_dir / "evaluation.nc", group="cosmoothing", mode="a",
                     engine="h5netcdf")
        summary["cosmoothing"] = {
            "held_out_neurons": recording["held_out"],
            **{f"mean_r2 ({r})": float(cs["mean_r2"].sel(regressors=r))
               for r in cs["regressors"].values},
            "difference": [float(cs[v]) for v in ("difference", "low", "high")]}
    measures["recording"] = summary


def _principal_components(x_test, x_gen, k=3):
    """Both series on the leading principal components of the test data (a recording's
    neurons are too many to draw one by one), and the axis labels."""
    mu = x_test.mean(0)
    _, sv, vt = np.linalg.svd(x_test - mu, full_matrices=False)
    share = sv**2 / np.sum(sv**2)
    labels = [f"PC{i + 1} ({100 * share[i]:.0f}% var.)" for i in range(k)]
    return (x_test - mu) @ vt[:k].T, (x_gen - mu) @ vt[:k].T, labels


def _write_outputs(cfg, run_dir, measures, x_test, x_gen, dt, history, echo,
                   preprocessing=()):
    """`measures.json`, `generated.nc` (test series and free-running model) and the figures;
    series with more than three dimensions are drawn on the test data's principal components."""
    import xarray as xr

    import dynrnn as dr

    recording = measures.pop("recording", None)
    if recording is not None:
        _write_recording_tables(run_dir, recording, measures)
    (run_dir / "measures.json").write_text(json.dumps(measures, indent=2))
    steps = np.arange(len(x_test))
    xr.Dataset(
        {"state": (("series", "time", "dim"), np.stack([x_test, x_gen]))},
        coords={"series": ["test", "model"], "time": steps * dt if dt else steps},
        attrs={"source": "dynrnn reconstruct", "time_units": "s" if dt else "steps",
               "dt": dt or 1.0, "rate": 1.0 / dt if dt else 1.0,
               "history": json.dumps(list(preprocessing))},
    ).to_netcdf(run_dir / "generated.nc", engine="h5netcdf")
    if not cfg.get("output", {}).get("figures", True):
        return
    try:
        labels = None
        if x_test.shape[1] > 3:
            x_test, x_gen, labels = _principal_components(x_test, x_gen)
        fig = dr.plot.attractor(x_test, x_gen, title=cfg["name"], labels=labels)
        fig.savefig(run_dir / "attractor.png", dpi=110)
        fig = dr.plot.power_spectra(x_test, x_gen, dt=dt, labels=labels)
        fig.savefig(run_dir / "power_spectra.png", dpi=110)
        if history is not None:  # None: a model fitted in closed form
            fig = dr.plot.training_curves(history)
            fig.savefig(run_dir / "loss.png", dpi=110)
        import matplotlib.pyplot as plt

        plt.close("all")
    except Exception as e:  # figures are a convenience; never lose a finished run over them
        echo(f"warning: could not draw figures: {e}")
