import jax.numpy as jnp
import numpy as np
import pytest

import dynrnn as dr


def test_identity_reads_first_units_and_forces_partially(getkey):
    obs = dr.models.Identity(3, 5, key=getkey())
    z = jnp.arange(5.0)
    np.testing.assert_array_equal(obs(z), [0.0, 1.0, 2.0])
    x = jnp.array([1.0, -2.0, 3.0])
    z1 = obs.init_state(x)
    np.testing.assert_allclose(z1[:3], x)
    np.testing.assert_allclose(z1[3:], np.asarray(obs.L) @ np.asarray(x), rtol=1e-12)
    np.testing.assert_array_equal(obs.forcing_signal(x), [1.0, -2.0, 3.0, 0.0, 0.0])
    assert obs.partial_forcing


def test_identity_square_has_no_L(getkey):
    obs = dr.models.Identity(3, 3, key=getkey())
    assert obs.L is None
    x = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(obs.init_state(x), x)


def test_identity_rejects_more_obs_than_latent(getkey):
    with pytest.raises(ValueError, match="obs <= latent"):
        dr.models.Identity(4, 3, key=getkey())


def test_affine_inverse_is_pseudo_inverse(getkey):
    obs = dr.models.Affine(5, 3, key=getkey())
    B = np.asarray(obs.B)
    x = np.random.default_rng(0).normal(size=5)
    np.testing.assert_allclose(obs.forcing_signal(jnp.asarray(x)), np.linalg.pinv(B) @ x,
                               rtol=1e-10)
    z = np.random.default_rng(1).normal(size=3)
    np.testing.assert_allclose(obs(jnp.asarray(z)), B @ z, rtol=1e-12)
    assert not obs.partial_forcing


def test_affine_penalty_closed_form(getkey):
    obs = dr.models.Affine(4, 4, key=getkey(), penalty_weight=1e-3)
    s = np.linalg.svd(np.asarray(obs.B), compute_uv=False)
    np.testing.assert_allclose(obs.penalty(), 1e-3 * (1 - s[0] / (s[-1] + 1e-8)) ** 2,
                               rtol=1e-10)
