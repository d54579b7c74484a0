"""Fits across two JAX processes on this machine (`jax.distributed.initialize` with a
coordinator on 127.0.0.1 and a free port), against the same fits in one process.

Each process is a `python` subprocess running WORKER with one CPU device. The default run
compares them with the same fits in the test's own process on one device (float64, 1e-9: the
two halves of the batch are averaged in another order); the slow set adds the reference in
one process on a mesh of two devices (which they equal exactly) and a run killed after its
first checkpoint and restarted. Every launch has a deadline, so a hang fails the test instead
of stalling the suite. Each process gets its own checkpoint folder, as on hosts without a
shared disk: only process 0's may be written, and process 1 must still resume from it.

Times on a 2-core machine shared with other jobs: the default tests 32-50 s (one launch of two
processes and the reference in this process), the slow ones 65-80 s more.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest


# The data, model and settings of every fit here (the workers' and the reference's).
SETUP = textwrap.dedent(
    """
    t = np.arange(800) * 0.05
    x = np.stack([np.sin(t), np.cos(1.3 * t), np.sin(0.7 * t) * np.cos(t)], axis=1)
    model = dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(0))
    kw = dict(n_steps=120, batch_size=8, seq_len=30, key=jr.PRNGKey(3), steps_per_call=20,
              teacher_forcing=dr.GTF(0.2))
    """
)
# A constant alpha: adaptive GTF's batched LAPACK calls were seen to deadlock jaxlib's CPU
# thread pool on this 2-core machine (two workers of ParallelBatchMap waiting on each other).

WORKER = textwrap.dedent(
    """
    import json, os, pathlib, sys, time
    T0 = time.perf_counter()
    def mark(what):  # phase times, in the log
        print(f"[{time.perf_counter() - T0:5.1f} s] {what}", file=sys.stderr, flush=True)
    mode, out, pid, nproc, port = sys.argv[1], pathlib.Path(sys.argv[2]), *map(int, sys.argv[3:6])
    import jax
    if nproc > 1:
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
    import jax.numpy as jnp, jax.random as jr, numpy as np
    from jax.sharding import Mesh
    import dynrnn as dr

    assert jax.config.jax_enable_x64 and len(jax.devices()) == 2, jax.devices()
    exec(SETUP)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    report = {}
    mark("started")

    def params(m):
        return [np.asarray(a).tolist() for a in jax.tree_util.tree_leaves(m)]

    def outcome(fn):  # the type and message of the error fn raises in this process
        try:
            fn()
        except Exception as e:
            return [type(e).__name__, str(e)]
        return None

    if mode == "fit":
        times = []
        res = dr.fit(model, x, mesh=mesh, checkpoint_dir=out / f"ck_p{pid}",
                     callbacks=[lambda *a: times.append(time.perf_counter())], **kw)
        report["fit"] = params(res.model)
        report["loss"] = np.asarray(res.history.loss).tolist()
        report["seconds_per_update"] = (times[-1] - times[0]) / (kw["n_steps"] - 20)
        mark("fit")
        members = [dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(i))
                   for i in range(4)]
        ens = dr.fit_ensemble(members, x, mesh=Mesh(np.array(jax.devices()), ("ensemble",)),
                              **dict(kw, n_steps=40))
        report["ensemble"] = [params(m) for m in ens.models]
        report["ensemble_loss"] = np.asarray(ens.history.loss).tolist()
        mark("fit_ensemble")
    if mode == "fit" and nproc > 1:
        short = dict(kw, n_steps=40, progress=False)
        bad = x.copy()
        if pid == 1:
            bad[5, 0] = np.nan
        report["bad_data"] = outcome(lambda: dr.fit(model, bad, mesh=mesh, **short))
        report["other_data"] = outcome(
            lambda: dr.fit(model, x * (1.0 + pid), mesh=mesh, **short))
        report["ensemble_bad_data"] = outcome(lambda: dr.fit_ensemble(
            members, bad, mesh=Mesh(np.array(jax.devices()), ("ensemble",)), **short))
        report["diverged"] = outcome(lambda: dr.fit(
            model, x, mesh=mesh, regularizer=lambda m, batch: jnp.asarray(jnp.nan), **short))

        def fails_on_0(step, m, logs):
            if pid == 0 and step >= 20:
                raise RuntimeError(f"callback failed at update {step}")

        report["hook_error"] = outcome(
            lambda: dr.fit(model, x, mesh=mesh, callbacks=[fails_on_0], **short))
        mark("errors")
    if mode == "kill":
        slow = [lambda *a: time.sleep(1.0)] if sys.argv[6] == "slow" else []
        res = dr.fit(model, x, mesh=mesh, checkpoint_dir=out / f"ck_kill_p{pid}",
                     callbacks=slow, **kw)
        report["fit"] = params(res.model)
        mark("fit")
    (out / f"{mode}_p{pid}_of_{nproc}.json").write_text(json.dumps(report))
    """
)

DEADLINE = 300  # seconds for one launch (the suite runs two test processes); a hang fails


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, cache: pathlib.Path) -> dict:
    root = pathlib.Path(__file__).resolve().parents[1]
    # The launches share a compilation cache: the killed and the restarted run then compile
    # nothing that the first launch compiled.
    return dict(os.environ, JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1",
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(root),
                JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _start(tmp, mode, nproc, *extra, cache):
    """Start `nproc` processes of WORKER (one device each; one process: two devices)."""
    script = tmp / "worker.py"
    script.write_text(f"SETUP = {SETUP!r}\n" + WORKER)
    port = _free_port()
    return [_spawn(tmp / f"{mode}_p{pid}_of_{nproc}.log",
                   [sys.executable, str(script), mode, str(tmp), str(pid), str(nproc),
                    str(port), *extra], _env(2 if nproc == 1 else 1, cache))
            for pid in range(nproc)]


def _spawn(log, argv, env):
    with open(log, "wb") as f:  # the child keeps its own descriptor
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait()


def _wait(tmp, mode, procs):
    """The reports of `procs` once all have finished (a failure or a hang fails the test)."""
    n = len(procs)
    _finish(procs, [tmp / f"{mode}_p{i}_of_{n}.log" for i in range(n)])
    return [json.loads((tmp / f"{mode}_p{i}_of_{n}.json").read_text()) for i in range(n)]


def _finish(procs, logs):
    deadline = time.monotonic() + DEADLINE
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        _kill(procs)
        pytest.fail(f"the processes did not finish in {DEADLINE} s (a hang?):\n"
                    + _tails(logs))
    if any(p.returncode for p in procs):
        pytest.fail("a process failed:\n" + _tails(logs))


def _tails(logs):
    return "\n".join(f"--- {log.name}:\n" + log.read_text()[-3000:] for log in logs)


def _close(a, b, tol=1e-9):
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=tol)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The fits of WORKER in two processes of one device each."""
    tmp, cache = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("jax_cache")
    return tmp, _wait(tmp, "fit", _start(tmp, "fit", 2, cache=cache)), cache


def _reference():
    """WORKER's fit and ensemble in this process, on one device."""
    import jax
    import jax.random as jr

    import dynrnn as dr

    env = {"np": np, "jr": jr, "dr": dr}
    exec(SETUP, env)
    x, model, kw = env["x"], env["model"], env["kw"]
    fit = dr.fit(model, x, progress=False, **kw)
    members = [dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(i))
               for i in range(4)]
    ens = dr.fit_ensemble(members, x, progress=False, **dict(kw, n_steps=40))
    leaves = jax.tree_util.tree_leaves
    return dict(fit=leaves(fit.model), loss=np.asarray(fit.history.loss),
                ensemble=[leaves(m) for m in ens.models],
                ensemble_loss=np.asarray(ens.history.loss))


def _check_equal(p0, p1, ref, tol):
    # Both processes return the same model, equal to the one-process fit.
    _close(p0["fit"], ref["fit"], tol)
    _close(p1["fit"], p0["fit"], 0.0)
    np.testing.assert_allclose(p0["loss"], ref["loss"], rtol=0, atol=tol)
    for m0, m1, mr in zip(p0["ensemble"], p1["ensemble"], ref["ensemble"], strict=True):
        _close(m0, mr, tol)
        _close(m1, m0, 0.0)
    np.testing.assert_allclose(p1["ensemble_loss"], ref["ensemble_loss"], rtol=0, atol=tol)


def test_two_processes_equal_one(runs):
    tmp, (p0, p1), _ = runs
    _check_equal(p0, p1, _reference(), 1e-9)
    # One set of checkpoint files, written by process 0 alone.
    assert sorted(f.name for f in (tmp / "ck_p0").iterdir()) == ["best.eqx", "last.eqx"]
    assert not (tmp / "ck_p1").exists()
    # The progress bar is process 0's.
    assert "fit ShallowPLRNN" in (tmp / "fit_p0_of_2.log").read_text()
    assert "fit ShallowPLRNN" not in (tmp / "fit_p1_of_2.log").read_text()


@pytest.mark.slow
def test_two_processes_equal_two_devices(runs, tmp_path):
    _, (p0, p1), cache = runs
    (ref,) = _wait(tmp_path, "fit", _start(tmp_path, "fit", 1, cache=cache))
    _check_equal(p0, p1, ref, 0.0)
    ratio = p0["seconds_per_update"] / ref["seconds_per_update"]
    print(f"\ntime per update: two processes {1e3 * p0['seconds_per_update']:.2f} ms, one "
          f"process of two devices {1e3 * ref['seconds_per_update']:.2f} ms (ratio {ratio:.2f})")


def test_errors_stop_every_process(runs):
    _, (p0, p1), _ = runs
    for case in ("bad_data", "other_data", "ensemble_bad_data", "diverged", "hook_error"):
        assert p0[case] is not None and p0[case] == p1[case], (case, p0[case], p1[case])
    assert "NaN" in p0["bad_data"][1] or "finite" in p0["bad_data"][1], p0["bad_data"]
    assert p0["other_data"][0] == "DynrnnValueError" and "process 1" in p0["other_data"][1]
    assert p0["diverged"][0] == "TrainingDivergedError"
    assert p0["hook_error"] == ["RuntimeError", "callback failed at update 20"]


@pytest.mark.slow
def test_killed_and_restarted_resumes(runs, tmp_path):
    _, (p0, _), cache = runs
    procs = _start(tmp_path, "kill", 2, "slow", cache=cache)
    last = tmp_path / "ck_kill_p0" / "last.eqx"
    deadline = time.monotonic() + DEADLINE
    while not last.exists():
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            _kill(procs)
            pytest.fail("no checkpoint appeared:\n" + _tails(
                [tmp_path / f"kill_p{i}_of_2.log" for i in range(2)]))
        time.sleep(0.02)
    _kill(procs)  # SIGKILL: no clean-up in either process
    import dynrnn as dr

    step = dr.load(last, return_metadata=True)[1]["step"]
    assert 0 < step < 120, step
    resumed = _wait(tmp_path, "kill", _start(tmp_path, "kill", 2, "fast", cache=cache))
    log = (tmp_path / "kill_p0_of_2.log").read_text()
    assert f"at update {step} of 120" in log, log[-2000:]
    assert "resuming" not in (tmp_path / "kill_p1_of_2.log").read_text()
    _close(resumed[0]["fit"], p0["fit"], 1e-12)
    _close(resumed[1]["fit"], p0["fit"], 1e-12)
    assert not (tmp_path / "ck_kill_p1").exists()


@pytest.mark.slow
def test_command_line_distributed(runs, tmp_path):
    """`dynrnn fit CONFIG --distributed` in two processes (coordinator and process ids from
    the environment) writes the run folder once, with the model of a one-process run."""
    import jax
    import jax.random as jr

    import dynrnn as dr
    from dynrnn.cli._main import main

    _, _, cache = runs
    env = {"np": np, "jr": jr, "dr": dr}
    exec(SETUP, env)
    np.save(tmp_path / "train.npy", env["x"][:600])
    np.save(tmp_path / "test.npy", env["x"][600:])
    config = tmp_path / "fit.toml"
    config.write_text(
        f'name = "two"\n[data]\ntrain = "{tmp_path / "train.npy"}"\n'
        f'test = "{tmp_path / "test.npy"}"\n'
        '[model]\ntype = "ShallowPLRNN"\nlatent = 3\nhidden = 12\n'
        '[teacher_forcing]\ntype = "GTF"\nalpha = 0.2\n'
        "[training]\nn_steps = 60\nseq_len = 30\nbatch_size = 4\nsteps_per_call = 20\n"
        "validation_fraction = 0.0\n[evaluation]\nlyapunov_steps = 200\n"
        "[output]\nfigures = false\n")
    port = _free_port()
    procs = [_spawn(tmp_path / f"cli_p{pid}_of_2.log",
                    [sys.executable, "-m", "dynrnn", "fit", str(config), "--distributed",
                     "--out", str(tmp_path / "two"), "--no-progress"],
                    dict(_env(1, cache), JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                         DYNRNN_NUM_PROCESSES="2", DYNRNN_PROCESS_ID=str(pid)))
             for pid in range(2)]
    _finish(procs, [tmp_path / f"cli_p{i}_of_2.log" for i in range(2)])
    logs = [(tmp_path / f"cli_p{i}_of_2.log").read_text() for i in range(2)]
    assert "run folder" in logs[0] and "state-space divergence" in logs[0]
    assert "run folder" not in logs[1] and "divergence" not in logs[1], logs[1]
    assert main(["fit", str(config), "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    two = dr.load(tmp_path / "two" / "model.eqx")
    one = dr.load(tmp_path / "one" / "model.eqx")
    _close(jax.tree_util.tree_leaves(two), jax.tree_util.tree_leaves(one))
