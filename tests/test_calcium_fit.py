"""End-to-end fitting through the calcium observation (`dr.training.CalciumReconstruction`,
the learned kernel of `CalciumObservation`), against float64 NumPy/SciPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.signal

import dynrnn as dr


def _rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)


def _stable_ar2(rng):
    d, r = rng.uniform(0.7, 0.97), rng.uniform(0.05, 0.5)
    return d + r, -d * r


def _softplus(x):
    return np.logaddexp(0.0, x)


def _model(obs, latent, gamma, key, **kw):
    k1, k2 = jr.split(key)
    o = dr.models.CalciumObservation(obs, latent, gamma=gamma, key=k1, **kw)
    return dr.models.ShallowPLRNN(obs=obs, latent=latent, hidden=8, observation=o, key=k2)


def _lfilter_with_initial(x, g, c_prev):
    """`c_t = γ1 c_{t−1} + γ2 c_{t−2} + x_t` by `scipy.signal.lfilter` with initial conditions
    from the calcium before the first frame (`c_prev = [c_{−1}, c_{−2}]`)."""
    a = np.r_[1.0, -np.asarray(g)]
    zi = scipy.signal.lfiltic([1.0], a, y=c_prev)
    return scipy.signal.lfilter([1.0], a, x, zi=zi)[0]


@pytest.mark.parametrize("force_calcium", [False, True])
@pytest.mark.parametrize("order", [1, 2])
def test_window_likelihood_against_lfilter(order, force_calcium, getkey):
    """The objective's negative log-likelihood of a window, with α = 1 forcing (each step
    starts from the forcing signals), against a float64 NumPy / `lfilter` computation: the
    calcium runs through the window from the data's first frames (`lfilter` with initial
    conditions), or, forced, each frame's calcium starts from the data's previous ones."""
    rng = _rng()
    obs, latent, T = 6, 3, 40
    gamma = _stable_ar2(rng) if order == 2 else (rng.uniform(0.6, 0.97),)
    alpha, beta = rng.uniform(0.5, 2.0, obs), rng.normal(size=obs)
    o = dr.models.CalciumObservation(obs, latent, gamma=gamma, alpha=alpha, beta=beta,
                                     key=getkey())
    model = dr.models.ShallowPLRNN(obs=obs, latent=latent, hidden=8, observation=o,
                                   key=getkey())
    F = rng.normal(2.0, 1.0, (T + order, obs))
    rhat = rng.uniform(0.05, 3.0, (T + order, obs))
    fhat = rng.normal(2.0, 1.0, (T + order, obs))
    s = rng.uniform(0.0, 2.0, (T + order, obs))
    weight = rng.uniform(0.5, 4.0, obs)
    window = jnp.asarray(np.concatenate([F, rhat, fhat, s], axis=1))
    spike_weight = 0.3
    objective = dr.training.CalciumReconstruction(dr.GTF(1.0), seq_len=T,
                                                  spike_weight=spike_weight,
                                                  force_calcium=force_calcium)
    value = float(objective.window_loss(model, window, jnp.asarray(weight), 1.0))

    W, b = np.asarray(o.W), np.asarray(o.b)
    lam_hat = np.maximum(rhat / alpha, 1e-2)
    zhat = (lam_hat + np.log(-np.expm1(-lam_hat)) - b) @ np.linalg.pinv(W).T
    # α = 1: the state before each predicted frame is the previous frame's forcing signal
    zs = np.asarray(jax.vmap(model.step)(jnp.asarray(zhat[order - 1:-1])))
    lam = _softplus(zs @ W.T + b)
    mu = np.empty((T, obs))
    chat = (fhat - beta) / alpha
    for i in range(obs):
        if force_calcium:
            c = lam[:, i] + gamma[0] * chat[order - 1:-1, i]
            if order == 2:
                c += gamma[1] * chat[:-2, i]
        else:
            c = _lfilter_with_initial(lam[:, i], gamma, chat[order - 1::-1, i])
        mu[:, i] = alpha[i] * c + beta[i]
    ref = 0.5 * np.mean(weight * (F[order:] - mu) ** 2)
    counts = s[order:] / alpha
    ref += spike_weight * np.mean(lam - counts * np.log(lam))
    np.testing.assert_allclose(value, ref, rtol=1e-10)


def test_learned_kernel_parameterisation(getkey):
    rng = _rng()
    tau, rise, rate = rng.uniform(0.3, 2.0), rng.uniform(0.01, 0.1), rng.uniform(10.0, 60.0)
    for gamma, taus in (
        (dr.calcium.gamma_from_tau(tau, rate), [tau * rate]),
        (dr.calcium.gamma_from_tau(tau, rate, rise=rise), [tau * rate, rise * rate]),
    ):
        learned = dr.models.CalciumObservation(4, 2, gamma=gamma, learn_kernel=True,
                                               key=getkey())
        fixed = dr.models.CalciumObservation(4, 2, gamma=gamma, key=getkey())
        np.testing.assert_allclose(np.exp(np.asarray(learned.log_tau)),
                                   np.broadcast_to(taus, (4, len(taus))), rtol=1e-10)
        np.testing.assert_allclose(learned.gamma, fixed.gamma, rtol=1e-12, atol=1e-15)
        zs = jr.normal(getkey(), (30, 2))
        learned = eqx_set(learned, W=fixed.W)
        np.testing.assert_allclose(np.asarray(learned.forward(zs)),
                                   np.asarray(fixed.forward(zs)), rtol=1e-10)
        # the kernel is trained: a finite, non-zero gradient reaches log τ
        g = jax.grad(lambda o: o.loss(zs, jnp.ones((30, 4))))(learned)
        assert np.all(np.isfinite(np.asarray(g.log_tau)))
        assert np.any(np.asarray(g.log_tau) != 0)
    assert dr.models.CalciumObservation(3, 2, key=getkey()).log_tau is None


def eqx_set(module, **values):
    import equinox as eqx

    names = list(values)
    return eqx.tree_at(lambda m: [getattr(m, n) for n in names], module,
                       [values[n] for n in names])


@pytest.mark.parametrize("learn_kernel", [False, True])
def test_save_load_round_trip(learn_kernel, getkey, tmp_path):
    rng = _rng()
    model = _model(5, 3, _stable_ar2(rng), getkey(), learn_kernel=learn_kernel,
                   alpha=rng.uniform(0.5, 2.0, 5))
    if learn_kernel:  # a trained kernel differs from the one the model was built with
        model = eqx_set(model.observation, log_tau=model.observation.log_tau + 0.1)
        model = dr.models.ShallowPLRNN(obs=5, latent=3, hidden=8, observation=model,
                                       key=getkey())
    path = dr.save(tmp_path / "m.eqx", model)
    back = dr.load(path)
    assert type(back.observation) is dr.models.CalciumObservation
    assert back.observation.learn_kernel is learn_kernel
    np.testing.assert_array_equal(back.observation.gamma, model.observation.gamma)
    zs = jr.normal(getkey(), (25, 3))
    np.testing.assert_array_equal(np.asarray(back.observation.forward(zs)),
                                  np.asarray(model.observation.forward(zs)))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _simulated(rng, n_neurons=12, T=1600, period=60.0):
    t = np.arange(T)
    z = np.stack([np.sin(2 * np.pi * t / period), np.cos(2 * np.pi * t / period)], 1)
    w = rng.normal(0.0, 1.0, (n_neurons, 2))
    rates = np.exp(np.log(0.5) + z @ w.T)
    spikes = rng.poisson(rates).astype(float)
    gamma = (0.85,)
    c = scipy.signal.lfilter([1.0], [1.0, -gamma[0]], spikes, axis=0)
    F = c + 1.0 + 0.3 * rng.standard_normal(c.shape)
    return F, rates, gamma


def test_recovers_rates_on_a_small_problem():
    """A latent oscillation behind 12 Poisson neurons through the calcium kernel: training
    lowers the likelihood loss on held-out windows, and the fitted model's rates at the
    inferred states correlate with the true rates (r > 0.8; chance ≈ 0). A training outcome,
    not an equivalence: fixed seeds (with fresh ones it failed once in the full suite of
    session 7, after passing in every run alone)."""
    rng = np.random.default_rng(7)
    keys = iter(jr.split(jr.PRNGKey(7), 8))

    def getkey():
        return next(keys)

    F, rates, gamma = _simulated(rng)
    model = _model(F.shape[1], 2, gamma, getkey())
    objective = dr.training.CalciumReconstruction(seq_len=30)
    model = objective.initialise(model, F[:1200])
    res = dr.fit(model, F[:1200], loss=objective, n_steps=300, batch_size=8, key=getkey(),
                 progress=False, steps_per_call=100)
    # On the same held-out windows, with the same forcing strength, the trained dynamics
    # predict the fluorescence better than the initial ones.
    prepared = objective.prepare(model, F[1200:])
    batch = objective.sample(prepared, getkey(), 64)
    before = float(objective.loss(model, batch, 0.2, getkey()))
    after = float(objective.loss(res.model, batch, 0.2, getkey()))
    assert after < before
    states = objective.infer_states(res.model, F[1200:])
    pred = np.asarray(res.model.observation.rates(jnp.asarray(states)))
    r = np.mean([np.corrcoef(pred[:, i], rates[1200:, i])[0, 1] for i in range(F.shape[1])])
    print(f"rate r {r:.3f}; held-out loss {before:.3f} -> {after:.3f}")
    assert r > 0.8


def test_bad_inputs_name_the_argument(getkey):
    rng = _rng()
    model = _model(4, 2, (0.9,), getkey())
    objective = dr.training.CalciumReconstruction(seq_len=20)
    F = rng.normal(size=(200, 4))
    with pytest.raises(ValueError, match=r"`data`.*5 neurons.*observes 4"):
        objective.prepare(model, rng.normal(size=(200, 5)))
    bad = F.copy()
    bad[17, 2] = np.nan
    with pytest.raises(ValueError, match="`data`.*(NaN|finite)"):
        objective.prepare(model, bad)
    with pytest.raises(ValueError, match="`data`.*(NaN|finite)"):
        objective.infer_states(model, bad)
    with pytest.raises(ValueError, match="`tau`.*-0.5"):
        dr.models.CalciumObservation(4, 2, gamma=dr.calcium.gamma_from_tau(-0.5, 30.0),
                                     key=getkey())
    with pytest.raises(ValueError, match="`gamma`.*real"):  # complex roots: no time constants
        dr.models.CalciumObservation(4, 2, gamma=(1.2, -0.5), learn_kernel=True, key=getkey())
    with pytest.raises(ValueError, match="`seq_len`"):
        objective_long = dr.training.CalciumReconstruction(seq_len=500)
        objective_long.prepare(model, F)
    with pytest.raises(ValueError, match="`noise`"):
        dr.training.CalciumReconstruction(noise=-0.1)
    with pytest.raises(ValueError, match="`alpha`"):
        objective.infer_states(model, F, alpha=1.5)
    affine = dr.models.ShallowPLRNN(obs=4, latent=2, hidden=8, key=getkey())
    with pytest.raises(TypeError, match="CalciumObservation"):
        objective.prepare(affine, F)


@pytest.mark.parametrize("name,latent_path", [
    ("GRU", False),
    ("GRU", True),
    pytest.param("CfC", False, marks=pytest.mark.slow),
    pytest.param("PLRNN", True, marks=pytest.mark.slow),
])
def test_any_latent_family_trains_on_fluorescence(name, latent_path, getkey):
    """The objective needs only the latent-model contract: other families give a finite
    loss and finite, non-zero gradients for their dynamics and the observation (and, with a
    latent path, for the path)."""
    import equinox as eqx
    from helpers import make_family

    rng = _rng()
    F, _, gamma = _simulated(rng, n_neurons=5, T=200)
    obs = dr.models.CalciumObservation(5, 4, gamma=gamma, key=getkey())
    model = make_family(name, key=getkey(), obs=5, latent=4, observation=obs)
    objective = dr.training.CalciumReconstruction(seq_len=20, latent_path=latent_path)
    model = objective.initialise(model, F)
    batch = objective.sample(objective.prepare(model, F), getkey(), 4)
    value, grads = eqx.filter_value_and_grad(
        lambda m: objective.loss(m, batch, 0.3, getkey()))(model)
    assert np.isfinite(float(value))
    leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    dynamics = eqx.filter(eqx.tree_at(lambda m: m.observation, grads, None), eqx.is_inexact_array)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(dynamics))
    assert np.any(np.asarray(grads.observation.W) != 0)
    if latent_path:
        assert np.any(np.asarray(grads.observation.states) != 0)


def test_warm_start_from_given_states(getkey):
    """`initialise(..., states=)` (warm start from a two-stage model): the forcing signals are
    the least-squares reconstruction of the given states, so they follow the true latent of
    a simulated population, transform with any affine change of the states' coordinates
    (`ẑ(S A + c) = ẑ(S) A + c`), and α, β are those of the plain initialisation."""
    from dynrnn.training._calcium import _deconvolved, forcing_states

    rng = _rng()
    T = 600
    F, _, gamma = _simulated(rng, T=T)
    t = np.arange(T)
    z = np.stack([np.sin(2 * np.pi * t / 60.0), np.cos(2 * np.pi * t / 60.0)], 1)
    model = _model(F.shape[1], 2, gamma, getkey())
    objective = dr.training.CalciumReconstruction(seq_len=30)
    plain = objective.initialise(model, F)
    warm = objective.initialise(model, F, states=z)
    np.testing.assert_array_equal(np.asarray(warm.observation.alpha),
                                  np.asarray(plain.observation.alpha))
    np.testing.assert_array_equal(np.asarray(warm.observation.beta),
                                  np.asarray(plain.observation.beta))
    rhat = jnp.asarray(_deconvolved(warm.observation, F, 1.0, 1.0)[0], jnp.float32)
    zhat = np.asarray(forcing_states(warm.observation, rhat))
    r = [np.corrcoef(zhat[:, k], z[:, k])[0, 1] for k in range(2)]
    assert min(r) > 0.7, r
    A = rng.normal(size=(2, 2)) + 2.0 * np.eye(2)
    c = rng.normal(size=2)
    moved = objective.initialise(model, F, states=z @ A + c)
    zhat2 = np.asarray(forcing_states(moved.observation, rhat))
    np.testing.assert_allclose(zhat2, zhat @ A + c, atol=1e-3 * (1 + np.abs(zhat @ A + c).max()))
    with pytest.raises(ValueError, match=r"`states`.*\(600, 2\).*\(599, 2\)"):
        objective.initialise(model, F, states=z[1:])


def _encoder_np(E, e, spikes, alpha):
    """`ẑ_t = e + Σ_{0<|k|≤K} E_k s_{t+k}/α / √(2K·obs)` by a float64 loop over frames and
    offsets."""
    K = E.shape[0] // 2
    offsets = [k for k in range(-K, K + 1) if k]
    u = spikes / alpha / np.sqrt(2 * K * spikes.shape[1])
    out = []
    for t in range(K, spikes.shape[0] - K):
        z = e.copy()
        for j, k in enumerate(offsets):
            z += E[j] @ u[t + k]
        out.append(z)
    return np.array(out)


@pytest.mark.parametrize("order", [1, 2])
def test_encoder_window_likelihood_against_numpy(order, getkey):
    """With an encoder, the forcing signals are the encoder's states of the frames around
    each one (not the frame's own spikes), and the loss adds the fluorescence likelihood of
    those states decoded frame by frame with the data's calcium before each frame: both
    against a float64 NumPy loop, with random parameters, spikes and α = 1 forcing."""
    import equinox as eqx

    rng = _rng()
    obs, latent, T, K = 5, 3, 30, int(rng.integers(1, 4))
    gamma = _stable_ar2(rng) if order == 2 else (rng.uniform(0.6, 0.97),)
    alpha, beta = rng.uniform(0.5, 2.0, obs), rng.normal(size=obs)
    o = dr.models.CalciumObservation(obs, latent, gamma=gamma, alpha=alpha, beta=beta,
                                     encoder=K, key=getkey())
    E, e = rng.normal(0.0, 0.3, (2 * K, latent, obs)), rng.normal(size=latent)
    o = eqx.tree_at(lambda m: (m.E, m.e), o, (jnp.asarray(E), jnp.asarray(e)))
    model = dr.models.ShallowPLRNN(obs=obs, latent=latent, hidden=8, observation=o,
                                   key=getkey())
    L = T + order + 2 * K
    F = rng.normal(2.0, 1.0, (L, obs))
    rhat = rng.uniform(0.05, 3.0, (L, obs))  # unused with an encoder
    fhat = rng.normal(2.0, 1.0, (L, obs))
    s = rng.uniform(0.0, 2.0, (L, obs))
    weight = rng.uniform(0.5, 4.0, obs)
    window = jnp.asarray(np.concatenate([F, rhat, fhat, s], axis=1))
    objective = dr.training.CalciumReconstruction(dr.GTF(1.0), seq_len=T)
    value = float(objective.window_loss(model, window, jnp.asarray(weight), 1.0))

    zenc = _encoder_np(E, e, s, alpha)  # the core's frames, (order + T, latent)
    np.testing.assert_allclose(np.asarray(o.encode(jnp.asarray(s))), zenc, rtol=1e-10,
                               atol=1e-12)
    W, b = np.asarray(o.W), np.asarray(o.b)
    Fc, chat = F[K:-K], ((fhat - beta) / alpha)[K:-K]
    zs = np.asarray(jax.vmap(model.step)(jnp.asarray(zenc[order - 1:-1])))
    ref = 0.0
    for z in (zs, zenc[order:]):  # dynamics' predictions, then the encoder's own states
        c = _softplus(z @ W.T + b) + gamma[0] * chat[order - 1:-1]
        if order == 2:
            c += gamma[1] * chat[:-2]
        ref += 0.5 * np.mean(weight * (Fc[order:] - alpha * c - beta) ** 2)
    np.testing.assert_allclose(value, ref, rtol=1e-10)
    # the encoder is trained by the loss
    grads = eqx.filter_grad(
        lambda m: objective.window_loss(m, window, jnp.asarray(weight), 1.0))(model)
    assert np.all(np.isfinite(np.asarray(grads.observation.E)))
    assert np.any(np.asarray(grads.observation.E) != 0)


def test_encoder_starts_at_the_forcing_signals_and_trains(getkey):
    """`initialise` fits the encoder to the principal-axes forcing signals, so its states
    follow the true latent of a simulated population from the start (r > 0.7 per axis after
    an affine map); fitting with it lowers the held-out loss, its states stay finite, and
    the model round-trips through `dr.save` / `dr.load` with the encoder."""
    import tempfile

    rng = _rng()
    T = 1600
    F, rates, gamma = _simulated(rng, T=T)
    t = np.arange(T)
    z = np.stack([np.sin(2 * np.pi * t / 60.0), np.cos(2 * np.pi * t / 60.0)], 1)
    model = _model(F.shape[1], 2, gamma, getkey(), encoder=3)
    objective = dr.training.CalciumReconstruction(seq_len=30)
    model = objective.initialise(model, F[:1200])
    states = objective.infer_states(model, F[:1200], alpha=1.0)
    X = np.c_[states, np.ones(len(states))]
    fit = X @ np.linalg.lstsq(X, z[:1200], rcond=None)[0]
    r = [np.corrcoef(fit[:, k], z[:1200, k])[0, 1] for k in range(2)]
    assert min(r) > 0.7, r
    res = dr.fit(model, F[:1200], loss=objective, n_steps=200, batch_size=8, key=getkey(),
                 progress=False, steps_per_call=100)
    prepared = objective.prepare(model, F[1200:])
    batch = objective.sample(prepared, getkey(), 64)
    assert float(objective.loss(res.model, batch, 0.2, None)) < float(
        objective.loss(model, batch, 0.2, None))
    assert np.all(np.isfinite(objective.infer_states(res.model, F[1200:])))
    with tempfile.TemporaryDirectory() as tmp:
        back = dr.load(dr.save(f"{tmp}/m.eqx", res.model))
    assert back.observation.encoder == 3
    np.testing.assert_array_equal(np.asarray(back.observation.E),
                                  np.asarray(res.model.observation.E))
    with pytest.raises(ValueError, match="`encoder`"):
        dr.models.CalciumObservation(4, 2, encoder=-1, key=getkey())


@pytest.mark.parametrize("order", [1, 2])
def test_latent_path_window_loss_against_numpy(order, getkey):
    """`latent_path=True`: the loss of a window with fresh random path states, forcing
    strength and data, against a float64 NumPy loop: the path's rates through the kernel from
    the data's calcium before the window (`lfilter` with initial conditions), the Gaussian
    fluorescence term, and the GTF predictions along the path against it, scaled by the
    process noise times the path's variance."""
    import equinox as eqx

    rng = _rng()
    obs, latent, T, n_path = 5, 3, 30, 80
    gamma = _stable_ar2(rng) if order == 2 else (rng.uniform(0.6, 0.97),)
    alpha_f, beta = rng.uniform(0.5, 2.0, obs), rng.normal(size=obs)
    o = dr.models.CalciumObservation(obs, latent, gamma=gamma, alpha=alpha_f, beta=beta,
                                     path=n_path, key=getkey())
    path = rng.normal(size=(n_path, latent)) * rng.uniform(0.5, 2.0, latent)
    o = eqx.tree_at(lambda m: m.states, o, jnp.asarray(path))
    model = dr.models.ShallowPLRNN(obs=obs, latent=latent, hidden=8, observation=o,
                                   key=getkey())
    start = int(rng.integers(0, n_path - T - order))
    rows = np.arange(start, start + T + order)
    F = rng.normal(2.0, 1.0, (T + order, obs))
    fhat = rng.normal(2.0, 1.0, (T + order, obs))
    s = rng.uniform(0.0, 2.0, (T + order, obs))
    weight = rng.uniform(0.5, 4.0, obs)
    a = float(rng.uniform(0.05, 0.9))
    q = float(rng.uniform(0.01, 0.2))
    window = jnp.asarray(np.concatenate([F, np.zeros_like(F), fhat, s, rows[:, None]], 1))
    objective = dr.training.CalciumReconstruction(dr.GTF(a), seq_len=T, latent_path=True,
                                                  process_noise=q)
    value = float(objective.window_loss(model, window, jnp.asarray(weight), a))

    W, b = np.asarray(o.W), np.asarray(o.b)
    Z = path[rows]
    lam = _softplus(Z[order:] @ W.T + b)
    chat = (fhat - beta) / alpha_f
    mu = np.empty((T, obs))
    for i in range(obs):
        c = _lfilter_with_initial(lam[:, i], gamma, chat[order - 1::-1, i])
        mu[:, i] = alpha_f[i] * c + beta[i]
    fit = 0.5 * np.sum(weight * (F[order:] - mu) ** 2, axis=1)
    var = path.var(axis=0)
    zt = Z[order - 1]
    dyn = np.empty(T)
    for t in range(T):
        pred = np.asarray(model.step(jnp.asarray(zt)), np.float64)
        dyn[t] = 0.5 * np.sum((pred - Z[order + t]) ** 2 / (q ** 2 * var))
        zt = (1 - a) * pred + a * Z[order + t]
    ref = np.mean(fit + dyn) / obs
    np.testing.assert_allclose(value, ref, rtol=1e-10)
    # the path is a trained parameter: every state of the window gets a gradient (the other
    # rows only through the path's variance, which scales the dynamics term)
    g = jax.grad(lambda m: objective.window_loss(m, window, jnp.asarray(weight), a))(model)
    g = np.asarray(g.observation.states)
    assert np.all(np.isfinite(g)) and np.all(np.abs(g[rows]).sum(axis=1) > 0)


def test_latent_path_trains_and_infers():
    """`latent_path=True` end to end on a latent oscillation behind 12 Poisson neurons:
    `initialise` gives the observation one state per training frame; `dr.fit` (with the
    objective's optimiser: the path has its own Adam) moves the path so that its rates follow
    the true ones better than at the start; the path inferred for held-out frames with the
    model fixed gives rates that follow the true ones (r > 0.85, better than the forcing
    signals it starts from), and the path inferred again for the training frames lies close
    to the one fitted with the model. A training outcome on fixed seeds."""
    from dynrnn.training._calcium import _deconvolved, forcing_states

    rng = np.random.default_rng(11)
    keys = iter(jr.split(jr.PRNGKey(11), 8))
    F, rates, gamma = _simulated(rng)

    def rate_r(states, model, true):
        pred = np.asarray(model.observation.rates(jnp.asarray(states)))
        return np.mean([np.corrcoef(pred[:, i], true[:, i])[0, 1] for i in range(F.shape[1])])

    model = _model(F.shape[1], 2, gamma, next(keys))
    objective = dr.training.CalciumReconstruction(dr.GTF(0.2), seq_len=30, latent_path=True,
                                                  process_noise=0.1, path_steps=500)
    model = objective.initialise(model, F[:1200])
    assert model.observation.states.shape == (1200, 2)
    start = np.asarray(model.observation.states)
    res = dr.fit(model, F[:1200], loss=objective, n_steps=800, batch_size=8, key=next(keys),
                 optimizer=objective.default_optimizer(800, 5e-3), progress=False,
                 steps_per_call=100)
    fitted = np.asarray(res.model.observation.states)
    assert np.all(np.isfinite(fitted))
    r_start, r_fitted = rate_r(start, model, rates[:1200]), rate_r(fitted, res.model,
                                                                    rates[:1200])
    states = objective.infer_states(res.model, F[1200:])
    assert states.shape == (400, 2)
    r = rate_r(states, res.model, rates[1200:])
    rhat = _deconvolved(res.model.observation, F[1200:], 1.0, 1.0)[0]
    r0 = rate_r(forcing_states(res.model.observation, jnp.asarray(rhat)), res.model,
                rates[1200:])
    again = objective.infer_states(res.model, F[:1200])
    close = np.mean([np.corrcoef(again[:, m], fitted[:, m])[0, 1] for m in range(2)])
    print(f"training path rate r {r_start:.3f} -> {r_fitted:.3f}; held-out {r0:.3f} -> "
          f"{r:.3f}; path inferred again vs fitted: r {close:.3f}")
    assert r_fitted > r_start
    assert r > 0.85 and r > r0
    assert close > 0.9


def test_latent_path_bad_inputs_and_save_load(getkey, tmp_path):
    rng = _rng()
    F = rng.normal(3.0, 1.0, (200, 4))
    objective = dr.training.CalciumReconstruction(seq_len=20, latent_path=True)
    model = _model(4, 2, (0.9,), getkey())
    with pytest.raises(ValueError, match="initialise"):
        objective.prepare(model, F)
    ready = objective.initialise(model, F)
    with pytest.raises(ValueError, match="200 frames but `data` has 150"):
        objective.prepare(ready, F[:150])
    with pytest.raises(ValueError, match="encoder"):
        objective.initialise(_model(4, 2, (0.9,), getkey(), encoder=2), F)
    with pytest.raises(ValueError, match="`process_noise`"):
        dr.training.CalciumReconstruction(latent_path=True, process_noise=0.0)
    with pytest.raises(ValueError, match="`path`"):
        dr.models.CalciumObservation(4, 2, path=-3, key=getkey())
    back = dr.load(dr.save(tmp_path / "m.eqx", ready))
    assert back.observation.path == 200
    np.testing.assert_array_equal(np.asarray(back.observation.states),
                                  np.asarray(ready.observation.states))
