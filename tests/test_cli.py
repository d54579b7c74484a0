"""`dynrnn reconstruct`, `dynrnn fit`, `dynrnn evaluate` on small runs."""

import json
import os
import pathlib
import tomllib

import jax
import numpy as np
import pytest

import dynrnn as dr
from dynrnn.cli import main
from dynrnn.cli._config import DEFAULT_RECONSTRUCT


ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_default_recipe_matches_shipped_file():
    shipped = tomllib.loads((ROOT / "dynrnn/recipes" / "lorenz63_shplrnn.toml").read_text())
    assert shipped == DEFAULT_RECONSTRUCT


FIT_RECIPES = sorted(p.name for p in (ROOT / "dynrnn/recipes").glob("*.toml")
                     if not p.name.startswith("compare_"))


@pytest.mark.parametrize("recipe", FIT_RECIPES)
def test_recipes_build_what_they_say(recipe):
    """Every shipped recipe builds its model and teacher forcing exactly as written: a constant
    `alpha` stays constant (the default adaptive-GTF keys must not leak into a recipe)."""
    import jax.random as jr

    from dynrnn.cli._config import build_model, build_teacher_forcing, read_config

    raw = tomllib.loads((ROOT / "dynrnn/recipes" / recipe).read_text())
    cfg = read_config(ROOT / "dynrnn/recipes" / recipe)
    default_tf = DEFAULT_RECONSTRUCT["teacher_forcing"]
    assert cfg["teacher_forcing"] == raw.get("teacher_forcing", default_tf)
    tf = build_teacher_forcing(cfg["teacher_forcing"])
    alpha = raw.get("teacher_forcing", {}).get("alpha", "adaptive")
    if isinstance(alpha, float):
        assert tf.method == "constant" and tf.alpha == alpha
    n_obs = {"ecg": 5, "eeg": 10}.get(recipe[:3], 3)
    model = build_model(cfg["model"], n_obs, jr.PRNGKey(0))
    assert model.n_latent == raw["model"]["latent"]
    if "observation_penalty" in raw["model"]:
        assert model.observation.penalty_weight == raw["model"]["observation_penalty"]


@pytest.fixture(scope="module")
def small_series(tmp_path_factory):
    """Two short standardised Lorenz-63 pieces from a NumPy RK4 loop."""
    def f(y):
        return np.array([10 * (y[1] - y[0]), y[0] * (28 - y[2]) - y[1], y[0] * y[1] - 8 / 3 * y[2]])

    y, h, out = np.array([1.0, 2.0, 20.0]), 0.01, []
    for i in range(4500):
        k1 = f(y); k2 = f(y + h / 2 * k1); k3 = f(y + h / 2 * k2); k4 = f(y + h * k3)  # noqa: E702
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= 500:
            out.append(y)
    x = np.array(out)
    x = (x - x.mean(0)) / x.std(0)
    d = tmp_path_factory.mktemp("series")
    np.save(d / "train.npy", x[:3000])
    np.save(d / "test.npy", x[3000:])
    return d


def test_reconstruct_writes_run_folder(small_series, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["reconstruct", "--data", str(small_series / "train.npy"), "--test",
               str(small_series / "test.npy"), "--steps", "250", "--hidden", "16",
               "--members", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "state-space divergence" in text and "largest Lyapunov exponent" in text
    for name in ("model.eqx", "config.toml", "history.nc", "measures.json", "attractor.png",
                 "power_spectra.png", "loss.png"):
        assert (out / name).exists(), name
    measures = json.loads((out / "measures.json").read_text())
    assert set(measures["model"]) >= {"D_stsp", "D_H", "PE", "max_lyapunov"}
    # the fixed settings get a verdict as the automatic mode does, printed and written
    assert measures["verdict"] in ("ok", "poor", "fixed point", "divergent",
                                   "no better than a constant")
    assert measures["message"] in text
    assert (out / "verdict.txt").read_text().startswith(measures["message"])
    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg["training"]["n_steps"] == 250 and cfg["model"]["hidden"] == 16
    # the saved model evaluates through the CLI
    rc = main(["evaluate", str(out / "model.eqx"), str(small_series / "test.npy"), "--json"])
    assert rc == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["D_stsp"] == pytest.approx(measures["model"]["D_stsp"], rel=1e-6)
    # the written config is a runnable recipe; rerunning into the same folder resumes the
    # finished checkpoint instead of training again
    rc = main(["fit", str(out / "config.toml"), "--out", str(out), "--no-progress"])
    assert rc == 0


def test_fit_denoises_and_subsamples_through_preprocess_table(small_series, tmp_path,
                                                              capsys):
    """`[preprocess] denoise` and `subsample` in a fixed-settings run (what the automatic
    mode's config.toml records): white noise of a fresh random level is found and filtered
    out of the training part only, every 2nd frame is kept, the steps are in the history, and
    the data's own measures compare the test part with the training part as recorded."""
    import xarray as xr

    rng = np.random.default_rng()
    x = np.load(small_series / "train.npy")
    # sd 0.05-0.1 of a unit-sd series: 0.25-1 % of the variance, clear of the 0.1 % that the
    # detection requires (`MIN_NOISE_FRACTION`; sd 0.03 is 0.09 % and was missed, rightly)
    noisy = x + rng.uniform(0.05, 0.1) * rng.normal(size=x.shape)
    np.save(tmp_path / "noisy.npy", noisy)
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[data]\ntrain = "{tmp_path / "noisy.npy"}"\ntest = "{small_series / "test.npy"}"\n\n'
        "[preprocess]\ndenoise = true\nsubsample = 2\nzscore = false\n\n"
        '[model]\ntype = "ShallowPLRNN"\nlatent = 3\nhidden = 16\n\n'
        "[training]\nn_steps = 20\nseq_len = 20\nbatch_size = 4\nvalidation_fraction = 0.0\n")
    out = tmp_path / "run"
    assert main(["fit", str(cfg), "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "denoise: white observation noise of about" in text and "3 of 3 channels" in text
    steps = json.loads(xr.open_dataset(out / "history.nc", engine="h5netcdf")
                       .attrs["preprocessing"])
    assert steps[0].startswith("denoise(channels=[0, 1, 2]") and steps[1] == "subsample(every=2)"
    test = np.load(small_series / "test.npy")[::2]
    generated = xr.open_dataset(out / "generated.nc", engine="h5netcdf")
    assert generated.sizes["time"] == len(test)
    measures = json.loads((out / "measures.json").read_text())
    n = len(test)
    recorded = float(dr.metrics.state_space_divergence(test, noisy[::2][:n], method="bins"))
    assert measures["data"]["D_stsp"] == pytest.approx(recorded, rel=1e-5)
    # a clean series: nothing to filter, said so
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "noisy.npy"),
                                           str(small_series / "train.npy")))
    assert main(["fit", str(cfg), "--no-progress", "--out", str(tmp_path / "clean")]) == 0
    assert "no white observation noise found" in capsys.readouterr().out


def test_fixed_settings_verdict_names_the_failure(small_series):
    """`dynrnn reconstruct` with fixed settings judges the free run like the automatic mode:
    a model on a fixed point, a divergent one and one no better than a constant are named,
    and the test series itself (a perfect model) is not."""
    from dynrnn.cli._run import judge

    train = np.load(small_series / "train.npy")
    test = np.load(small_series / "test.npy")
    rng = np.random.default_rng()
    shift, scale = rng.normal(size=3), rng.uniform(0.5, 3.0, size=3)  # judged in sd units
    tr, te = shift + scale * train, shift + scale * test
    settle = shift + scale * (0.2 + np.exp(-np.arange(len(te)) / 30.0)[:, None]
                              * rng.normal(size=3))
    cases = {
        "fixed point": settle,
        "divergent": shift + scale * np.concatenate([test[:100], 100.0 * test[100:]]),
        "no better than a constant": shift + scale * rng.normal(size=test.shape),
        "ok": te,
    }
    for want, gen in cases.items():
        verdict, message, suggestions = judge(tr, te, gen, n_steps=200)
        assert verdict == want, (want, message)
        if want == "ok":
            assert suggestions == [] and message.startswith("Reconstructed")
        else:
            assert "FAILED" in message and any("automatic mode" in s for s in suggestions)
    assert any("learning rate" in s for s in judge(tr, te, cases["divergent"], n_steps=200)[2])


def _members_table(path):
    rows = [line.strip("|").split("|") for line in path.read_text().splitlines()[2:]]
    return [{"D_stsp": float(r[1]), "D_H": float(r[2]), "loss": float(r[3]),
             "kept": r[4].strip() == "yes"} for r in rows]


def test_members_train_in_parallel_and_keep_the_best(small_series, tmp_path, capsys):
    """`--members 2`: member 0 is the single run, member 1 trains in a spawned process, the
    kept one follows the rank rule, and a second call resumes both members' checkpoints."""
    import xarray as xr

    from dynrnn.training._reconstruct import best_member

    common = ["reconstruct", "--data", str(small_series / "train.npy"), "--test",
              str(small_series / "test.npy"), "--steps", "60", "--hidden", "8", "--no-progress"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(common + ["--members", "1", "--out", str(one)]) == 0
    assert main(common + ["--members", "2", "--out", str(two)]) == 0
    assert "training 2 members" in capsys.readouterr().out
    rows = _members_table(two / "members.md")
    assert len(rows) == 2 and sum(r["kept"] for r in rows) == 1
    with xr.open_dataset(one / "history.nc", engine="h5netcdf") as h:
        single_loss = float(h["loss"].values[-1])
    assert rows[0]["loss"] == pytest.approx(single_loss, rel=1e-3)  # the table's 4 digits
    assert rows[1]["loss"] != pytest.approx(single_loss, rel=1e-3)
    kept = best_member([r["D_stsp"] for r in rows], [r["D_H"] for r in rows])
    assert rows[kept]["kept"]
    source = one / "model.eqx" if kept == 0 else two / "members/member1/model.eqx"
    for a, b in zip(jax.tree_util.tree_leaves(dr.load(two / "model.eqx")),
                    jax.tree_util.tree_leaves(dr.load(source))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # both members resume their finished checkpoints: the same table and model again
    assert main(common + ["--members", "2", "--out", str(two)]) == 0
    assert _members_table(two / "members.md") == rows


def test_cli_errors(tmp_path, capsys):
    assert main(["reconstruct", "--data", str(tmp_path / "missing.npy"), "--out",
                 str(tmp_path / "r"), "--no-progress"]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ntype = 'NoSuchModel'\n")
    assert main(["fit", str(bad), "--no-progress"]) == 1
    assert "NoSuchModel" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("[model\n")
    assert main(["fit", str(tmp_path / "broken.toml")]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_help_does_not_import_jax():
    """`dynrnn --help` answers without loading JAX (its first import costs ~1.5 s)."""
    import subprocess
    import sys

    code = ("import sys; from dynrnn.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)[:5]")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "reconstruct" in out.stdout and "--debug" in out.stdout


def test_compilation_cache_between_runs(tmp_path, monkeypatch):
    """The command keeps compiled programs in a folder per JAX version and processor, which a
    second process (a later run, or a spawned member) reads back; `off` and JAX's own setting
    are honoured."""
    import subprocess
    import sys

    from dynrnn.cli._main import _compilation_cache_dir

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("DYNRNN_COMPILE_CACHE", "off")
    assert _compilation_cache_dir() is None
    monkeypatch.setenv("DYNRNN_COMPILE_CACHE", str(tmp_path / "cache"))
    folder = _compilation_cache_dir()
    assert folder is not None and folder.startswith(str(tmp_path / "cache"))
    assert f"jax-{jax.__version__}-" in folder
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "theirs"))
    assert _compilation_cache_dir() is None
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")

    code = ("import os, jax, jax.numpy as jnp\n"
            "from dynrnn.cli._main import _use_compilation_cache\n"
            "_use_compilation_cache()\n"
            "print(os.environ['JAX_COMPILATION_CACHE_DIR'])\n"
            "print(float(jax.jit(lambda x: jnp.sin(x) * 3.0 + x ** 2)(1.5)))\n")
    env = dict(os.environ, DYNRNN_COMPILE_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=120) for _ in range(2)]
    for out in runs:
        assert out.returncode == 0, out.stderr
    first, second = (out.stdout.split() for out in runs)
    assert first[0] == folder and second[0] == folder
    assert float(first[1]) == pytest.approx(np.sin(1.5) * 3 + 1.5**2, rel=1e-6)
    assert first[1] == second[1]
    entries = [p for p in pathlib.Path(folder).iterdir() if p.name != "README"]
    assert entries, "no compiled program was written to the cache"


def test_errors_are_one_line_unless_debug(tmp_path, capsys):
    missing = str(tmp_path / "nope.npy")
    assert main(["evaluate", missing, "dataset:lorenz63_test"]) == 1
    err = capsys.readouterr().err
    assert "nope.npy" in err and "Traceback" not in err and "--debug" in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "evaluate", missing, "dataset:lorenz63_test"])


def test_files_follow_the_umask(tmp_path):
    import os

    from dynrnn.training._checkpoint import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644


@pytest.fixture(scope="module")
def suite2p_folder(tmp_path_factory):
    import jax.random as jr

    import dynrnn as dr

    return dr.io.synthetic_suite2p(tmp_path_factory.mktemp("s2p"), n_neurons=20,
                                   n_frames=1500, rate=30.0, key=jr.PRNGKey(3))


def test_reconstruct_suite2p_folder_with_rate(suite2p_folder, tmp_path, capsys):
    """Raw suite2p fluorescence (in the thousands) on the command line: cells only, neuropil
    corrected, standardised with a note, fitted without diverging; figures on principal
    components; the steps in the run's history attrs."""
    import xarray as xr

    F = np.load(suite2p_folder / "plane0" / "F.npy")
    assert F.min() > 1000
    out = tmp_path / "run"
    rc = main(["reconstruct", "--data", str(suite2p_folder), "--rate", "30", "--steps", "20",
               "--members", "1", "--no-progress", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "note: the data is not on a unit scale" in text and "ROIs are cells" in text
    for name in ("model.eqx", "history.nc", "measures.json", "generated.nc", "attractor.png",
                 "power_spectra.png"):
        assert (out / name).exists(), name
    measures = json.loads((out / "measures.json").read_text())
    assert np.isfinite(measures["model"]["D_stsp"])
    steps = json.loads(xr.open_dataset(out / "history.nc", engine="h5netcdf")
                       .attrs["preprocessing"])
    assert steps[0] == "cells_only(iscell=true)"
    assert steps[1] == "neuropil_correct(coefficient=0.7)"
    assert any(s.startswith("zscore(") for s in steps)
    generated = xr.open_dataset(out / "generated.nc", engine="h5netcdf")
    n_cells = int(np.load(suite2p_folder / "plane0" / "iscell.npy")[:, 0].sum())
    # every 5th cell is held out of the fit for co-smoothing (the default for recordings)
    held_out = len(range(0, n_cells, 5))
    assert generated.sizes["dim"] == n_cells - held_out and generated.attrs["rate"] == 30.0
    assert f"{held_out} of {n_cells} neurons" in text
    table = (out / "evaluation.md").read_text()
    for row in ("| model |", "| AR(5) |", "| persistence |", "R²(model) − R²(AR(5))",
                "| latent states |", "| held-in activity |"):
        assert row in table, row
    forecast = xr.open_dataset(out / "evaluation.nc", group="forecast", engine="h5netcdf")
    assert forecast["r2"].dims == ("model", "horizon")
    cosmoothing = xr.open_dataset(out / "evaluation.nc", group="cosmoothing",
                                  engine="h5netcdf")
    assert cosmoothing.sizes["neuron"] == held_out
    assert measures["recording"]["cosmoothing"]["held_out_neurons"]


def test_reconstruct_suite2p_automatic_mode_writes_the_recording_tables(suite2p_folder,
                                                                       tmp_path, capsys):
    """The automatic mode (a grid within a budget) on a recording: it denoises the principal
    components (white noise found in their spectra), and the forecast and co-smoothing tables
    still map the recording's neurons onto the series the model saw, standardised as the
    denoised training series was (stop 29's CI: the tables were skipped)."""
    out = tmp_path / "run"
    assert main(["reconstruct", "--data", str(suite2p_folder), "--rate", "30", "--budget",
                 "5s", "--steps", "10", "--workers", "1", "--no-progress", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "grid (" in text and "the training series is denoised first" in text
    assert "tables are skipped" not in text
    for name in ("grid.md", "evaluation.md", "evaluation.nc", "projection.nc"):
        assert (out / name).exists(), name
    assert "| latent states |" in (out / "evaluation.md").read_text()


def test_fit_suite2p_through_preprocess_table(suite2p_folder, tmp_path, capsys):
    import xarray as xr

    cfg = tmp_path / "s2p.toml"
    cfg.write_text(
        f'[data]\ntrain = "{suite2p_folder}"\nrate = 30.0\n\n'
        "[preprocess]\ncells_only = true\nneuropil = 0.7\ndff = true\nzscore = true\npca = 4\n"
        "split = 0.75\n\n"
        '[model]\ntype = "ShallowPLRNN"\nlatent = 4\nhidden = 16\n\n'
        "[training]\nn_steps = 20\nseq_len = 30\nbatch_size = 4\nvalidation_fraction = 0.0\n"
    )
    out = tmp_path / "run"
    assert main(["fit", str(cfg), "--no-progress", "--out", str(out)]) == 0
    assert "PCA: 4 components" in capsys.readouterr().out
    steps = json.loads(xr.open_dataset(out / "history.nc", engine="h5netcdf")
                       .attrs["preprocessing"])
    names = [s.split("(")[0] for s in steps]
    assert names == ["cells_only", "neuropil_correct", "dff", "split_time", "held_out_neurons",
                     "zscore", "pca", "zscore"]
    assert '"first", frames=1125' in steps[3]
    generated = xr.open_dataset(out / "generated.nc", engine="h5netcdf")
    assert generated.sizes["dim"] == 4 and generated.sizes["time"] == 375
    assert (out / "attractor.png").exists()
    # projection.nc maps the recording's neurons to exactly the series the model was tested on
    import dynrnn as dr

    p = xr.open_dataset(out / "projection.nc", engine="h5netcdf")
    rec = dr.io.open_recording(suite2p_folder, rate=30.0)
    rec = rec.isel(neuron=np.flatnonzero(rec["iscell"].values))
    rec = dr.preprocess.dff(dr.preprocess.neuropil_correct(rec, coefficient=0.7))
    _, test = dr.preprocess.split_time(rec, 0.75)
    assert list(p["neuron"].values) == list(test["neuron"].values)
    z = (test["activity"].values - p["zscore_mean"].values) / p["zscore_sd"].values
    z = z[:, p["held_out"].values == 0]
    z = (z - p["pca_mean"].values) @ p["loadings"].values.T / p["component_sd"].values
    np.testing.assert_allclose(z, generated["state"].sel(series="test").values, atol=1e-8)


def test_unscaled_data_divergence_names_the_scale(suite2p_folder, tmp_path):
    import dynrnn as dr
    from dynrnn.cli._config import merge, read_config
    from dynrnn.cli._run import run_reconstruction

    cfg = tmp_path / "raw.toml"
    cfg.write_text(
        f'[data]\ntrain = "{suite2p_folder}"\nrate = 30.0\n\n[preprocess]\nzscore = false\n\n'
        '[model]\ntype = "ShallowPLRNN"\nlatent = 3\nhidden = 16\n\n'
        "[training]\nn_steps = 30\nseq_len = 30\nbatch_size = 4\n"
    )
    with pytest.raises(dr.TrainingDivergedError, match="scale") as info:
        run_reconstruction(merge(read_config(cfg), {}), out=str(tmp_path / "run"),
                           progress=False, echo=lambda *a: None)
    assert "not standardised" in str(info.value) and "zscore" in str(info.value)


def test_simulated_netcdf_on_the_command_line(tmp_path, capsys):
    """The NetCDF that dr.systems.simulate writes (`state` on (time, dim)) is read by
    `dynrnn info` and `dynrnn reconstruct --data` (as a recording at rate 1/dt)."""
    import dynrnn as dr

    ds = dr.systems.simulate(dr.systems.Lorenz63(), n_steps=1500, dt=0.01, transient=5.0,
                             standardize=True)
    path = tmp_path / "sim.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    rec = dr.io.open_recording(path)
    assert rec["activity"].dims == ("time", "neuron") and rec.attrs["rate"] == pytest.approx(100)
    np.testing.assert_array_equal(rec["activity"].values, ds["state"].values)
    assert main(["info", str(path)]) == 0
    out = tmp_path / "run"
    assert main(["reconstruct", "--data", str(path), "--steps", "10", "--members", "1",
                 "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "note: the data is not on a unit scale" not in text
    assert (out / "measures.json").exists()


def test_member_score_on_a_short_high_dimensional_series(getkey):
    """The members' score (`cli._members.score`) on a series of 8 channels and 1 200 steps
    (a short recording after PCA): the free run is 20 000 steps, the spectra are compared on
    the series' length (before: a length mismatch error ended `dynrnn reconstruct --data
    SUITE2P --steps N` with two members); both measures come back finite, D_H in [0, 1]."""
    import dynrnn as dr
    from dynrnn.cli._members import score

    rng = np.random.default_rng(np.random.SeedSequence().entropy)
    x = rng.standard_normal((1200, 8)).astype(np.float32)
    model = dr.models.ShallowPLRNN(obs=8, latent=8, hidden=16, key=getkey())
    d_stsp, d_h = score(model, x)
    assert np.isfinite(d_stsp) and 0.0 <= d_h <= 1.0


def test_a_channels_by_time_npy_is_read_with_layout_and_named_without(tmp_path):
    """A `.npy` whose rows are channels: `--layout neuron-major` reads it as time × channels
    (it was ignored for `.npy` files without a rate), and without it the error says that the
    file reads as 2 frames of 500 channels and names the flag."""
    from dynrnn.cli._prepare import prepare

    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(500, 2)), 0)
    path = tmp_path / "channels_by_time.npy"
    np.save(path, x.T)
    quiet = lambda *a, **k: None  # noqa: E731
    run = prepare({"data": {"train": str(path), "layout": "neuron-major"}}, seq_len=10,
                  echo=quiet)
    both = np.concatenate([run.train, run.test])
    assert both.shape == (500, 2)
    for j in range(2):  # the same series up to the standardisation
        assert np.corrcoef(both[:, j], x[:, j])[0, 1] > 0.999999
    with pytest.raises(dr.DynrnnError, match=r"reads as 2 frames of 500 channels.*"
                       r"--layout neuron-major"):
        prepare({"data": {"train": str(path)}}, seq_len=10, echo=quiet)
