"""The automatic mode of `dynrnn reconstruct` (`--data` without fixed settings, or `--budget`):
`dr.reconstruct` on the series the command line reads, and a run folder like the fixed mode's
plus the grid (`grid.csv`, `grid.md`) and the verdict (`verdict.txt`, `measures.json`)."""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import numpy as np

from .._errors import DynrnnValueError
from ._config import DEFAULT_RECONSTRUCT, dumps_toml, merge, set_data


def _folder(cfg, out, overwrite: bool) -> pathlib.Path:
    from ._run import _run_dir

    run_dir = _run_dir(cfg, out)
    held = [n for n in ("model.eqx", "grid.csv", "verdict.txt") if (run_dir / n).exists()]
    if held and not overwrite:
        raise DynrnnValueError(
            f"run folder {str(run_dir)!r} holds another run ({', '.join(held)}); pass another "
            "--out, or --overwrite to replace it."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_automatic(args, echo=print) -> int:
    """`dynrnn reconstruct` with the settings chosen by `dr.reconstruct`."""
    import dynrnn as dr
    from dynrnn.training._reconstruct import DEFAULT_BUDGET, grid_csv, parse_budget

    from ._run import _load_data, _report, _write_outputs

    budget = DEFAULT_BUDGET
    if args.budget is not None:
        try:
            budget = parse_budget(args.budget)
        except DynrnnValueError as e:
            raise DynrnnValueError(f"--budget {args.budget!r}: {e}") from e
    workers = _workers(args)
    for name in ("steps", "hidden", "latent"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise DynrnnValueError(f"--{name} must be an integer >= 1, got {value}.")
    cfg = merge(DEFAULT_RECONSTRUCT, {})
    set_data(cfg, args)
    # dr.reconstruct standardises with the training statistics itself (and must see a
    # constant series as constant, not as NaN after dividing by its zero sd).
    cfg["preprocess"] = {"zscore": False}
    cfg["training"]["seq_len"] = 10
    t0 = time.perf_counter()
    x_train, _, _, x_test, attrs, data = _load_data(cfg, echo)
    run_dir = _folder(cfg, args.out, args.overwrite)
    echo(f"run folder: {run_dir}")
    # the grid's checkpoints: an interrupted run resumes from them (same data and settings)
    checkpoints = run_dir / "checkpoints"
    if args.overwrite:
        shutil.rmtree(checkpoints, ignore_errors=True)
    elif checkpoints.exists():
        echo(f"resuming the grid from {checkpoints} (an interrupted run of this folder)")
    dt = attrs.get("dt")
    lyap = attrs.get("lyapunov_spectrum")
    if isinstance(lyap, str):
        lyap = json.loads(lyap)
    lam = float(np.max(np.asarray(lyap, float))) if lyap is not None else None
    import jax.random as jr

    result = dr.reconstruct(
        x_train, test=x_test, dt=dt, budget=budget,
        key=jr.PRNGKey(args.seed if args.seed is not None else 0),
        n_steps=args.steps, latent=args.latent, hidden=args.hidden, lyapunov=lam,
        progress=args.progress, echo=echo, workers=workers,
        denoise=args.denoise is not False, checkpoint_dir=checkpoints,
    )
    if result.model is None:
        (run_dir / "verdict.txt").write_text(result.message + "\n")
        (run_dir / "measures.json").write_text(json.dumps(
            {"verdict": result.verdict, "message": result.message,
             "analysis": _analysis(result)}, indent=2))
        echo("")
        echo(result.message)
        for s in result.suggestions:
            echo(f"  - {s}")
        echo(f"\nwrote {run_dir} (verdict.txt, measures.json)")
        return 0
    (run_dir / "grid.csv").write_text(grid_csv(result.grid))
    (run_dir / "grid.md").write_text(result.grid_markdown() + "\n")
    kept = result.to_config()
    fit_cfg = merge(cfg, kept)
    # only the kept run's sub-sampling and denoising: the automatic mode standardised the
    # series itself (its `zscore = false`), `dynrnn fit` does by its own rule
    fit_cfg["preprocess"] = kept["preprocess"]
    fit_cfg["model"] = kept["model"]  # the kept family's table, not merged with another's
    fit_cfg["name"] = cfg["name"]
    (run_dir / "config.toml").write_text(dumps_toml(fit_cfg))
    dr.save(run_dir / "model.eqx", result.model, config=fit_cfg, train_time=result.wall_time)
    history = None
    if result.history is not None:  # a kept echo state network had no updates
        history = result.history.drop_vars(
            [v for v in ("member",) if v in result.history.coords])
        history.attrs["preprocessing"] = json.dumps(data.history)
        history.to_netcdf(run_dir / "history.nc", engine="h5netcdf")
    s, ch = result.subsample, result.channels
    train_std = (x_train[::s, ch] - result.mean) / result.scale
    model_attrs = dict(attrs, dt=result.dt, standardisation=dict(
        channels=ch, mean=result.mean, scale=result.scale))
    if lam is not None:
        model_attrs["lyapunov_spectrum"] = [lam]
    measures, x_gen = _report(fit_cfg, result.model, train_std, result.test, model_attrs, echo)
    measures.update(verdict=result.verdict, message=result.message,
                    suggestions=result.suggestions, settings=_plain(result.settings),
                    analysis=_analysis(result), n_steps=result.plan.n_steps,
                    grid_members=len(result.grid), train_time_s=result.wall_time,
                    total_time_s=time.perf_counter() - t0, preprocessing=data.history)
    (run_dir / "verdict.txt").write_text(result.message + "\n" + "".join(
        f"  - {s}\n" for s in result.suggestions))
    _write_outputs(fit_cfg, run_dir, measures, result.test, x_gen, result.dt, history, echo,
                   data.history)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the run is complete: nothing to resume
    echo("")
    echo(f"grid ({len(result.grid)} settings; PLRNNs × {result.plan.n_steps} updates; "
         "grid.md):")
    for row in sorted(result.grid, key=lambda r: (not r["kept"], r["series_D_stsp"]))[:5]:
        if row.get("family") == "EchoStateNetwork":
            what = (f"ESN {row['latent']} units, radius {row['spectral_radius']:g}, leak "
                    f"{row['leak']:g}")
        else:
            alpha = "adaptive" if row["alpha"] is None else f"α={row['alpha']:g}"
            what = f"hidden {row['hidden']:<4} {alpha:<9} lr {row['learning_rate']:<6g}"
        echo(f"  {'*' if row['kept'] else ' '} {what} seed {row['seed']}  validation runs: D_stsp "
             f"{row['series_D_stsp']:.3g} (vs the series), {row['val_D_stsp']:.3g} (vs the "
             f"held-out end), D_H {row['series_D_H']:.3g} (vs the series), "
             f"{row['val_D_H']:.3g} (vs the held-out end)")
    echo("")
    echo(result.message)
    echo("(the verdict's figures are of a free run as long as the test series from its first "
         "point, as dr.tasks.Reconstruction scores; the table above follows the reference "
         "protocol: 1.25 T generated, the first 0.25 T dropped)")
    if result.suggestions:
        echo("Not tried by the grid, worth trying:")
        for s in result.suggestions:
            echo(f"  - {s}")
    extra = "".join(f", {name}" for name in ("evaluation.md", "evaluation.nc", "projection.nc")
                    if (run_dir / name).exists())
    echo(f"\nwrote {run_dir} (model.eqx, config.toml, grid.csv, grid.md, "
         f"{'history.nc, ' if history is not None else ''}"
         f"measures.json, verdict.txt, generated.nc{extra}, figures) in "
         f"{time.perf_counter() - t0:.0f} s")
    return 0


def _workers(args):
    """`--workers` as `dr.reconstruct` takes it (`"auto"` or a number)."""
    value = getattr(args, "workers", None)
    if value is None or value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise DynrnnValueError(f"--workers must be 'auto' or an integer >= 1, got {value!r}.")
    return n


def _plain(d: dict) -> dict:
    return {k: (v if not isinstance(v, np.generic) else v.item()) for k, v in d.items()}


def _analysis(result) -> dict:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(result.analysis).items()}
