"""Figures of a fit: loss, forcing strength and held-out measures against the update step."""

from __future__ import annotations

import numpy as np

from ._common import new_figure


_MEASURES = {
    "D_stsp": "D_stsp (state-space divergence)",
    "D_H": "D_H (power-spectrum distance)",
    "PE": "PE (prediction error)",
}


def training_curves(history, *, fig=None, axes=None):
    """Training loss, the teacher-forcing strength α (when the fit used it) and the held-out
    measures (when the fit evaluated on held-out data), against the update step.

    **Arguments:**
    - `history`: the `xr.Dataset` of `dr.fit`'s result (`loss`, `alpha` on `step`; `D_stsp`,
      `D_H`, `PE` on `eval_step`).
    - `fig`: a figure to draw into; `axes`: one axis per panel instead.

    **Returns:** the matplotlib figure.
    """
    has_alpha = "alpha" in history and np.isfinite(history["alpha"].values).any()
    measures = [m for m in _MEASURES
                if m in history and np.isfinite(history[m].values).any()]
    n = 1 + int(has_alpha) + int(bool(measures))
    if axes is None:
        fig = new_figure(fig, figsize=(4.5 * n, 3.2))
        axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    else:
        axes = list(np.ravel(axes))
        fig = axes[0].figure
    ax = axes[0]
    ax.semilogy(history["step"].values, history["loss"].values, lw=0.5)
    ax.set(xlabel="update", ylabel="loss", title="training loss (per update)")
    i = 1
    if has_alpha:
        ax = axes[i]
        ax.plot(history["step"].values, history["alpha"].values)
        ax.set(xlabel="update", ylabel="α", ylim=(0, 1.02),
               title="teacher-forcing strength α")
        i += 1
    if measures:
        ax = axes[i]
        steps = history["eval_step"].values
        for m, marker in zip(measures, "os^", strict=False):
            ax.plot(steps, history[m].values, marker + "-", label=_MEASURES[m])
        ax.set(xlabel="update", ylabel="measure (lower is better)",
               title="held-out measures (on the evaluation series)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
