"""Files written by dynrnn 0.1.0 (before the one-model contract) keep loading.

`tests/data/checkpoints_0_1_0/` holds `dr.save` files of 0.1.0 (PLRNN family, LTC, CfC with
identity, affine and liquid read-outs, wirings and inputs; `make.py` records how) and the
rollouts 0.1.0 computed from them. They name private module paths (`dynrnn.models._ltc:LTC`)
and flat hyperparameters; the current `dr.load` reads them through its alias table.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynrnn as dr
from dynrnn.training._checkpoint import read_header


HERE = pathlib.Path(__file__).parent / "data" / "checkpoints_0_1_0"
FILES = sorted(HERE.glob("*.eqx"))


def test_the_files_are_0_1_0_files():
    assert len(FILES) == 12
    for f in FILES:
        header, _ = read_header(f)
        assert header["version"] == 1 and ":" in header["class"], f.name


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_0_1_0_file_reproduces_its_rollout(path):
    ref = np.load(path.with_suffix(".npz"))
    model = dr.load(path)
    header, _ = read_header(path)
    assert type(model).__name__ == header["class"].split(":")[1]
    u = ref["u"]
    z0 = model.init_state(jnp.asarray(ref["x0"]))
    zs = model.rollout(z0, ref["observations"].shape[0], jnp.asarray(u) if u.shape[1] else None)
    obs = np.asarray(jax.vmap(model.observe)(zs))
    np.testing.assert_allclose(obs, ref["observations"], rtol=0, atol=1e-6)
    # ...and saving it again writes the current format, with public names only.
    text = json.dumps(dr.training._describe.encode(model))
    assert "dynrnn.models." in text and "._" not in text and '.py' not in text
