"""`dr.fit`: learning, NaN guard, atomic checkpoints, resumption after SIGKILL, bad input."""

import os
import signal
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import optax
import pytest
from helpers import count_compilations

import dynrnn as dr


@pytest.fixture(scope="module")
def lorenz_windows():
    """A short standardised Lorenz-63 series from a NumPy RK4 loop (independent of dr.systems)."""
    def f(y):
        return np.array([10 * (y[1] - y[0]), y[0] * (28 - y[2]) - y[1], y[0] * y[1] - 8 / 3 * y[2]])

    y, dt, out = np.array([1.0, 1.0, 1.0]), 0.01, []
    for i in range(3500):
        for _ in range(2):
            h = dt / 2
            k1 = f(y); k2 = f(y + h / 2 * k1); k3 = f(y + h / 2 * k2); k4 = f(y + h * k3)  # noqa: E702
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= 500:
            out.append(y)
    x = np.array(out)
    return (x - x.mean(0)) / x.std(0)


def small_model(key):
    return dr.models.ShallowPLRNN(latent=3, hidden=16, obs=3, key=key)


def test_fit_lowers_loss_and_history(lorenz_windows):
    model = small_model(jr.PRNGKey(0))
    res = dr.fit(model, lorenz_windows, n_steps=200, batch_size=8, seq_len=30,
                 key=jr.PRNGKey(1), progress=False, optimizer=optax.adam(3e-3))
    loss = res.history["loss"].values
    assert loss.shape == (200,) and np.all(np.isfinite(loss))
    assert loss[-20:].mean() < 0.5 * loss[:20].mean()
    alpha = res.history["alpha"].values
    # adaptive GTF starts at 1 and the contracting initial model lets α decay from there
    assert alpha[0] == pytest.approx(1.0) and 0.0 <= alpha[-1] < 1.0
    assert res.steps == 200


def test_nan_guard_keeps_last_good_model(lorenz_windows):
    model = small_model(jr.PRNGKey(0))
    with pytest.raises(dr.TrainingDivergedError, match="update") as info:
        dr.fit(model, lorenz_windows, n_steps=100, batch_size=8, seq_len=30,
               teacher_forcing=dr.GTF(0.0), optimizer=optax.sgd(1e6),
               key=jr.PRNGKey(1), progress=False)
    err = info.value
    kept = err.result.model
    leaves = jax.tree_util.tree_leaves(eqx.filter(kept, eqx.is_inexact_array))
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert 0 <= err.step < 100


def test_bad_input(lorenz_windows, getkey):
    model = small_model(getkey())
    kw = dict(n_steps=10, batch_size=4, key=getkey(), progress=False)
    with pytest.raises(ValueError, match="dimensions"):
        dr.fit(model, lorenz_windows[:, :2], seq_len=20, **kw)
    bad = lorenz_windows.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        dr.fit(model, bad, seq_len=20, **kw)
    with pytest.raises(ValueError, match="seq_len"):
        dr.fit(model, lorenz_windows[:50], seq_len=100, **kw)
    with pytest.raises(ValueError, match="dimensions"):
        dr.fit(model, lorenz_windows[None, None], seq_len=20, **kw)
    with pytest.raises(ValueError, match="obs <= latent"):
        dr.models.ShallowPLRNN(latent=2, hidden=16, obs=3, key=getkey(), observation="identity")
    with pytest.raises(TypeError, match="teacher_forcing"):
        dr.fit(model, lorenz_windows, seq_len=20, teacher_forcing="gtf", **kw)
    with pytest.raises(ValueError, match="n_steps"):
        dr.fit(model, lorenz_windows, seq_len=20, **dict(kw, n_steps=0))


def test_save_load_roundtrip_and_corruption(tmp_path, getkey):
    model = dr.models.DendPLRNN(latent=4, bases=3, obs=3, key=getkey(), observation="affine")
    path = dr.save(tmp_path / "m.eqx", model, note="hello")
    loaded, meta = dr.load(path, return_metadata=True)
    assert meta["note"] == "hello" and type(loaded) is type(model)
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded)):
        np.testing.assert_array_equal(a, b)
    data = path.read_bytes()
    (tmp_path / "trunc.eqx").write_bytes(data[: len(data) // 2])
    with pytest.raises(dr.CheckpointError, match="truncated"):
        dr.load(tmp_path / "trunc.eqx")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.eqx").write_bytes(bytes(flipped))
    with pytest.raises(dr.CheckpointError, match="corrupt"):
        dr.load(tmp_path / "flip.eqx")
    (tmp_path / "junk.eqx").write_bytes(b"not a checkpoint at all")
    with pytest.raises(dr.CheckpointError, match="not a dynrnn checkpoint"):
        dr.load(tmp_path / "junk.eqx")
    with pytest.raises(FileNotFoundError):
        dr.load(tmp_path / "missing.eqx")
    # no temporary files are left behind by the atomic writer
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


RUN = textwrap.dedent(
    """
    import sys, numpy as np, jax.random as jr
    import jax
    jax.config.update("jax_enable_x64", True)
    import dynrnn as dr
    x = np.load(sys.argv[1])
    model = dr.models.ShallowPLRNN(latent=3, hidden=16, obs=3, key=jr.PRNGKey(0))
    res = dr.fit(model, x, n_steps=400, batch_size=8, seq_len=30, key=jr.PRNGKey(7),
                 progress=False, checkpoint_dir=sys.argv[2], steps_per_call=20,
                 callbacks=[lambda step, m, logs: print("STEP", step, flush=True)])
    dr.save(sys.argv[3], res.model)
    """
)


def test_sigkill_resume_gives_same_parameters(tmp_path, lorenz_windows):
    np.save(tmp_path / "x.npy", lorenz_windows)
    script = tmp_path / "run.py"
    script.write_text(RUN)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    ref = [sys.executable, str(script), str(tmp_path / "x.npy")]
    subprocess.run(ref + [str(tmp_path / "ck_ref"), str(tmp_path / "ref.eqx")], check=True,
                   env=env, capture_output=True, timeout=600)
    # interrupted run: kill -9 once a few checkpoints have been written
    proc = subprocess.Popen(ref + [str(tmp_path / "ck"), str(tmp_path / "int.eqx")], env=env,
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("STEP") and int(line.split()[1]) >= 160:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "ck" / "last.eqx").exists() and not (tmp_path / "int.eqx").exists()
    _, meta = dr.load(tmp_path / "ck" / "last.eqx", return_metadata=True)
    assert 0 < meta["step"] < 400 and meta["step"] % 20 == 0
    subprocess.run(ref + [str(tmp_path / "ck"), str(tmp_path / "int.eqx")], check=True,
                   env=env, capture_output=True, timeout=600)
    a, b = dr.load(tmp_path / "ref.eqx"), dr.load(tmp_path / "int.eqx")
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(u, v)


def test_resume_refuses_other_run(tmp_path, lorenz_windows):
    kw = dict(batch_size=8, seq_len=30, progress=False, checkpoint_dir=tmp_path,
              steps_per_call=20)
    dr.fit(small_model(jr.PRNGKey(0)), lorenz_windows, n_steps=40, key=jr.PRNGKey(1), **kw)
    with pytest.raises(dr.CheckpointError, match="different key"):
        dr.fit(small_model(jr.PRNGKey(0)), lorenz_windows, n_steps=40, key=jr.PRNGKey(2), **kw)
    # a corrupt last checkpoint gives a clear error, never a silent restart
    (tmp_path / "last.eqx").write_bytes(b"DYNRNN\x01\n" + b"\x00" * 5)
    with pytest.raises(dr.CheckpointError, match="cannot resume"):
        dr.fit(small_model(jr.PRNGKey(0)), lorenz_windows, n_steps=40, key=jr.PRNGKey(1), **kw)


def test_supervised_mode(getkey):
    """Linear regression through `fit`'s supervised path reaches the least-squares solution."""
    x = np.asarray(jr.normal(getkey(), (256, 4)))
    w = np.array([1.0, -2.0, 0.5, 3.0])
    y = x @ w
    model = eqx.nn.Linear(4, "scalar", key=getkey())
    with count_compilations("run_chunk") as compiles:
        res = dr.fit(model, (x, y), loss="mse", n_steps=1500, batch_size=32, key=getkey(),
                     progress=False,
                     optimizer=dr.training.cosine_adam(1500, 3e-2, 1e-4))
    assert len(compiles) == 1, compiles  # 30 host calls, one compilation
    np.testing.assert_allclose(res.model.weight[0], w, atol=1e-2)
    with pytest.raises(ValueError, match="same number of samples"):
        dr.fit(model, (x, y[:10]), loss="mse", n_steps=5, key=getkey(), progress=False)


def test_stale_temporary_files_are_removed(tmp_path, getkey):
    """A write killed between its temporary file and the rename leaves `.NAME.*.tmp`; the next
    write of that file removes it."""
    stale = tmp_path / ".last.eqx.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    dr.save(tmp_path / "last.eqx", dr.models.PLRNN(latent=3, key=getkey()))
    assert not stale.exists() and (tmp_path / "last.eqx").exists()


def test_overwrite_starts_afresh_and_resume_says_so(tmp_path, lorenz_windows, capfd):
    kw = dict(n_steps=4, batch_size=2, seq_len=10, progress=False, steps_per_call=2)
    dr.fit(small_model(jr.PRNGKey(0)), lorenz_windows, key=jr.PRNGKey(1),
           checkpoint_dir=tmp_path, **kw)
    again = dr.fit(small_model(jr.PRNGKey(0)), lorenz_windows, key=jr.PRNGKey(1),
                   checkpoint_dir=tmp_path, **kw)
    assert "resuming" in capfd.readouterr().err and again.steps == 4
    fresh = dr.fit(small_model(jr.PRNGKey(0)), lorenz_windows, key=jr.PRNGKey(2),
                   checkpoint_dir=dr.training.Checkpointing(tmp_path, overwrite=True), **kw)
    assert "afresh" in capfd.readouterr().err and fresh.steps == 4
