"""`dr.compare`, the `dynrnn compare` command and the tasks it trains on."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import dynrnn as dr
from dynrnn._errors import DynrnnValueError


TINY = dict(vocab_size=16, seq_len=12, n_pairs=2, n_train=32, n_test=16)


def test_mqar_examples_answer_their_queries(getkey):
    V, Lq, P = 40, 32, 6
    x, y = (np.asarray(a) for a in dr.tasks.mqar(getkey(), 50, vocab_size=V, seq_len=Lq,
                                                  n_pairs=P))
    assert x.shape == y.shape == (50, Lq)
    for xi, yi in zip(x, y):
        keys, vals = xi[0:2 * P:2], xi[1:2 * P:2]
        assert len(set(keys)) == P and (keys >= 1).all() and (keys < V // 2).all()
        assert len(set(vals)) == P and (vals >= V // 2).all() and (vals < V).all()
        lookup = dict(zip(keys.tolist(), vals.tolist()))
        q = np.flatnonzero(yi != dr.tasks.IGNORE)
        assert len(q) == P and (q >= 2 * P).all() and ((q - 2 * P) % 2 == 0).all()
        assert sorted(xi[q].tolist()) == sorted(keys.tolist())  # every key queried once
        assert all(lookup[int(xi[i])] == yi[i] for i in q)
        rest = np.setdiff1d(np.arange(2 * P, Lq), q)
        assert (xi[rest] == 0).all()


def test_mqar_is_deterministic_and_power_law(getkey):
    k = getkey()
    a = dr.tasks.mqar(k, 200, vocab_size=64, seq_len=64, n_pairs=4)
    b = dr.tasks.mqar(k, 200, vocab_size=64, seq_len=64, n_pairs=4)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    c = dr.tasks.mqar(getkey(), 200, vocab_size=64, seq_len=64, n_pairs=4)
    assert (np.asarray(a[0]) != np.asarray(c[0])).any()
    # p(g) ∝ (g+1)^{a−1} with a = 0.01 puts most queries near the context: the first of the 28
    # gap slots is drawn with probability ~1/H(28) ≈ 0.25 per draw, uniform would give 1/28
    gaps = (np.flatnonzero(np.asarray(a[1]).ravel() != -1) % 64 - 8) // 2
    assert np.mean(gaps == 0) > 0.15


def test_mqar_rejects_impossible_sizes(getkey):
    with pytest.raises(DynrnnValueError, match="4·n_pairs"):
        dr.tasks.mqar(getkey(), 4, seq_len=16, n_pairs=5)
    with pytest.raises(DynrnnValueError, match="key tokens"):
        dr.tasks.mqar(getkey(), 4, vocab_size=8, seq_len=64, n_pairs=8)


@pytest.fixture(scope="module")
def tiny_result():
    models = {"linear": {"mixer": "linear", "d_qk": 4}, "qlstm": "qlstm"}
    return dr.compare(models, {"mqar": dr.tasks.MQAR(**TINY)}, n_steps=3, batch_size=4,
                      d_model=8, key=jr.PRNGKey(0))


def test_compare_returns_dataset_and_table(tiny_result):
    ds = tiny_result
    assert isinstance(ds, xr.Dataset)
    assert ds["score"].dims == ("model", "task")
    assert list(ds["model"].values) == ["linear", "qlstm"] and list(ds["task"].values) == ["mqar"]
    for v in ("score", "parameters", "state_size", "train_time", "final_loss"):
        assert np.isfinite(ds[v].values).all(), v
    assert ((ds["score"] >= 0) & (ds["score"] <= 1)).all()
    # state sizes from the architectures' definitions: linear attention N = d_qk·d per layer,
    # the qLSTM 2·hidden = 2·(2·d) per layer (state and convolution window, as the reference)
    assert int(ds["state_size"].sel(model="linear", task="mqar")) == 2 * 4 * 8
    assert int(ds["state_size"].sel(model="qlstm", task="mqar")) == 2 * 2 * 16
    # parameters: counted independently for the linear-attention model
    d, V, Lq = 8, TINY["vocab_size"], TINY["seq_len"]
    per_layer = (d * 8 + 8) + (d * d + d) + (d * d + d) + 2 * d  # W_qk, W_v, out, norm
    expected = V * d + Lq * d + 2 * per_layer + 2 * d + (d * V + V)
    assert int(ds["parameters"].sel(model="linear", task="mqar")) == expected
    table = dr.training.to_markdown(ds)
    lines = table.splitlines()
    assert lines[0].startswith("| task | model | metric | score")
    assert len(lines) == 4 and any("| qlstm |" in x for x in lines)


def test_compare_rejects_unknown_names():
    with pytest.raises(DynrnnValueError, match="unknown mixer"):
        dr.compare({"x": "transformer"}, ["mqar"], n_steps=1, key=jr.PRNGKey(0))
    with pytest.raises(DynrnnValueError, match="task `kind`"):
        dr.compare(["s6"], ["imagenet"], n_steps=1, key=jr.PRNGKey(0))


def test_cli_compare_on_a_tiny_config(tmp_path, capsys):
    from dynrnn.cli import main

    cfg = tmp_path / "cmp.toml"
    cfg.write_text(
        "n_steps = 2\nbatch_size = 4\nd_model = 8\nseed = 1\n"
        'output = "out.nc"\nmarkdown = "out.md"\n'
        '[models.lru]\nmixer = "lru"\nd_state = 4\n'
        "[tasks.mqar]\nkind = \"mqar\"\nvocab_size = 16\nseq_len = 12\nn_pairs = 2\n"
        "n_train = 16\nn_test = 8\n"
    )
    assert main(["compare", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "| mqar | lru | accuracy |" in out
    ds = xr.open_dataset(tmp_path / "out.nc", engine="h5netcdf")
    assert ds["score"].shape == (1, 1) and float(ds["parameters"].values.squeeze()) > 0
    ds.close()
    assert (tmp_path / "out.md").read_text().startswith("| task |")
    bad = tmp_path / "bad.toml"
    bad.write_text("n_steps = 2\nmodels = ['s6']\ntasks = ['mqar']\nlr = 3\n")
    assert main(["compare", str(bad)]) == 1
    assert "unknown key" in capsys.readouterr().err


def test_sequential_digits_data(getkey):
    pytest.importorskip("sklearn")
    data = dr.tasks.SequentialDigits().make_data(getkey())
    assert data.train_inputs.shape[1:] == (64, 1) and data.test_inputs.shape[1:] == (64, 1)
    assert data.train_inputs.shape[0] + data.test_inputs.shape[0] == 1797
    assert float(data.train_inputs.max()) == 1.0 and float(data.train_inputs.min()) == 0.0


@pytest.mark.slow
def test_lorenz_reconstruction_task_on_shared_data(shared_data, getkey):
    train = np.load(shared_data / "lorenz63_gtf" / "lorenz63_on0.05_train.npy")[:20_000]
    test = np.load(shared_data / "lorenz63_gtf" / "lorenz63_test.npy")[:3_000]
    task = dr.tasks.Lorenz63Reconstruction(train=train, test=test, seq_len=32, n_windows=256,
                                           n_generate=3_000)
    ds = dr.compare(["s6"], {"lorenz63": task}, n_steps=300, batch_size=16, d_model=16,
                    key=getkey())
    assert str(ds["metric"].values[0]) == "D_stsp"
    assert np.isfinite(ds["score"].item()) and 0 <= ds["score_D_H"].item() <= 1


def test_lorenz_generate_keeps_model_precision(getkey):
    """Free-running generation from a float32 context with a float64 model: the carried window
    takes the model's precision, and the first generated point is the model's prediction."""
    task = dr.tasks.Lorenz63Reconstruction(seq_len=8)
    model = task.make_model("linear", d_model=8, n_layers=1, key=getkey())
    assert jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))[0].dtype == jnp.float64
    ctx = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    gen = task.generate(model, jnp.asarray(ctx), 5)
    assert gen.shape == (5, 3) and gen.dtype == jnp.float64
    np.testing.assert_allclose(gen[0], model(jnp.asarray(ctx, jnp.float64))[-1], rtol=1e-12)
