"""dynrnn's liquid networks against the reference implementation ncps (PyTorch): identical
wirings for the same arguments, and models imported with `dr.interop.from_ncps` giving the same
outputs (including irregular and batched time spans). Skipped where torch or ncps is missing."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest


torch = pytest.importorskip("torch")
ncps_torch = pytest.importorskip("ncps.torch")
ncps_wirings = pytest.importorskip("ncps.wirings")

import dynrnn as dr  # noqa: E402


W = dr.models.wirings


@pytest.mark.parametrize(
    "ours, theirs, inputs",
    [
        (lambda: W.FullyConnected(7), lambda: ncps_wirings.FullyConnected(7), 3),
        (lambda: W.FullyConnected(6, 2, seed=5, self_connections=False),
         lambda: ncps_wirings.FullyConnected(6, 2, 5, False), 4),
        (lambda: W.Random(9, 3, sparsity=0.4, seed=3),
         lambda: ncps_wirings.Random(9, 3, 0.4, 3), 4),
        (lambda: W.NCP(10, 8, 4, 4, 3, 5, 3, seed=7),
         lambda: ncps_wirings.NCP(10, 8, 4, 4, 3, 5, 3, seed=7), 6),
        (lambda: W.AutoNCP(20, 5), lambda: ncps_wirings.AutoNCP(20, 5), 6),
        (lambda: W.AutoNCP(32, 4, 0.3, seed=1), lambda: ncps_wirings.AutoNCP(32, 4, 0.3, 1), 3),
    ],
)
def test_wirings_equal_ncps(ours, theirs, inputs):
    built = ours().build(inputs)
    ref = theirs()
    ref.build(inputs)
    np.testing.assert_array_equal(built.adjacency, ref.adjacency_matrix)
    np.testing.assert_array_equal(built.sensory_adjacency, ref.sensory_adjacency_matrix)
    assert built.output_dim == ref.output_dim
    assert built == dr.interop.wiring_from_ncps(ref)


def _run_ncps(ref, x, ts, dtype=torch.float64):
    """ncps on a batch `(B, L, in)`, one sample at a time (ncps mis-broadcasts batched time
    spans, ncps#81), from zero state."""
    outs, finals = [], []
    for b in range(x.shape[0]):
        h0 = torch.zeros(1, ref.state_size, dtype=dtype)
        hx = (h0, h0.clone()) if ref.use_mixed else h0
        y, h = ref(torch.tensor(x[b : b + 1], dtype=dtype), hx,
                   timespans=torch.tensor(ts[b : b + 1], dtype=dtype))
        outs.append(y[0].detach().numpy())
        finals.append((h[0] if ref.use_mixed else h)[0].detach().numpy())
    return np.stack(outs), np.stack(finals)


CFC_CONFIGS = {
    "plain": dict(units=8),
    "no_backbone": dict(units=8, backbone_layers=0),
    "backbone2_proj_mixed": dict(units=8, backbone_layers=2, backbone_units=16, proj_size=3,
                                 mixed_memory=True),
    "wired": dict(units="ncp"),
    "wired_mixed_proj": dict(units="ncp", mixed_memory=True, proj_size=2),
}


@pytest.fixture
def rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize("config", list(CFC_CONFIGS))
def test_cfc_from_ncps_same_outputs(rng, mode, config):
    torch.manual_seed(int(rng.integers(2**31)))
    kw = dict(CFC_CONFIGS[config])
    units = kw.pop("units")
    if units == "ncp":
        units = ncps_wirings.AutoNCP(12, 3, seed=int(rng.integers(1000)))
    ref = ncps_torch.CfC(4, units, mode=mode, **kw).double()
    model = dr.interop.from_ncps(ref)
    # batch == units for the unwired models: the case ncps gets silently wrong when batched.
    batch = 8
    x = rng.normal(size=(batch, 9, 4))
    ts = rng.uniform(0.05, 3.0, size=(batch, 9))
    want, final = _run_ncps(ref, x, ts)
    got, states = model.batch(jnp.asarray(x), jnp.asarray(ts), return_state=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)  # float64 on both sides
    # Final states; a wired CfC orders its state by neuron id, ncps layer by layer.
    order = (np.concatenate([np.asarray(layer) for layer in model.wiring.layers])
             if model.wiring is not None else np.arange(model.units))
    np.testing.assert_allclose(np.asarray(states[:, -1, : model.units])[:, order], final,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "units, kw",
    [
        (6, {}),
        ("ncp", {}),
        (5, dict(mixed_memory=True)),
        (5, dict(implicit_param_constraints=False, ode_unfolds=3)),
    ],
    ids=["fully_connected", "ncp", "mixed", "clipped"],
)
def test_ltc_from_ncps_same_outputs(rng, units, kw):
    torch.manual_seed(int(rng.integers(2**31)))
    if units == "ncp":
        units = ncps_wirings.AutoNCP(10, 2)
    ref = ncps_torch.LTC(3, units, **kw).double()
    model = dr.interop.from_ncps(ref)
    x = rng.normal(size=(5, 7, 3))
    ts = rng.uniform(0.05, 3.0, size=(5, 7))
    want, final = _run_ncps(ref, x, ts)
    got, states = model.batch(jnp.asarray(x), jnp.asarray(ts), return_state=True)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states[:, -1, : model.units], final, rtol=1e-10, atol=1e-12)


def test_float32_import_within_1e5(rng):
    torch.manual_seed(0)
    ref = ncps_torch.CfC(4, 16, proj_size=2)
    model = dr.interop.from_ncps(ref, dtype=jnp.float32)
    assert model.cells[0].ff1[0].dtype == jnp.float32
    x = rng.normal(size=(1, 30, 4)).astype(np.float32)
    ts = rng.uniform(0.1, 2.0, size=(1, 30)).astype(np.float32)
    want, _ = _run_ncps(ref, x, ts, dtype=torch.float32)
    got = model(jnp.asarray(x[0]), timespans=jnp.asarray(ts[0]))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-5)


def test_import_from_state_dict(rng):
    torch.manual_seed(1)
    wiring = ncps_wirings.AutoNCP(12, 3)
    ref = ncps_torch.CfC(4, wiring, mode="no_gate").double()
    x = rng.normal(size=(1, 6, 4))
    ts = rng.uniform(0.1, 2.0, size=(1, 6))
    want, _ = _run_ncps(ref, x, ts)
    sd = ref.state_dict()
    model = dr.interop.from_ncps(sd, kind="cfc", wiring=wiring, mode="no_gate")
    np.testing.assert_allclose(model(jnp.asarray(x[0]), timespans=jnp.asarray(ts[0])), want[0],
                               rtol=1e-10)
    # Our own wiring description of the same arguments works as well.
    model = dr.interop.from_ncps(sd, kind="cfc", wiring=W.AutoNCP(12, 3), mode="no_gate")
    np.testing.assert_allclose(model(jnp.asarray(x[0]), timespans=jnp.asarray(ts[0])), want[0],
                               rtol=1e-10)
    with pytest.raises(ValueError, match="wiring"):
        dr.interop.from_ncps(sd, kind="cfc", wiring=W.AutoNCP(12, 3, seed=1), mode="no_gate")
    with pytest.raises(ValueError, match="wiring"):
        dr.interop.from_ncps(sd, kind="cfc", mode="no_gate")

    ltc = ncps_torch.LTC(4, 6, mixed_memory=True).double()
    want, _ = _run_ncps(ltc, x, ts)
    model = dr.interop.from_ncps(ltc.state_dict(), kind="ltc")
    np.testing.assert_allclose(model(jnp.asarray(x[0]), timespans=jnp.asarray(ts[0])), want[0],
                               rtol=1e-10)
    with pytest.raises(ValueError, match="kind"):
        dr.interop.from_ncps(ltc.state_dict())
    with pytest.raises(TypeError, match="CfC"):
        dr.interop.from_ncps(torch.nn.Linear(2, 2))
