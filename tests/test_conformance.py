"""Every latent family keeps the one model contract.

The families come from `dynrnn.models` itself (`helpers.latent_families`), so a new family is
checked without editing this file: shapes; the parallel (DEER) engine against the sequential
one; `jacobian` against automatic differentiation of `step`; three teacher-forced updates
through `dr.fit`; `dr.save`/`dr.load` with every observation model; a `[model]` table through
`dynrnn fit` and `dynrnn evaluate`.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from helpers import SMALL_SIZES, latent_families, make_family

import dynrnn as dr
from dynrnn.cli import main as cli


FAMILIES = latent_families()
# Families solved by Diffrax take 10-35 s each through the whole command line (compiling the
# solver's gradient and the Lyapunov Jacobian); that check runs in the slow set for them.
CLI_CASES = [
    pytest.param(name, marks=pytest.mark.slow)
    if issubclass(dr.models.families()[name], dr.models.AbstractDiffraxModel) else name
    for name in FAMILIES
]
OBSERVATIONS = ["identity", "affine", "calcium", "linear_gaussian"]


def test_every_family_is_listed():
    # The families the issue names, at least; a new one joins by being exported.
    assert {"PLRNN", "DendPLRNN", "ShallowPLRNN", "ALRNN", "LTC", "CfC", "NeuralODE",
            "NeuralSDE", "LSSL"} <= set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
def test_shapes_and_vocabulary(name, getkey):
    m = make_family(name, key=getkey())
    assert isinstance(m, dr.models.AbstractLatentModel)
    assert m.n_obs == 3 and isinstance(m.n_latent, int) and m.n_inputs >= 0
    x0 = jr.normal(getkey(), (3,))
    z0 = m.init_state(x0)
    assert z0.shape == (m.n_latent,)
    assert m.step(z0).shape == (m.n_latent,)
    assert m.observe(z0).shape == (3,)
    assert m.forcing_signal(x0).shape == (m.n_latent,)
    assert m.rollout(z0, 7).shape == (7, m.n_latent)
    assert m.jacobian(z0).shape == (m.n_latent, m.n_latent)
    # `type` and `latent` alone build a working model (obs defaults to latent)
    alone = dr.models.build({"type": name, "latent": 4}, key=getkey())
    assert alone.n_obs == 4 and alone.init_state(jnp.ones(4)).shape == (alone.n_latent,)
    with pytest.raises(ValueError, match="z0"):
        m.rollout(jnp.zeros(m.n_latent + 1), 3)
    with pytest.raises(ValueError, match="n_steps"):
        m.rollout(z0, -1)


@pytest.mark.parametrize("name", FAMILIES)
def test_engines_agree(name, getkey):
    m = make_family(name, key=getkey())
    z0 = m.init_state(0.5 * jr.normal(getkey(), (3,)))
    if isinstance(m, dr.models.AbstractStochasticModel):
        with pytest.raises(TypeError, match="Deer"):
            m.rollout(z0, 10, engine=dr.engines.Deer())
        return
    seq = m.rollout(z0, 40)
    par = m.rollout(z0, 40, engine=dr.engines.Deer())
    np.testing.assert_allclose(par, seq, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", FAMILIES)
def test_jacobian_is_the_derivative_of_step(name, getkey):
    m = make_family(name, key=getkey())
    z = m.init_state(jr.normal(getkey(), (3,))) + 0.1 * jr.normal(getkey(), (m.n_latent,))
    if isinstance(m, dr.models.AbstractDiffraxModel):  # no forward mode through the solve
        want = jax.jacrev(lambda s: m.step(s))(z)
    else:
        want = jax.jacfwd(lambda s: m.step(s))(z)
    np.testing.assert_allclose(m.jacobian(z), want, rtol=1e-7, atol=1e-10)


@pytest.fixture(scope="module")
def lorenz():
    return np.asarray(dr.datasets.load("lorenz63_train")["state"].values[:2000], np.float64)


@pytest.mark.parametrize("name", FAMILIES)
def test_three_gtf_updates(name, lorenz, getkey):
    m = make_family(name, key=getkey())
    res = dr.fit(m, lorenz, teacher_forcing=dr.GTF(0.5), n_steps=3, batch_size=2, seq_len=6,
                 key=getkey(), progress=False, steps_per_call=3)
    assert res.steps == 3 and np.all(np.isfinite(res.history["loss"].values))
    before = jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array))
    after = jax.tree.leaves(eqx.filter(res.model, eqx.is_inexact_array))
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("observation", OBSERVATIONS)
@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_with_every_observation(name, observation, tmp_path, getkey):
    m = make_family(name, key=getkey(), observation=observation)
    assert type(m.observation).__name__.lower().startswith(observation.split("_")[0])
    # move every parameter off its initial value: a file read into a fresh model cannot pass
    params, static = eqx.partition(m, eqx.is_inexact_array)
    params = jax.tree.map(lambda p: p + 0.01 * jr.normal(getkey(), p.shape, p.dtype), params)
    m = eqx.combine(params, static)
    dr.save(tmp_path / "m.eqx", m)
    back = dr.load(tmp_path / "m.eqx")  # no `like=`
    assert bool(eqx.tree_equal(back, m))


@pytest.mark.parametrize("name", CLI_CASES)
def test_model_table_through_the_command_line(name, tmp_path, lorenz, capsys):
    np.save(tmp_path / "test.npy", np.asarray(dr.datasets.load("lorenz63_test")["state"]
                                              .values[:300], np.float64))
    (tmp_path / "run.toml").write_text(
        f'[data]\ntrain = "dataset:lorenz63_train"\ntest = "{tmp_path / "test.npy"}"\n'
        f'[model]\ntype = "{name}"\nlatent = 4\n'
        + "".join(f"{k} = {v}\n" for k, v in SMALL_SIZES.get(name, {}).items()) +
        '[teacher_forcing]\ntype = "GTF"\nalpha = 0.5\n'
        '[training]\nn_steps = 4\nbatch_size = 2\nseq_len = 6\nsteps_per_call = 2\n'
        'validation_fraction = 0.0\n'
        '[evaluation]\nlyapunov_steps = 50\nprediction_steps = 5\n'
        '[output]\nfigures = false\n'  # drawn and checked in tests/test_cli.py
    )
    out = tmp_path / "run"
    assert cli(["fit", str(tmp_path / "run.toml"), "--out", str(out), "--no-progress"]) == 0
    model = dr.load(out / "model.eqx")
    assert type(model).__name__ == name and model.n_obs == 3
    capsys.readouterr()
    assert cli(["evaluate", str(out / "model.eqx"), str(tmp_path / "test.npy"), "--json",
                "--lyapunov-steps", "50"]) == 0
    measures = json.loads(capsys.readouterr().out)
    assert {"D_stsp", "D_H", "PE", "max_lyapunov"} <= set(measures)
