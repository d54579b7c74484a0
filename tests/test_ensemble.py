"""`dr.fit_ensemble` and data-parallel `dr.fit` across devices."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.random as jr
import numpy as np
import pytest
from helpers import count_compilations

import dynrnn as dr


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    t = np.arange(3000) * 0.05
    return np.stack([np.sin(t), np.cos(1.3 * t), np.sin(0.7 * t + 1)], 1) + 0.05 * rng.normal(
        size=(3000, 3))


def test_members_equal_single_fits(series):
    models = [dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(i))
              for i in range(3)]
    key = jr.PRNGKey(5)
    lrs = [1e-3, 2e-3, 5e-3]
    with count_compilations("run_chunk") as compiles:
        res = dr.fit_ensemble(models, series, n_steps=100, batch_size=8, seq_len=30, key=key,
                              learning_rates=lrs, steps_per_call=50, progress=False)
    # two host calls, one compilation (the carry keeps its types between calls)
    assert len(compiles) == 1, compiles
    assert res.history["loss"].shape == (3, 100) and np.all(res.diverged == -1)
    for i in (0, 2):
        single = dr.fit(models[i], series, n_steps=100, batch_size=8, seq_len=30,
                        key=jr.fold_in(key, i),
                        optimizer=dr.training.default_optimizer(100, lrs[i], lrs[i] * 1e-3),
                        steps_per_call=50, progress=False)
        for a, b in zip(jax.tree_util.tree_leaves(single.model),
                        jax.tree_util.tree_leaves(res.models[i])):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="learning_rates"):
        dr.fit_ensemble(models, series, n_steps=10, seq_len=30, key=key, learning_rates=[1e-3])
    with pytest.raises(ValueError, match="same structure"):
        dr.fit_ensemble([models[0], dr.models.ShallowPLRNN(latent=3, hidden=8, obs=3, key=key)],
                        series, n_steps=10, seq_len=30, key=key)


def test_an_interrupted_ensemble_resumes_from_its_checkpoint(series, tmp_path):
    """Stopped after its second host call (the checkpoint of update 40 written), the ensemble
    resumes there and ends with the uninterrupted members and histories; a folder of another
    ensemble (other learning rates) is refused before the first update."""
    models = [dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(i))
              for i in range(2)]
    kw = dict(n_steps=60, batch_size=8, seq_len=30, key=jr.PRNGKey(7), steps_per_call=20,
              learning_rates=[1e-3, 5e-3], progress=False)
    whole = dr.fit_ensemble(models, series, **kw)

    class Interrupt(dr.training.Checkpointing):
        def after_chunk(self, run):
            super().after_chunk(run)
            if run.step == 40:
                raise KeyboardInterrupt

    folder = tmp_path / "ensemble"
    with pytest.raises(KeyboardInterrupt):
        dr.fit_ensemble(models, series, checkpoint_dir=Interrupt(folder), **kw)
    assert (folder / "last.eqx").exists()
    resumed = dr.fit_ensemble(models, series, checkpoint_dir=folder, **kw)
    for a, b in zip(jax.tree_util.tree_leaves(whole.models),
                    jax.tree_util.tree_leaves(resumed.models)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole.history["loss"].values, resumed.history["loss"].values)
    # `every`: at most one write per interval (here: only the first host call's), and one
    # after the last update; a resume then starts from update 20
    from dynrnn.training._checkpoint import read_header

    sparse = tmp_path / "sparse"
    with pytest.raises(KeyboardInterrupt):
        dr.fit_ensemble(models, series, checkpoint_dir=Interrupt(sparse, every=1e6), **kw)
    assert read_header(sparse / "last.eqx")[0]["metadata"]["step"] == 20
    again = dr.fit_ensemble(models, series,
                            checkpoint_dir=dr.training.Checkpointing(sparse, every=1e6), **kw)
    assert read_header(sparse / "last.eqx")[0]["metadata"]["step"] == 60
    np.testing.assert_array_equal(whole.history["loss"].values, again.history["loss"].values)
    with pytest.raises(dr.CheckpointError, match="learning_rates"):
        dr.fit_ensemble(models, series, checkpoint_dir=folder,
                        **dict(kw, learning_rates=[2e-3, 5e-3]))

SHARDED = textwrap.dedent(
    """
    import os, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.random as jr, numpy as np
    from jax.sharding import Mesh
    import dynrnn as dr
    assert len(jax.devices()) == 4, jax.devices()
    x = np.load(sys.argv[1])
    kw = dict(n_steps=60, batch_size=8, seq_len=30, key=jr.PRNGKey(3), steps_per_call=30,
              progress=False)
    m = dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(0))
    single = dr.fit(m, x, **kw)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharded = dr.fit(m, x, mesh=mesh, **kw)
    def diff(u, v):
        return max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                   for a, b in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(v)))
    err = diff(single.model, sharded.model)
    # interrupted after the first host call and resumed from its checkpoint, on the mesh
    ck = os.path.join(os.path.dirname(sys.argv[1]), "ck")  # in the test's tmp_path
    dr.fit(m, x, mesh=mesh, checkpoint_dir=ck, callbacks=[lambda *a: True], **kw)
    assert dr.load(os.path.join(ck, "last.eqx"), return_metadata=True)[1]["step"] == 30
    resumed = dr.fit(m, x, mesh=mesh, checkpoint_dir=ck, **kw)
    assert diff(resumed.model, sharded.model) < 1e-12, diff(resumed.model, sharded.model)
    try:
        dr.fit(m, x, mesh=mesh, **dict(kw, batch_size=6))
        raise SystemExit("batch_size 6 on 4 devices was accepted")
    except ValueError as e:
        assert "batch_size" in str(e) and "divisible" in str(e), e
    models = [dr.models.ShallowPLRNN(latent=3, hidden=12, obs=3, key=jr.PRNGKey(i))
              for i in range(4)]
    e1 = dr.fit_ensemble(models, x, **kw)
    e2 = dr.fit_ensemble(models, x, mesh=Mesh(np.array(jax.devices()), ("ensemble",)), **kw)
    err2 = max(diff(e1.models[i], e2.models[i]) for i in range(4))
    # Supervised mode: a CfC through its batched path, with a regulariser evaluated once.
    rng = np.random.default_rng(0)
    u, y = rng.normal(size=(40, 12, 3)), rng.normal(size=(40, 12, 2))
    cfc = dr.models.CfC(3, 6, 2, backbone_units=8, key=jr.PRNGKey(1))
    def mse(model, u, y, *, key):
        return ((model.batch(u) - y) ** 2).mean()
    def reg(model, u):  # not a mean over the batch: must not be split across devices
        return 1e-3 * (model.batch(u[:1]) ** 2).sum()
    skw = dict(loss=mse, regularizer=reg, n_steps=20, batch_size=8, key=jr.PRNGKey(4),
               steps_per_call=10, progress=False)
    from helpers import count_compilations  # tests/ is on PYTHONPATH
    with count_compilations("run_chunk") as compiles:
        sharded3 = dr.fit(cfc, (u, y), mesh=mesh, **skw)  # 2 host calls
    # parameters are replicated before the first call, so the second does not compile again
    assert len(compiles) == 1, len(compiles)
    err3 = diff(dr.fit(cfc, (u, y), **skw).model, sharded3.model)
    try:
        dr.fit(cfc, (u, y), mesh=mesh, **dict(skw, batch_size=6))
        raise SystemExit("supervised batch_size 6 on 4 devices was accepted")
    except ValueError as e:
        assert "batch_size" in str(e) and "divisible" in str(e), e
    # pmean_flat: one collective per dtype, shapes and dtypes kept, ints averaged alone.
    from jax.sharding import PartitionSpec as P
    import jax.numpy as jnp
    def local(x):
        i = jax.lax.axis_index("batch")
        tree = {"a": jnp.full((2, 3), i, jnp.float64) + x[0],
                "b": jnp.full((4,), 2 * i, jnp.float32),
                "c": (jnp.full((), i, jnp.int32), jnp.full((5, 1), -i, jnp.float64))}
        return dr.training.pmean_flat(tree, "batch")
    out = jax.shard_map(local, mesh=mesh, in_specs=P("batch"), out_specs=P(),
                        check_vma=False)(jnp.zeros(4))
    assert out["a"].shape == (2, 3) and out["a"].dtype == jnp.float64
    assert out["b"].dtype == jnp.float32 and np.isclose(out["c"][0], 1.5)  # as lax.pmean
    assert np.allclose(out["a"], 1.5) and np.allclose(out["b"], 3.0)
    assert np.allclose(out["c"][1], -1.5) and out["c"][1].shape == (5, 1)
    vg = dr.training.data_parallel(lambda p, u: (p * u).mean(), mesh)
    try:
        vg(1.0, jnp.ones(6))
        raise SystemExit("a batch of 6 on 4 devices was accepted by data_parallel")
    except ValueError as e:
        assert "divisible" in str(e) and "(6,)" in str(e), e
    assert np.isclose(vg(2.0, jnp.arange(8.0)), 7.0)
    print("ERR", err, err2, err3)
    """
)


# 75 s (four fits, a resume and a CfC in a subprocess on 4 host devices). The default run
# checks data-parallel `fit` and `fit_ensemble` on a mesh across processes
# (tests/test_distributed.py); the supervised path on a mesh and `pmean_flat` are checked only
# here, in the slow set.
@pytest.mark.slow
def test_sharded_equals_single_device(series, tmp_path):
    np.save(tmp_path / "x.npy", series)
    (tmp_path / "run.py").write_text(SHARDED)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join(filter(None, [tests_dir,
                                                         os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "x.npy")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    err, err2, err3 = (float(v) for v in out.stdout.split("ERR")[1].split())
    # data-parallel reductions change the summation order: agreement to float64 rounding
    assert err < 1e-9 and err2 < 1e-9 and err3 < 1e-9
