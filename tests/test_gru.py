"""`dr.models.GRU` against independent references: a float64 NumPy loop of the GRU equations
and PyTorch's `nn.GRUCell` with the same weights (skipped without torch)."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr


def numpy_gru(model, h, u):
    """Cho et al. 2014 in PyTorch's gate order (r, z, n), written out in NumPy."""
    W_ih, W_hh = np.asarray(model.weight_ih), np.asarray(model.weight_hh)
    b_ih, b_hh = np.asarray(model.bias_ih), np.asarray(model.bias_hh)
    H = W_hh.shape[1]
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    gi = W_ih @ u + b_ih if u is not None else b_ih
    gh = W_hh @ h + b_hh
    r = sig(gi[:H] + gh[:H])
    z = sig(gi[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
    return (1 - z) * n + z * h


@pytest.mark.parametrize("inputs", [0, 3])
def test_gru_matches_numpy_loop(getkey, inputs):
    m = dr.models.GRU(latent=6, obs=2, inputs=inputs, key=getkey())
    h = np.asarray(jr.uniform(getkey(), (6,), minval=-0.9, maxval=0.9))
    us = np.asarray(jr.normal(getkey(), (25, inputs))) if inputs else None
    states = np.asarray(m.rollout(jnp.asarray(h), 25, None if us is None else jnp.asarray(us)))
    for t in range(25):
        h = numpy_gru(m, h, None if us is None else us[t])
        np.testing.assert_allclose(states[t], h, rtol=1e-12, atol=1e-13)
    assert np.all(np.abs(states) < 1)  # convex combinations of h and a tanh


def test_gru_matches_torch_grucell(getkey):
    torch = pytest.importorskip("torch")
    m = dr.models.GRU(latent=5, obs=5, inputs=4, key=getkey())
    cell = torch.nn.GRUCell(4, 5).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(np.array(m.weight_ih)))
        cell.weight_hh.copy_(torch.from_numpy(np.array(m.weight_hh)))
        cell.bias_ih.copy_(torch.from_numpy(np.array(m.bias_ih)))
        cell.bias_hh.copy_(torch.from_numpy(np.array(m.bias_hh)))
    u = np.array(jr.normal(getkey(), (30, 4)))
    h0 = np.array(0.5 * jr.normal(getkey(), (5,)))
    ours = np.asarray(m.rollout(jnp.asarray(h0), 30, jnp.asarray(u)))
    h = torch.from_numpy(h0)[None]
    for t in range(30):
        h = cell(torch.from_numpy(u[t])[None], h)
        np.testing.assert_allclose(ours[t], h[0].detach().numpy(), rtol=1e-12, atol=1e-13)


def test_gru_init_and_defaults(getkey):
    m = dr.models.GRU(latent=16, key=getkey())
    bound = 1 / np.sqrt(16)  # PyTorch's U(±1/√H)
    for w in (m.weight_hh, m.bias_ih, m.bias_hh):
        assert np.abs(np.asarray(w)).max() <= bound
    assert isinstance(m.observation, dr.models.Affine) and m.n_obs == 16 and m.n_inputs == 0
    with pytest.raises(ValueError, match="u"):
        m.step(jnp.zeros(16), jnp.ones(2))
