"""Figures of a reconstruction: attractors, power spectra, training curves (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np


def _figure(**kw):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.figure(**kw)


def attractor(x_true, x_gen, *, dims=(0, 1, 2), max_points: int = 20_000, title=None):
    """Data and generated attractors side by side (3-D when there are ≥ 3 dims, else 2-D).

    **Returns:** the matplotlib figure.
    """
    x_true, x_gen = np.asarray(x_true), np.asarray(x_gen)
    d = [i for i in dims if i < x_true.shape[1]]
    fig = _figure(figsize=(10, 4.5))
    for i, (x, name) in enumerate([(x_true, "data"), (x_gen, "model")]):
        x = x[:max_points]
        if len(d) >= 3:
            ax = fig.add_subplot(1, 2, i + 1, projection="3d")
            ax.plot(x[:, d[0]], x[:, d[1]], x[:, d[2]], lw=0.3)
        else:
            ax = fig.add_subplot(1, 2, i + 1)
            ax.plot(x[:, d[0]], x[:, d[-1]] if len(d) > 1 else np.arange(len(x)), lw=0.3)
        ax.set_title(name)
    if title:
        fig.suptitle(title)
    return fig


def power_spectra(x_true, x_gen, *, smoothing: float = 20.0, max_freq_bins: int = 2000):
    """Smoothed, normalised power spectra (as in D_H) of data and model, one panel per dim."""
    from scipy.ndimage import gaussian_filter1d

    x_true, x_gen = np.asarray(x_true, float), np.asarray(x_gen, float)
    n_dims = min(x_true.shape[1], 6)
    fig = _figure(figsize=(4 * n_dims, 3.2))
    for d in range(n_dims):
        ax = fig.add_subplot(1, n_dims, d + 1)
        for x, name in [(x_true, "data"), (x_gen, "model")]:
            s = (x[:, d] - x[:, d].mean()) / (x[:, d].std() + 1e-12)
            p = np.abs(np.fft.rfft(s)) ** 2
            p = gaussian_filter1d(p, smoothing, mode="mirror", truncate=4.0)
            total = p.sum()
            p = p / total if total > 0 else np.full_like(p, np.nan)
            ax.semilogy(p[:max_freq_bins], label=name, lw=1)
        ax.set_title(f"dim {d}")
        ax.set_xlabel("frequency bin")
    fig.axes[0].legend()
    fig.tight_layout()
    return fig


def training_curves(history):
    """Loss (and α, held-out D_stsp / D_H when present) against the update step."""
    n = 1 + int("D_stsp" in history) + int(np.isfinite(history["alpha"].values).any())
    fig = _figure(figsize=(4.5 * n, 3.2))
    ax = fig.add_subplot(1, n, 1)
    ax.semilogy(history["step"].values, history["loss"].values, lw=0.5)
    ax.set_xlabel("update")
    ax.set_title("training loss")
    i = 2
    if np.isfinite(history["alpha"].values).any():
        ax = fig.add_subplot(1, n, i)
        ax.plot(history["step"].values, history["alpha"].values)
        ax.set_xlabel("update")
        ax.set_title("forcing α")
        i += 1
    if "D_stsp" in history:
        ax = fig.add_subplot(1, n, i)
        ax.plot(history["eval_step"].values, history["D_stsp"].values, "o-", label="D_stsp")
        ax.plot(history["eval_step"].values, history["D_H"].values, "s-", label="D_H")
        ax.set_xlabel("update")
        ax.set_title("held-out measures")
        ax.legend()
    fig.tight_layout()
    return fig
