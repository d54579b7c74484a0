"""The figure of a comparison (`dr.compare`): each measure per model and task, every seed a
dot, the median a bar."""

from __future__ import annotations

import numpy as np

from ._common import new_figure


_LABELS = {
    "D_stsp": "D_stsp (lower is better)",
    "D_H": "D_H (lower is better)",
    "PE20": "PE(20) (lower is better)",
    "lambda_max": "λ_max per time unit",
    "accuracy": "accuracy (higher is better)",
}


def compare(ds, *, measures=None, fig=None):
    """One panel per task and measure: each model's seeds as dots and their median as a
    horizontal bar, models in the order of the task's main measure (best first). Failed runs
    (infinite D_stsp) are drawn at the top of the panel as crosses. The data's largest
    Lyapunov exponent is a dashed line in the λ_max panels.

    **Arguments:**
    - `ds`: the dataset `dr.compare` returned.
    - `measures`: the measures to draw (default: every measure with a finite value).
    - `fig`: a figure to draw into.

    **Returns:** the matplotlib figure.
    """
    tasks = list(ds["task"].values)
    if measures is None:
        measures = [m for m in ds["measure"].values
                    if np.isfinite(ds["score"].sel(measure=m).values).any()
                    or np.isinf(ds["score"].sel(measure=m).values).any()]
    measures = list(measures) or list(ds["measure"].values[:1])
    n_models = ds.sizes["model"]
    fig = new_figure(fig, figsize=(max(3.2, 0.45 * n_models + 1.6) * len(measures),
                                   2.9 * len(tasks)))
    axes = fig.subplots(len(tasks), len(measures), squeeze=False)
    for ti, task in enumerate(tasks):
        sub = ds.sel(task=task)
        metric = str(sub["metric"].values)
        main = np.asarray(sub["score"].sel(measure=metric).values, float)
        with np.errstate(all="ignore"):
            med = np.array([np.nanmedian(np.where(np.isinf(r), np.nan, r))
                            if np.isfinite(r).any() else np.inf for r in main])
        sign = -1.0 if bool(ds["higher_is_better"].sel(measure=metric)) else 1.0
        order = np.argsort(sign * np.where(np.isnan(med), np.inf, med), kind="stable")
        names = [str(ds["model"].values[i]) for i in order]
        for mi, m in enumerate(measures):
            ax = axes[ti, mi]
            vals = np.asarray(sub["score"].sel(measure=m).values, float)[order]
            finite = vals[np.isfinite(vals)]
            top = (finite.max() * 1.15 if finite.size and finite.max() > 0 else 1.0)
            for x, row in enumerate(vals):
                ok = np.isfinite(row)
                jitter = np.linspace(-0.15, 0.15, row.size) if row.size > 1 else np.zeros(1)
                ax.plot(x + jitter[ok], row[ok], "o", ms=3.5, alpha=0.7, color=f"C{x % 10}")
                bad = np.isinf(row)
                if bad.any():
                    ax.plot(x + jitter[bad], np.full(bad.sum(), top), "x", color="k", ms=5)
                if ok.any():
                    ax.hlines(np.median(row[ok]), x - 0.3, x + 0.3, color="k", lw=1.5)
            if m == "lambda_max" and np.isfinite(float(sub["lambda_data"])):
                ax.axhline(float(sub["lambda_data"]), ls="--", color="0.4", lw=1,
                           label="data")
                ax.legend(fontsize=7, loc="best")
            if m in ("D_stsp", "PE20") and finite.size and (finite > 0).all() and \
                    finite.max() / max(finite.min(), 1e-12) > 50:
                ax.set_yscale("log")
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{task}: {_LABELS.get(m, m)}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    n_seeds = ds.sizes["seed"]
    fig.suptitle(f"{int(ds.attrs.get('n_steps', 0)):,} updates per model, {n_seeds} seed"
                 f"{'s' if n_seeds != 1 else ''} (dots), median (bar); × failed run",
                 fontsize=10)
    fig.tight_layout()
    return fig
