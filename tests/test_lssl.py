"""HiPPO matrices, discretisations, Krylov kernels, the LSSL layer and DeepLSSL.

References: closed forms written out here element by element, float64 NumPy/SciPy loops, the
numbers of REFERENCES.md section 3, and the HiPPO-LegS memory property checked through
`numpy.polynomial.legendre`.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.linalg
import scipy.special
from numpy.polynomial import legendre

import dynrnn as dr
from dynrnn.models import LSSL, DeepLSSL, discretize, hippo, krylov


METHODS = ["bilinear", "forward_euler", "backward_euler", "zoh"]


# ---------------------------------------------------------------- HiPPO matrices


def closed_form(kind, N, beta=1.0, theta=1.0):
    A = np.zeros((N, N))
    B = np.zeros(N)
    for n in range(N):
        for k in range(N):
            if kind == "legs":
                A[n, k] = (
                    -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1) if n > k
                    else -(n + 1) if n == k else 0.0
                )
            elif kind == "legt":
                sign = 1.0 if n >= k else (-1.0) ** (n - k)
                A[n, k] = -0.5 * math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1) * sign
            elif kind == "lmu":
                A[n, k] = (2 * n + 1) / theta * (-1.0 if n < k else (-1.0) ** (n - k + 1))
            elif kind == "lagt":
                A[n, k] = (0.5 if n == k else 0.0) - (1.0 if k <= n else 0.0)
            elif kind == "tlagt":
                A[n, k] = ((1 - beta) / 2 if n == k else 0.0) - (1.0 if k <= n else 0.0)
        B[n] = {
            "legs": math.sqrt(2 * n + 1),
            "legt": 0.5 * math.sqrt(2 * n + 1),
            "lmu": (-1.0) ** n * (2 * n + 1) / theta,
            "lagt": beta,
            "tlagt": beta,
        }[kind]
    return A, B


@pytest.mark.parametrize("kind", ["legs", "legt", "lmu", "lagt", "tlagt"])
@pytest.mark.parametrize("N", [1, 2, 7])
def test_hippo_closed_forms(kind, N):
    A, B = hippo(kind, N)
    assert isinstance(A, np.ndarray) and A.dtype == np.float64 and A.shape == (N, N)
    assert isinstance(B, np.ndarray) and B.dtype == np.float64 and B.shape == (N,)
    A_ref, B_ref = closed_form(kind, N)
    np.testing.assert_allclose(A, A_ref, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(B, B_ref, rtol=1e-14, atol=1e-14)


def test_hippo_parameters():
    A, B = hippo("tlagt", 5, beta=0.3)
    A_ref, B_ref = closed_form("tlagt", 5, beta=0.3)
    np.testing.assert_allclose(A, A_ref, atol=1e-14)
    np.testing.assert_allclose(B, B_ref, atol=1e-14)
    A, B = hippo("lagt", 3, beta=2.0)
    np.testing.assert_allclose(B, [2.0, 2.0, 2.0])
    A, B = hippo("lmu", 4, theta=2.5)
    A_ref, B_ref = closed_form("lmu", 4, theta=2.5)
    np.testing.assert_allclose(A, A_ref, atol=1e-14)
    np.testing.assert_allclose(B, B_ref, atol=1e-14)


def test_legs_n4_reference_numbers():
    # REFERENCES.md 3.1, printed to 6 decimals.
    A, B = hippo("legs", 4)
    A_ref = [
        [-1, 0, 0, 0],
        [-1.732051, -2, 0, 0],
        [-2.236068, -3.872983, -3, 0],
        [-2.645751, -4.582576, -5.916080, -4],
    ]
    np.testing.assert_allclose(A, A_ref, atol=6e-7)
    np.testing.assert_allclose(B, [1, 1.732051, 2.236068, 2.645751], atol=6e-7)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), [-4, -3, -2, -1], atol=1e-12)


def test_legs_spectral_radius_reference():
    # REFERENCES.md 3.2: bilinear LegS N=64, dt=1e-2 has spectral radius 0.99005.
    A, B = hippo("legs", 64)
    Ab, _ = discretize(A, B, 1e-2)
    assert abs(np.max(np.abs(np.linalg.eigvals(np.asarray(Ab)))) - 0.99005) < 5e-6


# ---------------------------------------------------------------- discretisation and kernel


def numpy_discretize(A, B, dt, method, alpha=None):
    N = A.shape[0]
    eye = np.eye(N)
    if method == "zoh":
        Ab = scipy.linalg.expm(dt * A)
        return Ab, np.linalg.inv(A) @ (Ab - eye) @ B
    if alpha is None:
        alpha = {"bilinear": 0.5, "forward_euler": 0.0, "backward_euler": 1.0}[method]
    inv = np.linalg.inv(eye - alpha * dt * A)
    return inv @ (eye + (1 - alpha) * dt * A), dt * inv @ B


def numpy_kernel(Ab, Bb, C, L):
    return np.array([C @ np.linalg.matrix_power(Ab, i) @ Bb for i in range(L)])


PRINTED_KERNELS = {
    # REFERENCES.md 3.2: LegS N=4, C=1, dt=0.1, K_0..K_5 (6 decimals).
    "bilinear": [0.547052, 0.223439, 0.063994, -0.004599, -0.025622, -0.023929],
    "forward_euler": [0.761387, 0.198953, -0.024401, -0.086572, -0.079944, -0.050241],
    "backward_euler": [0.418695, 0.216319, 0.101894, 0.041285, 0.012550, 0.001831],
    "zoh": [0.529933, 0.221222, 0.067681, 0.000573, -0.020910, -0.020351],
}


@pytest.mark.parametrize("method", METHODS)
def test_legs_kernel_matches_numpy(method):
    A, B = hippo("legs", 4)
    C = np.ones(4)
    Ab, Bb = discretize(jnp.asarray(A), jnp.asarray(B), 0.1, method)
    Ab_ref, Bb_ref = numpy_discretize(A, B, 0.1, method)
    np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Bb, Bb_ref, rtol=1e-12, atol=1e-13)
    L = 100
    K = np.asarray(krylov(L, Ab, Bb) @ C)
    np.testing.assert_allclose(K, numpy_kernel(Ab_ref, Bb_ref, C, L), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(K[:6], PRINTED_KERNELS[method], atol=6e-7)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_generalized_bilinear_alpha(alpha, getkey):
    A = np.asarray(jr.normal(getkey(), (5, 5))) - 3 * np.eye(5)
    B = np.asarray(jr.normal(getkey(), (5,)))
    Ab, Bb = discretize(A, B, 0.2, "bilinear", alpha=alpha)
    Ab_ref, Bb_ref = numpy_discretize(A, B, 0.2, "bilinear", alpha=alpha)
    np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(Bb, Bb_ref, rtol=1e-11, atol=1e-12)


def test_zoh_singular_A(getkey):
    # tLagT with beta = 3 has A = -I - tril(1) + ... ; use a matrix with a zero eigenvalue:
    # ZOH must still give B̄ = ∫_0^Δ e^{sA} ds B (series check).
    A = np.diag([0.0, -1.0, -2.0]) + np.triu(np.asarray(jr.normal(getkey(), (3, 3))), 1)
    B = np.asarray(jr.normal(getkey(), (3,)))
    dt = 0.3
    Ab, Bb = discretize(A, B, dt, "zoh")
    # ∫_0^Δ e^{sA} ds = Σ_k Δ^{k+1} A^k / (k+1)!
    series = sum(
        np.linalg.matrix_power(A, k) * dt ** (k + 1) / math.factorial(k + 1) for k in range(30)
    )
    np.testing.assert_allclose(Ab, scipy.linalg.expm(dt * A), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Bb, series @ B, rtol=1e-12, atol=1e-13)


def test_discretize_vmaps_and_differentiates(getkey):
    A, B = hippo("legt", 6)
    dts = jnp.exp(jr.uniform(getkey(), (3,), minval=-5, maxval=-1))
    for method in METHODS:
        Ab, Bb = jax.jit(jax.vmap(lambda d: discretize(A, B, d, method)))(dts)
        assert Ab.shape == (3, 6, 6) and Bb.shape == (3, 6)
        for i in range(3):
            Ab_ref, Bb_ref = numpy_discretize(A, B, float(dts[i]), method)
            np.testing.assert_allclose(Ab[i], Ab_ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(Bb[i], Bb_ref, rtol=1e-10, atol=1e-12)
    for method in ("bilinear", "zoh"):
        f = jax.jit(lambda d: discretize(A, B, d, method)[1].sum())
        g = jax.grad(f)(0.05)
        fd = (f(0.05 + 1e-6) - f(0.05 - 1e-6)) / 2e-6
        assert abs(g - fd) < 1e-6 * max(1.0, abs(fd))


@pytest.mark.parametrize("kind", ["legs", "lagt"])
def test_triangular_discretization_exact(kind, getkey):
    # Lower-triangular A goes through forward substitution (no LAPACK); N = 64 over Δ from 1e-4
    # to 1, against a float64 NumPy LU solve, and the dense (LAPACK) path of a trainable-A layer.
    A, B = hippo(kind, 64)
    dts = np.exp(np.asarray(jr.uniform(getkey(), (3,), minval=math.log(1e-4), maxval=0.0)))
    for method in ("bilinear", "backward_euler"):
        for dt in dts:
            Ab, Bb = discretize(A, B, float(dt), method)
            Ab_ref, Bb_ref = numpy_discretize(A, B, float(dt), method)
            np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-9, atol=1e-11 * np.abs(Ab_ref).max())
            np.testing.assert_allclose(Bb, Bb_ref, rtol=1e-9, atol=1e-11 * np.abs(Bb_ref).max())
    key = getkey()  # same key: same Δ; train_A=True takes the general (dense) solve
    fixed = LSSL(3, 64, kind=kind, dt_min=1e-4, dt_max=1.0, key=key)
    dense = LSSL(3, 64, kind=kind, dt_min=1e-4, dt_max=1.0, train_A=True, key=key)
    for a, b in zip(fixed.discretized(), dense.discretized()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * float(jnp.abs(b).max()))
    # d/dΔ through the implicit differentiation of the substitution, against central
    # differences of the NumPy reference.
    w = np.asarray(jr.normal(getkey(), (64, 65)))
    f = lambda d: jnp.sum(w * jnp.concatenate([x.reshape(64, -1) for x in
                                              discretize(A, B, d, "bilinear")], axis=1))
    f_ref = lambda d: np.sum(w * np.concatenate([x.reshape(64, -1) for x in
                                                 numpy_discretize(A, B, d, "bilinear")], axis=1))
    d0 = float(dts[0])
    fd = (f_ref(d0 * (1 + 1e-6)) - f_ref(d0 * (1 - 1e-6))) / (2e-6 * d0)
    assert abs(float(jax.jit(jax.grad(f))(d0)) - fd) < 1e-5 * max(1.0, abs(fd))


def test_fixed_legs_training_step_has_no_lapack_call(getkey):
    # The jitted gradient of a fixed-LegS layer is plain XLA (no LAPACK custom calls, which on
    # CPU run through SciPy's OpenBLAS); a trainable A needs the general LU solve.
    u = jr.normal(getkey(), (16, 3))

    def compiled_text(layer):
        p, static = eqx.partition(layer, eqx.is_inexact_array)
        grad = jax.jit(jax.grad(lambda p: jnp.sum(eqx.combine(p, static)(u) ** 2)))
        return grad.lower(p).compile().as_text()

    lapack = 'custom_call_target="lapack'
    assert lapack not in compiled_text(LSSL(3, 8, key=getkey()))
    if jax.default_backend() == "cpu":
        assert lapack in compiled_text(LSSL(3, 8, train_A=True, key=getkey()))


@pytest.mark.parametrize("L", [1, 2, 3, 8, 37, 64])
def test_krylov_lengths(L, getkey):
    A = np.asarray(jr.normal(getkey(), (5, 5))) / 3
    b = np.asarray(jr.normal(getkey(), (5,)))
    X = krylov(L, jnp.asarray(A), jnp.asarray(b))
    ref = np.array([np.linalg.matrix_power(A, i) @ b for i in range(L)])
    assert X.shape == (L, 5)
    np.testing.assert_allclose(X, ref, rtol=1e-10, atol=1e-12)


def test_krylov_uses_log_many_products():
    # ⌈log₂ L⌉ rounds: count the dot products in the jaxpr (one product X A^T per round plus
    # one squaring per round but the last).
    A = jnp.eye(4)
    b = jnp.ones(4)
    for L, rounds in [(2, 1), (16, 4), (1000, 10), (1024, 10)]:
        jaxpr = jax.make_jaxpr(lambda a, v: krylov(L, a, v))(A, b)
        n_dots = sum(e.primitive.name == "dot_general" for e in jaxpr.jaxpr.eqns)
        assert n_dots == 2 * rounds - 1


# ---------------------------------------------------------------- the HiPPO memory property


def test_legs_memory_reconstructs_history():
    """HiPPO-LegS: c' = A c / t + B f / t keeps the coefficients of the projection of f on
    [0, t] onto Legendre polynomials, f(s) ≈ Σ_n c_n √(2n+1) P_n(2s/t − 1) (Gu et al. 2020,
    Thm. 2). Discretised with the bilinear GBT at step Δ_k = 1/k (the LegS update)."""
    T = 2000
    s = np.arange(1, T + 1) / T
    f = lambda s: np.sin(4 * np.pi * s) + 0.5 * np.cos(10 * np.pi * s + 0.3) + s
    grid = np.linspace(0.0, 1.0, 1001)
    errors = []
    for N in (8, 16, 32):
        A, B = hippo("legs", N)
        # The 2000 per-step matrices in float64 NumPy (a 2000-fold vmapped LU through XLA's CPU
        # LAPACK path stalled in the full suite); dr.models.discretize is checked on a few steps.
        eye = np.eye(N)
        dts = 1.0 / np.arange(1, T + 1)
        Ab = np.stack([np.linalg.solve(eye - 0.5 * d * A, eye + 0.5 * d * A) for d in dts])
        Bb = np.stack([np.linalg.solve(eye - 0.5 * d * A, d * B) for d in dts])
        for t in (0, 9, T - 1):
            a_lib, b_lib = discretize(A, B, jnp.asarray(dts[t]), "bilinear")
            np.testing.assert_allclose(a_lib, Ab[t], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(b_lib, Bb[t], rtol=1e-10, atol=1e-12)
        c = np.zeros(N)
        for t in range(T):
            c = Ab[t] @ c + Bb[t] * f(s[t])
        rec = legendre.legval(2 * grid - 1, c * np.sqrt(2 * np.arange(N) + 1))
        err = np.sqrt(np.mean((rec - f(grid)) ** 2))
        # The best N-term Legendre approximation in L²[0, 1] (Gauss-Legendre quadrature):
        # the HiPPO state must come close to its coefficients, up to the discretisation
        # error of T = 2000 steps.
        x, w = legendre.leggauss(200)
        basis = legendre.legvander(x, N - 1) * np.sqrt(2 * np.arange(N) + 1)
        proj = basis.T @ (w / 2 * f((x + 1) / 2))
        best_rec = legendre.legval(2 * grid - 1, proj * np.sqrt(2 * np.arange(N) + 1))
        best = np.sqrt(np.mean((best_rec - f(grid)) ** 2))
        assert np.max(np.abs(c - proj)) < 5e-3, (N, np.abs(c - proj).max())
        assert err < best + 1e-2, (N, err, best)
        errors.append(err)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 and errors[0] > 0.1


# ---------------------------------------------------------------- the layer


def to_float32(tree):
    return jax.tree_util.tree_map(
        lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, tree
    )


def numpy_gelu(x):
    return 0.5 * x * (1 + scipy.special.erf(x / math.sqrt(2)))


def numpy_lssl(layer, u, method, feedback_steps=0):
    """Float64 NumPy recurrence of the full layer."""
    H, N, M = layer.channels, layer.n_state, layer.copies
    A = np.broadcast_to(np.asarray(layer.A), (H, N, N))
    B = np.broadcast_to(np.asarray(layer.B), (H, N))
    dt = np.exp(np.asarray(layer.log_dt))
    C, D = np.asarray(layer.C), np.asarray(layer.D)
    W, bias = np.asarray(layer.output.weight), np.asarray(layer.output.bias)
    disc = [numpy_discretize(A[h], B[h], dt[h], method) for h in range(H)]
    x = np.zeros((H, N))
    ys = []
    v = None
    for t in range(u.shape[0] + feedback_steps):
        v = u[t] if t < u.shape[0] else ys[-1]
        x = np.stack([disc[h][0] @ x[h] + disc[h][1] * v[h] for h in range(H)])
        pre = np.einsum("hmn,hn->hm", C, x) + D * v[:, None]
        ys.append(W @ numpy_gelu(pre).reshape(H * M) + bias)
    return np.array(ys)


@pytest.mark.parametrize(
    "method,kind,train_A",
    [("bilinear", "legs", False), ("zoh", "legt", True), ("backward_euler", "lagt", False),
     ("forward_euler", "lmu", False)],
)
def test_layer_matches_numpy(method, kind, train_A, getkey):
    # Forward Euler of a stiff HiPPO matrix is unstable for large Δ (|eig(Ā)| > 1): the kernel
    # then grows like ‖Ā‖^l and FFT rounding (∝ max|K̄|) swamps the outputs, so keep Δ small.
    dt_max = 0.02 if method == "forward_euler" else 0.3
    layer = LSSL(3, 5, copies=2, kind=kind, discretization=method, train_A=train_A,
                 dt_min=1e-2, dt_max=dt_max, key=getkey())
    if train_A:  # per-channel trainable copies: perturb them so channels really differ
        perturbed = layer.A + 0.1 * jr.normal(getkey(), layer.A.shape)
        layer = eqx.tree_at(lambda m: m.A, layer, perturbed)
        assert layer.A.shape == (3, 5, 5) and layer.B.shape == (3, 5)
    u = np.asarray(jr.normal(getkey(), (40, 3)))
    ref = numpy_lssl(layer, u, method)
    for mode in ("convolution", "recurrent"):
        np.testing.assert_allclose(layer(jnp.asarray(u), mode=mode), ref, rtol=1e-9, atol=1e-10)


def test_modes_agree_float32_long(getkey):
    # REFERENCES.md 3.2: float32 kernels within relative 1.4e-5 for N ≤ 256, L ≤ 4096; here
    # the outputs (|y| ≈ 1-3) must agree to 1e-5 absolute.
    layer = LSSL(4, 32, copies=2, key=getkey())
    layer = eqx.tree_at(lambda m: m.log_dt, layer, jr.uniform(getkey(), (4,), minval=-7, maxval=-2))
    layer = to_float32(layer)
    u = jr.normal(getkey(), (4096, 4), jnp.float32)
    y_conv = layer(u, mode="convolution")
    y_rec = layer(u, mode="recurrent")
    assert y_conv.dtype == jnp.float32 and y_rec.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(y_conv))) > 0.1
    assert float(jnp.max(jnp.abs(y_conv - y_rec))) < 1e-5


def test_step_and_rollout(getkey):
    layer = LSSL(2, 6, copies=3, key=getkey(), dt_min=0.05, dt_max=0.5)
    H, N = 2, 6
    u = jr.normal(getkey(), (30, H))
    z0 = layer.init_state(u[0])
    assert z0.shape == (H + H * N,)
    np.testing.assert_array_equal(z0[H:], 0.0)
    np.testing.assert_array_equal(layer.observe(z0), u[0])
    states = layer.rollout(z0, 30, inputs=u)
    np.testing.assert_allclose(states[:, :H], layer(u), rtol=1e-10, atol=1e-12)
    step = eqx.filter_jit(lambda m, z, v: m.step(z, v))
    z = z0
    for t in range(3):
        z = step(layer, z, u[t])
    np.testing.assert_allclose(z, states[2], rtol=1e-12, atol=1e-12)
    # Autonomous: outputs fed back as inputs after a prompt of 10 steps.
    prompt = np.asarray(u[:10])
    ref = numpy_lssl(layer, prompt, "bilinear", feedback_steps=15)
    gen = layer.rollout(states[9], 15)
    np.testing.assert_allclose(gen[:, :H], ref[10:], rtol=1e-9, atol=1e-10)
    J = eqx.filter_jit(lambda m, z: m.jacobian(z))(layer, states[5])
    assert J.shape == (H + H * N, H + H * N)
    # The state part of the Jacobian holds Ā per channel (the output part does not feed x
    # when an input is given, but does in autonomous mode).
    Ab, _ = layer.discretized()
    np.testing.assert_allclose(J[H : H + N, H : H + N], Ab[0], rtol=1e-12, atol=1e-12)


def test_gradients_and_fixed_A(getkey):
    u = jr.normal(getkey(), (20, 2))

    @eqx.filter_jit
    def grads(m):
        loss = lambda m, mode: jnp.sum(jnp.sin(m(u, mode=mode)))
        return (eqx.filter_grad(loss)(m, "convolution"), eqx.filter_grad(loss)(m, "recurrent"))

    fixed = LSSL(2, 4, key=getkey())
    trained = LSSL(2, 4, train_A=True, key=getkey())
    for layer in (fixed, trained):
        gc, gr = grads(layer)
        # Both modes give the same gradients.
        for a, b in zip(jax.tree_util.tree_leaves(gc), jax.tree_util.tree_leaves(gr)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
        assert float(jnp.abs(gc.log_dt).min()) > 0 and float(jnp.abs(gc.C).max()) > 0
    gc, _ = grads(fixed)
    np.testing.assert_array_equal(gc.A, 0.0)
    np.testing.assert_array_equal(gc.B, 0.0)
    gc, _ = grads(trained)
    assert gc.A.shape == (2, 4, 4) and float(jnp.abs(gc.A).min()) >= 0
    assert float(jnp.abs(gc.A).max()) > 0 and float(jnp.abs(gc.B).max()) > 0


def test_init_distributions(getkey):
    layer = LSSL(2000, 2, copies=2, key=getkey())
    dt = np.exp(np.asarray(layer.log_dt))
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1
    # log-uniform: log10 Δ uniform on [-3, -1], mean -2, std 2/√12.
    assert abs(np.log10(dt).mean() + 2) < 0.05
    assert abs(np.log10(dt).std() - 2 / math.sqrt(12)) < 0.03
    assert abs(np.asarray(layer.C).std() - 1) < 0.05 and abs(np.asarray(layer.D).std() - 1) < 0.05


def test_dropout_needs_key_only_when_training(getkey):
    layer = LSSL(3, 4, dropout=0.5, key=getkey())
    u = jr.normal(getkey(), (10, 3))
    np.testing.assert_allclose(layer(u), layer(u, mode="recurrent"), atol=1e-12)
    assert not np.allclose(layer(u, key=getkey()), layer(u))


# ---------------------------------------------------------------- DeepLSSL


@pytest.mark.parametrize(
    "task,pooling,prenorm", [("classification", "mean", False), ("regression", "last", True),
                             ("sequence", "mean", False)]
)
def test_deep_lssl_shapes_and_modes(task, pooling, prenorm, getkey):
    model = DeepLSSL(3, 8, 2, 5, state_size=6, task=task, pooling=pooling, prenorm=prenorm,
                     key=getkey())
    u = jr.normal(getkey(), (4, 25, 3))
    out = jax.vmap(model)(u)
    assert out.shape == ((4, 5) if task != "sequence" else (4, 25, 5))
    rec = jax.vmap(lambda x: model(x, mode="recurrent"))(u)
    np.testing.assert_allclose(out, rec, rtol=1e-9, atol=1e-10)
    # Causality of the sequence model: outputs up to t do not depend on inputs after t.
    if task == "sequence":
        u2 = u.at[:, 10:].set(0.0)
        np.testing.assert_allclose(jax.vmap(model)(u2)[:, :10], out[:, :10], atol=1e-12)


def test_deep_lssl_trains_with_fit(getkey):
    if not hasattr(dr, "fit"):
        pytest.skip("dr.fit is not available yet")
    # Class = sign of the first input value, followed by 31 noise steps: needs memory.
    n, L = 128, 32
    k1, k2 = jr.split(getkey())
    labels = jr.bernoulli(k1, 0.5, (n,)).astype(jnp.int32)
    u = 0.3 * jr.normal(k2, (n, L, 1))
    u = u.at[:, 0, 0].set(jnp.where(labels == 1, 1.0, -1.0))
    model = DeepLSSL(1, 8, 1, 2, state_size=8, pooling="last", key=getkey())
    res = dr.fit(model, (u, labels), loss="cross_entropy", n_steps=600, batch_size=32,
                 key=getkey(), progress=False,
                 optimizer=dr.training.cosine_adam(600, 2e-2, 1e-3))
    acc = jnp.mean(jnp.argmax(jax.vmap(res.model)(u), -1) == labels)
    assert float(acc) > 0.9


def test_lssl_as_sequence_model_mixer(getkey):
    # dr.compare builds dr.dsf.layers.SequenceModel around a `(d_model, key) -> mixer` callable.
    layers = getattr(dr.dsf, "layers", None)
    if layers is None or not hasattr(layers, "SequenceModel"):
        pytest.skip("dr.dsf.layers.SequenceModel is not available")
    model = layers.SequenceModel(2, 3, lambda d, k: LSSL(d, 4, key=k), d_model=8, n_layers=1,
                                 tokens=False, pool="last", key=getkey())
    u = jr.normal(getkey(), (12, 2))
    assert model(u).shape == (3,)
    assert model.state_size(12) == 8 * 4


# ---------------------------------------------------------------- bad input


def test_bad_input(getkey):
    with pytest.raises(ValueError, match="legs.*legt.*lmu.*lagt.*tlagt.*'fourier'"):
        hippo("fourier", 4)
    with pytest.raises(ValueError, match="`n`.*>= 1.*0"):
        hippo("legs", 0)
    with pytest.raises(TypeError, match="`n`"):
        hippo("legs", 2.5)
    with pytest.raises(ValueError, match="beta"):
        hippo("legs", 4, beta=0.5)
    A, B = hippo("legs", 4)
    for dt in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="`dt` must be positive"):
            discretize(A, B, dt)
    with pytest.raises(ValueError, match="`method`.*'rk4'"):
        discretize(A, B, 0.1, "rk4")
    with pytest.raises(ValueError, match="`alpha` only applies"):
        discretize(A, B, 0.1, "zoh", alpha=0.5)
    with pytest.raises(ValueError, match="`B` must have shape"):
        discretize(A, B[:3], 0.1)
    with pytest.raises(ValueError, match="`length`"):
        krylov(0, jnp.asarray(A), jnp.asarray(B))
    with pytest.raises(ValueError, match="`state_size`"):
        LSSL(2, 0, key=getkey())
    with pytest.raises(ValueError, match="`kind`.*'legx'"):
        LSSL(2, 4, kind="legx", key=getkey())
    with pytest.raises(ValueError, match="`dt_min`"):
        LSSL(2, 4, dt_min=0.0, key=getkey())
    with pytest.raises(ValueError, match="`dt_min` must be <= `dt_max`"):
        LSSL(2, 4, dt_min=0.5, dt_max=0.1, key=getkey())
    layer = LSSL(3, 4, key=getkey())
    with pytest.raises(ValueError, match=r"`u` must have shape \(time, 3\), got shape \(10, 2\)"):
        layer(jnp.ones((10, 2)))
    with pytest.raises(ValueError, match="`mode`"):
        layer(jnp.ones((10, 3)), mode="parallel")
    model = DeepLSSL(2, 4, 1, 3, state_size=4, key=getkey())
    with pytest.raises(ValueError, match=r"\(time, 2\), got shape \(10, 5\)"):
        model(jnp.ones((10, 5)))
    with pytest.raises(ValueError, match="`task`"):
        DeepLSSL(2, 4, 1, 3, task="generation", key=getkey())
