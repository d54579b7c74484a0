"""Neural ODE/SDE and latent ODE models: solutions against SciPy and closed forms, exact
evaluation counts against an ordered callback counter, the common state interface, bad input.
"""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp

import dynrnn as dr


def mlp_numpy(mlp):
    """The MLP field as a float64 NumPy function (independent of Equinox's forward pass)."""
    layers = [(np.asarray(lyr.weight), np.asarray(lyr.bias)) for lyr in mlp.layers]

    def f(t, z):
        h = z
        for i, (w, b) in enumerate(layers):
            h = w @ h + b
            if i < len(layers) - 1:
                h = np.tanh(h)
        return h

    return f


class Counted(eqx.Module):
    """Wraps a vector field and counts its evaluations at run time (ordered callback)."""

    inner: eqx.Module
    name: str = eqx.field(static=True)

    def __call__(self, t, z, args):
        jax.debug.callback(lambda: COUNTS.__setitem__(self.name, COUNTS[self.name] + 1),
                           ordered=True)
        return self.inner(t, z, args)


COUNTS = {"f": 0, "g": 0}


@pytest.fixture(scope="module")
def node():
    return dr.models.NeuralODE(obs=2, latent=3, width=8, depth=1, dt=0.4, rtol=1e-9, atol=1e-11,
                               key=jr.PRNGKey(11))


def test_neural_ode_solve_matches_scipy_and_counts_evaluations(node):
    f = mlp_numpy(node.func.mlp)
    z0 = np.array([0.5, -1.0, 0.3])
    ts = np.array([0.0, 0.15, 0.7, 1.3, 2.0])
    ref = solve_ivp(f, (0, 2.0), z0, t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-13)
    counted = eqx.tree_at(lambda m: m.func, node, Counted(node.func, "f"))
    for needs in [(), ("error_integral", "stiffness_max", "local_error")]:
        COUNTS["f"] = 0
        zs, stats = counted.solve(jnp.asarray(z0), jnp.asarray(ts), needs=needs)
        jax.effects_barrier()
        np.testing.assert_allclose(np.asarray(zs), ref.y.T, rtol=1e-7, atol=1e-8)
        assert int(stats["nfe"]) == COUNTS["f"]
        assert int(stats["num_steps"]) == int(stats["num_accepted_steps"]) + int(
            stats["num_rejected_steps"])
        assert set(needs) <= set(stats)


def test_neural_ode_state_interface(node):
    z = jnp.array([0.2, 0.1, -0.4])
    step = eqx.filter_jit(node.step)
    f = mlp_numpy(node.func.mlp)
    ref = solve_ivp(f, (0, 0.4), np.asarray(z), method="DOP853", rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(step(z), ref.y[:, -1], rtol=1e-7, atol=1e-8)
    states = eqx.filter_jit(node.rollout)(z, 3)
    np.testing.assert_allclose(states[2], step(step(step(z))), rtol=1e-12)
    assert node.observe(z).shape == (2,) and node.init_state(jnp.ones(2)).shape == (3,)
    jac = eqx.filter_jit(node.jacobian)(z)
    eps = 1e-6
    fd = np.stack([(step(z + eps * e) - step(z - eps * e)) / (2 * eps) for e in jnp.eye(3)], 1)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-8)
    z1, stats = eqx.filter_jit(node.step_with_stats)(z)
    np.testing.assert_allclose(z1, step(z), rtol=1e-12)
    assert float(stats["error_integral"]) > 0 and int(stats["nfe"]) >= 7


def test_neural_ode_bad_input(node):
    ts = jnp.array([0.0, 1.0])
    with pytest.raises(ValueError, match="z0.*NaN"):
        node.solve(jnp.array([0.0, jnp.nan, 1.0]), ts)
    with pytest.raises(ValueError, match="strictly increasing.*t1 > t0"):
        node.solve(jnp.zeros(3), jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="strictly increasing"):
        node.solve(jnp.zeros(3), jnp.array([0.0, 2.0, 1.0]))
    tiny = dr.models.NeuralODE(obs=2, latent=3, width=8, depth=1, rtol=1e-9, atol=1e-11,
                               max_steps=2,
                               key=jr.PRNGKey(11))
    with pytest.raises(ValueError, match="max_steps=2"):
        tiny.solve(jnp.ones(3), jnp.array([0.0, 5.0]))
    with pytest.raises(Exception, match="max_steps=2"):
        jax.block_until_ready(eqx.filter_jit(lambda m, z: m.solve(z, jnp.array([0.0, 5.0])))(
            tiny, jnp.ones(3)))
    with pytest.raises(TypeError, match="adaptive"):
        dr.models.NeuralODE(obs=2, latent=3, solver=dfx.Euler(), key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="dt"):
        dr.models.NeuralODE(obs=2, latent=3, dt=0.0, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="inputs=0"):
        node.step(jnp.zeros(3), jnp.zeros(2))


class Linear(eqx.Module):
    rate: float

    def __call__(self, t, z, args):
        return -self.rate * z


class Constant(eqx.Module):
    sigma: float

    def __call__(self, t, z, args):
        return jnp.full_like(z, self.sigma)


def test_neural_sde_ornstein_uhlenbeck_moments_and_counts():
    """`dz = −θ z dt + σ dW`: mean `z0 e^{−θT}`, variance `σ²(1 − e^{−2θT})/(2θ)`."""
    theta, sigma, t1 = 1.5, 0.8, 1.0
    model = dr.models.NeuralSDE(
        obs=1, latent=1, drift=Counted(Linear(theta), "f"), diffusion=Counted(Constant(sigma), "g"),
        rtol=1e-2, atol=1e-2, key=jr.PRNGKey(0),
    )
    z0 = jnp.array([2.0])
    ts = jnp.array([0.0, t1])
    COUNTS.update(f=0, g=0)
    zs, stats = model.solve(z0, ts, key=jr.PRNGKey(5), needs=("error_integral",))
    jax.effects_barrier()
    assert int(stats["nfe"]) == COUNTS["f"] and int(stats["nfe_diffusion"]) == COUNTS["g"]
    plain = dr.models.NeuralSDE(obs=1, latent=1, drift=Linear(theta), diffusion=Constant(sigma),
                                rtol=1e-2, atol=1e-2, key=jr.PRNGKey(0))
    n = 400
    ends = jax.jit(jax.vmap(lambda k: plain.solve(z0, ts, key=k)[0][-1, 0]))(
        jr.split(jr.PRNGKey(1), n))
    mean, var = float(np.mean(ends)), float(np.var(ends))
    true_mean = 2.0 * np.exp(-theta * t1)
    true_var = sigma**2 * (1 - np.exp(-2 * theta * t1)) / (2 * theta)
    assert abs(mean - true_mean) < 4 * np.sqrt(true_var / n)
    assert abs(var - true_var) < 4 * true_var * np.sqrt(2 / (n - 1))


def test_neural_sde_keys_and_interface():
    model = dr.models.NeuralSDE(obs=2, latent=3, width=8, depth=1, dt=0.1, key=jr.PRNGKey(2))
    z = jnp.array([0.3, -0.2, 0.5])

    @eqx.filter_jit
    def run(model, z, key):
        return model.step(z), model.step(z, key=key), model.step_with_stats(
            z, needs=("stiffness_integral", "local_error"), key=key)

    a0, b0, (c0, stats) = run(model, z, jr.PRNGKey(0))
    a1, b1, _ = run(model, z, jr.PRNGKey(1))
    np.testing.assert_array_equal(a0, a1)  # no key: a deterministic function of the state
    assert not np.allclose(b0, b1)
    np.testing.assert_allclose(c0, b0, rtol=0, atol=0.2)  # same dynamics, other path
    assert float(stats["stiffness_integral"]) > 0 and float(stats["local_error"]) > 0
    assert int(stats["nfe"]) > 0 and int(stats["nfe_diffusion"]) > 0
    with pytest.raises(ValueError, match="NaN"):
        model.solve(jnp.array([jnp.inf, 0.0, 0.0]), jnp.array([0.0, 1.0]))


def spirals(key, n, length=30):
    k1, k2, k3, k4 = jr.split(key, 4)
    ts = jnp.sort(jr.uniform(k1, (n, length), minval=0.0, maxval=5.0), axis=1).at[:, 0].set(0.0)
    phase = jr.uniform(k2, (n, 1), minval=0, maxval=2 * np.pi)
    radius = jr.uniform(k3, (n, 1), minval=1.0, maxval=2.0)
    amp = radius * jnp.exp(-0.15 * ts)
    x = jnp.stack([amp * jnp.cos(1.5 * ts + phase), amp * jnp.sin(1.5 * ts + phase)], -1)
    mask = (jr.uniform(k4, x.shape) > 0.3).astype(x.dtype)
    return ts, x, mask


@pytest.mark.slow
def test_latent_ode_fits_irregular_spiral_better_than_mean(getkey):
    ts, x, mask = spirals(getkey(), 32)
    model = dr.models.LatentODE(2, 4, hidden=16, width=16, depth=1, key=getkey())
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    def batch_loss(m):
        return jnp.mean(jax.vmap(lambda a, b, c: dr.models.LatentODE.loss(m, a, b, c))(
            ts, x, mask))

    @eqx.filter_jit
    def update(model, state):
        loss, grads = eqx.filter_value_and_grad(batch_loss)(model)
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, loss

    for _ in range(150):
        model, state, loss = update(model, state)
    tt, xt, mt = spirals(getkey(), 16)
    pred = eqx.filter_jit(jax.vmap(lambda m, a, b, c: m(a, b, c), in_axes=(None, 0, 0, 0)))(
        model, tt, xt, mt)
    mse = float(jnp.sum(mt * (pred - xt) ** 2) / jnp.sum(mt))
    mean = jnp.sum(mt * xt, axis=1, keepdims=True) / jnp.sum(mt, axis=1, keepdims=True)
    mse_mean = float(jnp.sum(mt * (mean - xt) ** 2) / jnp.sum(mt))
    assert mse < 0.5 * mse_mean
