"""PLRNN family: steps against independent NumPy maps, analytic Jacobians against autodiff,
initialisations, boundedness of the clipped shPLRNN."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr


def relu(x):
    return np.maximum(x, 0.0)


def numpy_step(model, z):
    """The maps of REFERENCES 1.1, written from the equations in float64 NumPy."""
    p = {k: (None if v is None else np.asarray(v, np.float64)) for k, v in vars(model).items()
         if isinstance(v, jax.Array) or v is None}
    A = p["A"]
    if isinstance(model, dr.models.ShallowPLRNN):
        a = p["W2"] @ z
        hid = relu(a + p["h2"]) - (relu(a) if model.clipped else 0.0)
        return A * z + p["W1"] @ hid + p["h1"]
    if isinstance(model, dr.models.PLRNN):
        W = p["W"] - np.diag(np.diag(p["W"]))
        return A * z + W @ relu(z) + p["h"]
    if isinstance(model, dr.models.DendPLRNN):
        W = p["W"] - np.diag(np.diag(p["W"]))
        phi = np.zeros_like(z)
        for m in range(z.shape[0]):
            for b in range(p["alpha"].shape[0]):
                term = relu(z[m] - p["H"][m, b])
                if model.clipped:
                    term -= relu(z[m])
                phi[m] += p["alpha"][b] * term
        return A * z + W @ phi + p["h"]
    if isinstance(model, dr.models.ALRNN):
        M, P = z.shape[0], model.n_relu
        phi = np.concatenate([z[: M - P], relu(z[M - P :])])
        return A * z + p["W"] @ phi + p["h"]
    raise AssertionError(type(model))


MODELS = [
    ("shplrnn", lambda k: dr.models.ShallowPLRNN(latent=4, hidden=12, obs=3, key=k, clipped=False)),
    ("shplrnn_clipped", lambda k: dr.models.ShallowPLRNN(latent=4, hidden=12, obs=3, key=k)),
    ("plrnn", lambda k: dr.models.PLRNN(latent=4, obs=3, key=k)),
    ("dendplrnn", lambda k: dr.models.DendPLRNN(latent=4, bases=5, obs=3, key=k)),
    ("dendplrnn_clipped", lambda k: dr.models.DendPLRNN(latent=4, bases=5, obs=3, key=k,
                                                        clipped=True)),
    ("alrnn", lambda k: dr.models.ALRNN(latent=4, n_relu=2, obs=3, key=k)),
]


@pytest.mark.parametrize("name,make", MODELS, ids=[m[0] for m in MODELS])
def test_step_and_jacobian(name, make, getkey):
    model = make(getkey())
    # Random non-zero biases so every branch of the piecewise-linear maps is exercised.
    model = jax.tree_util.tree_map(
        lambda x: x + 0.3 * jr.normal(getkey(), x.shape, x.dtype) if x.ndim == 1 else x, model
    )
    for _ in range(5):
        z = np.asarray(2.0 * jr.normal(getkey(), (4,), jnp.float64))
        np.testing.assert_allclose(model.step(jnp.asarray(z)), numpy_step(model, z),
                                   rtol=1e-12, atol=1e-12)
        J = model.jacobian(jnp.asarray(z))
        J_ad = jax.jacfwd(model.step)(jnp.asarray(z))
        np.testing.assert_allclose(J, J_ad, rtol=1e-10, atol=1e-10)
    # rollout equals repeated steps
    z = jnp.asarray(np.asarray(jr.normal(getkey(), (4,), jnp.float64)))
    traj = model.rollout(z, 7)
    zz = np.asarray(z)
    for t in range(7):
        zz = numpy_step(model, zz)
        np.testing.assert_allclose(traj[t], zz, rtol=1e-10, atol=1e-10)


def test_normalized_positive_definite_init(getkey):
    from dynrnn.models._plrnn.base import normalized_positive_definite

    key = getkey()
    A = np.asarray(normalized_positive_definite(key, 6, jnp.float64))
    R = np.asarray(jr.normal(key, (6, 6), jnp.float64))
    K = R.T @ R / 6 + np.eye(6)
    np.testing.assert_allclose(A, np.diag(K) / np.linalg.eigvalsh(K).max(), rtol=1e-12)
    assert np.all(A > 0) and np.all(A <= 1)


def test_shallow_init_ranges(getkey):
    m = dr.models.ShallowPLRNN(latent=3, hidden=100, obs=3, key=getkey())
    assert np.abs(np.asarray(m.W1)).max() <= 1 / np.sqrt(100)
    assert np.abs(np.asarray(m.W2)).max() <= 1 / np.sqrt(3)
    assert np.all(np.asarray(m.h1) == 0)
    assert np.abs(np.asarray(m.h2)).max() <= 1 / np.sqrt(100) and np.any(np.asarray(m.h2) != 0)
    unclipped = dr.models.ShallowPLRNN(latent=3, hidden=100, obs=3, key=getkey(), clipped=False)
    assert np.all(np.asarray(unclipped.h2) == 0)


def test_parameter_count_matches_reference(getkey):
    # shPLRNN size 2MH + 2M + H (REFERENCES 1.1): (3,50) -> 356, (5,250) -> 2760.
    for (M, H), n in [((3, 50), 356), ((3, 100), 706), ((5, 250), 2760)]:
        m = dr.models.ShallowPLRNN(latent=M, hidden=H, obs=M, key=getkey())
        count = sum(x.size for x in jax.tree_util.tree_leaves((m.A, m.W1, m.W2, m.h1, m.h2)))
        assert count == n


def test_clipped_shplrnn_bounded(getkey):
    """max|A| < 1 keeps clipped orbits bounded: |z_t,i| <= |A_i||z_i| + (|W1||h2|)_i + |h1_i|."""
    m = dr.models.ShallowPLRNN(latent=5, hidden=40, obs=5, key=getkey())
    m = jax.tree_util.tree_map(lambda x: 3.0 * x, m)  # large weights
    m = eqx_set(m, "A", 0.95 * jnp.tanh(m.A))
    drive = np.abs(np.asarray(m.W1)) @ np.abs(np.asarray(m.h2)) + np.abs(np.asarray(m.h1))
    bound = drive.max() / (1 - 0.95)
    z0 = 50.0 * jr.normal(getkey(), (5,))
    traj = jax.jit(lambda z: m.rollout(z, 100_000))(z0)
    assert np.all(np.isfinite(traj))
    assert np.abs(np.asarray(traj[-50_000:])).max() <= bound + 1e-6


def eqx_set(model, name, value):
    import equinox as eqx

    return eqx.tree_at(lambda m: getattr(m, name), model, value)


def test_external_inputs(getkey):
    m = dr.models.ShallowPLRNN(latent=3, hidden=8, obs=3, key=getkey(), inputs=2)
    z, u = jr.normal(getkey(), (3,)), jr.normal(getkey(), (2,))
    no_input = dr.models.ShallowPLRNN(latent=3, hidden=8, obs=3, key=getkey())
    no_input = eqx_set(no_input, "A", m.A)
    for name in ("W1", "W2", "h1", "h2"):
        no_input = eqx_set(no_input, name, getattr(m, name))
    np.testing.assert_allclose(m.step(z, u), no_input.step(z) + m.C @ u, rtol=1e-12)
    with pytest.raises(ValueError, match="inputs=0"):
        no_input.step(z, u)


def test_observation_default_and_errors(getkey):
    assert isinstance(dr.models.ShallowPLRNN(latent=3, hidden=8, obs=3, key=getkey()).observation,
                      dr.models.Identity)
    assert isinstance(dr.models.ShallowPLRNN(latent=3, hidden=8, obs=5, key=getkey()).observation,
                      dr.models.Affine)
    with pytest.raises(ValueError, match="obs <= latent"):
        dr.models.ShallowPLRNN(latent=3, hidden=8, obs=5, key=getkey(), observation="identity")
    with pytest.raises(ValueError, match="latent"):
        dr.models.ShallowPLRNN(latent=0, hidden=8, obs=3, key=getkey())
    with pytest.raises(ValueError, match="observation"):
        dr.models.PLRNN(latent=3, obs=3, key=getkey(), observation="poisson")
    with pytest.raises(ValueError, match="n_relu"):
        dr.models.ALRNN(latent=3, n_relu=4, obs=3, key=getkey())


def test_jacobian_norm_bound_dominates(getkey):
    for make in [m[1] for m in MODELS]:
        model = make(getkey())
        bound = float(model.jacobian_norm_bound())
        for _ in range(20):
            z = 3.0 * jr.normal(getkey(), (4,))
            assert np.linalg.norm(np.asarray(model.jacobian(z)), 2) <= bound + 1e-9


@pytest.mark.parametrize("make", [
    lambda k: dr.models.ShallowPLRNN(latent=4, hidden=20, obs=4, key=k),
    lambda k: dr.models.PLRNN(latent=4, obs=4, key=k),
])
def test_deer_engine_matches_sequential(make, getkey):
    """`rollout(engine=dr.engines.Deer())` (parallel Newton with the analytic Jacobian) equals the
    sequential orbit of a contracting model, including under `jax.grad`."""
    model = jax.tree_util.tree_map(lambda x: 0.5 * x, make(getkey()))
    z = jr.normal(getkey(), (4,))
    seq = model.rollout(z, 3000)
    par = model.rollout(z, 3000, engine=dr.engines.Deer())
    np.testing.assert_allclose(par, seq, rtol=0, atol=1e-9)
    g_seq = jax.grad(lambda z: jnp.sum(model.rollout(z, 300) ** 2))(z)
    g_par = jax.grad(lambda z: jnp.sum(model.rollout(z, 300, engine=dr.engines.Deer()) ** 2))(z)
    np.testing.assert_allclose(g_par, g_seq, rtol=1e-6, atol=1e-9)
    with pytest.raises(TypeError, match="engine"):
        model.rollout(z, 3, engine="magic")
