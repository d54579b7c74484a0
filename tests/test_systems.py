"""dynrnn.systems: vector fields, registry and `simulate`, against SciPy, NumPy loops and the
dysts catalogue."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

import dynrnn as dr
from dynrnn._errors import DynrnnTypeError, DynrnnValueError


# dysts spells two systems differently.
_DYSTS_NAME = {"Lorenz63": "Lorenz", "NewtonLeipnik": "NewtonLiepnik"}


@pytest.fixture(scope="module")
def catalogue(request):
    """The dysts catalogue from the shared data, or None where it is not available."""
    try:
        root = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        return None
    path = root / "dysts" / "chaotic_attractors.json"
    return json.loads(path.read_text()) if path.is_file() else None


def test_lorenz63_matches_solve_ivp(getkey):
    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0
    y0 = np.asarray(dr.systems.Lorenz63().y0) + np.asarray(jr.normal(getkey(), (3,)))
    ds = dr.systems.simulate(dr.systems.Lorenz63(), n_steps=201, dt=0.01, y0=y0)

    def f(t, y):
        x, yy, z = y
        return [sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z]

    t_eval = 0.01 * np.arange(201)
    ref = solve_ivp(f, (0.0, 2.0), y0, method="DOP853", rtol=1e-10, atol=1e-12, t_eval=t_eval).y.T
    np.testing.assert_allclose(ds.time.values, t_eval, rtol=0, atol=1e-14)
    err = np.max(np.abs(ds.state.values - ref))
    assert err < 1e-6, err


def test_lorenz63_divergence_closed_form(getkey):
    system = dr.systems.Lorenz63(sigma=9.0, rho=30.0, beta=2.5)
    y = jr.normal(getkey(), (3,)) * 10
    assert float(system.divergence(0.0, y)) == pytest.approx(-(9.0 + 1.0 + 2.5), abs=1e-12)


def _lorenz96_loop(y, forcing):
    n = len(y)
    out = np.empty(n)
    for i in range(n):
        out[i] = (y[(i + 1) % n] - y[(i - 2) % n]) * y[(i - 1) % n] - y[i] + forcing
    return out


@pytest.mark.parametrize("n", [5, 40])
def test_lorenz96_vector_field_matches_loop(n, getkey):
    forcing = float(jr.uniform(getkey(), minval=2.0, maxval=20.0))
    system = dr.systems.Lorenz96(n=n, forcing=forcing)
    y = np.asarray(jr.normal(getkey(), (n,))) * 3
    got = np.asarray(system.vector_field(0.0, jnp.asarray(y), None))
    np.testing.assert_allclose(got, _lorenz96_loop(y, forcing), rtol=1e-13, atol=1e-12)
    assert system.dim == n
    assert system.y0.shape == (n,)


@pytest.mark.parametrize("name", dr.systems.names())
def test_every_system_integrates_bounded(name, catalogue):
    system = dr.systems.get(name)
    entry = None if catalogue is None else catalogue.get(_DYSTS_NAME.get(name, name))
    if name == "Lorenz96" or entry is None:
        dt, n_steps, transient = 0.02, 500, 0.0
    else:
        # About 100 dominant periods, 10 samples per period, after 2 periods of transient.
        dt, n_steps, transient = entry["period"] / 10, 1000, 2 * entry["period"]
    ds = dr.systems.simulate(system, n_steps=n_steps, dt=dt, transient=transient)
    x = ds.state.values
    assert x.shape == (n_steps, system.dim)
    assert np.all(np.isfinite(x))
    scale = 1.0 + np.max(np.abs(np.asarray(system.y0)))
    assert np.max(np.abs(x)) < 50 * scale
    # It moves: neither a fixed point nor a collapse.
    assert np.all(x.std(axis=0) > 1e-2 * scale)
    if entry is not None and name != "Lorenz96":
        # The attractor has the catalogue's size: per-dimension spread within a factor 3 of the
        # dysts statistics (a wrong sign or parameter typically diverges or collapses).
        ratio = x.std(axis=0) / np.asarray(entry["std"])
        assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio


@pytest.mark.parametrize("name", [n for n in dr.systems.names() if n != "Lorenz96"])
def test_metadata_matches_dysts_catalogue(name, catalogue):
    if catalogue is None:
        pytest.skip("dysts catalogue not available")
    entry = catalogue[_DYSTS_NAME.get(name, name)]
    system = dr.systems.get(name)
    np.testing.assert_allclose(system.default_y0, entry["initial_conditions"], rtol=1e-12)
    params = system.parameters()
    for key, value in entry["parameters"].items():
        # dysts rounds Lorenz's beta = 8/3 to 2.667.
        np.testing.assert_allclose(params[key], value, rtol=2e-4 if name == "Lorenz63" else 0)
    assert set(params) == set(entry["parameters"])
    if name != "Lorenz63":
        np.testing.assert_allclose(
            system.lyapunov_spectrum(), entry["lyapunov_spectrum_estimated"], atol=6e-5
        )


def test_reference_spectrum_only_for_default_parameters():
    assert dr.systems.Lorenz63().lyapunov_spectrum() == (0.9056, 0.0, -14.5723)
    assert dr.systems.Lorenz63(rho=35.0).lyapunov_spectrum() is None
    assert dr.systems.Lorenz96(n=10).lyapunov_spectrum() is None
    assert dr.systems.Lorenz96(n=4, forcing=20.0).lyapunov_spectrum() is not None


def test_get_and_names():
    names = dr.systems.names()
    assert len(names) >= 15 and len(set(names)) == len(names)
    assert {"Lorenz63", "Rossler", "Lorenz96"} <= set(names)
    assert isinstance(dr.systems.get("LORENZ63"), dr.systems.Lorenz63)
    assert isinstance(dr.systems.get("lorenz"), dr.systems.Lorenz63)
    assert isinstance(dr.systems.get("rössler"), dr.systems.Rossler)
    l96 = dr.systems.get("lorenz_96", n=7, forcing=3.5)
    assert (l96.n, l96.forcing) == (7, 3.5)
    with pytest.raises(DynrnnValueError, match="unknown system.*Lorenz63.*Thomas"):
        dr.systems.get("lorenz64")
    with pytest.raises(ValueError, match="invalid parameters"):
        dr.systems.get("lorenz63", gamma=1.0)
    with pytest.raises(DynrnnValueError, match="`n` must be an integer >= 4"):
        dr.systems.Lorenz96(n=3)


@pytest.fixture(scope="module")
def lorenz_runs():
    system = dr.systems.Lorenz63()
    long = dr.systems.simulate(system, n_steps=300, dt=0.01)
    return system, long


def test_first_point_is_y0_and_transient_is_dropped(lorenz_runs):
    system, long = lorenz_runs
    np.testing.assert_array_equal(long.state.values[0], np.asarray(system.y0))
    later = dr.systems.simulate(
        system, n_steps=250, dt=0.01, transient=0.5, y0=np.asarray(system.y0)
    )
    np.testing.assert_allclose(later.state.values, long.state.values[50:], rtol=0, atol=1e-7)
    np.testing.assert_allclose(later.time.values, 0.01 * np.arange(250), atol=1e-14)
    assert later.attrs["transient"] == 0.5


def test_standardize_and_noise(lorenz_runs, getkey):
    system, long = lorenz_runs
    raw = long.state.values
    std_ds = dr.systems.simulate(system, n_steps=300, dt=0.01, standardize=True)
    z = std_ds.state.values
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1.0, atol=1e-12)
    mean, std = np.asarray(std_ds.attrs["mean"]), np.asarray(std_ds.attrs["std"])
    np.testing.assert_allclose(z * std + mean, raw, atol=1e-9)
    np.testing.assert_allclose(mean, raw.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, raw.std(axis=0, ddof=1), rtol=1e-12)

    key = getkey()
    noisy = dr.systems.simulate(system, n_steps=300, dt=0.01, standardize=True, noise=0.5, key=key)
    eps = (noisy.state.values - z) / 0.5
    # 900 draws: the sample sd of N(0,1) is within 0.1 of 1 with overwhelming probability.
    assert abs(eps.std() - 1.0) < 0.1 and abs(eps.mean()) < 0.15
    assert noisy.attrs["noise"] == 0.5
    again = dr.systems.simulate(system, n_steps=300, dt=0.01, noise=0.5, key=key)
    np.testing.assert_allclose((again.state.values - raw) / 0.5, eps, atol=1e-9)
    # A shorter run with the same key gets the same noise rows.
    short = dr.systems.simulate(system, n_steps=250, dt=0.01, noise=0.5, key=key)
    np.testing.assert_allclose((short.state.values - raw[:250]) / 0.5, eps[:250], atol=1e-9)
    # ... and, steps being capped at `dt`, bit-identical states on the shared prefix.
    np.testing.assert_array_equal(short.state.values, again.state.values[:250])


def test_attrs_are_json_and_netcdf_safe(lorenz_runs, tmp_path):
    _, long = lorenz_runs
    assert json.loads(long.attrs["parameters"]) == {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
    assert long.attrs["system"] == "Lorenz63"
    assert long.attrs["lyapunov_spectrum"] == [0.9056, 0.0, -14.5723]
    assert long.state.dims == ("time", "dim")
    path = tmp_path / "lorenz.nc"
    long.to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    np.testing.assert_array_equal(back.state.values, long.state.values)
    assert back.attrs["dt"] == 0.01


def test_float32_mode():
    with jax.enable_x64(False):
        ds = dr.systems.simulate(dr.systems.Rossler(), n_steps=50, dt=0.1)
    assert ds.state.dtype == np.float32
    assert ds.attrs["rtol"] == 1e-6 and ds.attrs["dtype"] == "float32"
    ref = dr.systems.simulate(dr.systems.Rossler(), n_steps=50, dt=0.1)
    # Five time units of Rossler (largest exponent 0.08) keep float32 close to float64.
    np.testing.assert_allclose(ds.state.values, ref.state.values, atol=1e-3)


def test_a_failed_long_float32_solve_names_the_clock():
    """A float32 solve that fails far out in time says that float32 time is the likely cause
    and how to avoid it (Lorenz-63 at Δt 0.0375 failed beyond t ≈ 15 000 after minutes; here
    a small `max_steps` makes it fail at once); a short one does not."""
    with jax.enable_x64(False):
        with pytest.raises(DynrnnValueError, match=r"t reaches 5000.*resolves only 0.00049.*"
                           r"jax_enable_x64"):
            dr.systems.simulate("Lorenz63", n_steps=2, dt=1.0, transient=4999.0, max_steps=64)
        with pytest.raises(DynrnnValueError, match=r"too small\.$"):
            dr.systems.simulate("Lorenz63", n_steps=2, dt=1.0, transient=99.0, max_steps=64)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(dt=0.0), DynrnnValueError, "`dt` must be > 0"),
        (dict(dt=-0.1), DynrnnValueError, "`dt` must be > 0"),
        (dict(dt=float("nan")), DynrnnValueError, "`dt`"),
        (dict(n_steps=0), DynrnnValueError, "`n_steps` must be >= 1"),
        (dict(n_steps=2.5), DynrnnTypeError, "`n_steps`"),
        (dict(y0=np.zeros(4)), DynrnnValueError, r"`y0` must have shape \(3,\).*\(4,\)"),
        (dict(y0=np.array([1.0, np.nan, 0.0])), DynrnnValueError, "`y0` contains NaN"),
        (dict(noise=0.1), DynrnnValueError, "`key` is required"),
        (dict(transient=-1.0), DynrnnValueError, "`transient` must be >= 0"),
        (dict(noise=-0.1, key=jr.key(0)), DynrnnValueError, "`noise` must be >= 0"),
        (dict(n_steps=1, standardize=True), DynrnnValueError, "`standardize` needs at least 2"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(n_steps=10, dt=0.01)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        dr.systems.simulate(dr.systems.Lorenz63(), **args)


def test_bad_system():
    with pytest.raises(DynrnnValueError, match="unknown system"):
        dr.systems.simulate("not-a-system", n_steps=10, dt=0.01)
    with pytest.raises(DynrnnTypeError, match="`system`"):
        dr.systems.simulate(42, n_steps=10, dt=0.01)


def test_diverging_trajectory_raises():
    # Far from the attractor Rabinovich-Fabrikant blows up in finite time.
    with pytest.raises(DynrnnValueError, match="integrating RabinovichFabrikant"):
        dr.systems.simulate(
            dr.systems.RabinovichFabrikant(), n_steps=100, dt=0.1, y0=np.array([5.0, 5.0, -5.0])
        )
