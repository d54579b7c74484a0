"""Generalized and sparse teacher forcing against the definitions of Hess et al. (2023)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.linalg

import dynrnn as dr
from dynrnn.forcing import forced_rollout, gtf_blend, optimal_alpha


def test_blend_value_and_gradient(getkey):
    z, zh, g = (jr.normal(getkey(), (5,)) for _ in range(3))
    alpha = 0.37
    out, vjp = jax.vjp(lambda a, b: gtf_blend(a, b, alpha, 5), z, zh)
    np.testing.assert_allclose(out, (1 - alpha) * z + alpha * zh, rtol=1e-14)
    gz, gzh = vjp(g)
    np.testing.assert_allclose(gz, (1 - alpha) * g, rtol=1e-14)
    np.testing.assert_allclose(gzh, alpha * g, rtol=1e-14)
    # partial forcing leaves the unforced units (and their gradient) alone
    out, vjp = jax.vjp(lambda a: gtf_blend(a, zh, alpha, 2), z)
    np.testing.assert_allclose(out[2:], z[2:])
    np.testing.assert_allclose(vjp(g)[0][2:], g[2:])


def test_optimal_alpha_closed_form():
    np.testing.assert_allclose(optimal_alpha(jnp.array([0.2, 1.0, 2.0, 4.0])),
                               [0.0, 0.0, 0.5, 0.75])


def _numpy_forced(model, x, alpha, D, forced_at=None):
    """Independent loop: z̃ ← init; z_t = F(z̃); z̃[:D] ← (1−α)z_t[:D] + α ẑ_t[:D]."""
    zt = np.asarray(model.init_state(jnp.asarray(x[0])))
    preds = []
    for t in range(1, x.shape[0]):
        z = np.asarray(model.step(jnp.asarray(zt)))
        preds.append(np.asarray(model.observe(jnp.asarray(z))))
        zh = np.asarray(model.forcing_signal(jnp.asarray(x[t])))
        a = alpha if forced_at is None else float(forced_at(t + 1))
        zt = z.copy()
        zt[:D] = (1 - a) * z[:D] + a * zh[:D]
    return np.stack(preds)


@pytest.mark.parametrize("observation", ["identity", "affine"])
def test_forced_rollout_matches_loop(observation, getkey):
    model = dr.models.ShallowPLRNN(latent=5, hidden=16, obs=3, key=getkey(),
                                   observation=observation)
    x = np.asarray(jr.normal(getkey(), (12, 3)))
    D = 3 if observation == "identity" else 5
    for alpha in (0.0, 0.3, 1.0):
        pred, _, _ = forced_rollout(model, jnp.asarray(x), dr.GTF(alpha), alpha)
        np.testing.assert_allclose(pred, _numpy_forced(model, x, alpha, D), rtol=1e-10,
                                   atol=1e-12)
    # α = 0 is free running from init_state(x_1)
    pred, _, _ = forced_rollout(model, jnp.asarray(x), dr.GTF(0.0), 0.0)
    free = jax.vmap(model.observe)(model.rollout(model.init_state(jnp.asarray(x[0])), 11))
    np.testing.assert_allclose(pred, free, rtol=1e-12)
    # STF: identity forcing at (t − 1) mod τ = 0
    tau = 4
    pred, _, _ = forced_rollout(model, jnp.asarray(x), dr.STF(tau), 1.0)
    ref = _numpy_forced(model, x, None, D, forced_at=lambda t: (t - 1) % tau == 0)
    np.testing.assert_allclose(pred, ref, rtol=1e-10, atol=1e-12)


def test_alpha_one_is_identity_forcing(getkey):
    model = dr.models.ShallowPLRNN(latent=3, hidden=16, obs=3, key=getkey())
    x = jr.normal(getkey(), (10, 3))
    pred, _, _ = forced_rollout(model, x, dr.GTF(1.0), 1.0)
    # hard forcing: every prediction is one step from the data point before it
    np.testing.assert_allclose(pred, jax.vmap(model.step)(x[:-1]), rtol=1e-12)


class _Fixed(eqx.Module):
    """A model stand-in whose Jacobian norm bound is a given number."""

    value: float

    def jacobian_norm_bound(self):
        return jnp.asarray(self.value)


def test_adaptive_schedule_jumps_up_and_decays():
    tf = dr.GTF(0.2, method="jacobian_upper_bound", update_every=5, gamma=0.9)
    alpha = jnp.asarray(0.2)
    # counter not a multiple of 5: unchanged
    a, _ = tf.update_alpha(_Fixed(4.0), alpha, None, 3)
    assert float(a) == pytest.approx(0.2)
    # estimate 0.75 > 0.2: jump
    a, norm = tf.update_alpha(_Fixed(4.0), alpha, None, 5)
    assert float(a) == pytest.approx(0.75) and float(norm) == pytest.approx(4.0)
    # estimate 0.5 < 0.75: decay α ← γα + (1−γ)α_est
    a2, _ = tf.update_alpha(_Fixed(2.0), a, None, 10)
    assert float(a2) == pytest.approx(0.9 * 0.75 + 0.1 * 0.5)
    # contracting model: estimate 0, decays geometrically toward 0
    a3, _ = tf.update_alpha(_Fixed(0.5), a2, None, 15)
    assert float(a3) == pytest.approx(0.9 * float(a2))


def test_adaptive_defaults():
    tf = dr.GTF("adaptive")
    assert tf.method == "product_upper_bound" and tf.alpha == 1.0
    assert tf.update_every == 5 and tf.gamma == 0.999
    with pytest.raises(ValueError, match="method"):
        dr.GTF(0.5, method="median")
    with pytest.raises(ValueError, match="alpha"):
        dr.GTF(1.5)
    with pytest.raises(ValueError, match="interval"):
        dr.STF(0)


def test_norm_estimates_match_numpy(getkey):
    model = dr.models.ShallowPLRNN(latent=3, hidden=10, obs=3, key=getkey(), clipped=False)
    model = jax.tree_util.tree_map(lambda x: 2.0 * x, model)
    zhat = jr.normal(getkey(), (4, 6, 3))
    J = np.stack([[np.asarray(model.jacobian(z)) for z in seq] for seq in zhat])
    norms = np.linalg.norm(J, 2, axis=(-2, -1))
    expect = {
        "batch_maximum": norms.max(),
        "product_upper_bound": np.exp(np.log(norms).mean(1)).max(),
        "arithmetic_mean": np.linalg.norm(J.mean(1), 2, axis=(-2, -1)).max(),
        "explog_approx": max(
            np.linalg.norm(np.real(scipy.linalg.expm(
                np.mean([scipy.linalg.logm(j) for j in seq], axis=0))), 2)
            for seq in J
        ),
        "jacobian_upper_bound": np.abs(np.asarray(model.A)).max()
        + np.linalg.norm(np.asarray(model.W1), 2) * np.linalg.norm(np.asarray(model.W2), 2),
    }
    for method, value in expect.items():
        got = dr.GTF(1.0, method=method).estimate_norm(model, zhat)
        np.testing.assert_allclose(got, value, rtol=1e-6, err_msg=method)


class _TanhMap(eqx.Module):
    """`z ↦ tanh(W z)`: a dense Jacobian whose singular values spread like a random matrix's."""

    W: jax.Array

    @property
    def n_latent(self):
        return self.W.shape[0]

    def step(self, z, u=None):
        return jnp.tanh(self.W @ z)

    def jacobian(self, z, u=None):
        return jax.jacfwd(self.step)(z)


@pytest.mark.parametrize("family", ["LSSL", "GRU", "tanh"])
def test_large_latent_norms_by_lanczos_match_the_svd(getkey, family):
    """Above `EXACT_NORM_SIZE` the Jacobian norms of adaptive GTF come from Lanczos steps on
    `JᵀJ` through `jvp`/`vjp`; on fresh random models and states they match a float64 SVD
    of the formed Jacobians (the estimate GTF used before, and what the paper computes)."""
    from dynrnn.forcing._forcing import EXACT_NORM_SIZE, jacobian_norms

    if family == "LSSL":
        model = dr.models.LSSL(obs=3, latent=32, key=getkey())  # 99 latent units
    elif family == "GRU":
        model = dr.models.GRU(obs=3, latent=32, key=getkey())
    else:
        model = _TanhMap(jr.normal(getkey(), (150, 150)) / np.sqrt(150))
    m = model.n_latent
    assert m > EXACT_NORM_SIZE
    zhat = jr.normal(getkey(), (3, 5, m))
    J = np.asarray(jax.vmap(jax.vmap(model.jacobian))(zhat), np.float64)
    expect = np.linalg.norm(J, 2, axis=(-2, -1))
    got = np.asarray(jacobian_norms(model, zhat))
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, expect, rtol=1e-4)
    tf = dr.GTF(1.0, method="product_upper_bound")
    np.testing.assert_allclose(tf.estimate_norm(model, zhat),
                               np.exp(np.log(expect).mean(1)).max(), rtol=1e-4)


def test_lanczos_norm_of_a_low_rank_jacobian(getkey):
    """A rank-2 Jacobian ends the Lanczos recurrence after two steps (an invariant subspace):
    the norm is still the largest singular value, not NaN."""
    from dynrnn.forcing._forcing import jacobian_norms

    m = 60
    u, v = jr.normal(getkey(), (2, m, 2))
    model = _TanhMap(u @ v.T / m)
    zhat = jr.normal(getkey(), (2, 4, m)) * 0.1
    J = np.asarray(jax.vmap(jax.vmap(model.jacobian))(zhat), np.float64)
    got = np.asarray(jacobian_norms(model, zhat))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.linalg.norm(J, 2, axis=(-2, -1)), rtol=1e-4)


def test_solver_regulariser_inside_forced_rollout(getkey):
    """With a solver regulariser, the penalty is accumulated over the trained (forced) steps:
    it equals a manual loop of `step_with_stats` with the same forcing and keys."""
    model = dr.models.NeuralODE(obs=3, latent=3, width=8, key=getkey())
    reg = dr.regularizers.SolverError(2.0)
    x = 0.5 * jr.normal(getkey(), (6, 3))
    key = getkey()
    pred, _, penalty = forced_rollout(model, x, dr.GTF(0.5), 0.5, key=key,
                                      step=lambda z, u, k: reg.step(model, z, u, key=k))
    keys = jr.split(key, 5)
    z, total = model.init_state(x[0]), 0.0
    for t in range(1, 6):
        z_new, stats = model.step_with_stats(z, needs=reg.needs, key=keys[t - 1])
        total += 2.0 * float(stats["error_integral"])
        np.testing.assert_allclose(pred[t - 1], model.observe(z_new), rtol=1e-10)
        z = gtf_blend(z_new, model.forcing_signal(x[t]), 0.5, 3)
    assert total > 0
    np.testing.assert_allclose(penalty, total, rtol=1e-8)
