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
