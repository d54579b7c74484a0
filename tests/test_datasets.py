"""dynrnn.datasets: the shipped data in `data/`, its cards, its bit-for-bit rebuild, and its
agreement with the GTF paper's reference Lorenz-63 files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnValueError
from dynrnn.datasets import _registry


DATA = _registry.data_dir()


@pytest.fixture(scope="module")
def manifest():
    return json.loads((DATA / "manifest.json").read_text())


@pytest.fixture(scope="module")
def loaded():
    return {name: dr.datasets.load(name) for name in dr.datasets.names()}


def _noise_sd(x):
    """Noise level from second differences: for a smooth signal sampled finely plus iid noise of
    sd s, var(x[t+1] - 2x[t] + x[t-1]) ~ 6 s^2 (the signal's share is O(dt^4))."""
    return np.sqrt(np.diff(np.asarray(x, dtype=np.float64), 2, axis=0).var(axis=0) / 6)


def test_names():
    names = dr.datasets.names()
    assert {"lorenz63_train", "lorenz63_test"} <= set(names)


@pytest.mark.parametrize("name", _registry.names())
def test_load_shapes_and_attrs(name, loaded):
    spec = _registry.spec(name)
    ds = loaded[name]
    dim = dr.systems.get(spec.system, **spec.params).dim
    assert ds.state.dims == ("time", "dim")
    assert ds.state.shape == (spec.n_steps, dim)
    assert ds.state.dtype == np.float32
    np.testing.assert_allclose(ds.time.values[:3], [0.0, spec.dt, 2 * spec.dt])
    assert ds.attrs["system"] == spec.system
    assert json.loads(ds.attrs["parameters"]) == spec.params
    assert ds.attrs["dt"] == spec.dt and ds.attrs["noise"] == spec.noise
    assert len(ds.attrs["mean"]) == dim and len(ds.attrs["std"]) == dim
    x = ds.state.values.astype(np.float64)
    assert np.all(np.isfinite(x))
    # Standardised by its own statistics before the noise: clean sets have mean 0 and sample sd
    # 1 (up to float32 rounding); noisy ones sd sqrt(1 + noise^2).
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=2e-3 if spec.noise else 1e-6)
    np.testing.assert_allclose(
        x.std(axis=0, ddof=1), np.sqrt(1 + spec.noise**2), atol=2e-3 if spec.noise else 1e-6
    )


def test_card_hashes_match_files(manifest):
    readme = (DATA / "README.md").read_text()
    total = 0
    for name in _registry.names():
        entry = manifest[name]
        path = DATA / entry["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == entry["sha256"]
        assert f"`{digest}`" in readme
        assert f"## `{name}`" in readme
        assert path.stat().st_size == entry["bytes"]
        total += entry["bytes"]
    assert total < 10 * 2**20


@pytest.mark.parametrize("name", ["lorenz63_train", "lorenz63_test", "lorenz96_10d"])
def test_build_reproduces_a_prefix_bit_for_bit(name, manifest):
    spec = _registry.spec(name)
    entry = manifest[name]
    # The same code path as the full build, shortened: raw trajectory, the manifest's
    # standardisation statistics, the same noise rows, the same cast.
    x, mean, std = _registry.generate(spec, n_steps=400, mean=entry["mean"], std=entry["std"])
    shipped = np.load(DATA / entry["file"], mmap_mode="r")
    np.testing.assert_array_equal(x, shipped[:400])
    np.testing.assert_array_equal(mean, entry["mean"])


@pytest.mark.slow
def test_full_rebuild_matches_manifest():
    assert _registry.check() == []


def test_noise_level_of_train_set(loaded):
    np.testing.assert_allclose(_noise_sd(loaded["lorenz63_train"].state.values), 0.05, rtol=0.03)
    # The clean set has (almost) no high-frequency content.
    assert np.all(_noise_sd(loaded["lorenz63_test"].state.values) < 0.01)


def test_same_protocol_as_gtf_reference_files(loaded, shared_data):
    folder = shared_data / "lorenz63_gtf"
    ref_train = np.load(folder / "lorenz63_on0.05_train.npy")
    ref_test = np.load(folder / "lorenz63_test.npy")
    ours_train = loaded["lorenz63_train"].state.values
    ours_test = loaded["lorenz63_test"].state.values
    assert ours_train.shape == ref_train.shape and ours_train.dtype == ref_train.dtype
    # Same noise level, and the same second-difference scale of the clean series, which pins
    # down dt and the standardisation (a different dt or scale changes it by dt^2 or the scale).
    np.testing.assert_allclose(_noise_sd(ours_train), _noise_sd(ref_train), rtol=0.03)
    np.testing.assert_allclose(_noise_sd(ours_test), _noise_sd(ref_test), rtol=0.05)
    np.testing.assert_allclose(
        ours_test.std(axis=0, dtype=np.float64, ddof=1),
        ref_test.std(axis=0, dtype=np.float64, ddof=1),
        atol=1e-6,
    )


def test_train_test_divergence_small(loaded, shared_data):
    metrics = getattr(dr, "metrics", None)
    if not hasattr(metrics, "state_space_divergence") or not hasattr(
        metrics, "power_spectrum_distance"
    ):
        pytest.skip("dynrnn.metrics not available")
    train = loaded["lorenz63_train"].state.values
    test = loaded["lorenz63_test"].state.values
    d_stsp = float(metrics.state_space_divergence(test, train))
    d_h = float(metrics.power_spectrum_distance(test, train))
    # The reference pair (GTF test vs noisy train) gives 0.119 and 0.070; independent 100k-step
    # trajectories of Lorenz-63 differ by up to ~0.23 in D_stsp (REFERENCES 2.6).
    assert 0.0 < d_stsp < 0.3
    assert 0.0 < d_h < 0.1
    ref_test = np.load(shared_data / "lorenz63_gtf" / "lorenz63_test.npy")
    assert float(metrics.state_space_divergence(ref_test, test)) < 0.3


def test_unknown_name_and_missing_file(tmp_path, monkeypatch):
    with pytest.raises(DynrnnValueError, match="unknown dataset.*lorenz63_train"):
        dr.datasets.load("lorenz64")
    monkeypatch.setenv("DYNRNN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m dynrnn.datasets build"):
        dr.datasets.load("lorenz63_test")


def test_build_cli_writes_one_set(tmp_path, manifest):
    from dynrnn.datasets.__main__ import main

    # Build the smallest set through the command line into a fresh folder: same hash.
    assert main(["build", "--out", str(tmp_path), "--only", "rossler"]) == 0
    fresh = json.loads((tmp_path / "manifest.json").read_text())
    assert fresh["rossler"]["sha256"] == manifest["rossler"]["sha256"]
    assert "## `rossler`" in (tmp_path / "README.md").read_text()
