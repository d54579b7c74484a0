"""How the files in this folder were written: by dynrnn 0.1.0 (commit bb7ca21), before the
one-model-contract redesign. Kept as a record; it uses the 0.1.0 constructors and cannot run
against later versions. Each `<name>.eqx` is a `dr.save` file of that version and
`<name>.npz` holds a start observation `x0`, inputs `u` (empty for autonomous models) and the
reference `observations` of `generate`-style rollouts computed by 0.1.0 (float64).
`tests/test_checkpoint_compat.py` loads the files with the current `dr.load` and checks that
the rollouts are reproduced.

    JAX_ENABLE_X64=1 python tests/data/checkpoints_0_1_0/make.py
"""

import pathlib

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import dynrnn as dr  # noqa: E402
from dynrnn.models import wirings  # noqa: E402


HERE = pathlib.Path(__file__).parent
N = 40


def perturb(model, key):
    """Move every parameter a little off its initial value, so a file that loaded into a
    fresh model instead of the saved one cannot pass."""
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    keys = jr.split(key, len(leaves))
    leaves = [x + 0.05 * jr.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(tree, leaves), static)


def models(key):
    k = iter(jr.split(key, 32))
    yield "shallow_plrnn_identity", dr.models.ShallowPLRNN(3, 16, 3, key=next(k))
    yield "shallow_plrnn_affine", dr.models.ShallowPLRNN(
        4, 16, 3, observation="affine", clipped=False, penalty_weight=1e-3, key=next(k))
    yield "shallow_plrnn_inputs", dr.models.ShallowPLRNN(5, 8, 3, inputs=2, key=next(k))
    yield "plrnn", dr.models.PLRNN(5, 3, key=next(k))
    yield "dendplrnn", dr.models.DendPLRNN(4, 6, 3, clipped=True, threshold_range=(-1.5, 2.5),
                                           key=next(k))
    yield "alrnn", dr.models.ALRNN(5, 2, 3, key=next(k))
    yield "ltc", dr.models.LTC(0, 6, 3, key=next(k))
    yield "ltc_ncp", dr.models.LTC(2, wirings.NCP(3, 2, 2, 2, 2, 2, 2), key=next(k))
    yield "ltc_mixed_identity", dr.models.LTC(0, 5, 3, mixed_memory=True,
                                              observation="identity", key=next(k))
    yield "cfc", dr.models.CfC(0, 8, 3, backbone_units=16, key=next(k))
    yield "cfc_wired", dr.models.CfC(2, wirings.AutoNCP(8, 2), key=next(k))
    yield "cfc_pure_affine", dr.models.CfC(0, 6, 3, mode="pure", backbone_units=8,
                                           observation="affine", key=next(k))


def main():
    key = jr.PRNGKey(20261202)
    for i, (name, model) in enumerate(models(key)):
        model = perturb(model, jr.fold_in(key, 100 + i))
        dr.save(HERE / f"{name}.eqx", model)
        back = dr.load(HERE / f"{name}.eqx")  # 0.1.0 must read its own file
        rng = np.random.default_rng(i)
        x0 = rng.normal(size=model.n_obs)
        n_in = 0
        if isinstance(model, dr.models.AbstractLiquidModel):
            n_in = model.input_size
        elif getattr(model, "C", None) is not None:
            n_in = model.C.shape[1]
        u = rng.normal(size=(N, n_in))
        z0 = back.init_state(jnp.asarray(x0))
        zs = back.rollout(z0, N, jnp.asarray(u) if n_in else None)
        obs = jax.vmap(back.observe)(zs)
        z0b = model.init_state(jnp.asarray(x0))
        ref = jax.vmap(model.observe)(model.rollout(z0b, N, jnp.asarray(u) if n_in else None))
        assert np.allclose(obs, ref, atol=1e-12), name
        np.savez(HERE / f"{name}.npz", x0=x0, u=u, observations=np.asarray(obs))
        print(name, type(model).__name__, np.asarray(obs).shape)


if __name__ == "__main__":
    main()
