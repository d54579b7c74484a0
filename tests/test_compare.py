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
                      d_model=8, seeds=2, learning_rates=[1e-3, 3e-3], key=jr.PRNGKey(0))


def test_compare_returns_dataset_and_table(tiny_result):
    ds = tiny_result
    assert isinstance(ds, xr.Dataset)
    assert ds["score"].dims == ("model", "task", "seed", "measure")
    assert list(ds["model"].values) == ["linear", "qlstm"] and list(ds["task"].values) == ["mqar"]
    assert list(ds["measure"].values) == ["accuracy"] and list(ds["seed"].values) == [0, 1]
    for v in ("score", "parameters", "state_size", "train_time", "final_loss"):
        assert np.isfinite(ds[v].values).all(), v
    assert ((ds["score"] >= 0) & (ds["score"] <= 1)).all()
    # the learning rate kept is one of the grid, chosen by the median final loss (no
    # validation split in a sequence task) and recorded with the grid searched
    for m in ("linear", "qlstm"):
        setting = str(ds["setting"].sel(model=m, task="mqar").values)
        assert setting in ("learning_rate=0.001", "learning_rate=0.003")
        assert "learning_rate=0.003" in ds.attrs[f"grid {m}/mqar"]
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
    assert lines[0].startswith("| task | model | accuracy |")
    assert len(lines) == 4 and any("| qlstm |" in x for x in lines)
    assert "[" in lines[2]  # median [q25, q75] over the two seeds


def test_seeds_train_as_one_ensemble_equal_to_separate_fits(getkey):
    """Seed s of a family equals member s of fit_ensemble (same data, keys and optimiser):
    compare's seeds are the ensemble's members, not a re-implementation."""
    x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values[:3000], np.float64)
    y = np.asarray(dr.datasets.load("lorenz63_test")["state"].values[:1000], np.float64)
    task = dr.tasks.Reconstruction(train=x, test=y, dt=0.01, seq_len=16, n_generate=300,
                                   validation_fraction=0.2)
    spec = {"type": "GRU", "latent": 4}
    ds = dr.compare({"gru": spec}, {"t": task}, n_steps=6, seeds=2, learning_rates=[2e-3],
                    batch_size=4, measures=["D_stsp"], key=jr.PRNGKey(3), baselines=False)
    assert list(ds["model"].values) == ["gru"]
    k_model, k_fit = jr.split(jr.PRNGKey(3), 3)[1:]
    members = [dr.models.build(spec, obs=3, key=jr.fold_in(jr.fold_in(k_model, 0), s))
               for s in (0, 1)]
    res = dr.fit_ensemble(members, task.train_series(), learning_rates=[2e-3, 2e-3], n_steps=6,
                          batch_size=4, seq_len=16, progress=False,
                          key=jr.fold_in(jr.fold_in(jr.fold_in(k_fit, 0), 0), 0))
    expected = [task.score(m, measures=("D_stsp",))["D_stsp"] for m in res.models]
    np.testing.assert_allclose(ds["score"].sel(measure="D_stsp").values.ravel(), expected,
                               rtol=1e-6)


def test_reconstruction_compare_every_kind_of_model(getkey):
    """A latent family, a regression baseline with a searched grid, the AR baseline and a DSF
    mixer on one reconstruction task: every cell finite, λ_max only for models with a map."""
    x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values[:4000], np.float64)
    y = np.asarray(dr.datasets.load("lorenz63_test")["state"].values[:1200], np.float64)
    task = dr.tasks.Reconstruction(train=x, test=y, dt=0.01, seq_len=16, n_generate=600,
                                   n_windows=64, n_starts=20)
    models = {"shplrnn": {"type": "ShallowPLRNN", "latent": 3, "hidden": 8},
              "esn": {"type": "ESN", "latent": 30, "washout": 20, "spectral_radius": [0.5, 0.9],
                      "leak": 1.0, "ridge": 1e-6},
              "ar": {"type": "AR", "order": [1, 2]},
              "lin": {"mixer": "linear", "d_qk": 4}}
    ds = dr.compare(models, {"l63": task}, n_steps=4, seeds=2, batch_size=4, d_model=8,
                    n_layers=1, key=getkey())
    s = ds["score"].sel(task="l63")
    assert list(ds["measure"].values) == ["D_stsp", "D_H", "PE20", "lambda_max"]
    for m in ("shplrnn", "esn", "ar", "lin"):
        for meas in ("D_stsp", "D_H", "PE20"):
            assert np.isfinite(s.sel(model=m, measure=meas).values).all(), (m, meas)
    assert np.isfinite(s.sel(model=["shplrnn", "esn", "ar"], measure="lambda_max")).all()
    assert np.isnan(s.sel(model="lin", measure="lambda_max")).all()
    assert float(ds["lambda_data"].sel(task="l63")) == pytest.approx(np.nan, nan_ok=True)
    assert "spectral_radius=0.5" in ds.attrs["grid esn/l63"]
    assert "spectral_radius=0.9" in ds.attrs["grid esn/l63"]
    # the AR baseline is deterministic: both seeds score the same
    ar = s.sel(model="ar", measure="D_stsp").values
    assert ar[0] == ar[1]
    # parameters: the ESN's trained read-out plus its fixed reservoir arrays, counted by
    # the number of array elements
    assert int(ds["parameters"].sel(model="esn", task="l63")) == 30 * 30 + 30 * 3 + 30 + 3 * 30 + 3
    table = dr.training.to_markdown(ds)
    assert table.splitlines()[0].startswith("| task | model | D_stsp | D_H | PE20 | lambda_max")
    fig = dr.plot.compare(ds)
    assert len(fig.axes) == 4
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_baselines_join_every_reconstruction_table(getkey):
    """Reviewers ask for the closed-form baselines: compare adds the ESN and the AR model to a
    comparison of reconstruction tasks (with their default grids), not to sequence tasks."""
    x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values[:2500], np.float64)
    y = np.asarray(dr.datasets.load("lorenz63_test")["state"].values[:800], np.float64)
    task = dr.tasks.Reconstruction(train=x, test=y, dt=0.01, seq_len=16, n_starts=10)
    ds = dr.compare({"gru": {"type": "GRU", "latent": 4}}, {"t": task}, n_steps=2,
                    learning_rates=[1e-3], batch_size=4, measures=["D_stsp"], key=getkey())
    assert list(ds["model"].values) == ["gru", "ESN", "AR"]
    assert list(ds["family"].values) == ["GRU", "EchoStateNetwork", "LinearAR"]
    grid = ds.attrs["grid ESN/t"]
    assert grid.count(";") == 11 and "spectral_radius=1.2" in grid  # 3 radii x 2 leaks x 2 ridges
    assert np.isfinite(ds["score"].sel(model=["ESN", "AR"]).values).all()


def test_compare_rejects_bad_tables():
    key = jr.PRNGKey(0)
    with pytest.raises(DynrnnValueError, match=r"models\['x'\].*transformer"):
        dr.compare({"x": "transformer"}, ["mqar"], n_steps=1, key=key)
    with pytest.raises(DynrnnValueError, match=r"models\['x'\]\.type.*Transformerz"):
        dr.compare({"x": {"type": "Transformerz"}}, ["lorenz63"], n_steps=1, key=key)
    with pytest.raises(DynrnnValueError, match="task `kind`.*imagenet"):
        dr.compare(["s6"], ["imagenet"], n_steps=1, key=key)
    with pytest.raises(DynrnnValueError, match=r"tasks\['t'\].*did you mean 'system'"):
        dr.compare(["s6"], {"t": {"kind": "sytem", "system": "Rossler"}}, n_steps=1, key=key)
    with pytest.raises(DynrnnValueError, match="measure.*D_KL"):
        dr.compare(["s6"], ["lorenz63"], n_steps=1, key=key, measures=["D_KL"])
    with pytest.raises(DynrnnValueError, match="non-empty"):
        dr.compare({}, ["lorenz63"], n_steps=1, key=key)
    # a table whose obs does not fit the task's data: named before any training
    with pytest.raises(DynrnnValueError, match=r"models\['g'\]` on `tasks\['lorenz63'\]`.*obs"):
        dr.compare({"g": {"type": "GRU", "latent": 4, "obs": 5}}, ["lorenz63"], n_steps=1,
                   key=key)
    with pytest.raises(DynrnnValueError, match="sequence task"):
        dr.compare({"g": {"type": "GRU", "latent": 4}}, ["mqar"], n_steps=1, key=key)
    with pytest.raises(DynrnnValueError, match="seeds"):
        dr.compare(["s6"], ["lorenz63"], n_steps=1, key=key, seeds=0)


def test_cli_compare_on_a_tiny_config(tmp_path, capsys):
    from dynrnn.cli import main

    cfg = tmp_path / "cmp.toml"
    cfg.write_text(
        "n_steps = 2\nbatch_size = 4\nd_model = 8\nseed = 1\nseeds = 2\n"
        'learning_rates = [1e-3]\nout = "res"\n'
        '[models.lru]\nmixer = "lru"\nd_state = 4\n'
        "[tasks.mqar]\nkind = \"mqar\"\nvocab_size = 16\nseq_len = 12\nn_pairs = 2\n"
        "n_train = 16\nn_test = 8\n"
    )
    assert main(["compare", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "| mqar | lru |" in out
    ds = xr.open_dataset(tmp_path / "res" / "compare.nc", engine="h5netcdf")
    assert ds["score"].shape == (1, 1, 2, 1) and float(ds["parameters"].values.squeeze()) > 0
    ds.close()
    assert (tmp_path / "res" / "compare.md").read_text().startswith("# cmp")
    assert (tmp_path / "res" / "compare.png").stat().st_size > 10_000
    bad = tmp_path / "bad.toml"
    bad.write_text("n_steps = 2\nmodels = ['s6']\ntasks = ['mqar']\nn_step = 3\n")
    assert main(["compare", str(bad)]) == 1
    assert "did you mean 'n_steps'" in capsys.readouterr().err
    bad.write_text("n_steps = 2\nmodels = []\ntasks = ['mqar']\n")
    assert main(["compare", str(bad)]) == 1
    assert "`models` is empty" in capsys.readouterr().err
    bad.write_text("n_steps = 'many'\nmodels = ['s6']\ntasks = ['mqar']\n")
    assert main(["compare", str(bad)]) == 1
    assert "n_steps" in capsys.readouterr().err


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
                    key=getkey(), baselines=False)
    assert str(ds["metric"].values[0]) == "D_stsp"
    s = ds["score"].sel(model="s6", task="lorenz63", seed=0)
    assert np.isfinite(float(s.sel(measure="D_stsp")))
    assert 0 <= float(s.sel(measure="D_H")) <= 1


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


@pytest.mark.parametrize("recipe", ["compare_dsr", "compare_mqar", "compare_lorenz63"])
def test_compare_recipes_are_valid(recipe):
    """The shipped comparison recipes pass the configuration check and name tasks and model
    tables that build (every family on every task's data)."""
    from dynrnn.cli._compare import _fill_latent, load_config
    from dynrnn.training._compare import _check_sizes, _model_specs, _task_specs

    cfg, _ = load_config(f"recipe:{recipe}")
    tasks = _task_specs(cfg["tasks"])
    specs = _model_specs(_fill_latent(cfg["models"], tasks))
    _check_sizes(specs, tasks)
    if recipe == "compare_dsr":
        families = {s["type"] for s in specs.values() if "type" in s}
        assert {"ShallowPLRNN", "PLRNN", "DendPLRNN", "ALRNN", "GRU", "LTC", "CfC", "NeuralODE",
                "NeuralSDE", "LSSL", "EchoStateNetwork", "LinearAR"} <= families
        assert any("mixer" in s for s in specs.values())


@pytest.mark.slow
def test_cli_compare_every_kind_of_family_on_lorenz63(tmp_path, capsys):
    """The issue's acceptance config: ShallowPLRNN, CfC, LTC, NeuralODE, GRU, an echo state
    network and a DSF mixer on a Lorenz-63 task through `dynrnn compare`; every cell of the
    measures that apply is finite (λ_max is NaN only for the mixer, which has no state map).
    About 3 minutes on 2 CPU cores."""
    from dynrnn.cli import main

    cfg = tmp_path / "families.toml"
    cfg.write_text(
        "n_steps = 20\nseeds = 2\nlearning_rates = [1e-3, 5e-3]\nbatch_size = 8\n"
        "d_model = 16\nn_layers = 1\n"
        '[models.ShallowPLRNN]\ntype = "ShallowPLRNN"\nhidden = 16\n'
        '[models.CfC]\ntype = "CfC"\nlatent = 8\nbackbone_units = 8\n'
        '[models.LTC]\ntype = "LTC"\nlatent = 8\n'
        '[models.NeuralODE]\ntype = "NeuralODE"\nwidth = 8\ndepth = 1\n'
        '[models.GRU]\ntype = "GRU"\nlatent = 8\n'
        '[models.ESN]\ntype = "ESN"\nlatent = 50\nspectral_radius = [0.6, 0.9]\n'
        '[models.s6]\nmixer = "s6"\nd_state = 4\n'
        '[tasks.lorenz63]\nkind = "lorenz63"\nseq_len = 16\nn_windows = 64\n'
        "n_generate = 3000\nn_starts = 20\n"
    )
    assert main(["compare", str(cfg), "--out", str(tmp_path / "out")]) == 0
    ds = xr.open_dataset(tmp_path / "out" / "compare.nc", engine="h5netcdf")
    ds.load()
    score = ds["score"].sel(task="lorenz63")
    for m in ds["model"].values:
        for meas in ("D_stsp", "D_H", "PE20"):
            assert np.isfinite(score.sel(model=m, measure=meas).values).all(), (m, meas)
        lam = score.sel(model=m, measure="lambda_max").values
        assert np.isfinite(lam).all() if m != "s6" else np.isnan(lam).all(), m
    assert np.isfinite(ds["train_time"].values).all() and (ds["parameters"].values > 0).all()
    ds.close()
    assert (tmp_path / "out" / "compare.png").exists()
    # the seven tables plus the AR baseline, which compare adds (the ESN is there already)
    assert list(ds["model"].values)[-1] == "AR"
    assert (tmp_path / "out" / "compare.md").read_text().count("| lorenz63 |") == 8
