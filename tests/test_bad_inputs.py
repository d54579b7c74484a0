"""Bad input gets a clear error: one row per case, growing with the library.

Each row is `(id, call, error class, words)`: `call(ctx)` must raise the error class (before
any training step where that can be known), and its message must contain every word (case
ignored), so that it names the argument or file and what was expected. `ctx` holds a small
model, a short series and a scratch folder.
"""

import dataclasses
import json
import os
import pathlib

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import dynrnn as dr
from dynrnn.cli import main as cli


@dataclasses.dataclass
class Ctx:
    tmp: pathlib.Path
    model: object
    x: np.ndarray

    def fit(self, **kw):
        args = dict(n_steps=4, batch_size=2, seq_len=5, key=jr.PRNGKey(0), progress=False,
                    steps_per_call=2)
        args.update(kw)
        data = args.pop("data", self.x)
        return dr.fit(args.pop("model", self.model), data, **args)

    def file(self, name, content: bytes | str = b""):
        path = self.tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def npy(self, name="x.npy"):
        path = self.tmp / name
        np.save(path, self.x)
        return path

    def config(self, **sections):
        text = []
        for section, table in sections.items():
            text.append(f"[{section}]")
            text += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        return self.file("run.toml", "\n".join(text) + "\n")


@pytest.fixture
def ctx(tmp_path):
    model = dr.models.ShallowPLRNN(latent=3, hidden=8, key=jr.PRNGKey(0))
    x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values[:300], np.float64)
    return Ctx(tmp_path, model, x)


def _run_twice(ctx, first: dict, second: dict):
    ctx.fit(checkpoint_dir=ctx.tmp / "ck", **first)
    ctx.fit(checkpoint_dir=ctx.tmp / "ck", **second)


def _cli(args):
    """The command line's exit code must be 1; raise its one-line message as an error."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli(args)
    if rc != 1:
        raise AssertionError(f"exit code {rc}")
    text = err.getvalue()
    assert "Traceback" not in text
    raise RuntimeError(text)


def _truncated_nwb(ctx):
    pytest.importorskip("pynwb")
    return ctx.file("cut.nwb", b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)


CASES = [
    # --- optimiser and objective settings
    ("learning rate nan", lambda c: dr.training.default_optimizer(10, float("nan")),
     ValueError, ["learning_rate", "finite"]),
    ("learning rate 0", lambda c: dr.training.default_optimizer(10, 0.0),
     ValueError, ["learning_rate", "> 0"]),
    ("learning rate negative", lambda c: dr.training.default_optimizer(10, -1e-3),
     ValueError, ["learning_rate", "-0.001"]),
    ("noise nan", lambda c: dr.training.Reconstruction(noise=float("nan")),
     ValueError, ["noise", "nan"]),
    ("noise negative", lambda c: dr.training.Reconstruction(noise=-0.5),
     ValueError, ["noise", "-0.5"]),
    ("ensemble learning rate negative",
     lambda c: dr.fit_ensemble([c.model, c.model], c.x, n_steps=2, seq_len=5, key=jr.PRNGKey(0),
                               learning_rates=[1e-3, -1e-3], progress=False),
     ValueError, ["learning_rates", "-0.001"]),
    ("key None", lambda c: c.fit(key=None), TypeError, ["key", "None"]),
    ("n_steps zero", lambda c: c.fit(n_steps=0), ValueError, ["n_steps", "> 0"]),
    ("seq_len too long", lambda c: c.fit(seq_len=500), ValueError, ["seq_len", "300"]),
    ("data of another width", lambda c: c.fit(data=c.x[:, :2]), ValueError,
     ["data", "2 dimensions", "obs"]),
    ("data with NaN", lambda c: c.fit(data=np.where(c.x > 2, np.nan, c.x)), ValueError,
     ["data", "non-finite"]),
    ("supervised data without a loss",
     lambda c: c.fit(model=eqx.nn.Linear(3, 3, key=jr.PRNGKey(0)), data=(c.x, c.x)),
     TypeError, ["latent model", "loss"]),
    # --- the model contract
    ("step with a state of another size", lambda c: c.model.step(jnp.zeros(5)), ValueError,
     ["z", "(3,)", "(5,)"]),
    ("step with inputs it does not take", lambda c: c.model.step(jnp.zeros(3), jnp.ones(2)),
     ValueError, ["u", "inputs"]),
    ("init_state with another observation size", lambda c: c.model.init_state(jnp.zeros(5)),
     ValueError, ["x0", "(3,)", "(5,)"]),
    ("rollout negative steps", lambda c: c.model.rollout(jnp.zeros(3), -1), ValueError,
     ["n_steps", "-1"]),
    ("rollout with a state of another size", lambda c: c.model.rollout(jnp.zeros(5), 3),
     ValueError, ["z0", "(5,)"]),
    ("lyapunov of a model from a state of another size",
     lambda c: dr.metrics.lyapunov_spectrum(c.model, jnp.ones(5), n_steps=10), ValueError,
     ["state0", "(3,)"]),
    ("lyapunov of a flow from a state of another size",
     lambda c: dr.metrics.lyapunov_spectrum(dr.systems.Lorenz63(), jnp.ones(2), n_steps=10,
                                            dt=0.1),
     ValueError, ["state0", "(3,)"]),
    ("LTC cell with a negative time span",
     lambda c: dr.models.LTC(2, 4, key=jr.PRNGKey(0)).cell(jnp.zeros(4), jnp.zeros(2), -0.5),
     ValueError, ["timespan", ">= 0", "-0.5"]),
    ("CfC cell with a negative time span",
     lambda c: dr.models.CfC(2, 4, backbone_units=4, key=jr.PRNGKey(0)).cell(
         jnp.zeros(4), jnp.zeros(2), -1.0),
     ValueError, ["timespan", ">= 0"]),
    ("neural ODE step from a NaN state",
     lambda c: dr.models.NeuralODE(latent=2, width=4, depth=1, key=jr.PRNGKey(0)).step(
         jnp.array([jnp.nan, 0.0])),
     ValueError, ["nan", "state"]),
    ("simulate a system with a NaN parameter",
     lambda c: dr.systems.simulate(dr.systems.Lorenz63(sigma=float("nan")), n_steps=10,
                                   dt=0.01),
     ValueError, ["sigma", "nan"]),
    ("linear attention with a zero normaliser",
     lambda c: dr.dsf.from_linear_attention(jnp.zeros((4, 2)), jnp.zeros((4, 2)),
                                            feature_map="relu"),
     ValueError, ["normaliser", "feature_map"]),
    ("unknown model family", lambda c: dr.models.build({"type": "Transformerz", "latent": 3},
                                                       key=jr.PRNGKey(0)),
     ValueError, ["Transformerz", "ShallowPLRNN"]),
    ("model keyword misspelt", lambda c: dr.models.build({"type": "ShallowPLRNN", "latnet": 3},
                                                         key=jr.PRNGKey(0)),
     ValueError, ["latnet", "did you mean", "latent"]),
    # --- files
    ("CSV with a text cell",
     lambda c: dr.io.open_recording(c.file("t.csv", "1,2\n3,abc\n5,6\n"), rate=10.0),
     ValueError, ["t.csv", "abc", "row"]),
    ("empty .npy", lambda c: dr.io.open_recording(c.file("empty.npy"), rate=10.0),
     ValueError, ["empty.npy"]),
    ("empty suite2p F.npy",
     lambda c: dr.io.open_recording(_empty_suite2p(c), rate=10.0),
     ValueError, ["F.npy"]),
    ("truncated .nwb", lambda c: dr.io.open_recording(_truncated_nwb(c)),
     ValueError, ["cut.nwb"]),
    ("pickled .npy", lambda c: dr.io.open_recording(_pickled(c), rate=10.0),
     ValueError, ["pickled.npy", "allow_pickle"]),
    ("dynrnn info on a corrupt .h5",
     lambda c: _cli(["info", str(c.file("corrupt.h5", b"\x89HDF junk"))]),
     RuntimeError, ["corrupt.h5"]),
    ("dynrnn info on an empty .npy", lambda c: _cli(["info", str(c.file("empty.npy"))]),
     RuntimeError, ["empty.npy"]),
    ("dynrnn reconstruct --data pickled.npy",
     lambda c: _cli(["reconstruct", "--data", str(_pickled(c)), "--steps", "2",
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["pickled.npy", "allow_pickle"]),
    # --- configuration files
    ("config value of the wrong type",
     lambda c: _cli(["fit", str(c.config(model={"type": "PLRNN", "latent": 3},
                                         training={"n_steps": "many"})), "--no-progress"]),
     RuntimeError, ["n_steps", "many", "integer"]),
    ("config key misspelt (n_step)",
     lambda c: _cli(["fit", str(c.config(model={"type": "PLRNN", "latent": 3},
                                         training={"n_step": 10})), "--no-progress"]),
     RuntimeError, ["n_step", "did you mean", "n_steps"]),
    ("config key misspelt (learning_rat)",
     lambda c: _cli(["fit", str(c.config(model={"type": "PLRNN", "latent": 3},
                                         training={"learning_rat": 1e-3})), "--no-progress"]),
     RuntimeError, ["learning_rat", "learning_rate"]),
    ("config key misspelt (rate_hz)",
     lambda c: _cli(["fit", str(c.config(model={"type": "PLRNN", "latent": 3},
                                         data={"train": "dataset:lorenz63_train",
                                               "rate_hz": 100})), "--no-progress"]),
     RuntimeError, ["rate_hz", "rate"]),
    ("unknown config section",
     lambda c: _cli(["fit", str(c.config(model={"type": "PLRNN", "latent": 3},
                                         trainig={"n_steps": 10})), "--no-progress"]),
     RuntimeError, ["trainig", "training"]),
    # --- recordings on the command line (issue 19)
    ("recording without a rate and no --rate",
     lambda c: _cli(["reconstruct", "--data", str(c.file("rec.csv", "1,2\n3,4\n5,6\n")),
                     "--steps", "2", "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["rec.csv", "rate", "--rate"]),
    ("suite2p folder without settings and no --rate",
     lambda c: _cli(["reconstruct", "--data", str(_suite2p_without_ops(c)), "--steps", "2",
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["suite2p", "rate", "--rate"]),
    ("PCA to more components than neurons",
     lambda c: dr.preprocess.pca(dr.io.from_array(c.x, rate=100.0), 5),
     ValueError, ["n_components", "5", "neurons (3)"]),
    ("config PCA to more components than neurons",
     lambda c: _cli(["fit", str(c.config(data={"train": str(_suite2p_without_ops(c)),
                                               "rate": 30.0},
                                         preprocess={"pca": 50},
                                         model={"type": "PLRNN", "latent": 3})),
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["pca = 50", "only 4 dimensions"]),
    ("neuropil correction on the wrong variable",
     lambda c: _cli(["fit", str(c.config(data={"train": str(_suite2p_without_ops(c)),
                                               "rate": 30.0},
                                         preprocess={"variable": "spikes", "neuropil": 0.7},
                                         model={"type": "PLRNN", "latent": 3})),
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["neuropil", "'activity'", "variable = 'spikes'"]),
    ("dF/F on spike counts",
     lambda c: _cli(["fit", str(c.config(data={"train": str(_suite2p_without_ops(c)),
                                               "rate": 30.0},
                                         preprocess={"variable": "spikes", "neuropil": 0,
                                                     "dff": True},
                                         model={"type": "PLRNN", "latent": 3})),
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["dff", "spikes"]),
    ("preprocess a variable the recording lacks",
     lambda c: _cli(["fit", str(c.config(data={"train": str(_suite2p_without_ops(c)),
                                               "rate": 30.0},
                                         preprocess={"variable": "dff"},
                                         model={"type": "PLRNN", "latent": 3})),
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["variable = 'dff'", "activity"]),
    ("negative kernel time constant", lambda c: dr.calcium.gamma_from_tau(-0.5, 30.0),
     ValueError, ["tau", "-0.5"]),
    ("negative kernel rise time",
     lambda c: dr.calcium.gamma_from_tau(1.0, 30.0, rise=-0.1), ValueError, ["rise", "-0.1"]),
    # --- comparing architectures
    ("compare with an unknown family",
     lambda c: dr.compare({"x": {"type": "Transformerz"}}, ["lorenz63"], n_steps=1,
                          key=jr.PRNGKey(0)), ValueError, ["models['x'].type", "Transformerz"]),
    ("compare with an unknown task kind",
     lambda c: dr.compare(["s6"], {"t": {"kind": "imagenet"}}, n_steps=1, key=jr.PRNGKey(0)),
     ValueError, ["tasks['t']", "imagenet"]),
    ("compare with an unknown measure",
     lambda c: dr.compare(["s6"], ["lorenz63"], n_steps=1, key=jr.PRNGKey(0), measures=["D_KL"]),
     ValueError, ["measures", "D_KL"]),
    ("compare a model whose obs is not the task's",
     lambda c: dr.compare({"g": {"type": "GRU", "latent": 4, "obs": 5}}, ["lorenz63"],
                          n_steps=1, key=jr.PRNGKey(0)), ValueError,
     ["models['g']", "obs = 5", "3"]),
    ("compare an empty model list",
     lambda c: dr.compare({}, ["lorenz63"], n_steps=1, key=jr.PRNGKey(0)), ValueError,
     ["models", "non-empty"]),
    ("compare config with a misspelt key",
     lambda c: _cli(["compare", str(_compare_config(c, "n_step = 3\n"))]), RuntimeError,
     ["n_step", "did you mean 'n_steps'"]),
    ("compare config with an empty model table",
     lambda c: _cli(["compare", str(_compare_config(c, "", models="[]"))]), RuntimeError,
     ["models", "empty"]),
    # --- checkpoints and runs
    ("checkpoint written by an unknown version",
     lambda c: dr.load(_other_version_checkpoint(c)), dr.CheckpointError, ["version"]),
    ("checkpoint with hyperparameters the class does not take",
     lambda c: dr.load(_bad_hyperparameters_checkpoint(c)), dr.CheckpointError,
     ["hyperparameters", "ShallowPLRNN"]),
    ("checkpoint_dir is a file", lambda c: c.fit(checkpoint_dir=c.file("ck")),
     dr.CheckpointError, ["checkpoint_dir", "not a folder"]),
    ("checkpoint_dir read-only", lambda c: c.fit(checkpoint_dir=_read_only(c)),
     dr.CheckpointError, ["checkpoint_dir", "writ"]),
    ("resume with other data",
     lambda c: _run_twice(c, {}, {"data": c.x + 0.01}), dr.CheckpointError, ["data"]),
    ("resume with another noise",
     lambda c: _run_twice(c, {}, {"loss": dr.training.Reconstruction(noise=0.1, seq_len=5)}),
     dr.CheckpointError, ["objective", "noise"]),
    ("resume with another learning rate",
     lambda c: _run_twice(c, {}, {"optimizer": dr.training.default_optimizer(4, 3e-3)}),
     dr.CheckpointError, ["optimizer", "learning_rate"]),
    ("resume with another forcing",
     lambda c: _run_twice(c, {}, {"teacher_forcing": dr.GTF(0.3)}),
     dr.CheckpointError, ["objective", "alpha"]),
    ("resume with another n_steps",
     lambda c: _run_twice(c, {}, {"n_steps": 6}), dr.CheckpointError, ["n_steps", "4", "6"]),
    # --- automatic reconstruction (issue 22)
    ("budget text without a number", lambda c: dr.reconstruct(c.x, budget="fast"),
     ValueError, ["budget", "'fast'", "10min"]),
    ("budget in an unknown unit", lambda c: dr.training.parse_budget("3 days"),
     ValueError, ["budget", "'3 days'", "1h"]),
    ("budget zero", lambda c: dr.training.parse_budget(0), ValueError, ["budget", "0",
                                                                       "greater than 0"]),
    ("budget negative", lambda c: dr.training.parse_budget("-5min"), ValueError,
     ["budget", "-5min"]),
    ("budget not finite", lambda c: dr.training.parse_budget(float("inf")), ValueError,
     ["budget", "inf"]),
    ("--budget on the command line",
     lambda c: _cli(["reconstruct", "--data", str(c.npy()), "--budget", "10 parsecs",
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["--budget", "budget", "10 parsecs", "10min"]),
    ("--budget with --config",
     lambda c: _cli(["reconstruct", "--config", "recipe:lorenz63_shplrnn", "--budget", "1min",
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["--budget", "--config", "one of the two"]),
    ("config sub-sampling by zero",
     lambda c: _cli(["fit", str(c.config(data={"train": str(c.npy())},
                                         preprocess={"subsample": 0},
                                         model={"type": "PLRNN", "latent": 3})),
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["subsample", "0", "an integer >= 1"]),
    ("config denoise not a flag",
     lambda c: _cli(["fit", str(c.config(data={"train": str(c.npy())},
                                         preprocess={"denoise": "yes"},
                                         model={"type": "PLRNN", "latent": 3})),
                     "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["denoise", "'yes'", "true or false"]),
    ("reconstruct a series with NaN", lambda c: dr.reconstruct(np.where(c.x > 1.5, np.nan, c.x)),
     ValueError, ["x", "non-finite"]),
    ("reconstruct a test series of another width",
     lambda c: dr.reconstruct(c.x, test=c.x[:, :2]), ValueError, ["test", "2 channels", "3"]),
    ("reconstruct a series too short", lambda c: dr.reconstruct(c.x[:20]), ValueError,
     ["x", "20"]),
    ("reconstruct with a window of 0", lambda c: dr.reconstruct(c.x, seq_len=0), ValueError,
     ["seq_len", "0"]),
    # --- evaluation on a recording (issue 19, item 4)
    ("evaluate: held-out neuron out of range",
     lambda c: dr.evaluate(c.model, _rec(c), train=_rec(c), held_out=[3]), ValueError,
     ["held_out", "[0, 3)", "3"]),
    ("evaluate: held_out covering every neuron",
     lambda c: dr.evaluate(c.model, _rec(c), train=_rec(c), held_out=[0, 1, 2]), ValueError,
     ["held_out", "all 3 neurons", "held in"]),
    ("evaluate: held_out repeated",
     lambda c: dr.evaluate(c.model, _rec(c), train=_rec(c), held_out=[1, 1]), ValueError,
     ["held_out", "distinct"]),
    ("evaluate: held_out without train",
     lambda c: dr.evaluate(c.model, _rec(c), held_out=[1]), ValueError, ["held_out", "train"]),
    ("evaluate: recording without a rate or time coordinate",
     lambda c: dr.evaluate(c.model, xr.DataArray(c.x, dims=("time", "neuron"))), ValueError,
     ["x_test", "rate", "time"]),
    ("evaluate: held-in neurons of another width than the model",
     lambda c: dr.evaluate(c.model, _rec(c), train=_rec(c), held_out=[0]), ValueError,
     ["x_test", "3 dimensions", "2"]),
    ("evaluate: train= with an array x_test",
     lambda c: dr.evaluate(c.model, c.x, train=c.x), ValueError, ["train", "recording"]),
    ("bootstrap level outside (0, 1)", lambda c: dr.metrics.BlockBootstrap(level=95),
     ValueError, ["level", "(0, 1)", "95"]),
    ("--held-out-neurons not a number or list",
     lambda c: _cli(["reconstruct", "--data", str(c.npy()), "--rate", "10", "--steps", "2",
                     "--held-out-neurons", "some", "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["--held-out-neurons", "some", "auto"]),
    ("[evaluation] held_out_neurons = 1 (every neuron)",
     lambda c: _cli(["fit", str(c.config(model={"type": "PLRNN", "latent": 3},
                                         evaluation={"held_out_neurons": 1})), "--no-progress"]),
     RuntimeError, ["held_out_neurons", "1", "not 1"]),
    ("[evaluation] held_out_neurons beyond the neurons",
     lambda c: _cli(["reconstruct", "--data", str(c.npy()), "--rate", "10", "--steps", "2",
                     "--held-out-neurons", "0,7", "--no-progress", "--out", str(c.tmp / "r")]),
     RuntimeError, ["held_out_neurons", "[0, 3)"]),
]


def _rec(c):
    return dr.io.from_array(c.x, rate=100.0)


def _compare_config(c, extra: str, models: str = "['s6']"):
    path = c.tmp / "compare.toml"
    path.write_text(f"n_steps = 2\nmodels = {models}\ntasks = ['mqar']\n{extra}")
    return path


def _suite2p_without_ops(c):
    """A suite2p plane (F, Fneu, spks, iscell; 6 ROIs of which 4 cells) with no ops.npy."""
    folder = c.tmp / "s2p_no_ops" / "plane0"
    if not folder.exists():
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        np.save(folder / "F.npy", 2000 + 100 * rng.random((6, 400)))
        np.save(folder / "Fneu.npy", 500 + 10 * rng.random((6, 400)))
        np.save(folder / "spks.npy", rng.poisson(0.1, (6, 400)).astype(float))
        np.save(folder / "iscell.npy", np.array([[1, .9], [1, .8], [0, .1], [1, .7], [0, .2],
                                                 [1, .9]]))
    return folder.parent


def _empty_suite2p(c):
    folder = c.tmp / "suite2p" / "plane0"
    folder.mkdir(parents=True)
    for name in ("F", "Fneu", "iscell"):
        (folder / f"{name}.npy").write_bytes(b"")
    return c.tmp / "suite2p"


def _pickled(c):
    path = c.tmp / "pickled.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


def _other_version_checkpoint(c):
    from dynrnn.training import _checkpoint

    path = dr.save(c.tmp / "m.eqx", c.model)
    header, payload = _checkpoint.read_header(path)
    header["version"] = 99
    return _rewrite(path, header, payload)


def _bad_hyperparameters_checkpoint(c):
    from dynrnn.training import _checkpoint

    path = dr.save(c.tmp / "m.eqx", c.model)
    header, payload = _checkpoint.read_header(path)
    header["model"]["hyperparameters"]["hidden_units"] = 8
    return _rewrite(path, header, payload)


def _rewrite(path, header, payload):
    import hashlib
    import struct

    from dynrnn.training._checkpoint import MAGIC

    hbytes = json.dumps(header).encode()
    body = hbytes + payload
    path.write_bytes(MAGIC + struct.pack("<Q", len(hbytes)) + hbytes
                     + struct.pack("<Q", len(payload)) + payload + hashlib.sha256(body).digest())
    return path


def _read_only(c):
    if os.geteuid() == 0:  # root writes into any folder; /proc refuses everyone
        return pathlib.Path("/proc/dynrnn-checkpoints")
    folder = c.tmp / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input(case, ctx):
    _, call, error, words = case
    with pytest.raises(error) as info:
        call(ctx)
    text = str(info.value).lower()
    missing = [w for w in words if w.lower() not in text]
    assert not missing, f"message lacks {missing}: {info.value}"


def test_case_count():
    # The closing note reports this number; rows are added, never removed.
    assert len(CASES) >= 45
