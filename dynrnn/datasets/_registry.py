"""The datasets that dynrnn generates itself and ships as package data.

Each set is described by a `DatasetSpec` (system, parameters, sampling, transient, noise, seed,
standardisation). `build` regenerates the files bit for bit: the integration runs in float64
(Dopri8, rtol = atol = 1e-10), the noise comes from a fixed `jax.random.key(seed)`, the result
is cast to the stored dtype and written with `numpy.save`. `manifest.json` (beside the files)
records each file's SHA-256, shape and standardisation statistics; `README.md` there is the
human-readable card of every set, generated from the same information.

The files are package data, found through `importlib.resources`, so they travel inside the
wheel; `$DYNRNN_DATA_DIR` points `load` (and `build`) at another folder instead.

Standardisation follows the reference data of the GTF paper (Hess et al., ICML 2023;
`lorenz63_on0.05_train.npy`, `lorenz63_test.npy`): every set is z-scored per dimension by its
*own* mean and sample standard deviation (`ddof=1`; the reference test file has a sample
standard deviation of exactly 1), and observation noise is added after standardising, so the
noise standard deviation is in units of the clean signal's standard deviation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import os
import pathlib

import jax
import jax.random as jr
import numpy as np
import xarray as xr

from .._errors import DynrnnTypeError, DynrnnValueError
from ..systems import get as get_system, simulate
from ..systems._simulate import observation_noise, standardize_array


BUILD_COMMAND = "python -m dynrnn.datasets build"
MANIFEST = "manifest.json"
DATASET_PREFIX = "dataset:"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How one shipped dataset is generated.

    **Arguments:**
    - `name`: file stem and the name for `load`.
    - `system`, `params`: a `dynrnn.systems` name and its parameters.
    - `n_steps`, `dt`: number of samples and sampling interval (time units).
    - `transient`: time integrated from `y0` and dropped before the first sample.
    - `y0`: initial condition of the integration (before the transient).
    - `noise`: sd of iid Gaussian observation noise added after standardising (0 for clean).
    - `seed`: seed of `jax.random.key` for the noise.
    - `dtype`: stored dtype.
    - `description`: one line for the card.
    """

    name: str
    system: str
    params: dict
    n_steps: int
    dt: float
    transient: float
    y0: tuple[float, ...]
    noise: float
    seed: int
    dtype: str
    description: str
    standardize: bool = True


SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="lorenz63_train",
        system="Lorenz63",
        params={"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0},
        n_steps=100_000,
        dt=0.01,
        transient=100.0,
        y0=(1.0, 1.0, 1.0),
        noise=0.05,
        seed=0,
        dtype="float32",
        description=(
            "Lorenz-63 training set following the GTF paper's protocol: standardised, plus iid "
            "observation noise of sd 0.05."
        ),
    ),
    DatasetSpec(
        name="lorenz63_test",
        system="Lorenz63",
        params={"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0},
        n_steps=100_000,
        dt=0.01,
        transient=100.0,
        y0=(-8.0, 7.0, 27.0),
        noise=0.0,
        seed=1,
        dtype="float32",
        description=(
            "Clean, independent Lorenz-63 test trajectory (another initial condition), "
            "standardised by its own statistics."
        ),
    ),
    DatasetSpec(
        name="rossler",
        system="Rossler",
        params={"a": 0.2, "b": 0.2, "c": 5.7},
        n_steps=50_000,
        dt=0.05,
        transient=500.0,
        y0=(1.0, 1.0, 0.0),
        noise=0.0,
        seed=2,
        dtype="float32",
        description="Clean Rossler trajectory (about 420 periods of 5.9 time units), standardised.",
    ),
    DatasetSpec(
        name="lorenz96_10d",
        system="Lorenz96",
        params={"n": 10, "forcing": 8.0},
        n_steps=50_000,
        dt=0.01,
        transient=100.0,
        y0=(8.01,) + (8.0,) * 9,
        noise=0.0,
        seed=3,
        dtype="float32",
        description="Clean Lorenz-96 trajectory, N = 10 sites, forcing F = 8, standardised.",
    ),
)


def names() -> list[str]:
    """The names of the shipped datasets, as accepted by `load`."""
    return [spec.name for spec in SPECS]


def spec(name: str) -> DatasetSpec:
    """The `DatasetSpec` of a shipped dataset."""
    if not isinstance(name, str):
        raise DynrnnTypeError(f"`name` must be a string, got {type(name).__name__}.")
    for s in SPECS:
        if s.name == name.lower():
            return s
    raise DynrnnValueError(f"unknown dataset `name` {name!r}; valid names: {', '.join(names())}.")


def file_name(name: str) -> str:
    """File of a shipped set. The `.dynrnn` infix keeps the project's own files apart from the
    reference datasets of the papers (e.g. the GTF repository's `lorenz63_test.npy`)."""
    return f"{name}.dynrnn.npy"


def package_data_dir() -> pathlib.Path:
    """The folder inside the installed package that holds the shipped files
    (`dynrnn/datasets/data/`, package data of the wheel)."""
    return pathlib.Path(str(importlib.resources.files(__package__).joinpath("data")))


def data_dir() -> pathlib.Path:
    """Where `load` reads the datasets: `$DYNRNN_DATA_DIR` if set, else the package's own data
    folder (`package_data_dir()`)."""
    env = os.environ.get("DYNRNN_DATA_DIR")
    if env:
        return pathlib.Path(env)
    return package_data_dir()


def build_dir(out: pathlib.Path | str | None = None) -> pathlib.Path:
    """Where `build` writes: `out` if given, else `$DYNRNN_DATA_DIR` if set, else the package's
    data folder when it is writable.

    **Raises:** `PermissionError` (naming `--out` and `DYNRNN_DATA_DIR`) when neither `out` nor
    the environment variable is given and the package folder is read-only (a system-wide
    install): `build` never writes anywhere else on its own.
    """
    if out is not None:
        return pathlib.Path(out)
    env = os.environ.get("DYNRNN_DATA_DIR")
    if env:
        return pathlib.Path(env)
    folder = package_data_dir()
    if folder.is_dir():
        files = [f for f in folder.iterdir() if f.is_file()]
        writable = os.access(folder, os.W_OK) and all(os.access(f, os.W_OK) for f in files)
    else:
        writable = os.access(folder.parent, os.W_OK)
    if not writable:
        raise PermissionError(
            f"the package's data folder {folder} is not writable; write the datasets elsewhere "
            "with `--out DIR` (or `build(out=DIR)`) or by setting DYNRNN_DATA_DIR, and point "
            "DYNRNN_DATA_DIR at that folder to load them."
        )
    return folder


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def generate(s: DatasetSpec, *, n_steps: int | None = None, mean=None, std=None):
    """The data of `s` (or its first `n_steps` rows) and the standardisation statistics.

    With `n_steps` shorter than the full set, pass the full set's `mean` and `std` (from the
    manifest): the raw trajectory, the noise rows and the arithmetic are then exactly those of
    the full build, so the result equals the shipped file's first rows bit for bit.

    **Returns:** `(array, mean, std)`, the array in `s.dtype`, `mean`/`std` float64 arrays.
    """
    n = s.n_steps if n_steps is None else n_steps
    with jax.enable_x64(True):
        raw = simulate(
            get_system(s.system, **s.params),
            n_steps=n,
            dt=s.dt,
            y0=np.asarray(s.y0, dtype=np.float64),
            transient=s.transient,
        ).state.values
        if s.standardize:
            x, mean, std = standardize_array(raw, mean, std)
        else:
            x, mean, std = raw, np.zeros(raw.shape[1]), np.ones(raw.shape[1])
        if s.noise > 0:
            eps = np.asarray(observation_noise(jr.key(s.seed), n, raw.shape[1], np.float64))
            x = x + s.noise * eps
    return x.astype(s.dtype), mean, std


def _card(s: DatasetSpec, entry: dict) -> str:
    system = get_system(s.system, **s.params)
    spectrum = system.lyapunov_spectrum()
    lines = [
        f"## `{s.name}`",
        "",
        s.description,
        "",
        "| field | value |",
        "|---|---|",
        f"| file | `{entry['file']}` |",
        f"| system | `dr.systems.{s.system}` |",
        f"| parameters | {json.dumps(s.params, sort_keys=True)} |",
        f"| dt | {s.dt} |",
        f"| transient | {s.transient} time units from y0 = {list(s.y0)}, dropped |",
        "| integration | diffrax Dopri8, rtol = atol = 1e-10, float64, steps <= dt |",
        f"| standardisation | {_standardisation_text(s, entry)} |",
        f"| observation noise | {_noise_text(s)} |",
        f"| shape, dtype | {tuple(entry['shape'])}, {entry['dtype']} |",
        f"| size | {entry['bytes']} bytes |",
        f"| sha256 | `{entry['sha256']}` |",
    ]
    if spectrum is not None:
        lines.append(
            f"| Lyapunov spectrum (reference) | {list(spectrum)} per time unit "
            f"({system.reference_source}) |"
        )
    return "\n".join(lines) + "\n"


def _standardisation_text(s: DatasetSpec, entry: dict) -> str:
    if not s.standardize:
        return "none"
    mean = ", ".join(f"{v:.6g}" for v in entry["mean"])
    std = ", ".join(f"{v:.6g}" for v in entry["std"])
    return f"own mean and sample sd (ddof=1) of the clean series: mean [{mean}], sd [{std}]"


def _noise_text(s: DatasetSpec) -> str:
    if s.noise <= 0:
        return "none (clean)"
    return (
        f"iid Gaussian, sd {s.noise}, added after standardising; row t from "
        f"`fold_in(jax.random.key({s.seed}), t)`"
    )


_README_HEAD = f"""# Datasets generated by dynrnn

Every file here is generated by the project itself and can be regenerated bit for bit with

```
{BUILD_COMMAND}            # writes dynrnn/datasets/data/ (or --out DIR)
{BUILD_COMMAND} --check    # regenerates into a temporary folder and compares SHA-256 hashes
```

and loaded with `dr.datasets.load(name)` (an `xr.Dataset` with `state` on `("time", "dim")`
and the card below as attributes). Files are NumPy `.npy`, C order, `(time, dim)`.

Protocol (after the data of the GTF paper, Hess et al., ICML 2023): integrate in float64 with
Diffrax's Dopri8 (rtol = atol = 1e-10, steps at most dt), drop a transient, z-score every
dimension by the set's own mean and sample standard deviation (`ddof=1`, as in the reference
files, whose clean test set has sample sd exactly 1), add observation noise (if any) after
standardising, cast to float32. Train and test sets start from different initial conditions
and are independent trajectories of the same attractor.

Bit-for-bit reproduction holds on the same platform and library versions (JAX, XLA, NumPy); a
chaotic trajectory amplifies any change in the last bit of floating-point arithmetic, so another
CPU or JAX version may produce a different (equally valid) trajectory. `--check` says which.

This file and `manifest.json` are written by the build; do not edit them by hand.
"""


def build(out: pathlib.Path | str | None = None, *, only: list[str] | None = None) -> dict:
    """Generate the datasets into `out` (default `build_dir()`: `$DYNRNN_DATA_DIR`, else the
    package's data folder when writable), with `manifest.json` and `README.md`. Returns the
    manifest (name -> entry)."""
    out = build_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    selected = [spec(n) for n in only] if only else list(SPECS)
    for s in selected:
        x, mean, std = generate(s)
        path = out / file_name(s.name)
        np.save(path, np.ascontiguousarray(x), allow_pickle=False)
        manifest[s.name] = {
            "file": path.name,
            "sha256": sha256(path),
            "bytes": path.stat().st_size,
            "shape": list(x.shape),
            "dtype": str(x.dtype),
            "mean": mean.tolist(),
            "std": std.tolist(),
            "spec": _spec_json(s),
        }
    manifest = {n: manifest[n] for n in names() if n in manifest}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    cards = "\n".join(_card(spec(n), manifest[n]) for n in manifest)
    (out / "README.md").write_text(_README_HEAD + "\n" + cards)
    return manifest


def _spec_json(s: DatasetSpec) -> dict:
    d = dataclasses.asdict(s)
    d["y0"] = list(s.y0)
    return d


def read_manifest(directory: pathlib.Path | None = None) -> dict:
    directory = data_dir() if directory is None else directory
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset manifest {path} not found; generate the datasets with `{BUILD_COMMAND}` "
            "(or set DYNRNN_DATA_DIR to a folder that holds them)."
        )
    return json.loads(path.read_text())


def load(name: str) -> xr.Dataset:
    """A dataset shipped with dynrnn, as an `xr.Dataset`.

    **Arguments:**
    - `name`: one of `names()`: `"lorenz63_train"`, `"lorenz63_test"`, `"rossler"`,
      `"lorenz96_10d"`; the spec form `"dataset:lorenz63_test"` is accepted too.

    **Returns:** a dataset with variable `state` on dims `("time", "dim")` (float32), a `time`
    coordinate (`dt * arange(n)`, time units) and the card as attributes: `system`,
    `parameters` (JSON), `dt`, `transient`, `y0`, `noise`, `seed`, `standardize`, `mean`,
    `std`, `sha256`, `description`, and the reference Lyapunov spectrum where known.

    **Raises:** `DynrnnValueError` for an unknown name; `FileNotFoundError` (naming the build
    command) if the file is missing.
    """
    if isinstance(name, str) and name.startswith(DATASET_PREFIX):
        name = name[len(DATASET_PREFIX):]
    s = spec(name)
    directory = data_dir()
    path = directory / file_name(s.name)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset file {path} not found; generate it with `{BUILD_COMMAND}` "
            "(or set DYNRNN_DATA_DIR to a folder that holds it)."
        )
    entry = read_manifest(directory).get(s.name, {})
    x = np.load(path, allow_pickle=False)
    attrs = {
        "name": s.name,
        "description": s.description,
        "system": s.system,
        "parameters": json.dumps(s.params, sort_keys=True),
        "dt": s.dt,
        "transient": s.transient,
        "y0": list(s.y0),
        "noise": s.noise,
        "seed": s.seed,
        "standardize": int(s.standardize),
        "source": f"generated by dynrnn ({BUILD_COMMAND})",
    }
    for key in ("mean", "std", "sha256"):
        if key in entry:
            attrs[key] = entry[key]
    spectrum = get_system(s.system, **s.params).lyapunov_spectrum()
    if spectrum is not None:
        attrs["lyapunov_spectrum"] = list(spectrum)
    return xr.Dataset(
        {"state": (("time", "dim"), x)},
        coords={"time": s.dt * np.arange(x.shape[0]), "dim": np.arange(x.shape[1])},
        attrs=attrs,
    )


def check(directory: pathlib.Path | None = None) -> list[str]:
    """Regenerate every set into a temporary folder and compare its SHA-256 with the manifest in
    `directory` (default `data_dir()`) and with the file there. Returns the problems found
    (empty when everything reproduces bit for bit)."""
    import tempfile

    directory = data_dir() if directory is None else pathlib.Path(directory)
    shipped = read_manifest(directory)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = build(tmp)
    for n in names():
        if n not in shipped:
            problems.append(f"{n}: missing from {directory / MANIFEST}")
            continue
        if fresh[n]["sha256"] != shipped[n]["sha256"]:
            problems.append(
                f"{n}: rebuilt sha256 {fresh[n]['sha256']} != manifest {shipped[n]['sha256']}"
            )
        path = directory / shipped[n]["file"]
        if not path.is_file():
            problems.append(f"{n}: file {path} missing")
        elif sha256(path) != shipped[n]["sha256"]:
            problems.append(f"{n}: file {path} does not match its manifest sha256")
    return problems
