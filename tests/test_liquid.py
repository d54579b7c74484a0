"""Liquid networks (LTC, CfC) and their wirings, against independent float64 NumPy loops of the
ncps equations (REFERENCES.md section 4), closed-form properties of the LTC update, Diffrax
integration of the LTC vector field, and per-sample loops for batched time spans. Comparisons
with ncps itself are in `test_interop_ncps.py`."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr
from dynrnn.models import LiquidReadout, wirings


W = dr.models.wirings


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


def _central_difference(loss, model, where, idx, h=1e-6):
    """`(loss(model with where(model)[idx] + h) − loss(… − h)) / 2h`, for a NumPy `loss`."""
    leaf = np.asarray(where(model))
    values = []
    for sign in (1, -1):
        moved = leaf.copy()
        moved[idx] += sign * h
        values.append(loss(eqx.tree_at(where, model, jnp.asarray(moved))))
    return (values[0] - values[1]) / (2 * h)


# ---------------------------------------------------------------------------------------------
# Wirings


def test_ncp_structure_and_order():
    spec = W.NCP(10, 6, 3, sensory_fanout=4, inter_fanout=2, recurrent_command_synapses=5,
                 motor_fanin=2, seed=3)
    w = spec.build(5)
    adj, sens = w.adjacency, w.sensory_adjacency
    motor, command, inter = np.arange(0, 3), np.arange(3, 9), np.arange(9, 19)
    assert w.units == 19 and w.output_dim == 3 and adj.shape == (19, 19) and sens.shape == (5, 19)
    assert w.layers == (tuple(inter), tuple(command), tuple(motor))
    assert set(np.unique(adj)) <= {-1, 0, 1} and set(np.unique(sens)) <= {-1, 0, 1}
    # Inputs reach inter neurons only, each input exactly `sensory_fanout` of them (the extra
    # synapses for unreached inter neurons can only add), and every inter neuron is reached.
    assert not sens[:, :9].any()
    assert (np.abs(sens[:, inter]).sum(1) >= 4).all()
    assert (np.abs(sens[:, inter]).sum(0) >= 1).all()
    # Allowed neuron-to-neuron blocks: inter->command, command->command, command->motor.
    allowed = np.zeros((19, 19), bool)
    allowed[np.ix_(inter, command)] = True
    allowed[np.ix_(command, command)] = True
    allowed[np.ix_(command, motor)] = True
    assert not adj[~allowed].any()
    assert (np.abs(adj[np.ix_(inter, command)]).sum(1) >= 2).all()
    assert (np.abs(adj[np.ix_(command, motor)]).sum(0) >= 2).all()
    assert (np.abs(adj[np.ix_(command, motor)]).sum(1) >= 1).all()
    assert (np.abs(adj[np.ix_(inter, command)]).sum(0) >= 1).all()
    # Deterministic in the seed, different for another seed.
    assert spec.build(5) == W.NCP(10, 6, 3, 4, 2, 5, 2, seed=3).build(5)
    assert spec.build(5) != W.NCP(10, 6, 3, 4, 2, 5, 2, seed=4).build(5)


def test_autoncp_sizes():
    spec = W.AutoNCP(20, 5, sparsity_level=0.5)
    # command = floor(0.4 * 15) = 6, inter = 9, fanouts floor(9*.5)=4, floor(6*.5)=3, 2*3=6.
    assert (spec.inter_neurons, spec.command_neurons, spec.motor_neurons) == (9, 6, 5)
    assert (spec.sensory_fanout, spec.inter_fanout, spec.recurrent_command_synapses,
            spec.motor_fanin) == (4, 3, 6, 3)
    assert spec.units == 20 and spec.output_dim == 5


def test_fully_connected_and_random():
    w = W.FullyConnected(30, 4).build(3)
    assert (w.adjacency != 0).all() and (w.sensory_adjacency != 0).all()
    frac = (w.adjacency == 1).mean()
    assert 0.55 < frac < 0.78  # polarity drawn from {-1, +1, +1}
    assert not np.diag(W.FullyConnected(6, self_connections=False).build(2).adjacency).any()
    r = W.Random(10, 2, sparsity=0.3, seed=5).build(4)
    assert r.synapse_count == round(100 * 0.7)
    assert r.sensory_synapse_count == round(40 * 0.7)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: W.NCP(3, 4, 2, sensory_fanout=5, inter_fanout=2, recurrent_command_synapses=1,
                       motor_fanin=2), "sensory_fanout"),
        (lambda: W.NCP(3, 4, 2, 2, 5, 1, 2), "inter_fanout"),
        (lambda: W.NCP(3, 4, 2, 2, 2, 1, 5), "motor_fanin"),
        (lambda: W.AutoNCP(10, 8), "output_size"),
        (lambda: W.AutoNCP(10, 3, sparsity_level=0.0), "sparsity_level"),
        (lambda: W.FullyConnected(3, 4), "output_dim"),
        (lambda: W.Random(3, sparsity=1.0), "sparsity"),
    ],
)
def test_wiring_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------------------------------------
# LTC: an independent float64 NumPy loop of the ncps cell (divides by C/δ as ncps does)


def _ltc_reference(m, u, ts):
    p = _np(m)
    pos = _softplus if m.implicit_param_constraints else (lambda x: x)
    mask = np.abs(m.wiring.adjacency).astype(float)
    smask = np.abs(m.wiring.sensory_adjacency).astype(float)
    n = m.units
    v = np.zeros(n)
    c = np.zeros(n)
    outs = []
    for t in range(u.shape[0]):
        x = u[t]
        if m.mixed_memory:
            lstm = p.lstm
            z = lstm.input_weight @ x + lstm.input_bias + lstm.recurrent_weight @ v
            i, ig, fg, og = np.split(z, 4)
            c = c * _sigmoid(fg + 1) + np.tanh(i) * _sigmoid(ig)
            v = np.tanh(c) * _sigmoid(og)
        x = x * p.input_w + p.input_b
        sa = pos(p.sensory_w) * _sigmoid(p.sensory_sigma * (x[:, None] - p.sensory_mu)) * smask
        num_s, den_s = (sa * p.sensory_erev).sum(0), sa.sum(0)
        cm_t = pos(p.cm) / (ts[t] / m.ode_unfolds)
        g = pos(p.gleak)
        for _ in range(m.ode_unfolds):
            a = pos(p.w) * _sigmoid(p.sigma * (v[:, None] - p.mu)) * mask
            num = cm_t * v + g * p.vleak + (a * p.erev).sum(0) + num_s
            den = cm_t + g + a.sum(0) + den_s
            v = num / (den + m.epsilon)
        outs.append(v[: m.wiring.output_dim] * p.observation.scale + p.observation.bias)
    return np.stack(outs)


@pytest.mark.parametrize(
    "wiring, mixed, implicit",
    [(6, False, True), (W.AutoNCP(9, 2), False, True), (5, True, False)],
)
def test_ltc_matches_numpy_loop(getkey, wiring, mixed, implicit):
    m = dr.models.LTC(3, wiring, mixed_memory=mixed, implicit_param_constraints=implicit,
                      key=getkey())
    # Non-trivial input mapping and readout.
    m = eqx.tree_at(lambda m: (m.input_b, m.observation.bias),
                    m, (jr.normal(getkey(), (3,)), jr.normal(getkey(), (m.wiring.output_dim,))))
    u = np.asarray(jr.normal(getkey(), (12, 3)))
    ts = np.asarray(jr.uniform(getkey(), (12,), minval=0.1, maxval=3.0))
    y = m(jnp.asarray(u), timespans=jnp.asarray(ts))
    assert y.shape == (12, m.wiring.output_dim)
    np.testing.assert_allclose(y, _ltc_reference(m, u, ts), rtol=1e-10, atol=1e-12)


def test_ltc_batch_gradient_matches_numpy_finite_differences(getkey):
    """`batch` gives every sample its own copy of the derived parameters (their gradient is
    summed over the batch once); the gradient must equal the per-sample loop's and central
    differences of the independent NumPy loop."""
    m = dr.models.LTC(2, W.AutoNCP(6, 2), key=getkey())
    m = eqx.tree_at(lambda m: m.input_b, m, jr.normal(getkey(), (2,)))
    u = np.asarray(jr.normal(getkey(), (3, 5, 2)))
    ts = np.asarray(jr.uniform(getkey(), (3, 5), minval=0.2, maxval=2.0))
    c = np.asarray(jr.normal(getkey(), (3, 5, 2)))

    def loss(model):
        return jnp.sum(c * model.batch(jnp.asarray(u), jnp.asarray(ts)) ** 2)

    def loop_loss(model):
        return sum(jnp.sum(c[b] * model(jnp.asarray(u[b]), timespans=jnp.asarray(ts[b])) ** 2)
                   for b in range(3))

    grads = eqx.filter_grad(loss)(m)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(eqx.filter_grad(loop_loss)(m))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)

    def ref_loss(model):
        return sum(np.sum(c[b] * _ltc_reference(model, u[b], ts[b]) ** 2) for b in range(3))

    rng = np.random.default_rng(0)
    for name in ("w", "sigma", "mu", "erev", "sensory_w", "sensory_mu", "cm", "gleak", "vleak",
                 "input_b"):
        leaf = np.asarray(getattr(m, name))
        idx = tuple(rng.integers(0, n) for n in leaf.shape)
        if leaf.ndim == 2:  # a synapse the wiring has
            sensory = name.startswith("sensory")
            adjacency = m.wiring.sensory_adjacency if sensory else m.wiring.adjacency
            pre, post = np.nonzero(adjacency)
            k = rng.integers(0, len(pre))
            idx = (pre[k], post[k])
        expect = _central_difference(ref_loss, m, lambda q, name=name: getattr(q, name), idx)
        got = float(np.asarray(getattr(grads, name))[idx])
        assert abs(expect) > 1e-8, name  # the entry matters, so the comparison can fail
        np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-9, err_msg=name)


def _nonneg_ltc(key, units, inputs, *, epsilon=0.0, ode_unfolds=6):
    m = dr.models.LTC(inputs, units, implicit_param_constraints=False, epsilon=epsilon,
                      ode_unfolds=ode_unfolds, key=key)
    k1, k2 = jr.split(key)
    # Arbitrary reversal potentials (not just ±1) make the hull non-trivial.
    return eqx.tree_at(lambda m: (m.erev, m.vleak),
                       m, (2.0 * jr.normal(k1, m.erev.shape), jr.normal(k2, m.vleak.shape)))


def test_ltc_states_stay_in_convex_hull(getkey):
    m = _nonneg_ltc(getkey(), 7, 2, ode_unfolds=1)
    z = jr.normal(getkey(), (7,)) * 3.0
    e = np.asarray(m.erev)
    es = np.asarray(m.sensory_erev)
    vleak = np.asarray(m.vleak)
    lo_c = np.minimum(np.minimum(e.min(0), es.min(0)), vleak)
    hi_c = np.maximum(np.maximum(e.max(0), es.max(0)), vleak)
    n_inside = 0
    for t in range(30):
        u = jr.normal(getkey(), (2,)) * 2.0
        ts = float(jr.uniform(getkey(), (), minval=0.01, maxval=5.0))
        new = np.asarray(m.cell(z, u, ts))
        old = np.asarray(z)
        assert (new >= np.minimum(old, lo_c) - 1e-12).all()
        assert (new <= np.maximum(old, hi_c) + 1e-12).all()
        n_inside += int(((new > np.minimum(old, lo_c) + 1e-6)
                         & (new < np.maximum(old, hi_c) - 1e-6)).sum())
        z = jnp.asarray(new)
    assert n_inside > 0  # the bound is not attained trivially


def test_ltc_without_synapses_decays_geometrically(getkey):
    m = _nonneg_ltc(getkey(), 5, 2)
    m = eqx.tree_at(lambda m: (m.w, m.sensory_w), m, (jnp.zeros_like(m.w),
                                                     jnp.zeros_like(m.sensory_w)))
    v = jr.normal(getkey(), (5,))
    ts = 0.7
    c = np.asarray(m.cm) / (ts / m.ode_unfolds)
    ratio = (c / (c + np.asarray(m.gleak))) ** m.ode_unfolds
    prev = np.asarray(v) - np.asarray(m.vleak)
    for _ in range(4):
        v = m.cell(v, jr.normal(getkey(), (2,)), ts)
        now = np.asarray(v) - np.asarray(m.vleak)
        np.testing.assert_allclose(now, ratio * prev, rtol=1e-10)
        prev = now


def test_ltc_zero_timespan_keeps_state(getkey):
    m = dr.models.LTC(2, 4, key=getkey())
    z = jr.normal(getkey(), (4,))
    np.testing.assert_allclose(m.cell(z, jnp.ones(2), 0.0), z, rtol=1e-12)


def test_ltc_apply_constraints(getkey):
    m = dr.models.LTC(2, 4, implicit_param_constraints=False, key=getkey())
    m = eqx.tree_at(lambda m: m.w, m, m.w.at[0, 0].set(-1.0))
    clipped = m.apply_constraints()
    assert float(clipped.w[0, 0]) == 0.0
    np.testing.assert_array_equal(clipped.w[1:], m.w[1:])
    implicit = dr.models.LTC(2, 4, key=getkey())
    implicit = eqx.tree_at(lambda m: m.w, implicit, implicit.w.at[0, 0].set(-1.0))
    assert float(implicit.apply_constraints().w[0, 0]) == -1.0


def _small_ltc(ode_unfolds=6):
    return dr.models.LTC(2, 4, ode_unfolds=ode_unfolds, key=jr.PRNGKey(11))


@pytest.fixture(scope="module")
def small_ltc():
    return _small_ltc()


def _solve(m, v0, u, t1):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(m.vector_field), diffrax.Tsit5(), 0.0, t1, 0.01, v0, args=u,
        stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-12), max_steps=100_000,
    )
    return sol.ys[-1]


def test_ltc_vector_field_is_the_small_step_limit(small_ltc):
    m = small_ltc
    v0 = jnp.array([0.5, -0.3, 0.1, 0.9])
    u = jnp.array([0.4, -1.2])
    exact = _solve(m, v0, u, 1.5)
    errors = []
    for unfolds in (6, 60, 600):
        fused = _small_ltc(unfolds)
        errors.append(float(jnp.abs(fused.cell(v0, u, 1.5) - exact).max()))
    # First order: ten times more unfolds, about ten times smaller error.
    assert errors[0] > 5 * errors[1] > 25 * errors[2]
    assert errors[2] < 2e-3
    # The held-input path gives the same field as the constant input.
    path = m.input_path(jnp.tile(u, (3, 1)), jnp.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(m.vector_field(0.7, v0, path), m.vector_field(0.7, v0, u))


def test_ltc_fused_fixed_point_is_ode_equilibrium(small_ltc):
    m = small_ltc
    u = jnp.array([-0.5, 0.8])
    v = m(jnp.tile(u, (200, 1)), timespans=5.0, state0=jnp.zeros(4), return_state=True)[1][-1]
    assert float(jnp.abs(m.vector_field(0.0, v, u)).max()) < 1e-7
    np.testing.assert_allclose(_solve(m, jnp.zeros(4), u, 100.0), v, atol=1e-6)


def test_input_path_hold_and_linear(small_ltc):
    u = jnp.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    hold = small_ltc.input_path(u, jnp.array([1.0, 2.0, 1.0]))
    assert [float(hold.evaluate(t)[0]) for t in (0.5, 1.0, 1.01, 3.0, 3.5)] == [1, 1, 2, 2, 3]
    lin = small_ltc.input_path(u, jnp.array([1.0, 2.0, 1.0]), interpolation="linear")
    np.testing.assert_allclose(lin.evaluate(2.0)[0], 1.5)


# ---------------------------------------------------------------------------------------------
# CfC: an independent NumPy loop of the ncps cell


def _lecun(x):
    return 1.7159 * np.tanh(0.666 * x)


def _cfc_cell_reference(cell, u, h, ts, mask=None):
    c = _np(cell)
    x = np.concatenate([u, h])
    for w, b in c.backbone:
        x = _lecun(w @ x + b)
    w1 = c.ff1[0] * (mask if mask is not None else 1.0)
    ff1 = w1 @ x + c.ff1[1]
    if cell.mode == "pure":
        return -c.A * np.exp(-ts * (np.abs(c.w_tau) + np.abs(ff1))) * ff1 + c.A
    w2 = c.ff2[0] * (mask if mask is not None else 1.0)
    ff1, ff2 = np.tanh(ff1), np.tanh(w2 @ x + c.ff2[1])
    s = _sigmoid((c.time_a[0] @ x + c.time_a[1]) * ts + c.time_b[0] @ x + c.time_b[1])
    return ff1 + s * ff2 if cell.mode == "no_gate" else ff1 * (1 - s) + s * ff2


def _cfc_reference(m, u, ts):
    h = np.zeros(m.units)
    c = np.zeros(m.units)
    p = _np(m)
    outs = []
    for t in range(u.shape[0]):
        if m.mixed_memory:
            z = p.lstm.input_weight @ u[t] + p.lstm.input_bias + p.lstm.recurrent_weight @ h
            i, ig, fg, og = np.split(z, 4)
            c = c * _sigmoid(fg + 1) + np.tanh(i) * _sigmoid(ig)
            h = np.tanh(c) * _sigmoid(og)
        if m.wiring is None:
            h = _cfc_cell_reference(m.cells[0], u[t], h, ts[t])
            cells_out = h
        else:
            inputs, new = u[t], np.zeros_like(h)
            for cell, layer, mask in zip(m.cells, m.wiring.layers, m.wiring.layer_input_masks()):
                inputs = _cfc_cell_reference(cell, inputs, h[list(layer)], ts[t], mask)
                new[list(layer)] = inputs
            h = new
            cells_out = h[: m.wiring.output_dim]
        obs = p.observation
        outs.append(cells_out if obs.weight is None else obs.weight @ cells_out + obs.bias)
    return np.stack(outs)


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden=6, backbone_units=10, backbone_layers=2),
        dict(hidden=W.AutoNCP(9, 2), mixed_memory=True, output=3),
    ],
    ids=["backbone", "wired"],
)
def test_cfc_matches_numpy_loop(getkey, mode, kwargs):
    kwargs = dict(kwargs)
    hidden = kwargs.pop("hidden")
    m = dr.models.CfC(3, hidden, mode=mode, key=getkey(), **kwargs)
    u = np.asarray(jr.normal(getkey(), (10, 3)))
    ts = np.asarray(jr.uniform(getkey(), (10,), minval=0.0, maxval=3.0))
    y = m(jnp.asarray(u), timespans=jnp.asarray(ts))
    np.testing.assert_allclose(y, _cfc_reference(m, u, ts), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "mode, layers, activation",
    [("default", 1, "lecun_tanh"), ("no_gate", 2, "lecun_tanh"), ("default", 0, "lecun_tanh"),
     ("default", 2, "silu")],
)
def test_cfc_fast_batch_gradient(getkey, mode, layers, activation):
    """The dense CfC's `batch` uses a whole-sequence scan with a hand-written gradient: equal to
    automatic differentiation of the per-sample path (weights, inputs, time spans, initial
    state) and, for the reference activation, to central differences of the NumPy loop."""
    m = dr.models.CfC(3, 5, 2, mode=mode, backbone_units=7, backbone_layers=layers,
                      backbone_activation=activation, key=getkey())
    u = jr.normal(getkey(), (4, 6, 3))
    ts = jr.uniform(getkey(), (4, 6), minval=0.2, maxval=2.0)
    s0 = 0.5 * jr.normal(getkey(), (4, 5))
    c = jr.normal(getkey(), (4, 6, 2))
    assert m._fast_batch(u, ts, s0, None) is not None  # the path under test is taken

    def fast(args):
        model, u, ts, s0 = args
        return jnp.sum(c * model.batch(u, ts, state0=s0) ** 2)

    def loop(args):
        model, u, ts, s0 = args
        return sum(jnp.sum(c[b] * model(u[b], timespans=ts[b], state0=s0[b]) ** 2)
                   for b in range(4))

    g_fast = eqx.filter_grad(fast)((m, u, ts, s0))
    g_loop = eqx.filter_grad(loop)((m, u, ts, s0))
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_loop)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fast((m, u, ts, s0)), loop((m, u, ts, s0)), rtol=1e-12)
    if activation != "lecun_tanh":
        return
    un, tn, cn = np.asarray(u), np.asarray(ts), np.asarray(c)

    def ref(model, tn=tn):
        return sum(np.sum(cn[b] * _cfc_reference(model, un[b], tn[b]) ** 2) for b in range(4))

    g, gt = eqx.filter_grad(lambda a: jnp.sum(c * a[0].batch(u, a[1]) ** 2))((m, ts))
    cell = lambda q: q.cells[0]  # noqa: E731
    picks = [(lambda q: cell(q).ff1[0], (1, 2)), (lambda q: cell(q).time_a[1], (3,)),
             (lambda q: cell(q).ff2[0], (0, 0)), (lambda q: q.observation.weight, (1, 4))]
    if layers:
        picks.append((lambda q: cell(q).backbone[0][0], (2, 5)))
    for where, idx in picks:
        expect = _central_difference(ref, m, where, idx)
        assert abs(expect) > 1e-8
        np.testing.assert_allclose(np.asarray(where(g))[idx], expect, rtol=1e-6, atol=1e-9)
    # the time spans: perturbed through a (model, spans) pair
    expect = _central_difference(lambda a: ref(a[0], np.asarray(a[1])), (m, ts),
                                 lambda a: a[1], (2, 3))
    np.testing.assert_allclose(gt[2, 3], expect, rtol=1e-6, atol=1e-9)


def test_wired_cfc_ignores_absent_synapses(getkey):
    m = dr.models.CfC(4, W.NCP(5, 4, 2, 2, 2, 3, 2, seed=1), key=getkey())
    mask = m.wiring.layer_input_masks()[0]
    i, j = map(int, np.argwhere(mask == 0)[0])
    bumped = eqx.tree_at(lambda m: m.cells[0].ff1[0], m, m.cells[0].ff1[0].at[i, j].add(5.0))
    u = jr.normal(getkey(), (6, 4))
    np.testing.assert_allclose(m(u), bumped(u), rtol=1e-12)
    i, j = map(int, np.argwhere(mask == 1)[0])
    bumped = eqx.tree_at(lambda m: m.cells[0].ff1[0], m, m.cells[0].ff1[0].at[i, j].add(5.0))
    assert float(jnp.abs(m(u) - bumped(u)).max()) > 1e-6


@pytest.mark.parametrize("mode, bound", [("default", 1.0), ("no_gate", 2.0)])
def test_cfc_output_ranges(getkey, mode, bound):
    m = dr.models.CfC(3, 8, mode=mode, backbone_units=16, key=getkey())
    m = jax.tree.map(lambda a: 6.0 * a if eqx.is_inexact_array(a) else a, m)
    u = 5.0 * jr.normal(getkey(), (40, 3))
    y = m(u, timespans=jr.uniform(getkey(), (40,), maxval=10.0))
    assert float(jnp.abs(y).max()) <= bound
    assert float(jnp.abs(y).max()) > 0.6 * bound  # the range is actually used


def test_cfc_pure_limits(getkey):
    m = dr.models.CfC(3, 5, mode="pure", backbone_units=8, key=getkey())
    m = eqx.tree_at(lambda m: m.cells[0].A, m, jr.normal(getkey(), (5,)))
    u, h = jr.normal(getkey(), (3,)), jr.normal(getkey(), (5,))
    c = _np(m.cells[0])
    x = _lecun(c.backbone[0][0] @ np.concatenate([u, h]) + c.backbone[0][1])
    ff1 = c.ff1[0] @ x + c.ff1[1]
    np.testing.assert_allclose(m.cell(h, u, 0.0), c.A - c.A * ff1, rtol=1e-12)
    # h' − A = −A ff1 exp(−ts(|w_τ| + |ff1|)) and |x e^{−ts x}| <= 1/(e ts): a closed-form bound
    ts = 1e6
    np.testing.assert_allclose(m.cell(h, u, ts), c.A, rtol=0,
                               atol=1.01 * np.abs(c.A).max() / (np.e * ts))


# ---------------------------------------------------------------------------------------------
# Batched irregular time spans, engines, latent-model interface


@pytest.mark.parametrize("which", ["cfc", "ltc"])
def test_batched_timespans_match_per_sample_loop(getkey, which):
    units, length = 5, 7  # batch == units, and different from the length
    if which == "cfc":
        m = dr.models.CfC(2, units, backbone_units=8, key=getkey())
    else:
        m = dr.models.LTC(2, units, key=getkey())
    u = jr.normal(getkey(), (units, length, 2))
    ts = jr.uniform(getkey(), (units, length), minval=0.1, maxval=3.0)
    y = m.batch(u, ts)
    loop = jnp.stack([m(u[b], timespans=ts[b]) for b in range(units)])
    # float64 rounding differs between the batched and the per-sample matrix products by a few
    # ulp of the O(1) intermediates; an output near zero then shows a relative 1e-12 gap.
    np.testing.assert_allclose(y, loop, rtol=1e-12, atol=1e-14)
    # Shared (time,) spans broadcast over the batch.
    shared = m.batch(u, ts[0])
    np.testing.assert_allclose(shared[3], m(u[3], timespans=ts[0]), rtol=1e-12)
    # The spans matter (so the test above could fail).
    assert float(jnp.abs(shared[3] - y[3]).max()) > 1e-4
    with pytest.raises(ValueError, match="timespans"):
        m.batch(u, ts.T)


def test_cfc_deer_equals_sequential(getkey):
    m = dr.models.CfC(3, 6, 2, backbone_units=12, key=getkey())
    u = jr.normal(getkey(), (20, 3))
    ts = jr.uniform(getkey(), (20,), minval=0.1, maxval=2.0)
    y, s = m(u, timespans=ts, return_state=True)
    y2, s2 = m(u, timespans=ts, return_state=True, engine=dr.engines.Deer())
    np.testing.assert_allclose(s2, s, atol=1e-9)
    g = jax.grad(lambda m: jnp.sum(m(u, timespans=ts) ** 2))(m)
    g2 = jax.grad(lambda m: jnp.sum(m(u, timespans=ts, engine=dr.engines.Deer()) ** 2))(m)
    np.testing.assert_allclose(g.cells[0].ff1[0], g2.cells[0].ff1[0], atol=1e-8)
    z0 = jr.normal(getkey(), (6,))
    np.testing.assert_allclose(m.rollout(z0, 20, u, engine=dr.engines.Deer()), m.rollout(z0, 20, u),
                               atol=1e-9)


@pytest.mark.parametrize("which", ["cfc", "ltc", "cfc_proj", "cfc_identity"])
def test_latent_interface(getkey, which):
    if which == "cfc":
        m = dr.models.CfC(0, 6, mixed_memory=True, backbone_units=8, dt=0.5, key=getkey())
    elif which == "cfc_proj":
        m = dr.models.CfC(0, 6, 3, backbone_units=8, key=getkey())
    elif which == "cfc_identity":
        m = dr.models.CfC(0, 6, 3, observation="identity", backbone_units=8, key=getkey())
    else:
        m = dr.models.LTC(0, 6, 3, dt=0.5, key=getkey())
        m = eqx.tree_at(lambda m: (m.observation.scale, m.observation.bias), m,
                        (jr.uniform(getkey(), (3,), minval=0.5, maxval=2.0),
                         jr.normal(getkey(), (3,))))
    assert isinstance(m, dr.models.AbstractLatentModel)
    n_obs = m.n_obs
    x0 = jr.normal(getkey(), (n_obs,))
    z0 = m.init_state(x0)
    assert z0.shape == (m.state_size,) == (m.n_latent,)
    np.testing.assert_allclose(m.observe(z0), x0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.observe(m.forcing_signal(x0)), x0, rtol=1e-10, atol=1e-12)
    states = m.rollout(z0, 5)
    z = z0
    for t in range(5):
        z = m.step(z)
        # atol: a state near 0 (1e-6) differs by rounding (3e-17) between scan and loop
        np.testing.assert_allclose(states[t], z, rtol=1e-12, atol=1e-14)
    # The autonomous sequence call with the same dt runs the same map.
    seq, seq_states = m(jnp.zeros((5, 0)), timespans=m.dt, state0=z0, return_state=True)
    np.testing.assert_allclose(seq_states, states, rtol=1e-12, atol=1e-14)
    jac = m.jacobian(z0)
    eps = 1e-6
    e = jnp.zeros_like(z0).at[1].set(eps)
    fd = (m.step(z0 + e) - m.step(z0 - e)) / (2 * eps)
    np.testing.assert_allclose(jac[:, 1], fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(jnp.zeros((5, 3))), "2 features"),
        (lambda m: m(jnp.zeros((5, 2)), timespans=-jnp.ones(5)), ">= 0"),
        (lambda m: m(jnp.zeros((5, 2)), timespans=jnp.ones(4)), "timespans"),
        (lambda m: m(jnp.zeros(5)), "shape"),
        (lambda m: m.batch(jnp.zeros((5, 2))), "batch"),
    ],
)
@pytest.mark.parametrize("which", ["cfc", "ltc"])
def test_bad_input(getkey, call, match, which):
    m = (dr.models.CfC(2, 4, backbone_units=4, key=getkey()) if which == "cfc"
         else dr.models.LTC(2, 4, key=getkey()))
    with pytest.raises(ValueError, match=match):
        call(m)


@pytest.mark.parametrize("which", ["cfc", "ltc"])
def test_engine_must_be_an_engine(getkey, which):
    m = (dr.models.CfC(2, 4, backbone_units=4, key=getkey()) if which == "cfc"
         else dr.models.LTC(2, 4, key=getkey()))
    with pytest.raises(TypeError, match="engine"):
        m(jnp.zeros((5, 2)), engine="deer")


def test_bad_construction(getkey):
    with pytest.raises(ValueError, match="output"):
        dr.models.LTC(3, W.AutoNCP(10, 3), 4, key=getkey())
    with pytest.raises(ValueError, match="hidden"):
        dr.models.CfC(3, 12, wiring=W.AutoNCP(10, 3), key=getkey())
    with pytest.raises(ValueError, match="backbone_units"):
        dr.models.CfC(3, W.AutoNCP(10, 3), backbone_units=8, key=getkey())
    with pytest.raises(ValueError, match="input_dim"):
        dr.models.LTC(4, W.AutoNCP(10, 3).build(3), key=getkey())
    with pytest.raises(ValueError, match="mode"):
        dr.models.CfC(3, 4, mode="gated", key=getkey())
    with pytest.raises(ValueError, match="mixed_memory"):
        m = dr.models.LTC(2, 4, mixed_memory=True, key=getkey())
        m.vector_field(0.0, jnp.zeros(4), None)
    with pytest.raises(TypeError, match="wiring"):
        dr.models.CfC(3, None, wiring="ncp", key=getkey())


def test_wirings_module_is_public():
    assert wirings.NCP is dr.models.wirings.NCP


# ---------------------------------------------------------------------------------------------
# Reconstruction with generalized teacher forcing (slow)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["cfc", "ltc"])
def test_gtf_training_on_lorenz63_lowers_dstsp(which, capsys):
    # The protocol of `benchmarks/liquid.py --lorenz` at a third of its budget; fixed keys.
    train = jnp.asarray(dr.datasets.load("lorenz63_train")["state"].values[::5][:20_000])
    test = jnp.asarray(dr.datasets.load("lorenz63_test")["state"].values[::5][:20_000])
    n = 24 if which == "cfc" else 16
    # Bounded states: the read-out scales the first three units; GTF forces only those.
    readout = LiquidReadout(3, n, scale=jnp.full((3,), 3.0, jnp.float32),
                            bias=jnp.zeros((3,), jnp.float32))
    if which == "cfc":
        m = dr.models.CfC(0, n, 3, observation=readout, backbone_units=32, dtype=jnp.float32,
                          key=jr.PRNGKey(0))
    else:
        m = dr.models.LTC(0, n, 3, observation=readout, dtype=jnp.float32, key=jr.PRNGKey(0))
    lr = 3e-3 if which == "cfc" else 1e-2
    before = dr.evaluate(m, test, lyapunov=False)["D_stsp"]
    result = dr.fit(m, train, teacher_forcing=dr.GTF(0.3), n_steps=1000, batch_size=16,
                    seq_len=50, key=jr.PRNGKey(1), progress=False,
                    optimizer=dr.training.default_optimizer(1000, lr, lr / 10))
    after = dr.evaluate(result.model, test, lyapunov=False)["D_stsp"]
    with capsys.disabled():
        print(f"\n{which}: D_stsp before {before:.3f}, after {after:.3f}")
    assert np.isfinite(after) and after < before


@pytest.mark.parametrize(
    "make",
    [
        lambda k: dr.models.CfC(3, W.AutoNCP(10, 2), mixed_memory=True, key=k),
        lambda k: dr.models.CfC(0, 6, 3, observation="identity", backbone_layers=2,
                                backbone_units=8, key=k),
        lambda k: dr.models.LTC(0, 5, 2, observation="affine", output_mapping="linear", key=k),
    ],
    ids=["cfc_wired", "cfc_dsr", "ltc_dsr"],
)
def test_save_load_roundtrip(tmp_path, getkey, make):
    m = make(getkey())
    m = jax.tree.map(lambda a: a + 0.1 if eqx.is_inexact_array(a) else a, m)  # not the init
    dr.save(tmp_path / "model.eqx", m)
    loaded = dr.load(tmp_path / "model.eqx")
    assert type(loaded) is type(m) and loaded.wiring == m.wiring
    u = jr.normal(getkey(), (6, m.input_size))
    np.testing.assert_array_equal(loaded(u), m(u))
