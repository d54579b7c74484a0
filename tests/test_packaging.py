"""The package carries its own data: shipped datasets and recipes are package data found through
`importlib.resources`, spec strings (`dataset:NAME`, `recipe:NAME`) resolve to them, `build`
never writes outside the package folder on its own, and the command line reports its version
and lists what ships."""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import tomllib

import pytest

import dynrnn as dr
from dynrnn._errors import DynrnnValueError
from dynrnn.cli import main
from dynrnn.datasets import _registry


PACKAGE = pathlib.Path(dr.__file__).resolve().parent


def test_version_is_the_installed_metadata(capsys):
    assert dr.__version__ == importlib.metadata.version("dynrnn")
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"dynrnn {dr.__version__}"


def test_data_and_recipes_live_inside_the_package(monkeypatch):
    monkeypatch.delenv("DYNRNN_DATA_DIR", raising=False)
    assert dr.datasets.data_dir() == PACKAGE / "datasets" / "data"
    assert dr.datasets.recipe_dir() == PACKAGE / "recipes"
    manifest = json.loads((dr.datasets.data_dir() / "manifest.json").read_text())
    assert set(manifest) == set(dr.datasets.names())
    assert (PACKAGE / "py.typed").is_file()


def test_dataset_spec_string_loads_the_same_set():
    a = dr.datasets.load("dataset:rossler")
    b = dr.datasets.load("rossler")
    assert a.identical(b)


def test_resolve_recipe_names_and_paths(tmp_path):
    names = dr.datasets.recipes()
    assert "lorenz63_shplrnn" in names and "ecg_gtf" in names
    for name in names:
        path = dr.datasets.resolve_recipe(f"recipe:{name}")
        assert path == PACKAGE / "recipes" / f"{name}.toml"
        recipe = tomllib.loads(path.read_text())
        # fit recipes hold a [model] table, comparison recipes [models.*] and [tasks.*]
        assert ("models" in recipe and "tasks" in recipe) if name.startswith("compare_") \
            else "model" in recipe
    assert dr.datasets.resolve_recipe("recipe:ecg_gtf.toml") == PACKAGE / "recipes/ecg_gtf.toml"
    own = tmp_path / "mine.toml"
    own.write_text("[model]\ntype = 'PLRNN'\n")
    assert dr.datasets.resolve_recipe(own) == own
    assert dr.datasets.resolve_recipe(str(own)) == own
    assert dr.datasets.is_recipe_spec("recipe:ecg_gtf")
    assert not dr.datasets.is_recipe_spec(str(own))


@pytest.mark.parametrize("spec", ["recipe:nope", "recipe:", "recipe:../recipes/ecg_gtf"])
def test_unknown_recipe_lists_the_shipped_ones(spec):
    with pytest.raises(DynrnnValueError, match="recipe:lorenz63_shplrnn"):
        dr.datasets.resolve_recipe(spec)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dr.datasets.resolve_recipe(tmp_path / "missing.toml")
    with pytest.raises(TypeError):
        dr.datasets.resolve_recipe(3)


def test_build_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("DYNRNN_DATA_DIR", raising=False)
    assert _registry.build_dir(tmp_path / "out") == tmp_path / "out"
    monkeypatch.setenv("DYNRNN_DATA_DIR", str(tmp_path / "env"))
    assert _registry.build_dir() == tmp_path / "env"
    assert _registry.build_dir(tmp_path / "out") == tmp_path / "out"
    monkeypatch.delenv("DYNRNN_DATA_DIR")
    assert _registry.build_dir() == _registry.package_data_dir()


def test_build_refuses_a_read_only_package_folder(monkeypatch, capsys):
    """A system-wide install: the build asks for --out instead of writing somewhere else."""
    monkeypatch.delenv("DYNRNN_DATA_DIR", raising=False)
    monkeypatch.setattr(_registry.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="--out"):
        _registry.build_dir()
    from dynrnn.datasets.__main__ import main as build_main

    assert build_main(["build", "--only", "rossler"]) == 2
    assert "DYNRNN_DATA_DIR" in capsys.readouterr().err


def test_cli_datasets_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in dr.datasets.names() + dr.datasets.recipes():
        assert name in out
    assert main(["datasets", "list", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in info["datasets"]}
    assert rows["lorenz96_10d"]["shape"] == [50_000, 10]
    assert all(r["present"] for r in rows.values())
    assert [r["spec"] for r in info["recipes"]] == [f"recipe:{n}" for n in dr.datasets.recipes()]


def test_cli_datasets_build_into_a_folder(tmp_path, capsys):
    assert main(["datasets", "build", "--out", str(tmp_path), "--only", "rossler"]) == 0
    fresh = json.loads((tmp_path / "manifest.json").read_text())
    shipped = _registry.read_manifest(_registry.package_data_dir())
    assert fresh["rossler"]["sha256"] == shipped["rossler"]["sha256"]


@pytest.mark.parametrize("spec", ["rossler", "dataset:rossler"])
def test_cli_info_takes_a_dataset_name_or_spec(spec, capsys):
    assert main(["info", spec, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["reader"] == "shipped dataset" and info["dims"] == {"time": 50_000, "dim": 3}
