"""`dr.reconstruct` and `dynrnn reconstruct --data`: settings chosen automatically (issue 22)."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr
from dynrnn.cli import main
from dynrnn.training._reconstruct import (
    MAX_COLLAPSED_RUNS,
    MIN_NOISE_FRACTION,
    VALIDATION_STARTS,
    SeriesAnalysis,
    analyse,
    best_member,
    diagnose,
    parse_budget,
    plan,
    white_noise,
    wiener_denoise,
)


@pytest.fixture(scope="module")
def lorenz():
    x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values, np.float64)
    t = np.asarray(dr.datasets.load("lorenz63_test")["state"].values, np.float64)
    return x[:2400], t[:1200]


@pytest.fixture(scope="module")
def small_run(lorenz):
    x, t = lorenz
    # 20 s buys a two-ensemble grid (adaptive and constant forcing, 8 members) at 40 updates,
    # trained in two processes (`test_workers_do_not_change_the_result` trains it in one)
    return dr.reconstruct(x, test=t, dt=0.01, budget="20s", n_steps=40, key=jr.PRNGKey(1),
                          workers=2)


def test_keeps_the_member_best_on_validation(small_run, lorenz):
    """Score every member ourselves on the held-out end of the training series (free runs
    from `VALIDATION_STARTS` points spread evenly over it, the mean of each measure, and the
    runs each against the whole training series) and check that the kept one is the best
    by the documented rule (lowest rank sum of series D_stsp and series D_H, among the
    members whose validation runs collapsed from at most `MAX_COLLAPSED_RUNS` starts)."""
    r = small_run
    assert len(r.grid) == len(r.members) >= 3
    assert {row["forcing"] for row in r.grid} == {"adaptive", "constant"}
    x, t = lorenz
    s = r.subsample
    # the series D_H: the test's frequency resolution (20 bins of its spectrum) in bins of
    # the compared length, the whole training series here (it is shorter than the runs)
    n = len(x[::s])
    smoothing = min(max(5.0, 20 * n / len(t[::s])), n / 20)
    # the shipped series carries 5 % observation noise: it was denoised before training
    noisy = [j for j, v in enumerate(r.analysis.noise) if v > 0]
    assert noisy and "denoised first" in r.message
    train = (wiener_denoise(x, noisy)[::s] - r.mean) / r.scale
    val = train[len(train) - int(0.2 * len(train)):]
    d_stsp, d_h, series_ds, series_dh = [], [], [], []
    for row, model in zip(r.grid, r.members):
        runs, gens = [], []
        for start in (k * len(val) // VALIDATION_STARTS for k in range(VALIDATION_STARTS)):
            # a free run from a point of the validation piece, 20 000 points long (D_stsp)
            z = model.init_state(jnp.asarray(val[start]))
            zs = jnp.concatenate([z[None], model.rollout(z, 20_000 - 1)])
            gen = np.asarray(jax.vmap(model.observe)(zs))
            gens.append(gen)
            if np.all(np.isfinite(gen)) and np.abs(gen).max() < 1e6:
                runs.append((float(dr.metrics.state_space_divergence(val, gen, method="bins")),
                             float(dr.metrics.power_spectrum_distance(val, gen[: len(val)]))))
            else:
                runs.append((np.inf, 1.0))
        ds, dh = np.mean([u for u, _ in runs]), np.mean([v for _, v in runs])
        assert row["val_D_stsp"] == pytest.approx(ds, rel=1e-3, abs=1e-4)
        assert row["val_D_H"] == pytest.approx(dh, rel=1e-3, abs=1e-4)
        # the ranking measure: each run against the whole training series, averaged
        ps = (np.mean([float(dr.metrics.state_space_divergence(train, g, method="bins"))
                       for g in gens])
              if all(np.all(np.isfinite(g)) and np.abs(g).max() < 1e6 for g in gens)
              else np.inf)
        assert row["series_D_stsp"] == pytest.approx(ps, rel=1e-3, abs=1e-4)
        ph = np.mean([float(dr.metrics.power_spectrum_distance(train, g[:n],
                                                               smoothing=smoothing))
                      if np.all(np.isfinite(g)) and np.abs(g).max() < 1e6 else 1.0
                      for g in gens])
        assert row["series_D_H"] == pytest.approx(ph, rel=1e-3, abs=1e-4)
        series_dh.append(ph)
        d_stsp.append(ds)
        d_h.append(dh)
        series_ds.append(ps)
    # the lowest series D_stsp × series D_H among the members whose validation
    # runs collapsed from at most MAX_COLLAPSED_RUNS starts (all, if none)
    pool = ([i for i, row in enumerate(r.grid) if row["collapsed_runs"] <= MAX_COLLAPSED_RUNS]
            or list(range(len(r.grid))))
    for row in r.grid:
        assert 0 <= row["collapsed_runs"] <= VALIDATION_STARTS
        assert (row["collapsed_runs"] == 0) == (row["verdict"] == "ok")
    products = [series_ds[i] * series_dh[i] for i in pool]
    expected = pool[min(range(len(pool)), key=lambda i: (products[i], series_ds[pool[i]], i))]
    kept = [i for i, row in enumerate(r.grid) if row["kept"]]
    assert kept == [expected]
    assert r.model is r.members[expected]
    assert r.settings["member"] == expected
    assert set(r.measures) >= {"D_stsp", "D_H", "PE20", "lambda_max", "D_H_constant",
                          "D_stsp_data"}
    assert r.verdict in ("ok", "poor", "fixed point", "divergent", "no better than a constant")
    assert r.message and (r.verdict == "ok" or "FAILED" in r.message or "POOR" in r.message)
    # a kept member that collapsed from some validation starts is reported as such
    assert ("validation starts" in r.message) == (r.settings["collapsed_runs"] > 0)
    table = r.grid_markdown()
    assert table.count("\n") == len(r.grid) + 1 and "**yes**" in table


def test_best_member_rule():
    assert best_member([0.3, 0.2, 0.1], [0.1, 0.2, 0.3]) == 2  # products tie: lower D_stsp
    assert best_member([0.2, 0.3, 5.0], [0.05, 0.04, 0.5]) == 0
    assert best_member([0.4, 0.1], [0.1, 0.4]) == 1  # 0.04 each: lower D_stsp
    assert best_member([np.inf, 1.0], [1.0, 0.9]) == 1
    assert best_member([np.nan, np.nan], [1.0, 1.0]) == 0
    assert best_member([0.0, 0.5], [np.inf, 0.1]) == 1  # 0 × inf is not 0
    # Hindmarsh-Rose's two best reservoirs (catalogue, session 21): the rank sum tied and
    # kept the lower D_stsp (0.4593 / 0.2086, test D_H 0.231); the product keeps the one
    # whose D_H is 20 % lower for a D_stsp 0.4 % higher (test 0.153 / 0.144)
    assert best_member([0.4593, 0.4612, 0.5044], [0.2086, 0.1669, 0.3097]) == 1
    # Dadras's 16-member grid (catalogue run, session 10): member 3 (1.54 / 0.198) has the
    # lowest product; with eligibility, only members whose runs did not collapse count
    ds = [11.07, 11.47, 5.835, 1.54, 9.597, 6.828, 12.06, 10.66, 2.668, 11.28, 5.952, 4.726,
          12.2, 8.375, 11.98, 4.265]
    dh = [0.5346, 0.259, 0.2016, 0.1977, 0.4357, 0.2581, 0.6749, 0.5702, 0.1898, 0.5958,
          0.1477, 0.3261, 0.6264, 0.2643, 0.3685, 0.1373]
    ok = [i in (4, 5, 8, 14) for i in range(16)]
    assert best_member(ds, dh) == 3
    assert best_member(ds, dh, ok) == 8
    assert best_member(ds, dh, [False] * 16) == 3  # none eligible: all are considered
    assert best_member(ds, dh, [i == 14 for i in range(16)]) == 14


def test_best_member_ignores_other_members():
    """Which of two members is kept does not depend on the others' scores (the rank sum's
    did: Genesio-Tesi, session 20), and the choice follows the geometric mean, a float64
    loop over the members written here."""
    rng = np.random.default_rng()
    for _ in range(200):
        n = int(rng.integers(2, 16))
        ds, dh = rng.lognormal(-1.0, 1.0, n), rng.uniform(0.03, 0.9, n)
        ds[rng.random(n) < 0.1] = np.inf
        best = best_member(ds, dh)
        means = [math.sqrt(a * b) if math.isfinite(a) else math.inf for a, b in zip(ds, dh)]
        assert means[best] == min(means)
        for _ in range(5):
            keep = rng.random(n) < 0.5
            keep[best] = True
            sub = np.flatnonzero(keep)
            assert sub[best_member(ds[sub], dh[sub])] == best


def test_diagnose_fixed_point_divergence_and_constant():
    t = np.linspace(0, 60, 3000)
    osc = np.stack([np.sin(t), np.cos(1.3 * t)], 1)
    assert diagnose(np.ones((100, 2)), d_h=0.5, d_h_constant=0.8) == "fixed point"
    assert diagnose(np.full((100, 2), np.nan), d_h=1.0, d_h_constant=0.8) == "divergent"
    assert diagnose(osc * 100, d_h=0.1, d_h_constant=0.8) == "divergent"
    assert diagnose(osc, d_h=0.79, d_h_constant=0.8) == "no better than a constant"
    assert diagnose(osc, d_h=0.1, d_h_constant=0.8) == "ok"
    assert diagnose(osc, d_h=0.1, d_h_constant=0.8, d_stsp=3.0, d_stsp_data=0.2) == "poor"
    assert diagnose(osc, d_h=0.1, d_h_constant=0.8, d_stsp=0.9, d_stsp_data=0.2) == "ok"


@pytest.mark.parametrize("kind", ["white noise", "constant", "constant 1-d"])
def test_no_dynamics_is_a_plain_statement(kind):
    rng = np.random.default_rng(0)
    x = {"white noise": rng.normal(size=(4000, 3)), "constant": np.full((4000, 2), 3.5),
         "constant 1-d": np.zeros(3000)}[kind]
    r = dr.reconstruct(x)
    assert r.model is None and r.verdict == "no dynamics"
    assert r.message.startswith("No reconstructable dynamics")
    assert ("constant" if kind.startswith("constant") else "white noise") in r.message


def test_analysis_finds_time_scales():
    t = np.arange(60_000) * 0.01
    # a slow oscillation sampled 5 000 times per period: sub-sampled
    slow = np.stack([np.sin(2 * np.pi * t / 50), np.cos(2 * np.pi * t / 50)], 1)
    a = analyse(slow)
    assert a.period == pytest.approx(5000, rel=0.2) and a.subsample > 10
    assert a.statement is None and a.predictability < 0.05
    # fast spikes on slow bursts: sub-sampling is limited by the fast component
    burst = (np.sin(2 * np.pi * t / 50) > 0) * np.sin(2 * np.pi * t / 0.5)
    b = analyse(np.stack([burst, np.sin(2 * np.pi * t / 50)], 1))
    assert b.subsample <= 5
    # constant channels are set aside
    c = analyse(np.stack([np.sin(t), np.zeros_like(t), np.cos(t)], 1))
    assert c.channels == [0, 2] and c.n_dims == 2


def test_white_observation_noise_is_found_and_removed():
    """A known smooth signal (two incommensurate oscillations per channel) plus white noise of
    a fresh random level: the noise fraction `analyse` reports is the one added, and the
    Wiener filter brings the series closer to the clean signal than the noise left it; clean
    signals and a chaotic map (deterministic, with a flat spectrum) are left alone."""
    rng = np.random.default_rng()
    t = np.arange(40_000, dtype=np.float64)
    clean = np.stack([np.sin(2 * np.pi * t / 41.3) + 0.5 * np.sin(2 * np.pi * t / 17.9 + 1.0),
                      np.cos(2 * np.pi * t / 41.3) + 0.3 * np.cos(2 * np.pi * t / 9.7)], 1)
    clean = (clean - clean.mean(0)) / clean.std(0)
    sigma = rng.uniform(0.04, 0.2)
    noise = sigma * rng.normal(size=clean.shape)
    a = analyse(clean + noise)
    expected = sigma**2 / (1 + sigma**2)  # of the standardised noisy channel's variance
    assert np.allclose(a.noise, expected, rtol=0.15), (a.noise, expected)
    y = wiener_denoise(clean + noise, [0, 1])
    before = np.sqrt(np.mean(noise**2, 0))
    # away from the ends (the filter of a few sharp spectral lines rings for ~1 000 points
    # from a kink at an end) it leaves under a third of the noise
    inner = np.sqrt(np.mean((y - clean)[2000:-2000] ** 2, 0))
    assert np.all(inner < 0.35 * before), (inner, before)
    # only the named channels are filtered, each on its own
    z = wiener_denoise(clean + noise, [1])
    assert np.array_equal(z[:, 0], (clean + noise)[:, 0]) and np.allclose(z[:, 1], y[:, 1])
    # nothing is found in the clean signal, nor in the logistic map (a flat spectrum, but
    # predictable one step ahead), nor in a signal whose power falls off to the Nyquist
    # frequency (white_noise's flatness test)
    assert analyse(clean).noise == [0.0, 0.0]
    m = np.empty(20_000)
    m[0] = rng.uniform(0.1, 0.9)
    for i in range(1, len(m)):
        m[i] = 3.99 * m[i - 1] * (1 - m[i - 1])
    assert analyse(m[:, None]).noise == [0.0]
    f = np.fft.rfftfreq(40_000)
    coeffs = np.fft.rfft(rng.normal(size=40_000)) * np.exp(-0.5 * (f / 0.2) ** 2)
    falling = np.fft.irfft(coeffs, n=40_000)[:, None]  # power ∝ exp(-(f/0.2)^2)
    falling = (falling - falling.mean()) / falling.std()
    top = np.sum(np.abs(coeffs[3 * len(f) // 4:]) ** 2) / np.sum(np.abs(coeffs[1:]) ** 2)
    assert top > 2 * MIN_NOISE_FRACTION  # enough power up there: refused as not flat
    assert white_noise(falling)[0] == 0.0


def test_plan_follows_budget_and_dimension():
    a3 = SeriesAnalysis(100_000, 3, [0, 1, 2], 0.01, 75.0, 30.0, 20.0, 1, 80, 2)
    small, large = plan(a3, 30.0), plan(a3, 600.0)
    assert small.n_members < large.n_members
    assert large.n_steps >= small.n_steps
    assert {e.latent for e in large.ensembles} == {3}
    assert {e.observation for e in large.ensembles} == {"identity"}
    a64 = SeriesAnalysis(100_000, 64, list(range(64)), 0.2, 40.0, 10.0, 10.0, 1, 40, 14)
    p = plan(a64, 600.0)
    assert {e.observation for e in p.ensembles} == {"affine"}
    assert {e.latent for e in p.ensembles} == {16}
    assert plan(a3, 30.0, n_steps=123).n_steps == 123
    assert {e.hidden for e in plan(a3, 600.0, hidden=40).ensembles} == {40}


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10min", 600), ("1.5h", 5400),
                                           ("2 minutes", 120), ("45", 45), (30, 30)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


def test_cli_writes_the_grid(lorenz, tmp_path, capsys):
    x, t = lorenz
    np.save(tmp_path / "train.npy", x)
    np.save(tmp_path / "test.npy", t)
    out = tmp_path / "run"
    rc = main(["reconstruct", "--data", str(tmp_path / "train.npy"), "--test",
               str(tmp_path / "test.npy"), "--budget", "5s", "--steps", "30", "--out",
               str(out), "--no-progress", "--workers", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "grid (" in text and "state-space divergence" in text
    for name in ("model.eqx", "config.toml", "grid.csv", "grid.md", "history.nc",
                 "measures.json", "verdict.txt", "generated.nc", "attractor.png"):
        assert (out / name).exists(), name
    rows = (out / "grid.csv").read_text().strip().splitlines()
    assert rows[0].startswith("member,family,latent,hidden") and len(rows) >= 3
    assert sum(r.endswith(",True") for r in rows[1:]) == 1
    measures = json.loads((out / "measures.json").read_text())
    assert measures["verdict"] in ("ok", "poor", "fixed point", "divergent",
                                   "no better than a constant")
    assert measures["n_steps"] == 30 and measures["grid_members"] == len(rows) - 1
    # the kept setting is a runnable configuration
    cfg = (out / "config.toml").read_text()
    assert "[model]" in cfg and "n_steps = 30" in cfg
    # ... that sub-samples and denoises as the run did (the shipped series carries 5 % noise)
    import tomllib

    pre = tomllib.loads(cfg)["preprocess"]
    assert pre["denoise"] is True and pre["subsample"] == measures["analysis"]["subsample"]
    assert not (out / "checkpoints").exists()  # removed once the run is complete
    # a second run into the same folder is refused without --overwrite
    assert main(["reconstruct", "--data", str(tmp_path / "train.npy"), "--budget", "5s",
                 "--steps", "30", "--out", str(out), "--no-progress"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["reconstruct", "--data", str(tmp_path / "train.npy"), "--workers", "none",
                 "--out", str(tmp_path / "other")]) == 1
    assert "--workers must be 'auto' or an integer >= 1, got 'none'" in capsys.readouterr().err
    # a channel that is NaN throughout is named with the argument and the file, in words
    # that fit a trajectory as well as a recording, before any work
    bad = np.random.default_rng().normal(size=(3000, 3))
    bad[:, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert main(["reconstruct", "--data", str(tmp_path / "nan.npy"),
                 "--out", str(tmp_path / "nan")]) == 1
    err = capsys.readouterr().err
    assert f"`data.train` ({tmp_path / 'nan.npy'}) has 1 channel(s)" in err
    assert "NaN at every time point (index [2])" in err and "neuron(s)" not in err
    assert not (tmp_path / "nan").exists()


@pytest.mark.parametrize("kind", ["noise", "constant"])
def test_cli_no_dynamics(kind, tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 2)) if kind == "noise" else np.full((3000, 2), 7.0)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run"
    assert main(["reconstruct", "--data", str(tmp_path / "x.npy"), "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "No reconstructable dynamics" in text
    assert not (out / "model.eqx").exists()
    assert json.loads((out / "measures.json").read_text())["verdict"] == "no dynamics"


# 50 s; the plan's choice of an affine observation for many channels is checked without
# training in the default run (test_plan_follows_budget_and_dimension)
@pytest.mark.slow
def test_many_channels_get_an_affine_observation(lorenz):
    """Lorenz-63 seen through 20 noisy mixed channels: an affine observation model with a
    latent size from the principal components, trained and scored in the 20 channels."""
    x, t = lorenz
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(3, 20))
    xs, ts = x @ mix + 0.05 * rng.normal(size=(len(x), 20)), t @ mix
    r = dr.reconstruct(xs, test=ts, budget="5s", n_steps=20)
    assert r.analysis.components <= 3
    assert {row["observation"] for row in r.grid} == {"affine"}
    assert {row["latent"] for row in r.grid} == {6}
    assert r.model.n_obs == 20 and r.generated.shape[1] == 20


def test_workers_do_not_change_the_result(lorenz, small_run):
    """The grid trained in two processes (this one and a spawned one) equals the grid trained
    here alone, member by member: the same table, the same kept member, equal parameters."""
    x, t = lorenz
    two = small_run
    one = dr.reconstruct(x, test=t, dt=0.01, budget="20s", n_steps=40, key=jr.PRNGKey(1),
                         workers=1)
    assert len(one.plan.ensembles) == 2
    assert one.grid_markdown() == two.grid_markdown()
    assert one.settings == two.settings
    for a, b in zip(one.members, two.members):
        la, lb = jax.tree.leaves(eqx.filter(a, eqx.is_array)), jax.tree.leaves(
            eqx.filter(b, eqx.is_array))
        assert len(la) == len(lb) > 0
        for u, v in zip(la, lb):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert one.measures == two.measures


def test_reservoirs_are_fitted_in_a_spawned_process_when_there_is_one():
    """With two or more processes, the share this process trains holds no reservoir (a
    read-out fitted here differs in the last bits from one fitted in a spawned process); the
    shares are the schedule's, only their order changes."""
    import dynrnn.training._reconstruct as R

    e = R.EnsemblePlan(3, 200, "identity", "adaptive", [(1e-3, None, 0)])
    res = R.ReservoirPlan(1000, [(0.5, 0.3, 0)], 1e-4, 40_000, 125_000, group=1)
    ensembles = [e, e, res, e]
    for bins in ([[2, 0], [1, 3]], [[1], [2], [3, 0]], [[0, 1, 3], [2]]):
        shares = R._shares(ensembles, bins)
        assert sorted(map(tuple, shares)) == sorted(tuple(sorted(b)) for b in bins)
        assert 2 not in shares[0]
    # one process (or every share with a reservoir): as scheduled
    assert R._shares(ensembles, [[0, 1, 2, 3]]) == [[0, 1, 2, 3]]
    assert R._shares([res, res], [[1], [0]]) == [[1], [0]]
    # empty bins dropped
    assert R._shares(ensembles, [[2], [], [0, 1, 3]]) == [[0, 1, 3], [2]]


def test_an_error_in_a_worker_reaches_the_caller(lorenz):
    """An ensemble that fails in a spawned process raises `WorkerError` here, naming the
    ensemble, the error and the process's traceback."""
    from dynrnn.training import WorkerError
    from dynrnn.training._reconstruct import (
        EnsemblePlan,
        _KeyData,
        _Spec,
        _train_grid,
    )

    x, _ = lorenz
    x = (x - x.mean(0)) / x.std(0)
    spec = _Spec(fit_part=x[:1500], val=x[1500:1700], n_val_run=200, n_val_burn=0,
                 d_h_constant=1.0, series_smoothing=10.0, n_steps=5,
                 batch_size=4, seq_len=20, k_model=_KeyData.of(jr.PRNGKey(0)),
                 k_fit=_KeyData.of(jr.PRNGKey(1)), x64=False)
    # the larger ensemble trains here, the failing one in the spawned process
    good = EnsemblePlan(3, 8, "identity", "adaptive", [(1e-3, None, 0)] * 3)
    bad = EnsemblePlan(3, 8, "identity", "no such forcing", [(1e-3, None, 0)])
    with pytest.raises(WorkerError) as e:
        _train_grid(spec, [good, bad], 2, False, lambda *a: None)
    text = str(e.value)
    assert "ensemble 2/2" in text and "no such forcing" in text
    assert "DynrnnValueError" in text and "Traceback" in text
    with pytest.raises(ValueError, match="workers"):
        dr.reconstruct(x, workers=0)


def test_validation_scores_the_end_of_long_runs(lorenz):
    """Each member runs from every validation start for `n_val_burn + n_val_run` steps and
    only the end is scored (a model can wander over the attractor for 100 000 steps and then
    settle on a small cycle): the row's measures against an independent replay of the runs
    with `init_state`/`rollout`, and each end against the whole training series."""
    from dynrnn.training._reconstruct import EnsemblePlan, _KeyData, _Spec, _train_ensemble

    x, _ = lorenz
    x = (x - x.mean(0)) / x.std(0)
    fit, val = x[:1800], x[1800:2400]
    burn, run = 700, 600
    spec = _Spec(fit_part=fit, val=val, n_val_run=run, n_val_burn=burn, d_h_constant=1.0,
                 series_smoothing=7.0,
                 n_steps=30, batch_size=4, seq_len=20, k_model=_KeyData.of(jr.PRNGKey(0)),
                 k_fit=_KeyData.of(jr.PRNGKey(1)), x64=False)
    ens = EnsemblePlan(3, 8, "identity", "adaptive", [(1e-3, None, 0), (5e-3, None, 1)])
    models, rows, _ = _train_ensemble(spec, 0, ens, False)
    for row, model in zip(rows, models):
        scores, ends = [], []
        for start in (k * len(val) // VALIDATION_STARTS for k in range(VALIDATION_STARTS)):
            z = model.init_state(jnp.asarray(val[start], jnp.float32))
            zs = jnp.concatenate([z[None], model.rollout(z, burn + run - 1)])
            end = np.asarray(jax.vmap(model.observe)(zs), np.float64)[burn:]
            assert end.shape == (run, 3)
            ends.append(end)
            scores.append((float(dr.metrics.state_space_divergence(val, end, method="bins")),
                           float(dr.metrics.power_spectrum_distance(val, end[: len(val)]))))
        assert row["val_D_stsp"] == pytest.approx(np.mean([a for a, _ in scores]), rel=1e-3)
        assert row["val_D_H"] == pytest.approx(np.mean([b for _, b in scores]), rel=1e-3)
        series = np.concatenate([fit, val])
        mean = np.mean([float(dr.metrics.state_space_divergence(series, e, method="bins"))
                        for e in ends])
        assert row["series_D_stsp"] == pytest.approx(mean, rel=1e-3)
        # the ranking's D_H: the series' last and the end's first min(len(series), len(end))
        # points, 7 bins
        d_h = np.mean([float(dr.metrics.power_spectrum_distance(series[-run:], e, smoothing=7))
                       for e in ends])
        assert row["series_D_H"] == pytest.approx(d_h, rel=1e-3)


def test_series_d_h_resolves_what_the_held_out_piece_cannot():
    """A run whose spectral line sits 2 % off the data's: `D_H` of a 10 000-point held-out
    piece (20 bins of smoothing) barely tells it from a correct run, `D_H` against the whole
    50 000-point series at the test's resolution (`series_smoothing`: 20 bins of a
    100 000-point test spectrum) does, as the test would. The frequency is drawn at random."""
    from dynrnn.training._reconstruct import _series_d_h, series_smoothing

    rng = np.random.default_rng()
    f = rng.uniform(0.01, 0.03)  # cycles per step
    n = 50_000
    t = np.arange(n)[:, None]

    def wave(freq, phase):
        return np.sin(2 * np.pi * freq * t + phase) + 0.3 * np.sin(4 * np.pi * freq * t)

    series = wave(f, 0.0)
    right, off = wave(f, rng.uniform(0, 6)), wave(1.02 * f, rng.uniform(0, 6))
    smoothing = series_smoothing(n, 100_000)
    assert smoothing == 10.0
    fine_right = _series_d_h(series, [right], smoothing)
    fine_off = _series_d_h(series, [off], smoothing)
    piece = series[-10_000:]
    coarse_right = float(dr.metrics.power_spectrum_distance(piece, right[:10_000]))
    coarse_off = float(dr.metrics.power_spectrum_distance(piece, off[:10_000]))
    assert fine_right < 0.05 and coarse_right < 0.05
    assert coarse_off < 0.15  # the held-out piece's smoothing spans the 2 % offset
    assert fine_off > 0.3 and fine_off > 5 * coarse_off
    # a diverged run (NaN) counts as the largest distance, 1
    assert _series_d_h(series, [right, np.full_like(right, np.nan)], smoothing) == \
        pytest.approx((fine_right + 1) / 2)


def test_a_worker_ends_when_its_parent_is_gone(tmp_path):
    """A process that calls `_exit_with_parent` (as every worker of the grid and of
    `--members` does) ends within seconds of its parent's death instead of training on."""
    import os
    import subprocess
    import sys
    import time

    grandchild = ("import os, sys, time\n"
                  "from dynrnn.training._reconstruct import _exit_with_parent\n"
                  "_exit_with_parent(os.getppid(), every=0.2)\n"
                  "print('watching', flush=True)\n"
                  "sys.stdout.close()\n"
                  "time.sleep(60)\n")
    parent = ("import subprocess, sys, os\n"
              f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}],\n"
              "                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n"
              "assert p.stdout.readline().strip() == b'watching'\n"
              "print(p.pid, flush=True)\n"
              "os._exit(0)  # dies without reaping or signalling its child\n")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    pid = int(out.stdout.split()[0])

    def alive():
        try:
            with open(f"/proc/{pid}/status") as f:
                return "zombie" not in f.read()  # a zombie has ended; nobody reaped it
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    ended = not alive()
    if not ended:
        os.kill(pid, 9)
    assert ended, "the worker outlived its parent by 10 s"


def test_a_short_series_is_scored_and_said_to_be_short(lorenz, small_run):
    """A test series too short for `D_H`'s 20-bin kernel (80 points: 41 bins, radius 80)
    stopped `dynrnn reconstruct` after training; it is now scored with a tenth of its bins,
    and the message says that the test figures say little when the training series itself
    is far from the test series."""
    x, t = lorenz
    short = t[:80]
    model = small_run.model
    ev = dr.evaluate(model, (short - small_run.mean) / small_run.scale)
    gen = np.asarray(ev["generated"])
    want = dr.metrics.power_spectrum_distance((short - small_run.mean) / small_run.scale, gen,
                                              smoothing=8.0)
    assert ev["D_H"] == pytest.approx(float(want), rel=1e-6)
    with pytest.raises(ValueError, match="too short"):
        dr.metrics.power_spectrum_distance(short, gen)  # the default kernel does not fit
    r = dr.reconstruct(x[:320], test=short, budget="5s", n_steps=20, workers=1,
                       key=jr.PRNGKey(0))
    assert np.isfinite(r.measures["D_H"])
    assert r.measures["D_stsp_data"] > 1.0
    assert (f"the training series itself scores D_stsp {r.measures['D_stsp_data']:.3g} "
            "against the test series (80 points") in r.message
    assert "the test series is too short or visits other states" in r.message


def test_a_transposed_or_short_series_is_refused_with_a_hint():
    """Before any work: a channels × time array is named as such, and a series too short to
    hold out its own test part says why it needs 250 points."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"2 time steps of 600 channels.*`x\.T`"):
        dr.reconstruct(rng.normal(size=(2, 600)))
    with pytest.raises(ValueError, match=r"at least 250 time steps, got 200.*held out"):
        dr.reconstruct(rng.normal(size=(200, 2)))
    with pytest.raises(ValueError, match=r"`test` is too short.*40 time steps of 300"):
        dr.reconstruct(rng.normal(size=(400, 300)), test=rng.normal(size=(40, 300)))


def test_an_interrupted_grid_resumes_where_it_stopped(lorenz, small_run, tmp_path, monkeypatch):
    """Interrupted once the first ensemble's checkpoint is written, the same call takes that
    ensemble from its checkpoint, trains the other, and ends with the grid and the model of an
    uninterrupted call (`small_run`, trained in two processes); other settings are refused.
    (`fit_ensemble`'s own test resumes in the middle of an ensemble.)"""
    from dynrnn.training import _hooks

    x, t = lorenz
    kw = dict(test=t, dt=0.01, budget="20s", n_steps=40, key=jr.PRNGKey(1), workers=1,
              checkpoint_dir=tmp_path / "grid")
    save = _hooks.Checkpointing.after_chunk

    def interrupt(self, run):
        save(self, run)
        raise KeyboardInterrupt

    monkeypatch.setattr(_hooks.Checkpointing, "after_chunk", interrupt)
    with pytest.raises(KeyboardInterrupt):
        dr.reconstruct(x, **kw)
    monkeypatch.setattr(_hooks.Checkpointing, "after_chunk", save)
    assert sorted(p.name for p in (tmp_path / "grid").iterdir()) == ["ensemble1"]
    again = dr.reconstruct(x, **kw)
    assert ([r["series_D_stsp"] for r in again.grid]
            == [r["series_D_stsp"] for r in small_run.grid])
    for a, b in zip(jax.tree_util.tree_leaves(small_run.model),
                    jax.tree_util.tree_leaves(again.model)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(dr.CheckpointError, match="n_steps"):
        dr.reconstruct(x, **dict(kw, n_steps=50))


def test_plan_adds_echo_state_networks_when_they_fit_the_budget():
    import dynrnn.training._reconstruct as R

    a3 = SeriesAnalysis(100_000, 3, [0, 1, 2], 0.01, 75.0, 30.0, 20.0, 1, 40, 2)
    without = plan(a3, 240.0)
    p = plan(a3, 240.0, reservoir=(40_000, 125_000))
    res = [e for e in p.ensembles if isinstance(e, R.ReservoirPlan)]
    # every radius with every seed: (radius, leak, seed), the seeds' draws one after another
    assert R.RESERVOIR_SEEDS >= 2
    assert len(res) == 1 and res[0].members == [
        (r, a, s) for s in range(R.RESERVOIR_SEEDS) for r, a in R.RESERVOIRS]
    assert res[0].latent == R.RESERVOIR_SIZE and res[0].points == 40_000
    # a group of its own, after the PLRNNs'
    assert res[0].group > max(e.group for e in p.trained)
    # their time comes out of the updates (spread over the reference machine's cores) ...
    seconds = res[0].seconds
    n_res = len(R.RESERVOIRS) * R.RESERVOIR_SEEDS
    assert seconds == pytest.approx(n_res * R.RESERVOIR_SIZE**2 * (
        R.RESERVOIR_FIT_SECONDS * 40_000 + R.RESERVOIR_RUN_SECONDS * 125_000))
    assert p.n_steps < without.n_steps
    assert p.planned_seconds <= 240.0 + 1e-9
    # ... and not out of the PLRNN grid, which stays as it is
    assert [e.members for e in p.trained] == [e.members for e in without.ensembles]
    assert p.n_members == without.n_members + n_res
    # the read-out is fitted to at most RESERVOIR_POINTS points
    big = plan(a3, 3600.0, reservoir=(10 * R.RESERVOIR_POINTS, 125_000))
    assert [e.points for e in big.ensembles if isinstance(e, R.ReservoirPlan)] == [
        R.RESERVOIR_POINTS]
    # none for a short budget (more than RESERVOIR_SHARE of it) or a short series
    assert not any(isinstance(e, R.ReservoirPlan)
                   for e in plan(a3, 30.0, reservoir=(40_000, 125_000)).ensembles)
    assert not any(isinstance(e, R.ReservoirPlan) for e in plan(
        a3, 180.0, reservoir=(R.RESERVOIR_MIN_POINTS - 1, 20_000)).ensembles)


def test_plan_takes_only_the_reservoirs_that_leave_the_plrnn_grid_as_it_is():
    """The ECG pair (5 channels, 80 000 training points) at 240 s: more reservoirs fit their
    share of the budget, but with them the PLRNN grid would lose its second seed (session 17:
    the pair's kept PLRNN went from 3.10 / 0.190 to 4.34 / 0.582); the first three leave it
    as it is."""
    import dynrnn.training._reconstruct as R

    a5 = SeriesAnalysis(100_000, 5, [0, 1, 2, 3, 4], 0.002, 88.0, 30.0, 16.0, 1, 40, 4)
    without = plan(a5, 240.0)
    p = plan(a5, 240.0, reservoir=(80_000, 125_000))
    everything = [(r, a, s) for s in range(R.RESERVOIR_SEEDS) for r, a in R.RESERVOIRS]
    assert len(everything) > 4
    four = R.ReservoirPlan(R.RESERVOIR_SIZE, everything[:4], R.RESERVOIR_RIDGE, 50_000,
                           125_000)
    assert four.seconds <= R.RESERVOIR_SHARE * 240.0 * R.REFERENCE_CORES
    (res,) = [e for e in p.ensembles if isinstance(e, R.ReservoirPlan)]
    assert res.members == everything[:3]
    assert [e.members for e in p.trained] == [e.members for e in without.ensembles]
    assert p.n_steps >= R.MIN_STEPS
    # with a fourth, the grid would have been a smaller one (their time taken from the
    # budget's), with three it is not
    cut = plan(a5, 240.0 - four.seconds / R.REFERENCE_CORES)
    assert sum(len(e.members) for e in cut.ensembles) < without.n_members
    kept = plan(a5, 240.0 - res.seconds / R.REFERENCE_CORES)
    assert [e.members for e in kept.ensembles] == [e.members for e in without.ensembles]
    assert kept.n_steps == p.n_steps
    # a budget whose grid has no room at all: no reservoirs, the PLRNN grid of `without`
    short = plan(a5, 60.0, reservoir=(80_000, 125_000))
    assert not any(isinstance(e, R.ReservoirPlan) for e in short.ensembles)
    assert [e.members for e in short.ensembles] == [e.members for e in plan(a5, 60.0).ensembles]


@pytest.fixture
def small_reservoirs(monkeypatch):
    """Reservoir members at a size a test can afford, on the 1 920-point fixture series."""
    import dynrnn.training._reconstruct as R

    monkeypatch.setattr(R, "RESERVOIR_SIZE", 60)
    monkeypatch.setattr(R, "RESERVOIR_MIN_POINTS", 500)
    monkeypatch.setattr(R, "RESERVOIR_SHARE", 1.0)
    return R


def test_echo_state_networks_are_fitted_and_judged_as_members(lorenz, small_reservoirs):
    """The grid's echo state networks against an independent fit: the same reservoir (key
    `fold_in(fold_in(k_model, group), seed)`), its read-out fitted by ridge regression to the
    training part as recorded (standardised, not denoised), and the validation figures of
    free runs that start from the state after reading the points before each start."""
    R = small_reservoirs
    x, t = lorenz
    key = jr.PRNGKey(3)
    r = dr.reconstruct(x, test=t, dt=0.01, budget="5s", n_steps=20, key=key, workers=1)
    esn_rows = [(row, m) for row, m in zip(r.grid, r.members)
                if row["family"] == "EchoStateNetwork"]
    assert [(row["spectral_radius"], row["leak"], row["seed"]) for row, _ in esn_rows] == [
        (r, a, s) for s in range(R.RESERVOIR_SEEDS) for r, a in R.RESERVOIRS]
    # another seed, another reservoir
    assert not np.allclose(esn_rows[0][1].W, esn_rows[len(R.RESERVOIRS)][1].W)
    assert all(row["learning_rate"] is None and row["hidden"] is None for row, _ in esn_rows)
    res = next(e for e in r.plan.ensembles if isinstance(e, R.ReservoirPlan))
    s = r.subsample
    raw = (x[::s] - r.mean) / r.scale  # as recorded: the reservoirs see the noise
    n_val = int(0.2 * len(raw))
    fit = raw[: len(raw) - n_val]
    denoised = (wiener_denoise(x, [j for j, v in enumerate(r.analysis.noise) if v > 0])[::s]
                - r.mean) / r.scale
    val = denoised[len(raw) - n_val:]
    k_model = jr.fold_in(jr.split(key)[0], res.group)
    for (row, model), (radius, leak, seed) in zip(esn_rows, res.members):
        ref = dr.models.EchoStateNetwork(latent=60, obs=3, spectral_radius=radius, leak=leak,
                                         key=jr.fold_in(k_model, seed))
        ref = ref.fit_regression(fit, ridge=R.RESERVOIR_RIDGE)
        np.testing.assert_allclose(model.observation.B, ref.observation.B, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(model.W, ref.W)
        # validation: from the state after the `window` points before each start
        series = np.concatenate([denoised[: len(raw) - n_val], val])
        scores = []
        for start in (k * n_val // VALIDATION_STARTS for k in range(VALIDATION_STARTS)):
            i = len(raw) - n_val + start
            z = ref.state_from(jnp.asarray(series[i - ref.window: i], jnp.float32))
            zs = jnp.concatenate([z[None], ref.rollout(z, 20_000 - 1)])
            gen = np.asarray(jax.vmap(ref.observe)(zs), np.float64)
            if np.all(np.isfinite(gen)) and np.abs(gen).max() < 1e6:
                scores.append(float(dr.metrics.power_spectrum_distance(val, gen[: n_val])))
            else:
                scores.append(1.0)
        assert row["val_D_H"] == pytest.approx(np.mean(scores), rel=1e-2, abs=1e-3)
        assert row["final_loss"] != row["final_loss"]  # NaN: no updates
    table = r.grid_markdown()
    assert "EchoStateNetwork" in table and "none (ridge read-out)" in table


def test_a_kept_echo_state_network_reaches_the_run_folder(lorenz, small_reservoirs, tmp_path,
                                                           capsys, monkeypatch):
    """When the ranking keeps a reservoir, the verdict names it, config.toml holds its own
    model table (no PLRNN keys merged in), and no history or loss figure is written."""
    R = small_reservoirs
    # keep the last member (a reservoir) whatever the ranking says
    monkeypatch.setattr(R, "best_member", lambda d_stsp, d_h, eligible=None: len(d_stsp) - 1)
    x, t = lorenz
    np.save(tmp_path / "train.npy", x)
    np.save(tmp_path / "test.npy", t)
    out = tmp_path / "run"
    rc = main(["reconstruct", "--data", str(tmp_path / "train.npy"), "--test",
               str(tmp_path / "test.npy"), "--budget", "5s", "--steps", "20", "--out",
               str(out), "--no-progress", "--workers", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "echo state network of 60 units (spectral radius 0.9" in text
    assert "read-out is fitted to the series as recorded" in text
    import tomllib

    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg["model"] == {"type": "EchoStateNetwork", "latent": 60, "spectral_radius": 0.9,
                            "leak": 0.3, "observation": "affine"}
    assert cfg["preprocess"]["denoise"] is False
    assert not (out / "history.nc").exists() and not (out / "loss.png").exists()
    loaded = dr.load(out / "model.eqx")
    assert isinstance(loaded, dr.models.EchoStateNetwork)
    measures = json.loads((out / "measures.json").read_text())
    assert measures["settings"]["family"] == "EchoStateNetwork"


def test_a_drifting_series_is_said_to_drift(lorenz, small_run):
    """A random walk decorrelates over a large part of its length: the message says that it
    drifts and the first suggestion is to difference or detrend it; the Lorenz-63 run (which
    decorrelates within a few dozen steps) says nothing of the kind."""
    from dynrnn.training._reconstruct import DRIFT_FRACTION, drifts

    walk = np.cumsum(np.asarray(jr.normal(jr.PRNGKey(5), (4000, 1))), axis=0)
    r = dr.reconstruct(walk, budget="5s", n_steps=20, workers=1)
    assert drifts(r.analysis)
    assert r.analysis.decorrelation >= DRIFT_FRACTION * r.analysis.n_points
    assert "it drifts (a trend, a random walk)" in r.message
    if r.verdict != "ok":
        assert r.suggestions[0].startswith("removing the trend or differencing")
    # whatever the verdict of this run: a drifting series' suggestions start with it, a
    # stationary one's do not mention it
    from dynrnn.training._reconstruct import _suggestions

    for verdict in ("poor", "fixed point", "divergent"):
        first = _suggestions(verdict, r.settings, r.plan, r.analysis, 5.0)[0]
        assert first.startswith("removing the trend or differencing")
        assert not any("differencing" in t for t in _suggestions(
            verdict, small_run.settings, small_run.plan, small_run.analysis, 5.0))
    assert not drifts(small_run.analysis) and "drifts" not in small_run.message
