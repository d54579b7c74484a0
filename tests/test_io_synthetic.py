"""dr.io.synthetic_suite2p: a folder the suite2p reader opens, whose traces after neuropil
correction and dF/F follow the ground-truth calcium it was made from."""

from __future__ import annotations

import jax.random as jr
import numpy as np
import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnValueError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("s2p") / "demo"
    return dr.io.synthetic_suite2p(path, n_neurons=20, n_frames=1500, rate=20.0, key=jr.key(0))


def test_reader_opens_it(folder):
    assert dr.io.detect_format(folder) == "suite2p"
    ds = dr.io.open_recording(folder, allow_pickle=True)
    assert ds["activity"].dims == ("time", "neuron")
    assert ds.sizes == {"time": 1500, "neuron": 20}
    assert ds.attrs["rate"] == 20.0 and ds.attrs["rate_source"] == "ops.npy"
    assert {"neuropil", "spikes", "iscell", "cell_probability"} <= set(ds.data_vars)
    assert "roi_x" in ds.coords
    truth = np.load(folder / "ground_truth.npz")
    np.testing.assert_array_equal(ds["iscell"].values, truth["is_cell"])
    np.testing.assert_array_equal(ds["spikes"].values, truth["spikes"].astype(np.float32))
    # Without pickles the rate must be given; with it, ops.npy is not opened.
    with pytest.raises(DynrnnValueError, match="pickle"):
        dr.io.open_recording(folder)
    assert dr.io.open_recording(folder, rate=20.0).attrs["rate_source"] == "rate="


def test_preprocessed_traces_follow_the_true_calcium(folder):
    ds = dr.io.open_recording(folder, rate=20.0, cells_only=True)
    ds = dr.preprocess.dff(dr.preprocess.neuropil_correct(ds), window_s=30.0)
    truth = np.load(folder / "ground_truth.npz")
    calcium = truth["calcium"][:, truth["is_cell"]]
    x = ds["activity"].values
    active = calcium.std(0) > 0.2
    r = [np.corrcoef(x[:, i], calcium[:, i])[0, 1] for i in np.flatnonzero(active)]
    assert len(r) >= 5 and np.median(r) > 0.9


def test_same_key_same_folder(tmp_path):
    a = dr.io.synthetic_suite2p(tmp_path / "a", n_neurons=5, n_frames=200, key=jr.key(3))
    b = dr.io.synthetic_suite2p(tmp_path / "b", n_neurons=5, n_frames=200, key=jr.key(3))
    np.testing.assert_array_equal(np.load(a / "plane0/F.npy"), np.load(b / "plane0/F.npy"))


@pytest.mark.parametrize("kw", [{"n_neurons": 0}, {"rate": -1.0}, {"fraction_cells": 0.0}])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(DynrnnValueError):
        dr.io.synthetic_suite2p(tmp_path / "x", key=jr.key(0), **kw)
