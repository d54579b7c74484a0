"""dynrnn.plot: figures drawn into the caller's axes, labelled, on one scale for data and model,
without touching the session's matplotlib backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import matplotlib
import numpy as np
import pytest
import xarray as xr

import dynrnn as dr


matplotlib.use("Agg")  # this test module draws without a display
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _lorenz_like(n=3000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 0.01
    x = np.stack([np.sin((k + 1) * t) + 0.1 * rng.standard_normal(n) for k in range(d)], axis=1)
    return x


def test_svg_backend_is_left_alone():
    """A user who chose the svg backend keeps it after every figure function."""
    code = textwrap.dedent("""
        import matplotlib
        matplotlib.use("svg")
        import numpy as np, xarray as xr
        import dynrnn as dr
        x = np.random.default_rng(0).standard_normal((500, 3))
        dr.plot.attractor(x, x)
        dr.plot.power_spectra(x, x, dt=0.01)
        h = xr.Dataset({"loss": ("step", np.linspace(1, 0.1, 20)),
                        "alpha": ("step", np.full(20, 0.2))}, coords={"step": np.arange(20)})
        dr.plot.training_curves(h)
        dr.plot.raster(dr.io.from_array(x, rate=10.0))
        dr.plot.phi_heatmaps({"a": np.tril(np.ones((4, 4)))})
        print(matplotlib.get_backend())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ, "MPLBACKEND": ""})
    assert out.stdout.strip().splitlines()[-1] == "svg"


def test_attractor_shares_one_scale_and_labels_axes():
    x = _lorenz_like()
    fig = dr.plot.attractor(x, 0.5 * x, labels=["x", "y", "z"], units="z-score")
    ax_data, ax_model = fig.axes
    assert ax_data.get_xlim() == ax_model.get_xlim()
    assert ax_data.get_zlim() == ax_model.get_zlim()
    assert ax_data.get_xlabel() == "x (z-score)" and ax_model.get_zlabel() == "z (z-score)"
    # Both series fit inside the shared limits.
    lo, hi = ax_data.get_ylim()
    assert lo <= x[:, 1].min() and hi >= x[:, 1].max()


def test_attractor_limits_stay_on_the_data_when_the_model_diverges():
    x = _lorenz_like()
    fig = dr.plot.attractor(x, 1e6 * x)
    lo, hi = fig.axes[0].get_xlim()
    assert hi - lo < 10 * np.ptp(x[:, 0])
    assert "leaves the data range" in fig.axes[1].get_title()


def test_attractor_marks_a_model_that_settles_on_a_fixed_point():
    x = _lorenz_like()
    rng = np.random.default_rng(2)
    # decays onto a point inside the data's range: the last half moves far less than 1 %
    settle = 0.3 + np.exp(-np.arange(len(x)) / 50.0)[:, None] * rng.standard_normal(3)
    fig = dr.plot.attractor(x, settle)
    assert "fixed point" in fig.axes[1].get_title()
    assert len(fig.axes[1].collections) == 1  # the marker at the run's end
    # an oscillating model is drawn as before: no marker, no note
    fig = dr.plot.attractor(x, 0.5 * x)
    assert fig.axes[1].get_title() == "model" and not fig.axes[1].collections
    # one dimension: marked at the run's last time and value
    fig = dr.plot.attractor(x[:, :1], settle[:, :1], dt=0.01)
    (marker,) = fig.axes[1].collections
    np.testing.assert_allclose(marker.get_offsets()[0], [(len(x) - 1) * 0.01, settle[-1, 0]])
    assert "fixed point" in fig.axes[1].get_title()


def test_attractor_high_dimensional_shows_named_principal_components():
    rng = np.random.default_rng(1)
    # Ten dimensions whose variance lies in a known 3-D subspace.
    basis = np.linalg.qr(rng.standard_normal((10, 3)))[0]
    z = _lorenz_like(d=3) * np.array([3.0, 2.0, 1.0])
    x = z @ basis.T + 1e-3 * rng.standard_normal((len(z), 10))
    fig = dr.plot.attractor(x, x)
    labels = [fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel(), fig.axes[0].get_zlabel()]
    assert [s.split(" ")[0] for s in labels] == ["PC1", "PC2", "PC3"]
    shares = [float(s.split("(")[1].split("%")[0]) for s in labels]
    var = (z - z.mean(0)).var(0)
    np.testing.assert_allclose(shares, 100 * var / var.sum(), atol=1)


def test_attractor_draws_into_given_axes():
    fig = plt.figure()
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    out = dr.plot.attractor(_lorenz_like(d=2), _lorenz_like(d=2, seed=1), axes=axes)
    assert out is fig and len(fig.axes) == 2
    assert axes[0].get_xlabel() == "dim 0" and axes[0].lines


@pytest.mark.parametrize(
    "kwargs, label, scale",
    [({"rate": 50.0}, "frequency (Hz)", 1.0),
     ({"dt": 0.02}, "frequency (cycles per time unit)", 1.0),
     ({}, "frequency (cycles per sample)", 0.02)],
)
def test_power_spectra_frequency_axis(kwargs, label, scale):
    """A 2 Hz sine sampled at 50 Hz peaks at 2 Hz, 2 cycles per time unit (dt = 0.02), or
    0.04 cycles per sample."""
    t = np.arange(5000) / 50.0
    x = np.sin(2 * np.pi * 2.0 * t)[:, None]
    fig = dr.plot.power_spectra(x, x, smoothing=0, **kwargs)
    ax = fig.axes[0]
    assert ax.get_xlabel() == label
    f, p = ax.lines[0].get_data()
    assert f[np.argmax(p)] == pytest.approx(2.0 * scale, rel=1e-3)


def test_power_spectra_reads_rate_from_a_recording_and_shares_the_power_axis():
    ds = dr.io.from_array(_lorenz_like(d=4), rate=100.0)
    fig = dr.plot.power_spectra(ds, ds["activity"].values[::-1])
    assert fig.axes[0].get_xlabel() == "frequency (Hz)"
    assert len(fig.axes) == 4
    assert all(ax.get_ylim() == fig.axes[0].get_ylim() for ax in fig.axes)


def test_training_curves_panels_and_labels():
    steps = np.arange(100)
    h = xr.Dataset(
        {"loss": ("step", np.exp(-steps / 30)), "alpha": ("step", np.linspace(0.5, 0.1, 100)),
         "D_stsp": ("eval_step", [2.0, 1.0, 0.5]), "D_H": ("eval_step", [0.5, 0.3, 0.2])},
        coords={"step": steps, "eval_step": [0, 50, 99]},
    )
    fig = dr.plot.training_curves(h)
    assert len(fig.axes) == 3
    assert all(ax.get_xlabel() == "update" for ax in fig.axes)
    assert "held-out" in fig.axes[2].get_title()
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == [
        "D_stsp (state-space divergence)", "D_H (power-spectrum distance)"]


def test_raster_time_in_seconds_and_units():
    x = np.random.default_rng(0).standard_normal((200, 7))
    ds = dr.preprocess.zscore(dr.io.from_array(x, rate=20.0))
    fig = dr.plot.raster(ds)
    ax, cbar = fig.axes
    assert ax.get_xlabel() == "time (s)"
    assert ax.images[0].get_extent()[:2] == pytest.approx([0.0, 10.0])
    assert cbar.get_ylabel() == "activity (z)"
