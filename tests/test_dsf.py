"""The Dynamical Systems Framework: every converter against an independent implementation of
the original layer (NumPy float64 loops, `jax.nn.softmax` with a mask, published kernel values),
in all three evaluation methods; the paper's equivalence conditions; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnValueError


L, M, D = 7, 3, 4  # sequence length, query/key size, channels (one shape set: few compiles)
METHODS = ("recurrent", "parallel", "matrix")
TOL = 1e-5


def _np(x):
    return np.asarray(x, dtype=np.float64)


def _check_all_methods(dsf, u, y_ref):
    for method in METHODS:
        y = dr.dsf.apply(dsf, u, method=method)
        np.testing.assert_allclose(_np(y), y_ref, atol=TOL, rtol=TOL, err_msg=method)


def _elu1(x):
    return np.where(x > 0, x + 1.0, np.exp(x))


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


# -- each converter against the original layer ----------------------------------------------


def test_softmax_attention(getkey):
    q, k, u = (jr.normal(getkey(), s) for s in ((L, M), (L, M), (L, D)))
    scores = (q @ k.T) / np.sqrt(M)
    causal = jnp.tril(jnp.ones((L, L), bool))
    ref = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1) @ u
    dsf = dr.dsf.from_softmax_attention(q, k)
    np.testing.assert_allclose(_np(dr.dsf.apply(dsf, u, method="matrix")), _np(ref), atol=TOL)
    # a causal mask with holes (a sliding window of 3) and an explicit scale
    window = causal & ~jnp.tril(jnp.ones((L, L), bool), -3)
    ref_w = jax.nn.softmax(jnp.where(window, 0.7 * q @ k.T, -jnp.inf), axis=-1) @ u
    dsf_w = dr.dsf.from_softmax_attention(q, k, scale=0.7, mask=window)
    np.testing.assert_allclose(_np(dr.dsf.apply(dsf_w, u, method="matrix")), _np(ref_w),
                               atol=TOL)
    for method in ("recurrent", "parallel"):
        with pytest.raises(DynrnnValueError, match="infinite-dimensional"):
            dr.dsf.apply(dsf, u, method=method)


def test_linear_attention(getkey):
    q, k, u = (np.asarray(jr.normal(getkey(), s)) for s in ((L, M), (L, M), (L, D)))
    pq, pk = _elu1(q), _elu1(k)
    ref = np.zeros((L, D))
    num, den = np.zeros((M, D)), np.zeros(M)
    for i in range(L):  # normalised cumulative sums
        num += np.outer(pk[i], u[i])
        den += pk[i]
        ref[i] = pq[i] @ num / (pq[i] @ den)
    _check_all_methods(dr.dsf.from_linear_attention(q, k), u, ref)


def test_linear_attention_lambda_is_ratio_of_score_row_sums(getkey):
    q, k = (np.asarray(jr.normal(getkey(), (L, M))) for _ in range(2))
    rows = np.tril(_elu1(q) @ _elu1(k).T).sum(axis=1)
    lam = _np(dr.dsf.from_linear_attention(q, k).Lambda[:, 0, 0])
    np.testing.assert_allclose(lam[1:], rows[:-1] / rows[1:], rtol=1e-12)
    assert (lam[1:] > 1).any() or (lam[1:] <= 1).all()  # may exceed 1: no constraint imposed


def test_normalized_attention(getkey):
    q, k, u = (np.asarray(jr.normal(getkey(), s)) for s in ((L, M), (L, M), (L, D)))
    n = np.asarray(jr.normal(getkey(), (L,)))
    ref = np.stack([sum((q[i] @ k[j]) * u[j] for j in range(i + 1)) / np.exp(n[i])
                    for i in range(L)])
    _check_all_methods(dr.dsf.from_normalized_attention(q, k, n), u, ref)


@pytest.mark.parametrize("disc", ["euler", "zoh"])
def test_s6(getkey, disc):
    n = 3
    delta = _softplus(np.asarray(jr.normal(getkey(), (L, D))))
    A = -np.exp(np.asarray(jr.normal(getkey(), (D, n))))
    B, C = (np.asarray(jr.normal(getkey(), (L, n))) for _ in range(2))
    Dskip, u = np.asarray(jr.normal(getkey(), (D,))), np.asarray(jr.normal(getkey(), (L, D)))
    h, ref = np.zeros((D, n)), np.zeros((L, D))
    for i in range(L):  # Mamba's selective scan, one step at a time
        Abar = np.exp(delta[i][:, None] * A)
        if disc == "euler":
            Bbar = delta[i][:, None] * B[i][None, :]
        else:
            Bbar = (Abar - 1) / A * B[i][None, :]
        h = Abar * h + Bbar * u[i][:, None]
        ref[i] = h @ C[i] + Dskip * u[i]
    _check_all_methods(dr.dsf.from_s6(delta, A, B, C, Dskip, discretization=disc), u, ref)


def test_ssd(getkey):
    n = 3
    delta = _softplus(np.asarray(jr.normal(getkey(), (L,))))
    a = 0.8
    B, C = (np.asarray(jr.normal(getkey(), (L, n))) for _ in range(2))
    u = np.asarray(jr.normal(getkey(), (L, D)))
    h, ref = np.zeros((D, n)), np.zeros((L, D))
    for i in range(L):
        h = np.exp(-a * delta[i]) * h + delta[i] * np.outer(u[i], B[i])
        ref[i] = h @ C[i]
    _check_all_methods(dr.dsf.from_ssd(delta, a, B, C), u, ref)


# Published values (REFERENCES 3.2): LegS N = 4, C = 1, Δ = 0.1, kernel K̄_0 … K̄_5.
LEGS4 = np.array([[-1, 0, 0, 0], [-1.732051, -2, 0, 0], [-2.236068, -3.872983, -3, 0],
                  [-2.645751, -4.582576, -5.916080, -4]])
LEGS4_B = np.array([1, 1.732051, 2.236068, 2.645751])
KERNELS = {
    "bilinear": [0.547052, 0.223439, 0.063994, -0.004599, -0.025622, -0.023929],
    "forward_euler": [0.761387, 0.198953, -0.024401, -0.086572, -0.079944, -0.050241],
    "backward_euler": [0.418695, 0.216319, 0.101894, 0.041285, 0.012550, 0.001831],
    "zoh": [0.529933, 0.221222, 0.067681, 0.000573, -0.020910, -0.020351],
}


@pytest.mark.parametrize("disc", list(KERNELS))
def test_lssl_kernel_matches_published_values(disc):
    dsf = dr.dsf.from_lssl(LEGS4, LEGS4_B, np.ones(4), dt=0.1, length=6, discretization=disc)
    Phi = _np(dr.dsf.materialize(dsf))
    # rounding of the published matrix entries (6 digits) limits the agreement
    np.testing.assert_allclose(Phi[:, 0, 0, 0], KERNELS[disc], atol=2e-6)
    np.testing.assert_allclose(np.diagonal(Phi[:, :, 0, 0], -2), KERNELS[disc][2], atol=2e-6)


def test_lssl_multichannel(getkey):
    n, d = 3, 2
    A = -np.eye(n) + 0.3 * np.asarray(jr.normal(getkey(), (n, n)))
    B = np.asarray(jr.normal(getkey(), (n,)))
    C = np.asarray(jr.normal(getkey(), (d, n)))
    Dk, dt = np.array([0.5, -1.0]), np.array([0.1, 0.3])
    u = np.asarray(jr.normal(getkey(), (L, d)))
    ref = np.zeros((L, d))
    for c in range(d):
        Minv = np.linalg.inv(np.eye(n) - dt[c] / 2 * A)
        Ab, Bb = Minv @ (np.eye(n) + dt[c] / 2 * A), dt[c] * Minv @ B
        x = np.zeros(n)
        for i in range(L):
            x = Ab @ x + Bb * u[i, c]
            ref[i, c] = C[c] @ x + Dk[c] * u[i, c]
    _check_all_methods(dr.dsf.from_lssl(A, B, C, Dk, dt=dt, length=L), u, ref)


def test_lru(getkey):
    N = 5
    nu_log, theta_log, gamma_log = (np.asarray(jr.normal(getkey(), (N,))) for _ in range(3))
    B = np.asarray(jr.normal(getkey(), (N, D)) + 1j * jr.normal(getkey(), (N, D)))
    C = np.asarray(jr.normal(getkey(), (D, N)) + 1j * jr.normal(getkey(), (D, N)))
    Dk, u = np.asarray(jr.normal(getkey(), (D,))), np.asarray(jr.normal(getkey(), (L, D)))
    lam = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
    h, ref = np.zeros(N, complex), np.zeros((L, D))
    for i in range(L):  # the complex diagonal recurrence of Orvieto et al. (2023)
        h = lam * h + np.exp(gamma_log) * (B @ u[i])
        ref[i] = (C @ h).real + Dk * u[i]
    _check_all_methods(dr.dsf.from_lru(nu_log, theta_log, gamma_log, B, C, Dk, length=L), u, ref)


def test_rglru(getkey):
    ga, gx, u = (np.asarray(jr.normal(getkey(), (L, D))) for _ in range(3))
    lam_p = np.asarray(jr.normal(getkey(), (D,))) + 2.0
    h, ref = np.zeros(D), np.zeros((L, D))
    for i in range(L):
        a = _sig(lam_p) ** (8.0 * _sig(ga[i]))
        h = a * h + np.sqrt(1 - a**2) * (_sig(gx[i]) * u[i])
        ref[i] = h
    _check_all_methods(dr.dsf.from_rglru(ga, gx, lam_p), u, ref)


@pytest.mark.parametrize("rev", [False, True])
def test_qlstm(getkey, rev):
    f, i_, o, u = (np.asarray(jr.normal(getkey(), (L, D))) for _ in range(4))
    alpha = 1.7
    h, ref = np.zeros(D), np.zeros((L, D))
    for t in range(L):
        forget = _sig(-f[t]) ** alpha if rev else _sig(f[t])
        h = forget * h + _sig(i_[t]) * u[t]
        ref[t] = _sig(o[t]) * h
    _check_all_methods(dr.dsf.from_qlstm(f, i_, o, reversed=rev, alpha=alpha), u, ref)


def test_retnet(getkey):
    q, k, u = (np.asarray(jr.normal(getkey(), s)) for s in ((L, M), (L, M), (L, D)))
    g = 0.9
    # the parallel form of retention: (Q Kᵀ ⊙ D) V with D_ij = γ^{i−j} (i ≥ j)
    i, j = np.indices((L, L))
    Dm = np.where(i >= j, g ** (i - j).astype(float), 0.0)
    _check_all_methods(dr.dsf.from_retnet(q, k, g), u, ((q @ k.T) * Dm) @ u)


def test_gla(getkey):
    q, k, u = (np.asarray(jr.normal(getkey(), s)) for s in ((L, M), (L, M), (L, D)))
    alpha = _sig(np.asarray(jr.normal(getkey(), (L, M))))
    S, ref = np.zeros((M, D)), np.zeros((L, D))
    for t in range(L):  # matrix-valued state S_t = diag(α_t) S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ q_t
        S = alpha[t][:, None] * S + np.outer(k[t], u[t])
        ref[t] = S.T @ q[t]
    _check_all_methods(dr.dsf.from_gla(q, k, alpha), u, ref)


# -- general systems and the flat form ------------------------------------------------------


def _phi_loop(Lam, B, C, Dm):
    """Φ_ij = C_i Λ_i⋯Λ_{j+1} B_j, Φ_ii = C_i B_i + D_i, from explicit products."""
    Lx, N = Lam.shape[0], B.shape[1]
    dense = Lam.ndim == 3
    Phi = np.zeros((Lx, Lx, C.shape[1], B.shape[2]))
    for i in range(Lx):
        for j in range(i + 1):
            P = np.eye(N)
            for t in range(j + 1, i + 1):
                P = (Lam[t] if dense else np.diag(Lam[t])) @ P
            Phi[i, j] = C[i] @ P @ B[j] + (Dm[i] if i == j else 0)
    return Phi


@pytest.mark.parametrize("dense", [False, True])
def test_general_system_against_explicit_products(getkey, dense):
    N, d, d_out = 3, 2, 2
    shape = (L, N, N) if dense else (L, N)
    Lam = 0.6 * np.asarray(jr.normal(getkey(), shape))
    B = np.asarray(jr.normal(getkey(), (L, N, d)))
    C = np.asarray(jr.normal(getkey(), (L, d_out, N)))
    Dm = np.asarray(jr.normal(getkey(), (L, d_out, d)))
    u = np.asarray(jr.normal(getkey(), (L, d)))
    dsf = dr.dsf.DSF(Lam, B, C, Dm)
    assert dsf.structure == ("dense" if dense else "diagonal")
    Phi = _phi_loop(Lam, B, C, Dm)
    np.testing.assert_allclose(_np(dr.dsf.materialize(dsf)), Phi, atol=1e-12)
    _check_all_methods(dsf, u, np.einsum("ijab,jb->ia", Phi, u))


def test_flat_form_and_folded_values(getkey):
    q, k = (jr.normal(getkey(), (L, M)) for _ in range(2))
    W_V = jr.normal(getkey(), (D, 2))
    u = jr.normal(getkey(), (L, 2))
    dsf = dr.dsf.from_linear_attention(q, k)
    ref = _np(dr.dsf.apply(dsf, u @ W_V.T))
    flat = dsf.to_flat(D)
    assert flat.structure == "diagonal" and flat.state_size() == D * M == dsf.state_size(D)
    np.testing.assert_allclose(_np(dr.dsf.apply(flat, u @ W_V.T, "parallel")), ref, atol=1e-12)
    folded = dr.dsf.from_linear_attention(q, k, W_V=W_V)  # B_i = (I ⊗ ψ(k_i)) W_V / η_i
    assert folded.B.shape == (L, D * M, 2)
    _check_all_methods(folded, u, ref)
    sm = dr.dsf.from_softmax_attention(q, k, W_V=W_V)
    ref_sm = _np(dr.dsf.apply(dr.dsf.from_softmax_attention(q, k), u @ W_V.T, "matrix"))
    np.testing.assert_allclose(_np(dr.dsf.apply(sm, u, "matrix")), ref_sm, atol=1e-12)


def test_float32_inputs_stay_float32(getkey):
    q, k = (jr.normal(getkey(), (L, M), dtype=jnp.float32) for _ in range(2))
    u = jr.normal(getkey(), (L, D), dtype=jnp.float32)
    dsf = dr.dsf.from_linear_attention(q, k)
    y = dr.dsf.apply(dsf, u, "parallel")
    assert y.dtype == jnp.float32
    ref = dr.dsf.apply(dr.dsf.from_linear_attention(q.astype(float), k.astype(float)),
                       u.astype(float))
    np.testing.assert_allclose(_np(y), _np(ref), rtol=1e-4, atol=1e-5)


# -- the paper's equivalences ---------------------------------------------------------------


def test_linear_attention_equals_ssd_with_matched_step_sizes(getkey):
    """SSD and linear attention have the same Φ when `exp(−aΔ_i) = η_{i−1}/η_i`,
    `Δ_i b_i = ψ(k_i)/η_i` and `c_i = ψ(q_i)` (Sieber et al. 2024, Sec. 4)."""
    q, k = (np.asarray(jr.normal(getkey(), (L, M))) for _ in range(2))
    pq, pk = _elu1(q), _elu1(k)
    eta = np.sum(pq * np.cumsum(pk, axis=0), axis=1)
    a = 0.5
    delta = np.concatenate([[1.0], np.log(eta[1:] / eta[:-1]) / a])
    delta[0] = 50.0  # Λ_0 = exp(−aΔ_0) ≈ 0; its value never matters since h_{−1} = 0
    b = pk / (eta * delta)[:, None]
    ssd = dr.dsf.from_ssd(delta, a, b, pq)
    lin = dr.dsf.from_linear_attention(q, k)
    np.testing.assert_allclose(_np(dr.dsf.materialize(ssd)), _np(dr.dsf.materialize(lin)),
                               atol=1e-10)
    # ... and the S6 form of the same system (A = −a on every state)
    s6 = dr.dsf.from_s6(np.tile(delta[:, None], (1, D)), -a * np.ones((D, M)), b, pq)
    np.testing.assert_allclose(_np(dr.dsf.materialize(s6)),
                               np.tile(_np(dr.dsf.materialize(lin)), (1, 1, D)), atol=1e-10)


def test_normalized_attention_equals_gated_variants(getkey):
    """Normalised attention with `n_i = Σ_{j≤i} a·softplus(x_j)` has the SSD transition
    `exp(−a·softplus(x_i))`; with keys `k_i = η_i Δ_i b_i` it *is* that SSD, and it is GLA with
    the scalar gate `α_i = η_{i−1}/η_i` and keys `k_i/η_i`."""
    x = np.asarray(jr.normal(getkey(), (L,)))
    b, c = (np.asarray(jr.normal(getkey(), (L, M))) for _ in range(2))
    a = 1.3
    delta = _softplus(x)
    n = np.cumsum(a * delta)
    k = np.exp(n)[:, None] * delta[:, None] * b
    norm = dr.dsf.from_normalized_attention(c, k, n)
    ssd = dr.dsf.from_ssd(delta, a, b, c)
    Phi = _np(dr.dsf.materialize(norm))
    np.testing.assert_allclose(_np(dr.dsf.materialize(ssd)), Phi, atol=1e-10)
    alpha = np.tile(np.exp(-a * delta)[:, None], (1, M))
    gla = dr.dsf.from_gla(c, k / np.exp(n)[:, None], alpha)
    np.testing.assert_allclose(_np(dr.dsf.materialize(gla)), Phi, atol=1e-10)


def test_ssd_with_unit_rate_is_reversed_sigmoid_gate(getkey):
    """`exp(−softplus(x)) = σ(−x)`: SSD with `a = 1` has the qLSTM's reversed-sigmoid forget
    gate (α = 1)."""
    x = np.asarray(jr.normal(getkey(), (L, D))) * 3
    ones = np.ones((L, 1))
    ssd = dr.dsf.from_ssd(_softplus(x), 1.0, ones, ones)
    qlstm = dr.dsf.from_qlstm(x, np.zeros((L, D)), np.zeros((L, D)), reversed=True, alpha=1.0)
    np.testing.assert_allclose(_np(ssd.Lambda[..., 0]), _sig(-x), rtol=1e-12)
    np.testing.assert_allclose(_np(qlstm.Lambda[..., 0]), _sig(-x), rtol=1e-12)


def test_retnet_is_gla_with_constant_gate(getkey):
    q, k = (np.asarray(jr.normal(getkey(), (L, M))) for _ in range(2))
    ret = dr.dsf.materialize(dr.dsf.from_retnet(q, k, 0.8))
    gla = dr.dsf.materialize(dr.dsf.from_gla(q, k, np.full((L, M), 0.8)))
    np.testing.assert_allclose(_np(ret), _np(gla), atol=1e-12)


# -- bad input ------------------------------------------------------------------------------


def test_mismatched_head_sizes_name_both_shapes():
    with pytest.raises(DynrnnValueError, match=r"head sizes.*\(7, 3\).*\(7, 4\)"):
        dr.dsf.from_linear_attention(np.ones((7, 3)), np.ones((7, 4)))
    with pytest.raises(DynrnnValueError, match=r"\(7, 3\).*\(6, 3\)"):
        dr.dsf.from_softmax_attention(np.ones((7, 3)), np.ones((6, 3)))


def test_mismatched_state_sizes_name_both_shapes():
    with pytest.raises(DynrnnValueError, match=r"state sizes.*\(4, 3\).*\(7, 5\)"):
        dr.dsf.from_s6(np.ones((7, 4)), -np.ones((4, 3)), np.ones((7, 5)), np.ones((7, 3)))
    with pytest.raises(DynrnnValueError, match=r"channel counts.*\(7, 4\).*\(2, 3\)"):
        dr.dsf.from_s6(np.ones((7, 4)), -np.ones((2, 3)), np.ones((7, 3)), np.ones((7, 3)))
    with pytest.raises(DynrnnValueError, match=r"state sizes.*\(5, 3\).*\(5, 4, 2\)"):
        dr.dsf.DSF(np.ones((5, 3)), np.ones((5, 4, 2)), np.ones((5, 2, 3)))
    with pytest.raises(DynrnnValueError, match=r"state sizes.*\(5, 3\).*\(5, 2, 4\)"):
        dr.dsf.DSF(np.ones((5, 3)), np.ones((5, 3, 2)), np.ones((5, 2, 4)))
    with pytest.raises(DynrnnValueError, match=r"channel counts.*\(5, 2, 3\).*\(5, 4, 3\)"):
        dr.dsf.DSF(np.ones((5, 2, 3)), np.ones((5, 4, 3)), np.ones((5, 1, 3)),
                   structure="channelwise")
    with pytest.raises(DynrnnValueError, match=r"d = 4 channels.*\(7, 3\)"):
        dr.dsf.apply(dr.dsf.from_s6(np.ones((7, 4)), -np.ones((4, 2)), np.ones((7, 2)),
                                    np.ones((7, 2))), np.ones((7, 3)))


def test_non_causal_mask_is_rejected():
    q = np.ones((4, 2))
    full = np.ones((4, 4), bool)
    with pytest.raises(DynrnnValueError, match="causal"):
        dr.dsf.from_softmax_attention(q, q, mask=full)
    with pytest.raises(DynrnnValueError, match="nothing to attend"):
        dr.dsf.from_softmax_attention(q, q, mask=np.tril(full, -1))
    with pytest.raises(Exception, match="not causal"):
        jax.jit(lambda m: dr.dsf.from_softmax_attention(q, q, mask=m).Phi)(full)


def test_bad_method_and_length():
    dsf = dr.dsf.from_qlstm(np.ones((5, 2)), np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(DynrnnValueError, match="method"):
        dr.dsf.apply(dsf, np.ones((5, 2)), method="fft")
    with pytest.raises(DynrnnValueError, match=r"L = 5.*\(6, 2\)"):
        dr.dsf.apply(dsf, np.ones((6, 2)))


# -- trainable layers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(dr.dsf.layers.MIXERS))
def test_layers_compute_their_output_through_their_dsf(getkey, name):
    """Each layer's output is its DSF applied to its values; the recurrent and matrix forms of
    that DSF agree, also in their gradients."""
    import equinox as eqx

    d = 4
    layer = dr.dsf.layers.make_mixer(name, d, d_qk=3, d_state=2, key=getkey())
    u = jr.normal(getkey(), (6, d))
    dsf = layer.dsf(u)
    assert isinstance(dsf, dr.dsf.DSF)
    y = layer(u)
    assert y.shape == (6, d) and bool(jnp.all(jnp.isfinite(y)))
    if dsf.structure != "matrix":
        y_rec = dr.dsf.apply(dsf, layer.values(u), "recurrent")
        y_mat = dr.dsf.apply(dsf, layer.values(u), "matrix")
        np.testing.assert_allclose(_np(y_rec), _np(y_mat), atol=1e-10)
    # gradients for one family per kind of system (shared/channel-wise real, complex, gated)
    if name in ("normalized", "lru", "qlstm"):

        def loss(m, method):
            return jnp.sum(jnp.sin(dr.dsf.apply(m.dsf(u), m.values(u), method)))

        g1 = eqx.filter_grad(lambda m: loss(m, "recurrent"))(layer)
        g2 = eqx.filter_grad(lambda m: loss(m, "matrix"))(layer)
        for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
            np.testing.assert_allclose(_np(a), _np(b), atol=1e-8)



def _randomized(layer, key, scale=0.5):
    """The layer with every float parameter redrawn (so the check does not rest on the init)."""
    import equinox as eqx

    params, static = eqx.partition(layer, eqx.is_inexact_array)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jr.split(key, len(leaves))
    leaves = [scale * jr.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


def test_s6_layer_is_the_reference_s6(getkey):
    """The S6 layer of the DSF paper's code (Mamba's selective SSM with expand 1 and no input
    projection, convolution or gate): its initialisation, its parameter count, and its output
    against a NumPy selective scan written from Mamba's definition."""
    d, n, Ls = 20, 3, 6
    r = -(-d // 16)  # Mamba's dt_rank "auto" = ceil(d / 16)
    layer = dr.dsf.layers.S6(d, n, key=getkey())
    np.testing.assert_allclose(-np.exp(_np(layer.A_log)), -np.tile(np.arange(1, n + 1), (d, 1)),
                               rtol=1e-12)  # S4D-real A = -(1, ..., n)
    np.testing.assert_array_equal(_np(layer.D), np.ones(d))
    dt0 = _softplus(_np(layer.dt_proj.bias))  # Delta at zero input
    assert np.all((dt0 >= 1e-3 * (1 - 1e-9)) & (dt0 <= 1e-1 * (1 + 1e-9)))
    assert np.abs(_np(layer.dt_proj.weight)).max() <= r**-0.5
    assert dr.dsf.layers.n_parameters(layer) == d * (r + 2 * n) + (r * d + d) + d * n + d + d * d
    layer = _randomized(layer, getkey())
    u = np.asarray(jr.normal(getkey(), (Ls, d)))
    proj = u @ _np(layer.x_proj.weight).T
    dt_low, Bs, Cs = proj[:, :r], proj[:, r:r + n], proj[:, r + n:]
    delta = _softplus(dt_low @ _np(layer.dt_proj.weight).T + _np(layer.dt_proj.bias))
    A = -np.exp(_np(layer.A_log))
    h, y = np.zeros((d, n)), np.zeros((Ls, d))
    for i in range(Ls):  # selective scan: ZOH transition, Euler input matrix
        h = np.exp(delta[i][:, None] * A) * h + delta[i][:, None] * Bs[i] * u[i][:, None]
        y[i] = h @ Cs[i] + _np(layer.D) * u[i]
    ref = y @ _np(layer.out.weight).T
    np.testing.assert_allclose(_np(layer(jnp.asarray(u))), ref, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("expansion", [1, 2])
def test_qlstm_layer_is_the_reference_qlstm(getkey, expansion):
    """The qLSTM of the DSF paper's code (input projection to [gate, x], causal depthwise
    convolution, sigmoid gates, reversed-sigmoid forget gate, exact GELU on the gate): parameter
    count and output against a NumPy loop."""
    from scipy.special import erf

    d, k, Ls = 4, 4, 6
    hid = expansion * d
    layer = dr.dsf.layers.qLSTM(d, expansion=expansion, key=getkey())
    assert dr.dsf.layers.n_parameters(layer) == (
        d * 2 * hid + (hid * k + hid) + (hid * 3 * hid + 3 * hid) + hid * d + 1)
    layer = _randomized(layer, getkey())
    u = np.asarray(jr.normal(getkey(), (Ls, d)))
    gx = u @ _np(layer.W_in.weight).T
    g, x = gx[:, :hid], gx[:, hid:]
    w, b = _np(layer.conv_w), _np(layer.conv_b)
    xc = np.stack([b + sum(w[:, s] * x[t - (k - 1) + s] for s in range(k) if t - (k - 1) + s >= 0)
                   for t in range(Ls)])  # PyTorch Conv1d(padding=k-1), first L outputs
    f, i_, o = np.split(xc @ _np(layer.gates.weight).T + _np(layer.gates.bias), 3, axis=1)
    a = _sig(-f) ** max(float(layer.alpha), 0.0)
    h, hs = np.zeros(hid), np.zeros((Ls, hid))
    for t in range(Ls):
        h = a[t] * h + _sig(i_[t]) * xc[t]
        hs[t] = _sig(o[t]) * h
    gelu = 0.5 * g * (1 + erf(g / np.sqrt(2)))
    ref = (gelu * hs) @ _np(layer.out.weight).T
    np.testing.assert_allclose(_np(layer(jnp.asarray(u))), ref, rtol=TOL, atol=TOL)


def test_phi_heatmaps_figure(getkey):
    q, k = (jr.normal(getkey(), (L, M)) for _ in range(2))
    dsfs = {"softmax": dr.dsf.from_softmax_attention(q, k),
            "linear": dr.dsf.from_linear_attention(q, k),
            "qLSTM": dr.dsf.from_qlstm(*(jr.normal(getkey(), (L, D)) for _ in range(3)))}
    fig = dr.plot.phi_heatmaps(dsfs, channel=1)
    img = fig.axes[0].images[0].get_array()
    Phi = _np(dr.dsf.materialize(dsfs["softmax"]))[:, :, 0]
    np.testing.assert_allclose(np.tril(np.asarray(img)), np.tril(Phi / Phi.max()), atol=1e-12)
    assert len(fig.axes) == 6  # three panels, three colour bars
    with pytest.raises(DynrnnValueError, match="channel"):
        dr.plot.phi_heatmaps(dsfs, channel=D)
