"""The regression baselines of `dr.compare`: the echo state network against `reservoirpy`
(same reservoir, same read-out) and the linear AR model against an independent float64
least-squares fit."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnValueError


def _series(rng, n=1200, d=3):
    """A noisy rotation with a slow drift: smooth, bounded, not an exact AR model."""
    t = np.arange(n) * 0.05
    x = np.stack([np.sin(t + k) + 0.3 * np.sin(0.31 * t * (k + 1)) for k in range(d)], 1)
    return x + 0.05 * rng.standard_normal((n, d))


def test_esn_matches_reservoirpy(getkey):
    """Same W, W_in, b and leak in reservoirpy's Reservoir >> Ridge: the fitted read-outs and
    the one-step predictions on fresh data agree to 1e-6."""
    pytest.importorskip("reservoirpy")
    from reservoirpy.nodes import Reservoir, Ridge

    rng = np.random.default_rng(int(getkey()[-1]))
    train, test = _series(rng), _series(rng, n=400)
    leak, ridge, washout = float(rng.uniform(0.3, 1.0)), 10 ** float(rng.uniform(-7, -3)), 50
    esn = dr.models.EchoStateNetwork(obs=3, latent=60, spectral_radius=float(rng.uniform(0.5, 1.2)),
                                     leak=leak, washout=washout, key=getkey(),
                                     dtype=jnp.float64)
    fitted = esn.fit_regression(train, ridge=ridge)

    reservoir = Reservoir(W=np.asarray(esn.W), Win=np.asarray(esn.W_in),
                          bias=np.asarray(esn.b), lr=leak)
    readout = Ridge(ridge=ridge)
    net = reservoir >> readout
    net.fit(train[:-1], train[1:], warmup=washout)
    np.testing.assert_allclose(np.asarray(fitted.observation.B), readout.Wout.T, rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(np.asarray(fitted.readout_bias), np.ravel(readout.bias),
                               rtol=1e-6, atol=1e-8)
    reservoir.reset()
    theirs = net.run(test[:-1])
    ours = np.asarray(jnp.stack([fitted.observe(z) for z in fitted.states(test[:-1])]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    # the fit is a real fit: after the washout, one-step error below the persistence model's
    # (the noise, sd 0.05, sets a floor of 0.0025 for ours and 0.005 for persistence)
    w = washout
    assert np.mean((ours[w:] - test[w + 1:]) ** 2) < 0.8 * np.mean((test[w:-1] - test[w + 1:]) ** 2)


def test_esn_closed_loop_continues_its_read_out(getkey):
    rng = np.random.default_rng(0)
    x = _series(rng)
    esn = dr.models.build({"type": "ESN", "latent": 40, "washout": 30}, obs=3, key=getkey())
    fitted = esn.fit_regression(x)
    z = fitted.state_from(jnp.asarray(x[:200]))
    # one closed-loop step feeds the read-out back: the same as driving with the prediction
    np.testing.assert_allclose(fitted.step(z), fitted._drive(z, fitted.observe(z)), rtol=1e-12)
    # gradients do not reach the reservoir
    import equinox as eqx

    g = eqx.filter_grad(lambda m: jnp.sum(m.observe(m.step(z)) ** 2))(fitted)
    assert float(jnp.abs(g.W).max()) == 0.0 and float(jnp.abs(g.b).max()) == 0.0
    assert float(jnp.abs(g.observation.B).max()) > 0


def test_linear_ar_matches_least_squares(getkey):
    """AR(p) by an independent float64 loop: the design matrix built row by row and solved
    with numpy.linalg.lstsq (intercept as a column of ones)."""
    rng = np.random.default_rng(int(getkey()[-1]))
    x = _series(rng, n=500)
    for p in (1, 3):
        ar = dr.models.LinearAR(obs=3, latent=3 * p, key=getkey(), dtype=jnp.float64)
        fitted = ar.fit_regression(x)
        rows, targets = [], []
        for t in range(p - 1, len(x) - 1):
            rows.append(np.concatenate([[1.0]] + [x[t - k] for k in range(p)]))
            targets.append(x[t + 1])
        coef = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)[0]
        np.testing.assert_allclose(np.asarray(fitted.c[:3]), coef[0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.asarray(fitted.A[:3]), coef[1:].T, rtol=1e-8, atol=1e-10)
        # one step from the window ending at t predicts x_{t+1} as the regression does
        t = 40
        z = fitted.state_from(jnp.asarray(x[: t + 1]))
        np.testing.assert_allclose(np.asarray(fitted.observe(z)), np.array(rows[t - p + 1]) @ coef,
                                   rtol=1e-9)


def test_regression_models_refuse_bad_input(getkey):
    with pytest.raises(DynrnnValueError, match="multiple of `obs`"):
        dr.models.LinearAR(obs=3, latent=4, key=getkey()).fit_regression(np.zeros((50, 3)))
    with pytest.raises(DynrnnValueError, match="leak"):
        dr.models.EchoStateNetwork(obs=3, latent=10, leak=1.5, key=getkey())
    esn = dr.models.EchoStateNetwork(obs=3, latent=10, washout=20, key=getkey())
    with pytest.raises(DynrnnValueError, match="series"):
        esn.fit_regression(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="series"):
        esn.fit_regression(np.zeros((100, 2)))
