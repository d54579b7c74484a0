"""Helpers shared by the tests."""

import contextlib


@contextlib.contextmanager
def count_compilations(name):
    """A list that collects one entry per XLA compilation of `jit(name)` inside the block."""
    import logging

    import jax

    found = []

    class _Handler(logging.Handler):
        def emit(self, record):
            if f"compilation of jit({name})" in record.getMessage():
                found.append(record.getMessage())

    handler = _Handler()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    previous = jax.config.jax_log_compiles
    jax.config.update("jax_log_compiles", True)
    try:
        yield found
    finally:
        jax.config.update("jax_log_compiles", previous)
        logger.removeHandler(handler)


# -----------------------------------------------------------------------------------------
# The latent families of dr.models, at small sizes, for the conformance suite
# (tests/test_conformance.py). A family exported by dynrnn.models joins automatically, built
# from `obs`, `latent` and its own defaults; sizes below only make known families cheaper.

SMALL_SIZES = {
    "ShallowPLRNN": dict(hidden=8),
    "DendPLRNN": dict(bases=3),
    "CfC": dict(backbone_units=8),
    "NeuralODE": dict(width=8, depth=1),
    "NeuralSDE": dict(width=8, depth=1),
}


def latent_families() -> list[str]:
    """Names of every concrete latent family exported by `dynrnn.models`."""
    import dynrnn as dr

    return sorted(dr.models.families())


def make_family(name, *, key, obs=3, latent=4, **kwargs):
    """A small model of family `name` (keyword sizes only, as every family takes them)."""
    import dynrnn as dr

    cls = dr.models.families()[name]
    return cls(obs=obs, latent=latent, key=key, **{**SMALL_SIZES.get(name, {}), **kwargs})
