"""`dynrnn info PATH` on every format it reads, checked against values computed here."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import xarray as xr

from dynrnn.cli import main


def _info_json(capsys, *args) -> dict:
    assert main(["info", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)


def test_npy(tmp_path, capsys, rng):
    x = rng.normal(size=(257, 4)).astype(np.float32) * 3 + 1
    path = tmp_path / "x.npy"
    np.save(path, x)
    s = _info_json(capsys, str(path), "--rate", "20")
    # read through dr.io.open_recording: a recording, dims ("time", "neuron")
    assert s["dims"] == {"time": 257, "neuron": 4} and s["length"] == 257
    (v,) = s["variables"].values()
    assert v["dtype"] == "float32" and v["shape"] == [257, 4]
    np.testing.assert_allclose([v["min"], v["max"]], [x.min(), x.max()], rtol=1e-6)
    np.testing.assert_allclose(v["per_dim_max"], x.max(axis=0), rtol=1e-6)
    assert s["sampling"] == {"rate_hz": 20.0, "dt": 0.05}
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "dims: time=257, dim=4" in text and "unknown (pass --rate)" in text
    assert f"max {x.max():.6g}" in text


def test_netcdf_recording(tmp_path, capsys, rng):
    n, k, rate = 120, 5, 30.0
    x = rng.normal(size=(n, k))
    x[3, 2] = np.nan
    ds = xr.Dataset(
        {"fluorescence": (("time", "neuron"), x)},
        coords={"time": np.arange(n) / rate, "neuron": np.arange(k)},
        attrs={"rate": rate, "units": "dF/F", "source": "test"},
    )
    path = tmp_path / "rec.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    s = _info_json(capsys, str(path))
    assert s["reader"] in ("NetCDF4 (h5netcdf)", "dynrnn.io.open_recording")
    assert s["dims"] == {"time": n, "neuron": k}
    assert s["sampling"]["rate_hz"] == rate
    assert s["sampling"]["dt"] == pytest.approx(1 / rate)
    v = s["variables"]["fluorescence"]
    assert v["non_finite"] == 1
    np.testing.assert_allclose([v["min"], v["max"]], [np.nanmin(x), np.nanmax(x)])
    assert s["attrs"]["units"] == "dF/F"
    assert main(["info", str(path)]) == 0
    assert "rate 30 Hz" in capsys.readouterr().out


def test_time_coordinate_gives_dt(tmp_path, capsys):
    ds = xr.Dataset({"v": (("time",), np.arange(10.0))}, coords={"time": 0.25 * np.arange(10)})
    path = tmp_path / "t.h5"
    ds.to_netcdf(path, engine="h5netcdf")
    s = _info_json(capsys, str(path))
    assert s["sampling"] == {"dt": 0.25}
    assert s["coords"]["time"]["last"] == 2.25


def test_plain_hdf5_lists_datasets(tmp_path, capsys, rng):
    c = rng.normal(size=(7, 300))
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("group/values", data=c)
        f.create_dataset("meta/scale", data=30.0)
    s = _info_json(capsys, str(path))
    assert s["reader"] == "HDF5 (h5py)"
    assert s["datasets"]["group/values"]["shape"] == [7, 300]
    assert s["datasets"]["group/values"]["max"] == pytest.approx(c.max())
    assert s["datasets"]["meta/scale"]["min"] == 30.0


@pytest.mark.parametrize("header", ["names", "indices", "none"])
def test_csv(tmp_path, capsys, rng, header):
    x = rng.normal(size=(50, 3))
    path = tmp_path / "x.csv"
    head = {"names": "a,b,c\n", "indices": "0,1,2\n", "none": ""}[header]
    path.write_text(head + "\n".join(",".join(f"{v:.17g}" for v in row) for row in x) + "\n")
    s = _info_json(capsys, str(path))
    assert s["dims"] == {"time": 50, "column": 3}
    np.testing.assert_allclose(s["variables"]["data"]["per_dim_min"], x.min(axis=0))
    if header == "names":
        assert s["coords"]["column"]["values"] == ["a", "b", "c"]


def test_shipped_dataset_by_name(capsys):
    s = _info_json(capsys, "lorenz63_train")
    assert s["reader"] == "shipped dataset"
    assert s["dims"] == {"time": 100_000, "dim": 3}
    assert s["sampling"]["dt"] == 0.01
    assert s["attrs"]["system"] == "Lorenz63" and s["attrs"]["noise"] == 0.05


def test_uses_open_recording_when_available(tmp_path, capsys, monkeypatch):
    import dynrnn.io

    calls = []

    def fake_open_recording(path, **kw):
        calls.append((path.name, kw))
        if path.suffix != ".nwb":
            raise ValueError("not a recording")
        return xr.Dataset(
            {"traces": (("time", "neuron"), np.ones((40, 2)))},
            coords={"time": np.arange(40) / 10.0},
            attrs={"rate": 10.0},
        )

    monkeypatch.setattr(dynrnn.io, "open_recording", fake_open_recording, raising=False)
    nwb = tmp_path / "session.nwb"
    nwb.write_bytes(b"")
    s = _info_json(capsys, str(nwb))
    assert s["reader"] == "dynrnn.io.open_recording"
    assert s["dims"] == {"time": 40, "neuron": 2} and s["sampling"]["rate_hz"] == 10.0
    # A path it does not recognise falls back to the generic readers.
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((5, 2)))
    assert _info_json(capsys, str(npy))["reader"] == "npy"
    assert [c[0] for c in calls] == ["session.nwb", "x.npy"]


def test_missing_path_is_an_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.nc")]) == 1
    err = capsys.readouterr().err
    assert "nope.nc" in err and "no such file" in err


def test_unknown_format_is_an_error(tmp_path, capsys):
    path = tmp_path / "notes.xyz"
    path.write_text("hello")
    assert main(["info", str(path)]) == 1
    assert ".xyz" in capsys.readouterr().err
