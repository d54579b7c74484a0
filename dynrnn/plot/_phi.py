"""Heat maps of the DSF matrix Φ per architecture (Sieber et al., NeurIPS 2024, Figs. 1, 3, 4)."""

from __future__ import annotations

import numpy as np

from .._errors import DynrnnTypeError, DynrnnValueError
from ._common import new_figure


def phi_heatmaps(
    dsfs: dict,
    *,
    channel: int | None = None,
    normalize: bool = True,
    log: bool = False,
    cmap: str = "viridis",
    ncols: int | None = None,
    panel_size: float = 3.0,
    title: str | None = None,
    fig=None,
):
    """`|Φ|` of several DSFs side by side, one panel per architecture (rows: output step `i`,
    columns: input step `j`; the causal lower triangle).

    **Arguments:**
    - `dsfs`: `{name: DSF}` (from the converters or `layer.dsf(u)`), or `{name: Φ}` arrays as
      `dr.dsf.materialize` returns them.
    - `channel`: show one channel (channel-wise Φ `(L, L, c)`: channel `c`; flat Φ
      `(L, L, d_out, d)`: the diagonal entry `(c, c)`); by default `|Φ|` summed over channels
      (flat: over every output/input pair).
    - `normalize`: scale each panel to a maximum of 1 (the paper's figures compare patterns).
    - `log`: colour by `log10 |Φ|` instead.
    - `cmap`, `ncols`, `panel_size`, `title`: layout.
    - `fig`: a figure to draw into (default: a new figure of the session's backend).

    **Returns:** the matplotlib figure (save it with `fig.savefig`).

    **Raises:** `DynrnnTypeError` for an empty or non-dict `dsfs`; `DynrnnValueError` for a
    channel out of range.
    """
    from ..dsf._dsf import DSF, materialize

    if not isinstance(dsfs, dict) or not dsfs:
        raise DynrnnTypeError(
            f"`dsfs` must be a non-empty dict {{name: DSF}}, got {type(dsfs).__name__}."
        )
    maps = {}
    for name, obj in dsfs.items():
        Phi = np.asarray(materialize(obj) if isinstance(obj, DSF) else obj)
        if Phi.ndim not in (2, 3, 4) or Phi.shape[0] != Phi.shape[1]:
            raise DynrnnValueError(
                f"Φ of {name!r} must have shape (L, L), (L, L, c) or (L, L, d_out, d), got "
                f"{Phi.shape}."
            )
        A = np.abs(Phi)
        if channel is not None and A.ndim > 2:
            n_ch = A.shape[2] if A.ndim == 3 else min(A.shape[2], A.shape[3])
            c = 0 if A.ndim == 3 and A.shape[2] == 1 else channel
            if not 0 <= c < n_ch:
                raise DynrnnValueError(
                    f"`channel` must be in [0, {n_ch}) for {name!r} (Φ shape {Phi.shape}), "
                    f"got {channel}."
                )
            A = A[:, :, c] if A.ndim == 3 else A[:, :, c, c]
        elif A.ndim > 2:
            A = A.reshape(A.shape[0], A.shape[1], -1).sum(axis=-1)
        if normalize and A.max() > 0:
            A = A / A.max()
        if log:
            A = np.log10(np.where(A > 0, A, np.nan))
        upper = np.triu(np.ones(A.shape, bool), 1)
        maps[name] = np.where(upper, np.nan, A)
    n = len(maps)
    ncols = ncols or min(n, 4)
    nrows = -(-n // ncols)
    fig = new_figure(fig, figsize=(panel_size * ncols, panel_size * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (name, A) in zip(axes.ravel(), maps.items()):
        im = ax.imshow(A, cmap=cmap, interpolation="nearest")
        ax.set_title(str(name), fontsize=10)
        ax.set_xlabel("input step j")
        ax.set_ylabel("output step i")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
