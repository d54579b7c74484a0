"""`dynrnn reconstruct`, `dynrnn fit`, `dynrnn evaluate` on small runs."""

import json
import pathlib
import tomllib

import numpy as np
import pytest

from dynrnn.cli import main
from dynrnn.cli._config import DEFAULT_RECONSTRUCT


ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_default_recipe_matches_shipped_file():
    shipped = tomllib.loads((ROOT / "dynrnn/recipes" / "lorenz63_shplrnn.toml").read_text())
    assert shipped == DEFAULT_RECONSTRUCT


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "dynrnn/recipes").glob("*.toml")))
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
               "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "state-space divergence" in text and "largest Lyapunov exponent" in text
    for name in ("model.eqx", "config.toml", "history.nc", "measures.json", "attractor.png",
                 "power_spectra.png", "loss.png"):
        assert (out / name).exists(), name
    measures = json.loads((out / "measures.json").read_text())
    assert set(measures["model"]) >= {"D_stsp", "D_H", "PE", "max_lyapunov"}
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
