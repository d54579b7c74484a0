"""dr.io: the recording schema, round trips (NetCDF4, NWB), suite2p, CaImAn, CSV/NPY readers,
the shared real recordings, `dynrnn info`, and the errors of bad inputs."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

import dynrnn as dr
from dynrnn._errors import DynrnnTypeError, DynrnnValueError


pynwb = pytest.importorskip("pynwb")


def _rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)


def _recording(rng, n_time=57, n_neuron=4, dtype=np.float32, **attrs):
    x = rng.normal(size=(n_time, n_neuron)).astype(dtype)
    fneu = rng.normal(size=(n_time, n_neuron)).astype(dtype)
    iscell = rng.random(n_neuron) > 0.5
    ds = dr.io.from_array(
        x, rate=7.5, t0=1.25, units="a.u.", source="test", extra={"neuropil": fneu,
                                                                   "iscell": iscell},
        tags=["x", "y"], counts=[1, 2, 3], gain=0.25, **attrs,
    )
    ds = dr.preprocess.neuropil_correct(ds)  # a non-empty history
    return ds


# ---------------------------------------------------------------------------------------------
# Schema


def test_from_array_schema_and_layouts():
    rng = _rng()
    x = rng.normal(size=(4, 30))  # neurons first
    ds = dr.io.from_array(x, rate=2.0, dims=("neuron", "time"), units="dF/F")
    assert list(ds.data_vars)[0] == "activity"
    assert ds["activity"].dims == ("time", "neuron")
    np.testing.assert_array_equal(ds["activity"].values, x.T)
    np.testing.assert_array_equal(ds["time"].values, np.arange(30) / 2.0)
    assert ds.attrs["rate"] == 2.0 and ds.attrs["units"] == "dF/F"
    assert dr.io.history(ds) == []
    trials = rng.normal(size=(3, 5, 20))  # (trial, neuron, time)
    ds3 = dr.io.from_array(trials, rate=10, dims=("trial", "neuron", "time"))
    assert ds3["activity"].dims == ("trial", "time", "neuron")
    np.testing.assert_array_equal(ds3["activity"].values, trials.transpose(0, 2, 1))
    # dr.fit's data conversion takes the activity (first variable on time), per trial.
    from dynrnn.training._data import as_series_list

    series = as_series_list(ds3)
    assert len(series) == 3 and series[0].shape == (20, 5)


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("suffix", [".nc", ".h5", ".nwb"])
def test_round_trip_exact(tmp_path, suffix):
    ds = _recording(_rng())
    path = dr.io.save_recording(ds, tmp_path / f"rec{suffix}")
    back = dr.io.open_recording(path)
    xr.testing.assert_identical(back, ds)
    assert back["activity"].dtype == np.float32
    assert back.attrs == ds.attrs
    assert dr.io.history(back) == ["neuropil_correct(coefficient=0.7)"]


def test_round_trip_irregular_times_and_trials(tmp_path):
    rng = _rng()
    ds = dr.io.from_array(rng.normal(size=(40, 3)), rate=5.0)
    t = np.cumsum(rng.uniform(0.1, 0.3, 40))
    ds = ds.assign_coords(time=("time", t, {"units": "s"}))
    for suffix in (".nc", ".nwb"):
        back = dr.io.open_recording(dr.io.save_recording(ds, tmp_path / f"irr{suffix}"))
        xr.testing.assert_identical(back, ds)
    trials = dr.io.from_array(rng.normal(size=(2, 10, 3)), rate=3.0,
                              dims=("trial", "time", "neuron"))
    back = dr.io.open_recording(dr.io.save_recording(trials, tmp_path / "trials.nc"))
    xr.testing.assert_identical(back, trials)


def _nwb_file(path, data, **kw):
    with warnings.catch_warnings():
        # hdmf warns about the ROI table link while the file is being assembled in memory
        warnings.simplefilter("ignore")
        _write_nwb_file(path, data, **kw)


def _write_nwb_file(path, data, *, rate=None, timestamps=None, conversion=1.0, offset=0.0,
                    container="Fluorescence", extra_acquisition=False):
    import datetime

    from pynwb.ophys import (
        DfOverF,
        Fluorescence,
        ImageSegmentation,
        OpticalChannel,
        RoiResponseSeries,
    )

    nwb = pynwb.NWBFile(session_description="t", identifier="t",
                        session_start_time=datetime.datetime(2020, 1, 1,
                                                             tzinfo=datetime.UTC))
    device = nwb.create_device(name="scope")
    channel = OpticalChannel(name="green", description="", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=channel, description="", device=device,
        excitation_lambda=920.0, indicator="GCaMP6s", location="V1", imaging_rate=30.0,
    )
    ophys = nwb.create_processing_module(name="ophys", description="")
    seg = ImageSegmentation()
    ps = seg.create_plane_segmentation(name="rois", description="", imaging_plane=plane)
    ophys.add(seg)
    for _ in range(data.shape[1]):
        ps.add_roi(image_mask=np.ones((3, 3)))
    region = ps.create_roi_table_region(region=list(range(data.shape[1])), description="all")
    kw = dict(rate=rate, starting_time=2.0) if timestamps is None else dict(timestamps=timestamps)
    series = RoiResponseSeries(name="plane0", data=data, rois=region, unit="lumens",
                               conversion=conversion, offset=offset, **kw)
    ophys.add(Fluorescence(roi_response_series=series) if container == "Fluorescence"
              else DfOverF(roi_response_series=series))
    if extra_acquisition:
        nwb.add_acquisition(pynwb.TimeSeries(name="running", data=np.ones(data.shape[0]),
                                             unit="m/s", rate=30.0))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


@pytest.mark.parametrize("container", ["Fluorescence", "DfOverF"])
def test_nwb_roi_response_series(tmp_path, container):
    rng = _rng()
    data = rng.normal(size=(50, 6))
    path = tmp_path / "ophys.nwb"
    _nwb_file(path, data, rate=30.0, conversion=2.0, offset=0.5, container=container,
              extra_acquisition=True)
    ds = dr.io.open_recording(path)
    np.testing.assert_allclose(ds["activity"].values, data * 2.0 + 0.5, rtol=1e-14)
    np.testing.assert_allclose(ds["time"].values, 2.0 + np.arange(50) / 30.0, rtol=1e-14)
    assert ds.attrs["rate"] == 30.0 and ds.attrs["units"] == "lumens"
    assert ds.attrs["nwb_series"] == f"processing/ophys/{container}/plane0"
    # the other series can be chosen by name
    run = dr.io.open_recording(path, series="running")
    assert run["activity"].shape == (50, 1)


def test_nwb_timestamps(tmp_path):
    rng = _rng()
    data = rng.normal(size=(20, 3))
    t = np.sort(rng.uniform(0, 10, 20))
    _nwb_file(tmp_path / "ts.nwb", data, timestamps=t)
    ds = dr.io.open_recording(tmp_path / "ts.nwb")
    np.testing.assert_array_equal(ds["time"].values, t)
    assert ds.attrs["rate"] == pytest.approx(1.0 / np.median(np.diff(t)))


# ---------------------------------------------------------------------------------------------
# suite2p, CaImAn, CSV, NPY


def _suite2p(folder, rng, *, layout="ops", n_rois=5, n_frames=40, fs=12.5):
    folder.mkdir(parents=True, exist_ok=True)
    F = rng.normal(size=(n_rois, n_frames)).astype(np.float32)
    Fneu = rng.normal(size=(n_rois, n_frames)).astype(np.float32)
    spks = np.abs(rng.normal(size=(n_rois, n_frames))).astype(np.float32)
    iscell = np.stack([rng.random(n_rois) > 0.3, rng.random(n_rois)], axis=1).astype(float)
    for name, a in dict(F=F, Fneu=Fneu, spks=spks, iscell=iscell).items():
        np.save(folder / f"{name}.npy", a)
    if layout == "ops":  # suite2p <= 0.14
        settings = dict(fs=fs, tau=1.0, neucoeff=0.7)
    else:  # suite2p 1.x
        settings = dict(fs=fs, tau=1.0, extraction=dict(neuropil_coefficient=0.7))
    if layout is not None:
        np.save(folder / f"{layout}.npy", settings, allow_pickle=True)
    stat = np.array([dict(med=[float(i), 2.0 * i], npix=9) for i in range(n_rois)], dtype=object)
    np.save(folder / "stat.npy", stat, allow_pickle=True)
    return F, Fneu, spks, iscell


@pytest.mark.parametrize("layout", ["ops", "settings"])
def test_suite2p_layouts(tmp_path, layout):
    rng = _rng()
    F, Fneu, spks, iscell = _suite2p(tmp_path / "suite2p" / "plane0", rng, layout=layout)
    for path in (tmp_path / "suite2p" / "plane0", tmp_path / "suite2p"):
        ds = dr.io.open_recording(path, allow_pickle=True)
        assert ds["activity"].dims == ("time", "neuron")
        np.testing.assert_array_equal(ds["activity"].values, F.T)
        np.testing.assert_array_equal(ds["neuropil"].values, Fneu.T)
        np.testing.assert_array_equal(ds["spikes"].values, spks.T)
        np.testing.assert_array_equal(ds["iscell"].values, iscell[:, 0].astype(bool))
        np.testing.assert_array_equal(ds["cell_probability"].values, iscell[:, 1])
        assert ds.attrs["rate"] == 12.5 and ds.attrs["rate_source"] == f"{layout}.npy"
        np.testing.assert_array_equal(ds["time"].values, np.arange(40) / 12.5)
        np.testing.assert_array_equal(ds["roi_x"].values, 2.0 * np.arange(5))
    # without pickles, an explicit rate is enough (ops/settings/stat are never opened)
    ds = dr.io.open_recording(tmp_path / "suite2p" / "plane0", rate=30.0)
    assert ds.attrs["rate"] == 30.0 and "roi_x" not in ds.coords
    cells = dr.io.open_recording(tmp_path / "suite2p", rate=30.0, cells_only=True)
    assert cells.sizes["neuron"] == int(iscell[:, 0].sum())
    corrected = dr.preprocess.neuropil_correct(ds)
    np.testing.assert_allclose(corrected["activity"].values, (F - 0.7 * Fneu).T, rtol=1e-6)


def _caiman(path, rng, *, n=4, T=30, fr=15.0, dff=True):
    C = rng.normal(size=(n, T))
    S = np.abs(rng.normal(size=(n, T)))
    YrA = rng.normal(size=(n, T))
    with h5py.File(path, "w") as f:
        est = f.create_group("estimates")
        est["C"], est["S"], est["YrA"] = C, S, YrA
        est["F_dff"] = rng.normal(size=(n, T)) if dff else "NoneType"
        f.create_group("params/data")["fr"] = fr
        f["params/data/decay_time"] = 0.4
    return C, S, YrA


def test_caiman(tmp_path):
    rng = _rng()
    C, S, YrA = _caiman(tmp_path / "cnm.hdf5", rng)
    ds = dr.io.open_recording(tmp_path / "cnm.hdf5")
    np.testing.assert_array_equal(ds["activity"].values, C.T)
    np.testing.assert_array_equal(ds["spikes"].values, S.T)
    np.testing.assert_array_equal(ds["residual"].values, YrA.T)
    assert ds.attrs["rate"] == 15.0 and "dff" in ds
    raw = dr.io.open_recording(tmp_path / "cnm.hdf5", trace="raw", rate=10.0)
    np.testing.assert_array_equal(raw["activity"].values, (C + YrA).T)
    assert raw.attrs["rate"] == 10.0
    _caiman(tmp_path / "cnm.h5", rng, dff=False)  # a .h5 CaImAn file is recognised by content
    assert "dff" not in dr.io.open_recording(tmp_path / "cnm.h5")


def test_csv_and_npy(tmp_path):
    rng = _rng()
    x = rng.normal(size=(25, 3))
    np.savetxt(tmp_path / "h.csv", x, delimiter=",", header="a,b,c", comments="")
    ds = dr.io.open_recording(tmp_path / "h.csv", rate=4.0)
    np.testing.assert_allclose(ds["activity"].values, x, rtol=1e-15)
    assert ds["neuron"].values.tolist() == ["a", "b", "c"]
    np.savetxt(tmp_path / "n.csv", x.T, delimiter=",")
    nm = dr.io.open_recording(tmp_path / "n.csv", rate=4.0, layout="neuron-major")
    np.testing.assert_allclose(nm["activity"].values, x, rtol=1e-15)
    np.save(tmp_path / "x.npy", x.T)
    npy = dr.io.open_recording(tmp_path / "x.npy", rate=4.0, layout="neuron-major")
    np.testing.assert_array_equal(npy["activity"].values, x)


def test_shared_recordings(shared_data):
    sf = dr.io.open_recording(shared_data / "spikefinder" / "5.train.calcium.csv", rate=100.0)
    assert sf["activity"].shape == (16919, 9) and sf.attrs["rate"] == 100.0
    assert sf["neuron"].values.tolist() == [str(i) for i in range(9)]
    spikes = dr.io.open_recording(shared_data / "spikefinder" / "5.train.spikes.csv", rate=100)
    assert spikes["activity"].shape == (16919, 9)
    assert int(np.nansum(spikes["activity"].values)) == 8810
    zf = dr.io.open_recording(
        shared_data / "zebrafish_tectum" / "zf_20170215-f3_activity_matrix.csv", rate=2.2,
        layout="neuron-major",
    )
    assert zf["activity"].shape == (5660, 75) and zf.attrs["rate"] == 2.2
    raw = np.loadtxt(shared_data / "zebrafish_tectum" / "zf_20170215-f3_activity_matrix.csv",
                     delimiter=",")
    np.testing.assert_array_equal(zf["activity"].values, raw.T)
    assert zf["time"].values[-1] == pytest.approx(5659 / 2.2)


def test_dynrnn_info_on_recording(tmp_path, capsys):
    from dynrnn.cli import main

    ds = _recording(_rng())
    dr.io.save_recording(ds, tmp_path / "rec.nc")
    assert main(["info", str(tmp_path / "rec.nc")]) == 0
    out = capsys.readouterr().out
    assert "dynrnn.io.open_recording" in out and "activity" in out and "7.5" in out
    _suite2p(tmp_path / "plane0", _rng(), layout=None)
    assert main(["info", str(tmp_path / "plane0"), "--rate", "9"]) == 0
    out = capsys.readouterr().out
    assert "time=40" in out and "neuron=5" in out
    # a neuron-major CSV (the zebrafish layout): rows are neurons
    np.savetxt(tmp_path / "nm.csv", _rng().normal(size=(3, 12)), delimiter=",")
    assert main(["info", str(tmp_path / "nm.csv"), "--rate", "2.2", "--layout",
                 "neuron-major"]) == 0
    out = capsys.readouterr().out
    assert "time=12" in out and "neuron=3" in out


def test_fit_config_on_recording_keeps_its_own_data_table(tmp_path):
    # `dynrnn fit` with a recording and no test file holds out the end of the recording; the
    # default Lorenz-63 test set must not be merged into [data].
    from dynrnn.cli._config import read_config

    (tmp_path / "rec.toml").write_text(
        '[data]\ntrain = "rec.csv"\nrate = 2.2\nlayout = "neuron-major"\n'
        '[model]\ntype = "ShallowPLRNN"\nlatent = 8\nhidden = 16\n')
    cfg = read_config(tmp_path / "rec.toml")
    assert cfg["data"] == {"train": "rec.csv", "rate": 2.2, "layout": "neuron-major"}
    assert cfg["training"]["n_steps"] > 0  # other sections still take the defaults


# ---------------------------------------------------------------------------------------------
# Bad inputs


def _bad_cases(tmp_path):
    rng = _rng()
    cases = {}
    cases["missing file"] = (lambda: dr.io.open_recording(tmp_path / "nope.nc"),
                             FileNotFoundError, "no such file")
    (tmp_path / "x.xyz").write_text("1,2")
    cases["unknown suffix"] = (lambda: dr.io.open_recording(tmp_path / "x.xyz", rate=1.0),
                               DynrnnValueError, "unknown recording format")
    (tmp_path / "empty_dir").mkdir()
    cases["folder not suite2p"] = (lambda: dr.io.open_recording(tmp_path / "empty_dir"),
                                   DynrnnValueError, "not a suite2p")
    np.savetxt(tmp_path / "a.csv", rng.normal(size=(10, 2)), delimiter=",")
    cases["csv without rate"] = (lambda: dr.io.open_recording(tmp_path / "a.csv"),
                                 DynrnnValueError, "`rate`.*required")
    cases["rate zero"] = (lambda: dr.io.open_recording(tmp_path / "a.csv", rate=0),
                          DynrnnValueError, "> 0")
    cases["rate NaN"] = (lambda: dr.io.open_recording(tmp_path / "a.csv", rate=float("nan")),
                         DynrnnValueError, "finite")
    cases["rate string"] = (lambda: dr.io.open_recording(tmp_path / "a.csv", rate="30"),
                            DynrnnTypeError, "number")
    cases["bad layout"] = (
        lambda: dr.io.open_recording(tmp_path / "a.csv", rate=1.0, layout="columns"),
        DynrnnValueError, "layout")
    cases["unknown format"] = (
        lambda: dr.io.open_recording(tmp_path / "a.csv", rate=1.0, format="tiff"),
        DynrnnValueError, "`format`")
    cases["option of another reader"] = (
        lambda: dr.io.open_recording(tmp_path / "a.csv", rate=1.0, plane=0),
        DynrnnTypeError, "does not take \\['plane'\\]")

    s2p = tmp_path / "s2p_mismatch"
    _suite2p(s2p, rng, layout=None)
    np.save(s2p / "Fneu.npy", rng.normal(size=(5, 39)))
    cases["F vs Fneu"] = (lambda: dr.io.open_recording(s2p, rate=1.0),
                          DynrnnValueError, "Fneu.npy has shape \\(5, 39\\)")
    s2p_i = tmp_path / "s2p_iscell"
    _suite2p(s2p_i, rng, layout=None)
    np.save(s2p_i / "iscell.npy", np.ones((4, 2)))
    cases["iscell length"] = (lambda: dr.io.open_recording(s2p_i, rate=1.0),
                              DynrnnValueError, "iscell.npy has shape \\(4, 2\\)")
    s2p_s = tmp_path / "s2p_spks"
    _suite2p(s2p_s, rng, layout=None)
    np.save(s2p_s / "spks.npy", np.ones((5, 41)))
    cases["spks length"] = (lambda: dr.io.open_recording(s2p_s, rate=1.0),
                            DynrnnValueError, "spks.npy has shape")
    s2p_o = tmp_path / "s2p_ops"
    _suite2p(s2p_o, rng, layout="ops")
    cases["pickle refused"] = (lambda: dr.io.open_recording(s2p_o),
                               DynrnnValueError, "allow_pickle=True.*rate=")
    s2p_n = tmp_path / "s2p_norate"
    _suite2p(s2p_n, rng, layout=None)
    cases["suite2p without rate"] = (lambda: dr.io.open_recording(s2p_n),
                                     DynrnnValueError, "neither ops.npy nor settings.npy")
    planes = tmp_path / "two_planes"
    _suite2p(planes / "plane0", rng, layout=None)
    _suite2p(planes / "plane1", rng, layout=None)
    cases["several planes"] = (lambda: dr.io.open_recording(planes, rate=1.0),
                               DynrnnValueError, "`plane=`")

    x = rng.normal(size=(20, 3))
    x[:, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    cases["NaN-only neuron"] = (lambda: dr.io.open_recording(tmp_path / "nan.npy", rate=1.0),
                                DynrnnValueError, "channel.*NaN at every time point.*\\[1\\]")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases["pickled npy"] = (lambda: dr.io.open_recording(tmp_path / "obj.npy", rate=1.0),
                            DynrnnValueError, "allow_pickle")
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2)))
    cases["4-D npy"] = (lambda: dr.io.open_recording(tmp_path / "four.npy", rate=1.0),
                        DynrnnValueError, "1-D, 2-D or 3-D")

    with h5py.File(tmp_path / "noC.hdf5", "w") as f:
        f.create_group("estimates")["S"] = np.ones((2, 5))
    cases["CaImAn without C"] = (lambda: dr.io.open_recording(tmp_path / "noC.hdf5", rate=1.0),
                                 DynrnnValueError, "without estimates/C")
    _caiman(tmp_path / "nodff.hdf5", rng, dff=False)
    cases["CaImAn F_dff None"] = (
        lambda: dr.io.open_recording(tmp_path / "nodff.hdf5", trace="F_dff"),
        DynrnnValueError, "F_dff is None")
    xr.Dataset({"other": (("t", "c"), np.zeros((3, 2)))}).to_netcdf(
        tmp_path / "plain.nc", engine="h5netcdf")
    cases["NetCDF without activity"] = (lambda: dr.io.open_recording(tmp_path / "plain.nc"),
                                        DynrnnValueError, "no 'activity' variable")
    ds = dr.io.from_array(rng.normal(size=(10, 2)), rate=1.0)
    cases["save to .txt"] = (lambda: dr.io.save_recording(ds, tmp_path / "r.txt"),
                             DynrnnValueError, ".nc/.h5")
    cases["save a non-recording"] = (
        lambda: dr.io.save_recording(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "r.nc"),
        DynrnnValueError, "no 'activity'")
    cases["bool attr"] = (
        lambda: dr.io.from_array(np.zeros((3, 2)), rate=1.0, flag=True),
        DynrnnTypeError, "NetCDF has no bool")
    cases["bad dims"] = (
        lambda: dr.io.from_array(np.zeros((3, 2)), rate=1.0, dims=("time", "cell")),
        DynrnnValueError, "permutation")
    cases["extra of other length"] = (
        lambda: dr.io.from_array(np.zeros((3, 2)), rate=1.0, extra={"neuropil": np.zeros((4, 2))}),
        DynrnnValueError, "must match frame for frame")
    nwb_path = tmp_path / "one.nwb"
    _nwb_file(nwb_path, rng.normal(size=(10, 2)), rate=5.0)
    cases["NWB series missing"] = (lambda: dr.io.open_recording(nwb_path, series="nope"),
                                   DynrnnValueError, "`series`='nope' is not in")
    trials = dr.io.from_array(np.zeros((2, 3, 2)), rate=1.0, dims=("trial", "time", "neuron"))
    cases["trials to NWB"] = (lambda: dr.io.save_recording(trials, tmp_path / "t.nwb"),
                              DynrnnValueError, "cannot be written to NWB")
    return cases


def test_bad_inputs(tmp_path):
    cases = _bad_cases(tmp_path)
    assert len(cases) >= 15
    for name, (call, exc, pattern) in cases.items():
        with pytest.raises(exc, match=pattern):
            call()
        # every message is a sentence a user can act on, not a bare traceback
        try:
            call()
        except exc as e:
            assert len(str(e)) > 20, name


def test_history_json():
    ds = dr.io.from_array(np.ones((5, 1)), rate=1.0)
    ds = dr.preprocess.zscore(dr.preprocess.neuropil_correct(
        ds.assign(activity=ds["activity"] + np.arange(5.0)[:, None]), fneu=np.zeros((5, 1))))
    assert json.loads(ds.attrs["history"]) == dr.io.history(ds) == [
        "neuropil_correct(coefficient=0.7)", "zscore(ddof=0)"]


def test_simulated_dataset_reads_as_recording(tmp_path):
    """One schema: the NetCDF of dr.systems.simulate (`state` on (time, dim), `dt`) opens as a
    recording (`activity` on (time, neuron), rate 1/dt, time in s, a history entry)."""
    ds = dr.systems.simulate(dr.systems.Lorenz63(), n_steps=200, dt=0.02)
    ds.to_netcdf(tmp_path / "sim.nc", engine="h5netcdf")
    rec = dr.io.open_recording(tmp_path / "sim.nc")
    assert rec["activity"].dims == ("time", "neuron")
    assert rec.attrs["rate"] == pytest.approx(50.0) and rec["time"].attrs["units"] == "s"
    np.testing.assert_array_equal(rec["activity"].values, ds["state"].values)
    np.testing.assert_allclose(rec["time"].values, ds["time"].values)
    assert dr.io.history(rec)[-1].startswith("from_state(")
    assert rec.attrs["system"] == "Lorenz63"


def test_suite2p_object_arrays_need_allow_pickle(tmp_path):
    """Some suite2p versions save F and iscell as object arrays: refused by default, read as
    numbers with allow_pickle=True."""
    rng = _rng()
    folder = tmp_path / "plane0"
    folder.mkdir()
    F = rng.uniform(1000, 3000, (3, 20))
    np.save(folder / "F.npy", F.astype(object), allow_pickle=True)
    np.save(folder / "iscell.npy", np.array([[1, 0.9], [0, 0.1], [1, 0.8]], dtype=object),
            allow_pickle=True)
    with pytest.raises(DynrnnValueError, match="allow_pickle"):
        dr.io.open_recording(folder, rate=10.0)
    ds = dr.io.open_recording(folder, rate=10.0, allow_pickle=True)
    np.testing.assert_allclose(ds["activity"].values, F.T)
    assert ds["iscell"].values.tolist() == [True, False, True]
