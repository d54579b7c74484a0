"""`dr.scan.linear` against a float64 NumPy loop and autodiff of a plain `lax.scan`;
`dr.scan.deer` against the sequential `lax.scan` of PLRNN, GRU and tanh-RNN recurrences."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnTypeError, DynrnnValueError


# ---------------------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------------------

T_LIN, D_LIN = 40, 3


def _numpy_linear(a, b, h0, reverse):
    """The recurrence written out in float64 (or complex128) NumPy, one step at a time."""
    a, b, h0 = (
        np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64) for x in (a, b, h0)
    )
    T, D = b.shape
    if a.ndim == 0:
        a = np.full((T,), a)
    h = h0.copy()
    out = np.zeros(b.shape, np.result_type(a, b, h0))
    for t in reversed(range(T)) if reverse else range(T):
        if a.ndim == 3:
            h = a[t] @ h + b[t]
        elif a.ndim == 2:
            h = a[t] * h + b[t]
        else:
            h = a[t] * h + b[t]
        out[t] = h
    return out


def _scan_linear(a, b, h0, reverse):
    """Reference for gradients: a plain `lax.scan`, differentiated by JAX's autodiff."""
    T, D = b.shape
    a = jnp.broadcast_to(a.reshape(-1, 1) if a.ndim == 1 else a, (T, D) if a.ndim < 2 else a.shape)

    def body(h, ab):
        a_t, b_t = ab
        h = (a_t @ h if a_t.ndim == 2 else a_t * h) + b_t
        return h, h

    return jax.lax.scan(body, h0, (a, b), reverse=reverse)[1]


def _random_linear(key, kind, dtype, T=T_LIN, D=D_LIN):
    """Coefficients that grow the state over the short sequence (|a| mostly > 1), random signs."""
    ka, kb, kh, ks = jr.split(key, 4)
    shape = {"constant": (), "scalar": (T,), "diagonal": (T, D), "dense": (T, D, D)}[kind]
    if kind == "dense":
        a = 1.1 * jnp.eye(D) + 0.2 * jr.normal(ka, shape) / np.sqrt(D)
    else:
        low = 1.05 if kind == "constant" else 0.9
        a = jr.uniform(ka, shape, minval=low, maxval=1.4) * jnp.where(
            jr.bernoulli(ks, 0.3, shape), -1.0, 1.0
        )
    b = jr.normal(kb, (T, D))
    h0 = jr.normal(kh, (D,))
    return a.astype(dtype), b.astype(dtype), h0.astype(dtype)


@pytest.mark.parametrize("kind", ["constant", "scalar", "diagonal", "dense"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_linear_matches_numpy(getkey, kind, reverse, dtype, tol):
    a, b, h0 = _random_linear(getkey(), kind, dtype)
    expected = _numpy_linear(a, b, h0, reverse)
    assert np.abs(expected).max() > 5.0  # the coefficients do grow the state
    for method in ("sequential", "associative"):
        out = dr.scan.linear(a, b, h0, method=method, reverse=reverse)
        assert out.shape == (T_LIN, D_LIN) and out.dtype == dtype
        err = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
        assert err < tol, (method, err)


def test_linear_defaults(getkey):
    a, b, _ = _random_linear(getkey(), "diagonal", jnp.float64)
    expected = _numpy_linear(a, b, np.zeros(D_LIN), False)
    # h0 defaults to zeros; on CPU "auto" is the sequential scan (benchmarks/RESULTS.md).
    np.testing.assert_allclose(dr.scan.linear(a, b), expected, rtol=1e-12, atol=1e-12)
    if jax.default_backend() == "cpu":
        assert dr.scan._linear._choose_method("auto", 262144) == "sequential"


def test_linear_complex_diagonal(getkey):
    """Complex diagonal coefficients (LRU-style) forward and gradient."""
    k1, k2, k3, k4 = jr.split(getkey(), 4)
    a = 0.95 * jnp.exp(1j * jr.uniform(k1, (T_LIN, D_LIN), maxval=np.pi))
    b = jr.normal(k2, (T_LIN, D_LIN)) + 1j * jr.normal(k3, (T_LIN, D_LIN))
    h0 = jr.normal(k4, (D_LIN,)).astype(jnp.complex128)
    expected = _numpy_linear(a, b, h0, False)
    for method in ("sequential", "associative"):
        np.testing.assert_allclose(dr.scan.linear(a, b, h0, method=method), expected, rtol=1e-10)

        def loss(fun, a, b, h0):
            return jnp.sum(jnp.abs(fun(a, b, h0)) ** 2)

        ours = jax.grad(lambda *x: loss(lambda a, b, h: dr.scan.linear(a, b, h, method=method), *x),
                        argnums=(0, 1, 2))(a, b, h0)
        ref = jax.grad(lambda *x: loss(lambda a, b, h: _scan_linear(a, b, h, False), *x),
                       argnums=(0, 1, 2))(a, b, h0)
        for o, r in zip(ours, ref):
            np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["scalar", "diagonal", "dense"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_linear_gradients(getkey, kind, reverse, method):
    """The custom VJP (a reverse linear scan) equals autodiff of a plain `lax.scan`."""
    a, b, h0 = _random_linear(getkey(), kind, jnp.float64)
    weights = jr.normal(getkey(), b.shape)

    def loss(fun, a, b, h0):
        return jnp.sum(weights * jnp.sin(fun(a, b, h0)))

    def ours_solve(a, b, h0):
        return dr.scan.linear(a, b, h0, method=method, reverse=reverse)

    ours = jax.grad(lambda *x: loss(ours_solve, *x), argnums=(0, 1, 2))(a, b, h0)
    ref = jax.grad(
        lambda *x: loss(lambda a, b, h: _scan_linear(a, b, h, reverse), *x), argnums=(0, 1, 2)
    )(a, b, h0)
    for name, o, r in zip("a b h0".split(), ours, ref):
        assert o.shape == r.shape, name
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9 * np.abs(r).max(), err_msg=name)


@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_linear_gradient_memory(method):
    """Reverse mode stores only a, h and h0 (2 T D + D numbers), not the associative tree."""
    saved_residuals = pytest.importorskip("jax._src.ad_checkpoint").saved_residuals
    T, D = 1024, 8
    a, b = jnp.full((T, D), 0.9), jnp.ones((T, D))
    saved = saved_residuals(lambda a, b: dr.scan.linear(a, b, method=method), a, b)
    assert sum(int(np.prod(aval.shape)) for aval, _ in saved) <= 2 * T * D + D
    if method == "associative":  # autodiff of the plain associative scan stores ~3x more
        tree = lambda a, b: jax.lax.associative_scan(
            lambda e, n: (n[0] * e[0], n[0] * e[1] + n[1]), (a, b))[1]
        assert sum(int(np.prod(aval.shape)) for aval, _ in saved_residuals(tree, a, b)) > 4 * T * D


def test_linear_vmap(getkey):
    """Several sequences through `jax.vmap`."""
    samples = [_random_linear(getkey(), "diagonal", jnp.float64) for _ in range(5)]
    a, b, h0 = (jnp.stack(x) for x in zip(*samples))
    out = jax.vmap(lambda a, b, h: dr.scan.linear(a, b, h, method="associative"))(a, b, h0)
    for i in range(5):
        np.testing.assert_allclose(out[i], _numpy_linear(a[i], b[i], h0[i], False), rtol=1e-10)


def test_linear_errors():
    b = jnp.zeros((10, 3))
    with pytest.raises(DynrnnValueError, match=r"\(10, 4\).*\(10, 3\)"):
        dr.scan.linear(jnp.zeros((10, 4)), b)
    with pytest.raises(DynrnnValueError, match=r"\(9,\).*\(10, 3\)"):
        dr.scan.linear(jnp.zeros(9), b)
    with pytest.raises(DynrnnValueError, match=r"\(3, 3\).*\(10, 3\)"):
        dr.scan.linear(jnp.zeros((3, 3)), b)  # time-invariant matrices must be broadcast
    with pytest.raises(DynrnnTypeError, match="`a`.*int"):
        dr.scan.linear(jnp.zeros((10, 3), jnp.int32), b)
    with pytest.raises(DynrnnTypeError, match="`b`.*bool"):
        dr.scan.linear(jnp.zeros((10, 3)), jnp.zeros((10, 3), bool))
    with pytest.raises(DynrnnValueError, match=r"`h0`.*\(3,\).*\(4,\)"):
        dr.scan.linear(jnp.zeros((10, 3)), b, jnp.zeros(4))
    with pytest.raises(DynrnnValueError, match="`method`.*'parallel'"):
        dr.scan.linear(jnp.zeros((10, 3)), b, method="parallel")
    with pytest.raises(DynrnnValueError, match=r"`b`.*\(10,\)"):
        dr.scan.linear(jnp.zeros(10), jnp.zeros(10))


# ---------------------------------------------------------------------------------------------
# deer
# ---------------------------------------------------------------------------------------------

T_DEER, D_DEER = 10_000, 6


def plrnn_cell(params, z, x):
    """PLRNN (Durstewitz 2017): z_t = A z_{t-1} + W relu(z_{t-1}) + h + C x_t."""
    A, W, h, C = params
    return A * z + W @ jax.nn.relu(z) + h + C @ x


def gru_cell(params, h, x):
    Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn = params
    z = jax.nn.sigmoid(Wz @ x + Uz @ h + bz)
    r = jax.nn.sigmoid(Wr @ x + Ur @ h + br)
    n = jnp.tanh(Wn @ x + Un @ (r * h) + bn)
    return (1 - z) * n + z * h


def tanh_cell(params, h, x):
    W, U, b = params
    return jnp.tanh(W @ h + U @ x + b)


def _contracting(key, D, norm):
    """A random matrix with spectral norm `norm`."""
    M = jr.normal(key, (D, D))
    return norm * M / jnp.linalg.norm(M, 2)


def _params(name, key, D):
    k = jr.split(key, 9)
    if name == "plrnn":
        A = jr.uniform(k[0], (D,), minval=0.2, maxval=0.6)
        return (A, _contracting(k[1], D, 0.3), 0.1 * jr.normal(k[2], (D,)),
                jr.normal(k[3], (D, D)) / np.sqrt(D))
    if name == "gru":
        mats = [jr.normal(ki, (D, D)) / np.sqrt(D) for ki in k[:6]]
        biases = [0.1 * jr.normal(ki, (D,)) for ki in k[6:]]
        Wz, Uz, Wr, Ur, Wn, Un = mats
        return (Wz, Uz, biases[0], Wr, Ur, biases[1], Wn, _contracting(k[5], D, 0.8), biases[2])
    return (_contracting(k[0], D, 0.8), jr.normal(k[1], (D, D)) / np.sqrt(D),
            0.1 * jr.normal(k[2], (D,)))


CELLS = {"plrnn": plrnn_cell, "gru": gru_cell, "tanh": tanh_cell}


def _sequential(cell, params, h0, xs):
    return jax.lax.scan(lambda h, x: (cell(params, h, x),) * 2, h0, xs)[1]


@pytest.fixture(scope="module", params=list(CELLS))
def recurrence(request):
    """A random contracting recurrence with its sequential trajectory (fresh seed per run)."""
    seed = int(np.random.SeedSequence().entropy % (2**31))
    key = jr.PRNGKey(seed)
    kp, kh, kx = jr.split(key, 3)
    cell = CELLS[request.param]
    params = _params(request.param, kp, D_DEER)
    h0 = 0.5 * jr.normal(kh, (D_DEER,))
    xs = jr.normal(kx, (T_DEER, D_DEER))
    reference = jax.jit(_sequential, static_argnums=0)(cell, params, h0, xs)
    return dict(name=request.param, seed=seed, cell=cell, params=params, h0=h0, xs=xs,
                reference=reference)


def test_deer_matches_sequential(recurrence):
    r = recurrence
    step = lambda h, x: r["cell"](r["params"], h, x)
    states, info = dr.scan.deer(step, r["h0"], r["xs"])
    err = float(jnp.abs(states - r["reference"]).max())
    assert bool(info.converged) and not bool(info.fallback), r["seed"]
    assert int(info.iterations) <= 10, (int(info.iterations), r["seed"])
    assert err < 1e-8, (err, r["seed"])
    assert float(info.residual) < 1e-8
    # quasi-DEER (diagonal Jacobian): converges too, linearly, so in more iterations
    states_q, info_q = dr.scan.deer(step, r["h0"], r["xs"], jacobian="diagonal")
    err_q = float(jnp.abs(states_q - r["reference"]).max())
    assert bool(info_q.converged), r["seed"]
    assert int(info_q.iterations) > int(info.iterations), r["seed"]
    assert err_q < 1e-7, (err_q, r["seed"])


def test_deer_gradients(recurrence, getkey):
    """Implicit-function-theorem gradients equal autodiff of the sequential scan."""
    r = recurrence
    weights = jr.normal(getkey(), r["xs"].shape)

    def loss(solve, params, h0, xs):
        return jnp.sum(weights * jnp.sin(solve(params, h0, xs)))

    def deer_solve(params, h0, xs):
        return dr.scan.deer(lambda h, x: r["cell"](params, h, x), h0, xs)[0]

    def seq_solve(params, h0, xs):
        return _sequential(r["cell"], params, h0, xs)

    args = (r["params"], r["h0"], r["xs"])
    ours = jax.grad(lambda *a: loss(deer_solve, *a), argnums=(0, 1, 2))(*args)
    ref = jax.jit(jax.grad(lambda *a: loss(seq_solve, *a), argnums=(0, 1, 2)))(*args)
    for o, g in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        np.testing.assert_allclose(o, g, rtol=1e-6, atol=1e-6 * float(np.abs(g).max()),
                                   err_msg=f"seed {r['seed']}")


def test_deer_quasi_gradients(getkey):
    """The O(T D) adjoint of quasi-DEER, and its sequential fallback, equal the dense adjoint
    and autodiff of the sequential scan."""
    from dynrnn.scan import _deer

    D, T = 4, 2000
    params = _params("tanh", getkey(), D)
    h0, xs = jr.normal(getkey(), (D,)), jr.normal(getkey(), (T, D))
    weights = jr.normal(getkey(), (T, D))

    def loss(solve, params, h0, xs):
        return jnp.sum(weights * jnp.sin(solve(params, h0, xs)))

    def quasi(params, h0, xs):
        return dr.scan.deer(lambda h, x: tanh_cell(params, h, x), h0, xs, jacobian="diagonal")[0]

    def seq(params, h0, xs):
        return _sequential(tanh_cell, params, h0, xs)

    ours = jax.grad(lambda *a: loss(quasi, *a), argnums=(0, 1, 2))(params, h0, xs)
    ref = jax.grad(lambda *a: loss(seq, *a), argnums=(0, 1, 2))(params, h0, xs)
    for o, g in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        np.testing.assert_allclose(o, g, rtol=1e-6, atol=1e-6 * float(np.abs(g).max()))
    # one iteration is not enough: the sequential reverse scan takes over
    prev = _deer._shift(h0, seq(params, h0, xs))
    cfg = _deer._Config(1e-8, 1e-10, 1, "diagonal", None, "sequential", T)
    step = lambda h, x: tanh_cell(params, h, x)
    dense = _deer._adjoint_dense(step, prev, xs, weights, cfg)
    np.testing.assert_allclose(_deer._adjoint_quasi(step, None, prev, xs, weights, cfg), dense,
                               rtol=1e-10, atol=1e-10)


def test_deer_autonomous_and_analytic_jacobian(getkey):
    """`inputs=None` with `length`, a callable (analytic, diagonal) Jacobian, under `jax.jit`."""
    D, T = 4, 500
    A = jr.uniform(getkey(), (D,), minval=0.2, maxval=0.6)
    W = _contracting(getkey(), D, 0.3)
    h = jr.normal(getkey(), (D,))
    step = lambda z, _: A * z + W @ jax.nn.relu(z) + h
    diag = lambda z, _: A + jnp.diagonal(W) * (z > 0)
    z0 = jr.normal(getkey(), (D,))
    ref = jax.lax.scan(lambda z, _: (step(z, None),) * 2, z0, None, length=T)[1]
    states, info = dr.scan.deer(step, z0, length=T, jacobian=diag)
    assert bool(info.converged)
    np.testing.assert_allclose(states, ref, atol=1e-8)
    states, info = jax.jit(lambda z0: dr.scan.deer(step, z0, length=T))(z0)
    assert bool(info.converged) and not bool(info.fallback)
    np.testing.assert_allclose(states, ref, atol=1e-10)
    # the parallel (associative) linear solves, forward and in the adjoint
    solve = lambda z0: dr.scan.deer(step, z0, length=T, method="associative")[0]
    seq = lambda z0: jax.lax.scan(lambda z, _: (step(z, None),) * 2, z0, None, length=T)[1]
    states, vjp = jax.vjp(solve, z0)
    np.testing.assert_allclose(states, ref, atol=1e-10)
    cotangent = jnp.sin(ref)
    np.testing.assert_allclose(vjp(cotangent)[0], jax.vjp(seq, z0)[1](cotangent)[0],
                               rtol=1e-8, atol=1e-10)


def logistic(h, x):
    return 3.9 * h * (1.0 - h)


def test_deer_chaotic_warns_and_falls_back():
    """Chaotic logistic map: Newton's linearisation overflows; the sequential result is used."""
    T = 10_000
    h0 = jnp.array([0.3])
    ref = jax.lax.scan(lambda h, _: (logistic(h, None),) * 2, h0, None, length=T)[1]
    with pytest.warns(dr.scan.DeerNotConvergedWarning, match="did not converge"):
        states, info = dr.scan.deer(logistic, h0, length=T)
    assert not bool(info.converged) and bool(info.fallback)
    np.testing.assert_array_equal(states, ref)
    with pytest.warns(dr.scan.DeerNotConvergedWarning, match="last iterate"):
        states, info = dr.scan.deer(logistic, h0, length=T, fallback=False)
    assert not bool(info.converged) and not bool(info.fallback)
    assert not np.allclose(states, ref)
    # inside jit the fallback is a lax.cond and the warning comes from a host callback
    with pytest.warns(dr.scan.DeerNotConvergedWarning, match="did not converge"):
        states, info = jax.jit(lambda h0: dr.scan.deer(logistic, h0, length=T))(h0)
        jax.block_until_ready(states)
    assert bool(info.fallback)
    np.testing.assert_array_equal(states, ref)


def test_deer_damping_converges_where_newton_diverges(getkey):
    """h = tanh(W h + x), W ~ 3 I, x ~ 2: a single attracting branch near +1 (contracting), but
    at the default guess h0 = -2/3 the linearisation expands (J ~ 3) and plain Newton
    overflows; the damped iteration converges to the sequential trajectory. (With x ~ 1 the
    map is bistable and the damped iteration can cycle without converging.)"""
    D, T = 4, 10_000
    W = 3.0 * jnp.eye(D) + 0.1 * jr.normal(getkey(), (D, D))
    xs = 2.0 + 0.3 * jr.normal(getkey(), (T, D))
    h0 = -2.0 * jnp.ones(D) / 3
    step = lambda h, x: jnp.tanh(W @ h + x)
    ref = jax.lax.scan(lambda h, x: (step(h, x),) * 2, h0, xs)[1]
    with pytest.warns(dr.scan.DeerNotConvergedWarning):
        _, info = dr.scan.deer(step, h0, xs, fallback=False)
    assert not bool(info.converged)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        states, info = dr.scan.deer(step, h0, xs, damping=3.0, max_iter=300)
    assert bool(info.converged) and not bool(info.fallback)
    np.testing.assert_allclose(states, ref, atol=1e-8)


def test_deer_float32_defaults(getkey):
    D, T = 4, 2000
    params = _params("tanh", getkey(), D)
    params = jax.tree.map(lambda p: p.astype(jnp.float32), params)
    xs = jr.normal(getkey(), (T, D), jnp.float32)
    h0 = jnp.zeros(D, jnp.float32)
    step = lambda h, x: tanh_cell(params, h, x)
    states, info = dr.scan.deer(step, h0, xs)
    assert states.dtype == jnp.float32 and bool(info.converged)
    ref = _sequential(tanh_cell, params, h0, xs)
    assert float(jnp.abs(states - ref).max()) < 1e-4


def test_deer_errors():
    h0 = jnp.zeros(3)
    xs = jnp.zeros((5, 3))
    with pytest.raises(DynrnnValueError, match=r"same shape as `h0` \(3,\).*\(4,\)"):
        dr.scan.deer(lambda h, x: jnp.zeros(4), h0, xs)
    with pytest.raises(DynrnnTypeError, match="dtype.*float64.*float32"):
        dr.scan.deer(lambda h, x: (h + x).astype(jnp.float32), h0, xs)
    with pytest.raises(DynrnnValueError, match="`length` is required"):
        dr.scan.deer(lambda h, x: h, h0)
    with pytest.raises(DynrnnValueError, match="`length`=4.*5 steps"):
        dr.scan.deer(lambda h, x: h + x, h0, xs, length=4)
    with pytest.raises(DynrnnValueError, match="`jacobian`.*'exact'"):
        dr.scan.deer(lambda h, x: h + x, h0, xs, jacobian="exact")
    with pytest.raises(DynrnnValueError, match=r"`h0`.*\(1, 3\)"):
        dr.scan.deer(lambda h, x: h, h0[None], xs)
    with pytest.raises(DynrnnTypeError, match="`h0`.*int"):
        dr.scan.deer(lambda h, x: h, jnp.zeros(3, jnp.int32), xs)
    with pytest.raises(DynrnnValueError, match="`tol`"):
        dr.scan.deer(lambda h, x: h + x, h0, xs, tol=(1e-3, 1e-4, 1e-5))
    with pytest.raises(DynrnnValueError, match="callable `jacobian`.*\\(3, 3\\)"):
        dr.scan.deer(lambda h, x: h + x, h0, xs, jacobian=lambda h, x: jnp.zeros((3, 2)))
