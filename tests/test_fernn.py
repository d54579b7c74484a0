"""Flow-equivariant RNNs (Keller 2025): exact lifted equivariance, the controls' lack of it, the
recurrence against an independent float64 NumPy loop, the flowing-digits generator, bad input."""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnTypeError, DynrnnValueError


GRIDS = {1: (11,), 2: (7, 9)}  # non-square so that swapped axes would show


def _frames(key, t, c, grid, dtype=jnp.float32):
    return jr.normal(key, (t, c) + grid).astype(dtype)


# ----------------------------------------------------------------------------------------------
# Equivariance


@pytest.mark.parametrize(
    "spatial_dims, flow_velocity, activation",
    [(1, (-1,), "relu"), (2, (1, -1), "tanh")],
)
def test_fernn_equivariant_float32(getkey, spatial_dims, flow_velocity, activation):
    grid = GRIDS[spatial_dims]
    model = dr.models.FlowEquivariantRNN(
        2, 3, velocities=1, spatial_dims=spatial_dims, activation=activation, key=getkey(),
        dtype=jnp.float32,
    )
    x = _frames(getkey(), 9, 2, grid)
    err = dr.metrics.equivariance_error(model, x, dr.metrics.TranslationFlow(flow_velocity))
    assert err.shape == (9,) and err.dtype == jnp.float32
    assert float(jnp.max(err)) < 1e-5
    # the flow must really move the input (otherwise the check is vacuous)
    flowed = dr.metrics.TranslationFlow(flow_velocity)(x)
    assert float(jnp.max(jnp.abs(flowed[3] - x[3]))) > 0.1


def test_fernn_equivariant_batched_and_explicit_velocities(getkey):
    vels = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (0, -1)]
    model = dr.models.FlowEquivariantRNN(
        1, 2, velocities=vels, spatial_dims=2, pool="mean", key=getkey(), dtype=jnp.float32
    )
    x = _frames(getkey(), 3, 1, (7, 9))[None].repeat(2, 0) * jnp.array([1.0, -2.0])[
        :, None, None, None, None
    ].astype(jnp.float32)
    err = dr.metrics.equivariance_error(model, x, dr.metrics.TranslationFlow((1, 0)))
    assert err.shape == (3,) and float(jnp.max(err)) < 1e-5


@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_controls_not_equivariant(getkey, spatial_dims):
    grid = GRIDS[spatial_dims]
    x = _frames(getkey(), 8, 2, grid)
    nu = (1,) * spatial_dims
    flow = dr.metrics.TranslationFlow(nu)
    common = dict(spatial_dims=spatial_dims, dtype=jnp.float32)
    grnn = dr.models.FlowEquivariantRNN(2, 3, velocities=0, key=getkey(), **common)
    grnn_plus = dr.models.FlowEquivariantRNN(
        2, 3, velocities=1, learned_shifts=True, key=getkey(), **common
    )
    plain = dr.models.FrameRNN(2, 3, grid, hidden_size=32, key=getkey(), dtype=jnp.float32)
    errors = {
        "G-RNN": dr.metrics.equivariance_error(grnn, x, flow, lifted=False),
        "G-RNN+": dr.metrics.equivariance_error(grnn_plus, x, flow),
        "plain": dr.metrics.equivariance_error(plain, x, flow),
    }
    for name, err in errors.items():
        assert float(jnp.max(err)) > 1e-2, name
    # the measure itself is not biased upwards: ν̂ = 0 (no flow) gives exactly 0 for a control
    static = dr.metrics.equivariance_error(grnn, x, dr.metrics.TranslationFlow((0,) * spatial_dims))
    assert float(jnp.max(static)) == 0.0


def test_metric_detects_a_wrong_relabelling(getkey):
    """The lifted comparison must pair ν with ν − ν̂: pairing ν with ν (no relabelling) fails."""
    model = dr.models.FlowEquivariantRNN(1, 2, velocities=1, spatial_dims=1, key=getkey())
    x = jr.normal(getkey(), (6, 1, 11))
    flow = dr.metrics.TranslationFlow(1)
    h_moved = model.lifted(flow(x))
    h = model.lifted(x)
    wrong = jnp.linalg.norm(h_moved - flow(h)) / jnp.linalg.norm(h_moved)
    assert float(wrong) > 1e-2
    assert float(jnp.max(dr.metrics.equivariance_error(model, x, flow))) < 1e-12


@pytest.mark.parametrize("grid, r", [((5,), 2), ((3, 3), 1)])
def test_full_velocity_group_makes_pooling_and_prediction_equivariant(getkey, grid, r):
    """When V holds every velocity modulo the grid ({-2..2} on a 5-ring, {-1..1}² on a 3×3
    torus), relabelling by ν̂ permutes V, so the max-pooled output and the whole autoregressive
    predictor (circular decoder) are exactly flow-equivariant; this checks the time alignment
    of the predicted frames: prediction k is frame n_obs + k, moved by (n_obs + k)·ν̂."""
    d = len(grid)
    # tanh and a linear decoder: no dead ReLUs that could make the predictions constant
    rnn = dr.models.FlowEquivariantRNN(
        1, 2, velocities=r, spatial_dims=d, activation="tanh", key=getkey(), dtype=jnp.float32
    )
    dec = dr.models.ConvDecoder(
        2, 1, spatial_dims=d, n_layers=0, key=getkey(), dtype=jnp.float32
    )
    pred = dr.models.NextFramePredictor(rnn, dec)
    nu = (1,) * d
    flow = dr.metrics.TranslationFlow(nu)
    x = _frames(getkey(), 4, 1, grid)
    assert float(jnp.max(dr.metrics.equivariance_error(rnn, x, flow, lifted=False))) < 1e-5
    out, out_moved = pred(x, 3), pred(flow(x), 3)
    expected = dr.metrics.TranslationFlow(nu)(jnp.concatenate([x, out]))[4:]
    np.testing.assert_allclose(np.asarray(out_moved), np.asarray(expected), atol=1e-5)
    assert float(jnp.max(jnp.abs(out_moved - out))) > 1e-3  # the flow did move the predictions


# ----------------------------------------------------------------------------------------------
# Recurrence against an independent float64 NumPy loop


def _np_circ_xcorr(x, k):
    """Explicit circular cross-correlation: y[o, i] = Σ_c Σ_j k[o, c, j] x[c, (i + j − p) % n]."""
    cout, cin = k.shape[:2]
    grid = x.shape[1:]
    y = np.zeros((cout,) + grid)
    for o in range(cout):
        for c in range(cin):
            for j in np.ndindex(*k.shape[2:]):
                idx = np.ix_(
                    *[(np.arange(n) + jj - ks // 2) % n for n, jj, ks in zip(grid, j, k.shape[2:])]
                )
                y[o] += k[(o, c) + j] * x[c][idx]
    return y


def _np_fernn(model, frames):
    U, W = np.asarray(model.U, np.float64), np.asarray(model.W, np.float64)
    axes = tuple(range(1, 1 + model.spatial_dims))
    act = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh}[model.activation]
    grid = frames.shape[2:]
    h = np.zeros((len(model.velocities), model.hidden_channels) + grid)
    out = []
    for f in np.asarray(frames, np.float64):
        drive = _np_circ_xcorr(f, U)
        new = np.empty_like(h)
        for i, v in enumerate(model.velocities):
            if model.learned_shifts:
                ks = np.asarray(model.shift_kernels[i], np.float64)
                shifted = np.stack(
                    [_np_circ_xcorr(h[i][c : c + 1], ks[None, None])[0] for c in range(h.shape[1])]
                )
            else:
                shifted = np.roll(h[i], v, axis=axes)
            new[i] = act(_np_circ_xcorr(shifted, W) + drive)
        h = new
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize(
    "spatial_dims, velocities, learned, activation, grid",
    [
        (1, 2, False, "tanh", (9,)),
        (2, 1, False, "relu", (5, 6)),
        (2, [(0, 0), (0, 2), (-1, 1)], False, "tanh", (5, 6)),
        (2, 1, True, "tanh", (5, 6)),
    ],
)
def test_recurrence_matches_numpy(getkey, spatial_dims, velocities, learned, activation, grid):
    model = dr.models.FlowEquivariantRNN(
        2, 3, velocities=velocities, spatial_dims=spatial_dims, activation=activation,
        learned_shifts=learned, key=getkey(),
    )
    x = jr.normal(getkey(), (4, 2) + grid)
    ref = _np_fernn(model, np.asarray(x))
    got = model.lifted(x)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-12)


def test_pooling_options(getkey):
    key = getkey()
    x = jr.normal(getkey(), (3, 1, 8))
    lifted = None
    for pool, fn in [("max", np.max), ("mean", np.mean), ("sum", np.sum)]:
        m = dr.models.FlowEquivariantRNN(1, 2, velocities=1, spatial_dims=1, pool=pool, key=key)
        if lifted is None:
            lifted = np.asarray(m.lifted(x))
        np.testing.assert_allclose(np.asarray(m(x)), fn(lifted, axis=1), rtol=1e-12)


def test_frame_rnn_matches_numpy(getkey):
    m = dr.models.FrameRNN(2, 3, (4, 5), hidden_size=7, key=getkey())
    x = np.asarray(jr.normal(getkey(), (5, 2, 4, 5)))
    h = np.zeros(7)
    ref = []
    for f in x:
        h = np.tanh(np.asarray(m.W) @ h + np.asarray(m.U) @ f.ravel() + np.asarray(m.b))
        ref.append((np.asarray(m.C) @ h + np.asarray(m.c)).reshape(3, 4, 5))
    np.testing.assert_allclose(np.asarray(m(jnp.asarray(x))), np.stack(ref), rtol=1e-10)


def test_next_frame_predictor(getkey):
    rnn = dr.models.FlowEquivariantRNN(1, 3, velocities=1, spatial_dims=2, key=getkey())
    dec = dr.models.ConvDecoder(3, 1, spatial_dims=2, key=getkey())
    pred = dr.models.NextFramePredictor(rnn, dec)
    x = jr.normal(getkey(), (5, 1, 6, 7))
    out = pred(x, 3)
    assert out.shape == (3, 1, 6, 7)
    # step by step: read the observed frames, then decode the advanced state, feed it back
    h = rnn.initial_hidden((6, 7))
    for f in x:
        h = rnn.cell(h, f)
    feats = rnn.features(h)
    for k in range(3):
        shifted = jnp.stack([jnp.roll(h[i], v, axis=(1, 2)) for i, v in enumerate(rnn.velocities)])
        frame = dec(shifted.max(axis=0))
        np.testing.assert_allclose(np.asarray(out[k]), np.asarray(frame), rtol=1e-10)
        h = rnn.cell(h, frame)
    head = dr.models.GridClassifierHead(3, 10, key=getkey())
    feats = feats[None]
    ref = np.asarray(head.A) @ np.asarray(feats[-1]).mean(axis=(1, 2)) + np.asarray(head.a)
    np.testing.assert_allclose(np.asarray(head(feats)), ref, rtol=1e-10)


def test_detach_feedback_gradient(getkey):
    """`detach_feedback=True` leaves the outputs unchanged and gives the gradient of the same
    loss with the fed-back predictions frozen: rebuilt here by feeding the model its own
    predictions as constant inputs (teacher forcing) and decoding every advanced state."""
    rnn = dr.models.FlowEquivariantRNN(
        1, 2, velocities=1, spatial_dims=1, activation="tanh", key=getkey()
    )
    dec = dr.models.ConvDecoder(2, 1, spatial_dims=1, n_layers=0, key=getkey())
    x = jr.normal(getkey(), (3, 1, 6))
    y = jr.normal(getkey(), (4, 1, 6))
    full = dr.models.NextFramePredictor(rnn, dec)
    det = dr.models.NextFramePredictor(rnn, dec, detach_feedback=True)
    np.testing.assert_allclose(np.asarray(det(x, 4)), np.asarray(full(x, 4)), rtol=1e-12)

    def loss(m):
        return jnp.sum((m(x, 4) - y) ** 2)

    def frozen_loss(m):
        fed = jax.lax.stop_gradient(m(x, 4))[:-1]
        hs = m.rnn.hidden_states(jnp.concatenate([x, fed]))
        preds = jax.vmap(m.predict_next)(hs[2:])
        return jnp.sum((preds - y) ** 2)

    grad = lambda f, m: eqx.filter_grad(f)(m).rnn.W
    g_det, g_ref, g_full = grad(loss, det), grad(frozen_loss, full), grad(loss, full)
    np.testing.assert_allclose(np.asarray(g_det), np.asarray(g_ref), rtol=1e-9, atol=1e-12)
    assert float(jnp.max(jnp.abs(g_full - g_det))) > 1e-4 * float(jnp.max(jnp.abs(g_full)))


# ----------------------------------------------------------------------------------------------
# Flowing digits


@pytest.mark.parametrize("grid, velocities", [((12, 10), 2), (16, [-2, 1, 3])])
def test_flowing_digits_move(getkey, grid, velocities):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    data = dr.datasets.flowing_digits(6, n_frames=7, grid=grid, velocities=velocities, key=getkey())
    frames, labels, vel = data
    g = (grid,) if isinstance(grid, int) else grid
    d = len(g)
    assert frames.shape == (6, 7, 1) + g and frames.dtype == jnp.float32
    assert labels.shape == (6,) and vel.shape == (6, d)
    allowed = {tuple(v) for v in np.atleast_2d(np.asarray(velocities).reshape(-1, d))} if not \
        isinstance(velocities, int) else None
    digits = load_digits()
    frames, labels, vel = np.asarray(frames), np.asarray(labels), np.asarray(vel)
    for i in range(6):
        if allowed is not None:
            assert tuple(vel[i]) in allowed
        else:
            assert np.all(np.abs(vel[i]) <= velocities)
        for t in range(7):
            np.testing.assert_array_equal(
                frames[i, t, 0], np.roll(frames[i, 0, 0], tuple(t * vel[i]), axis=tuple(range(d)))
            )
        # frame 0 holds one image of the labelled class (same multiset of pixel values)
        imgs = digits.images[digits.target == labels[i]] / 16.0
        if d == 1:
            prof = imgs.sum(axis=1)
            imgs = prof / prof.max(axis=1, keepdims=True)
        nz = np.sort(frames[i, 0, 0][frames[i, 0, 0] > 0])
        candidates = [np.sort(im[im > 0].ravel()) for im in imgs]
        assert any(c.shape == nz.shape and np.allclose(c, nz, atol=1e-6) for c in candidates)


def test_flowing_digits_two_digits_and_velocity_subset(getkey):
    pytest.importorskip("sklearn")
    train_v = [(1, 0), (0, 1)]
    frames, labels, vel = dr.datasets.flowing_digits(
        20, n_frames=3, grid=(16, 16), velocities=train_v, n_digits=2, split="test", key=getkey()
    )
    assert frames.shape == (20, 3, 1, 16, 16) and labels.shape == (20, 2)
    assert vel.shape == (20, 2, 2)
    assert {tuple(v) for v in np.asarray(vel).reshape(-1, 2)} <= set(train_v)
    assert float(frames.max()) <= 1.0 and float(frames.min()) >= 0.0


# ----------------------------------------------------------------------------------------------
# Bad input


def test_bad_inputs(getkey):
    m2 = dr.models.FlowEquivariantRNN(2, 3, velocities=1, kernel_size=5, key=getkey())
    with pytest.raises(DynrnnValueError, match="smaller than the kernel"):
        m2(jnp.zeros((3, 2, 4, 8)))  # kernel 5 > grid axis 4
    with pytest.raises(DynrnnValueError, match="grid dimension"):
        m2(jnp.zeros((3, 2, 8)))  # 1-D frames for a 2-D model
    with pytest.raises(DynrnnValueError, match="vmap"):
        m2.lifted(jnp.zeros((2, 3, 2, 8, 8)))  # a batch
    with pytest.raises(DynrnnValueError, match="channel"):
        m2(jnp.zeros((3, 1, 8, 8)))
    gp = dr.models.FlowEquivariantRNN(
        1, 2, velocities=3, spatial_dims=1, learned_shifts=True, key=getkey()
    )
    with pytest.raises(DynrnnValueError, match=">= 7"):
        gp(jnp.zeros((2, 1, 6)))  # learned 7-wide shift kernel on a 6-point ring
    with pytest.raises(DynrnnValueError, match="odd"):
        dr.models.FlowEquivariantRNN(1, 2, velocities=1, kernel_size=4, key=getkey())
    with pytest.raises(DynrnnValueError, match="spatial_dims"):
        dr.models.FlowEquivariantRNN(1, 2, velocities=1, spatial_dims=3, key=getkey())
    with pytest.raises(DynrnnValueError, match="length spatial_dims=2"):
        dr.models.FlowEquivariantRNN(1, 2, velocities=[(0, 1, 0)], key=getkey())
    with pytest.raises(DynrnnValueError, match="r >= 0"):
        dr.models.FlowEquivariantRNN(1, 2, velocities=-1, key=getkey())
    with pytest.raises(DynrnnValueError, match="pool"):
        dr.models.FlowEquivariantRNN(1, 2, velocities=1, pool="min", key=getkey())

    m1 = dr.models.FlowEquivariantRNN(1, 2, velocities=1, spatial_dims=1, key=getkey())
    x = jnp.zeros((3, 1, 9))
    with pytest.raises(DynrnnValueError, match="not in the model's velocity set"):
        dr.metrics.equivariance_error(m1, x, dr.metrics.TranslationFlow(2))
    with pytest.raises(DynrnnValueError, match="1-D grids"):
        dr.metrics.equivariance_error(m1, x, dr.metrics.TranslationFlow((1, 0)))
    with pytest.raises(DynrnnTypeError, match="TranslationFlow"):
        dr.metrics.equivariance_error(m1, x, (1,))
    plain = dr.models.FrameRNN(1, 2, 9, hidden_size=4, key=getkey())
    with pytest.raises(DynrnnTypeError, match="velocity axis"):
        dr.metrics.equivariance_error(plain, x, dr.metrics.TranslationFlow(1), lifted=True)
    with pytest.raises(DynrnnValueError, match="grid"):
        plain(jnp.zeros((3, 1, 10)))
    with pytest.raises(DynrnnValueError, match="integer"):
        dr.metrics.TranslationFlow(0.5)


def test_flowing_digits_bad_input_and_missing_sklearn(getkey, monkeypatch):
    with pytest.raises(DynrnnValueError, match=">= 8"):
        dr.datasets.flowing_digits(2, n_frames=3, grid=(6, 16), velocities=1, key=getkey())
    with pytest.raises(DynrnnValueError, match="2-component"):
        dr.datasets.flowing_digits(2, n_frames=3, grid=(16, 16), velocities=[1, 2], key=getkey())
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"dynrnn\[digits\]"):
        dr.datasets.flowing_digits(2, n_frames=3, grid=16, velocities=1, key=getkey())
