"""Shared fixtures. Float64 is enabled for the whole test run so that comparisons against
float64 NumPy references are possible; tests of float32 behaviour cast explicitly."""

from __future__ import annotations

import itertools
import os
import pathlib


# Before NumPy/SciPy load OpenBLAS: its thread pool was seen to deadlock when XLA's CPU
# LAPACK calls (batched LU inside vmapped solves) run on several XLA threads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The command line keeps XLA's compiled programs in ~/.cache between runs; the tests write
# nothing outside their temporary folders (tests/test_cli.py checks the cache on its own).
os.environ.setdefault("DYNRNN_COMPILE_CACHE", "off")

import jax  # noqa: E402


jax.config.update("jax_enable_x64", True)

import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("DYNRNN_SHARED_DATA", ROOT.parent / "shared" / "data")
).resolve()


@pytest.fixture
def getkey():
    """Fresh PRNG keys: `getkey()` returns a new key on every call."""
    counter = itertools.count()
    base = jr.PRNGKey(np.random.SeedSequence().entropy % (2**31))

    def _getkey():
        return jr.fold_in(base, next(counter))

    return _getkey


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """`../shared/data`, the real datasets (never committed into the project)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set DYNRNN_SHARED_DATA)")
    return SHARED_DATA


def _memory_mappings() -> int:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_code():
    """Drop JAX's compiled executables after a test module once there are many.

    Every XLA CPU executable keeps its own memory mappings; the whole suite compiles thousands
    of programs, and one process accumulating them passed Linux's default limit of 65 530
    mappings per process (`vm.max_map_count`), after which LLVM's next allocation failed and
    the compiler crashed with a segmentation fault (seen in the full run, never in a file on
    its own; one module, the conformance suite, needs up to ~26 000). Past 25 000 mappings
    the caches are cleared between modules, which unmaps the freed executables.
    """
    yield
    if _memory_mappings() > 25_000:
        import gc

        jax.clear_caches()
        gc.collect()
