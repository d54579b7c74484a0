"""Data of a run: every source read into the recording schema, then the `[preprocess]` steps.

Every series the command line reads becomes a recording (`dr.io`): `activity` on
`("time", "neuron")` with a rate in Hz, whatever the source (`dataset:NAME` and the NetCDF that
`dr.systems.simulate` writes hold `state` on `("time", "dim")`; `.npy` arrays hold no rate and
are counted in steps). The steps of the `[preprocess]` table then run in a fixed order, each
through `dr.preprocess` and recorded in the recording's history:

1. `cells_only` (suite2p `iscell`), 2. `neuropil` correction `F − c · Fneu`, 3. `dff`,
4. the time split (`split`: training share when there is no test set), 5. `zscore` with the
training statistics (`"auto"`: only data that is not already on a unit scale, with a printed
note), 6. `pca` to k components fitted on the training part (components scaled to unit sd when
z-scoring).

Before steps 5 and 6 the neurons of `[evaluation] held_out_neurons` are set aside (co-smoothing,
`dr.evaluate`): they are z-scored with their own training statistics but take no part in the
PCA or the fit, and `RunData.recording` keeps them with the map from the held-in neurons to
what the model sees.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from .._errors import DynrnnValueError


# The defaults of [preprocess]; `neuropil` and `cells_only` apply only where the recording has
# the variables they need (suite2p's Fneu, iscell) unless the table sets them.
PREPROCESS_DEFAULTS = {
    "variable": "activity", "cells_only": True, "neuropil": 0.7, "dff": False,
    "dff_window_s": 60.0, "dff_percentile": 8.0, "zscore": "auto", "pca": 0, "split": 0.8,
    "subsample": 1, "denoise": False,
}


PROJECTION_FORMULA = (
    "model input from a recording's activity x (time, neuron) after cells_only, neuropil and "
    "dff: z = (x - zscore_mean) / zscore_sd; keep the neurons with held_out == 0; if loadings: "
    "z = (z - pca_mean) @ loadings.T / component_sd; if subsample: z = z[::subsample]; if "
    "channels: z = (z[:, channels] - channel_mean) / channel_scale"
)


@dataclasses.dataclass
class Recording:
    """The neurons of a run before the projection the model sees, for `dr.evaluate` on the
    recording: every neuron (held-in and held-out, after z-scoring), the held-out positions and
    the map `projection(held-in activity) -> model input` (`None`: the identity)."""

    train: np.ndarray
    test: np.ndarray
    neurons: np.ndarray
    held_out: np.ndarray
    rate: float
    t0_train: float
    t0_test: float
    units: str
    mean: np.ndarray | None = None
    loadings: np.ndarray | None = None
    component_sd: np.ndarray | None = None
    zscore_mean: np.ndarray | None = None
    zscore_sd: np.ndarray | None = None

    @property
    def held_in(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.train.shape[1]), self.held_out)

    def to_dataset(self, **extra):
        """What maps a recording's neurons (after cells, neuropil, dF/F) to the model's input,
        for `projection.nc` (an `xr.Dataset`): z-scoring, the held-out neurons, the PCA, and
        `extra` steps."""
        import xarray as xr

        n = self.train.shape[1]
        ds = xr.Dataset(
            {"zscore_mean": ("neuron", np.zeros(n) if self.zscore_mean is None
                             else self.zscore_mean),
             "zscore_sd": ("neuron", np.ones(n) if self.zscore_sd is None else self.zscore_sd),
             "held_out": ("neuron", np.isin(np.arange(n), self.held_out).astype(np.int8))},
            coords={"neuron": self.neurons},
            attrs={"rate": self.rate, "description": PROJECTION_FORMULA},
        )
        if self.loadings is not None:
            ds["pca_mean"] = ("held_in", self.mean)
            ds["loadings"] = (("component", "held_in"), self.loadings)
            ds["component_sd"] = ("component", np.ones(self.loadings.shape[0])
                                  if self.component_sd is None else self.component_sd)
            ds = ds.assign_coords(held_in=self.held_in)
        for k, v in extra.items():
            ds[k] = ("channel", v) if np.ndim(v) else ((), v)
        return ds

    @property
    def projection(self):
        if self.loadings is None:
            return None
        mean, loadings = self.mean, self.loadings
        sd = 1.0 if self.component_sd is None else self.component_sd
        return lambda x: (x - mean) @ loadings.T / sd


@dataclasses.dataclass
class RunData:
    """The arrays of a run and what was done to them."""

    train: np.ndarray
    test: np.ndarray
    dt: float | None
    attrs: dict
    history: list[str]
    standardised: bool
    scale: str
    recording: Recording | None = None
    #: the training series as recorded (before `denoise`; sub-sampled like `train`): what the
    #: data's own measures and the recording tables compare with
    recorded: np.ndarray | None = None


def parse_held_out(text: str):
    """`--held-out-neurons`: `'auto'`, `K` (every K-th neuron; 0: none) or positions `'I,J,...'`
    (a single position as `'I,'`)."""
    text = str(text).strip()
    if text == "auto":
        return text
    try:
        if "," in text:
            return [int(v) for v in text.split(",") if v.strip()]
        return int(text)
    except ValueError:
        raise DynrnnValueError(
            f"--held-out-neurons {text!r}: expected 'auto', an integer K (every K-th neuron; "
            "0: none) or comma-separated neuron positions ('3,' for one)."
        ) from None


def _is_neural(ds) -> bool:
    """A recording of neurons rather than the state of a simulated or shipped system (which the
    command line also reads as a recording) or a rate-less array."""
    history = ds.attrs.get("history", "[]")
    return ds.attrs.get("time_units") != "steps" and "from_state(" not in str(history)


def held_out_positions(spec, n: int, neural: bool) -> np.ndarray:
    """The held-out neuron positions of `[evaluation] held_out_neurons` for `n` neurons."""
    if spec == "auto":
        spec = 5 if neural and n >= 10 else 0
    if isinstance(spec, list):
        out = np.asarray(spec, int)
        if np.any(out >= n) or out.size >= n:
            raise DynrnnValueError(
                f"[evaluation] held_out_neurons = {spec}: positions must be in [0, {n}) and "
                f"leave at least one of the {n} neurons held in."
            )
        return np.sort(out)
    if spec == 0:
        return np.arange(0)
    if spec < 2 or spec > n:
        raise DynrnnValueError(f"[evaluation] held_out_neurons = {spec}: every {spec}-th of "
                               f"{n} neurons would leave none held in or none out.")
    return np.arange(0, n, spec)


def _rate_hint(e: Exception) -> str:
    text = str(e)
    hints = []
    if "rate" in text and ("required" in text or "pass `rate=`" in text or "give the rate"
                           in text):
        hints.append("on the command line: --rate HZ (or rate = HZ in [data])")
    if "allow_pickle" in text:
        hints.append("on the command line: --allow-pickle (or allow_pickle = true in [data]) "
                     "if you trust the files")
    return text + (" (" + "; ".join(hints) + ")" if hints else "")


def read_recording(spec: str, *, name: str, rate=None, layout=None, allow_pickle=None):
    """`spec` (`dataset:NAME`, `.npy`, a NetCDF file or any recording `dr.io` reads) as a
    recording; `.npy` without a rate gets `rate = 1` and `attrs["time_units"] = "steps"`."""
    from .. import datasets, io

    if spec.startswith("dataset:"):
        from ..io._netcdf import from_state

        ds = datasets.load(spec.split(":", 1)[1])
        return from_state(ds, spec) if "state" in ds.data_vars else ds
    path = pathlib.Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"`{name}` file {spec!r} does not exist.")
    if path.suffix == ".npy" and rate is None:
        from ._config import load_series

        arr, attrs = load_series(spec, name=name, allow_pickle=allow_pickle)
        if layout == "neuron-major" and arr.shape[1] > 1:  # rows are channels
            arr = np.ascontiguousarray(arr.T)
        from ..io._recording import _check_nan_neurons

        _check_nan_neurons(arr, name, f" ({spec})")  # the message names the argument
        ds = io.from_array(arr, rate=1.0, source=str(path))
        ds.attrs["time_units"] = "steps"
        return ds
    opts = {"rate": rate, "layout": layout, "allow_pickle": allow_pickle}
    opts = {k: v for k, v in opts.items() if v is not None}
    if io.detect_format(path) not in ("csv", "npy"):
        opts.pop("layout", None)
    try:
        return io.open_recording(path, **opts)
    except DynrnnValueError as e:
        raise DynrnnValueError(f"`{name}`: " + _rate_hint(e)) from e


def _check_variable(ds, variable: str, where: str):
    if variable not in ds.data_vars or "time" not in ds[variable].dims:
        timed = [k for k, v in ds.data_vars.items() if "time" in v.dims]
        raise DynrnnValueError(
            f"[preprocess] variable = {variable!r}: {where} has no such variable on time "
            f"(variables: {timed})."
        )


def _select(ds, variable: str):
    """The recording with `variable` as its activity (the other variables are kept)."""
    from ..io._recording import append_history

    if variable == "activity":
        return ds
    out = ds.drop_vars("activity").rename({variable: "activity"})
    out = out[["activity"] + [k for k in out.data_vars if k != "activity"]]
    out.attrs = dict(ds.attrs)
    return append_history(out, f"select(variable={json.dumps(variable)})")


def _steps_before_split(ds, opts: dict, explicit: set, where: str, echo):
    from .. import preprocess

    variable = opts["variable"]
    _check_variable(ds, variable, where)
    if opts["cells_only"] and "iscell" in ds.data_vars:
        keep = np.flatnonzero(ds["iscell"].values)
        if keep.size == 0:
            raise DynrnnValueError(f"{where}: iscell labels no ROI as a cell "
                                   "([preprocess] cells_only = false keeps them all).")
        if keep.size < ds.sizes["neuron"]:
            from ..io._recording import append_history

            echo(f"{where}: {keep.size} of {ds.sizes['neuron']} ROIs are cells (suite2p "
                 "iscell); the others are dropped ([preprocess] cells_only = false keeps them)")
            ds = append_history(ds.isel(neuron=keep), "cells_only(iscell=true)")
    elif "cells_only" in explicit and opts["cells_only"] and "iscell" not in ds.data_vars:
        raise DynrnnValueError(f"[preprocess] cells_only = true: {where} has no 'iscell' "
                               "variable (suite2p iscell.npy).")
    coefficient = float(opts["neuropil"])
    if coefficient > 0 and ("neuropil" in explicit or "neuropil" in ds.data_vars):
        if variable != "activity":
            raise DynrnnValueError(
                f"[preprocess] neuropil = {coefficient}: neuropil correction applies to the raw "
                f"fluorescence 'activity', not to [preprocess] variable = {variable!r} "
                "(set neuropil = 0)."
            )
        if "neuropil" not in ds.data_vars:
            raise DynrnnValueError(
                f"[preprocess] neuropil = {coefficient}: {where} has no 'neuropil' variable "
                "(suite2p Fneu.npy); set neuropil = 0."
            )
        ds = preprocess.neuropil_correct(ds, coefficient=coefficient)
    ds = _select(ds, variable)
    if opts["dff"]:
        if variable != "activity" or ds.attrs.get("units") in ("dF/F", "z"):
            what = variable if variable != "activity" else f"activity in {ds.attrs['units']}"
            raise DynrnnValueError(
                f"[preprocess] dff = true: dF/F applies to fluorescence, not to {what!r} "
                "(set dff = false)."
            )
        ds = preprocess.dff(ds, window_s=float(opts["dff_window_s"]),
                            percentile=float(opts["dff_percentile"]))
    return ds


def _scale_text(x: np.ndarray) -> str:
    mean, sd = x.mean(0), x.std(0)
    return (f"|values| up to {np.max(np.abs(x)):.4g}, per-dimension mean {mean.min():.4g} to "
            f"{mean.max():.4g}, sd {sd.min():.4g} to {sd.max():.4g}")


def unscaled(x: np.ndarray) -> bool:
    """Data far from a unit scale: a dimension with sd outside [0.1, 10] or a mean more than
    three sd from zero (a latent model started at unit scale then needs many updates just to
    reach the data, and large values make the first updates diverge)."""
    mean, sd = x.mean(0), x.std(0)
    return bool(np.any(sd > 10) or np.any(sd < 0.1) or np.any(np.abs(mean) > 3 * sd))


def _layout_hint(ds, data: dict) -> str:
    """A hint for a recording read with more channels than frames: it may be transposed."""
    frames = ds.sizes.get("time", 0)
    channels = int(np.prod([n for d, n in ds["activity"].sizes.items() if d != "time"]))
    if channels <= frames:
        return ""
    other = "neuron-major" if data.get("layout", "time-major") != "neuron-major" else "time-major"
    return (f" data.train reads as {frames} frames of {channels} channels: if the file's rows "
            f"are the other axis, give --layout {other} (layout = \"{other}\" in [data]).")


def prepare(cfg: dict, *, seq_len: int, echo=print) -> RunData:
    """The training and test arrays of a run from its `[data]` and `[preprocess]` tables."""
    from .. import io, preprocess

    data = cfg["data"]
    table = cfg.get("preprocess", {})
    opts = dict(PREPROCESS_DEFAULTS, **{k: v for k, v in table.items() if v is not None})
    explicit = set(table)
    reader = {k: data.get(k) for k in ("rate", "layout", "allow_pickle")}
    train = read_recording(data["train"], name="data.train", **reader)
    train = _steps_before_split(train, opts, explicit, "data.train", echo)
    if data.get("test"):
        test = read_recording(data["test"], name="data.test", **reader)
        test = _steps_before_split(test, opts, explicit, "data.test", echo)
    else:
        try:
            train, test = preprocess.split_time(train, float(opts["split"]))
        except DynrnnValueError as e:
            raise DynrnnValueError(f"{e}{_layout_hint(train, data)}") from None
    if train.sizes.get("trial", 1) > 1 or "trial" in train["activity"].dims:
        raise DynrnnValueError("trial-structured recordings are not fitted by the command line "
                               "yet; select a trial first (ds.isel(trial=i)).")
    x_train = np.asarray(train["activity"].values, np.float64)
    x_test = np.asarray(test["activity"].values, np.float64)
    for x, where in ((x_train, "data.train"), (x_test, "data.test")):
        if not np.all(np.isfinite(x)):
            raise DynrnnValueError(f"{where} has NaN/Inf values after preprocessing "
                                   "(trim NaN-padded frames first).")
    if x_test.shape[1] != x_train.shape[1]:
        raise DynrnnValueError(f"data.test has {x_test.shape[1]} dimensions after "
                               f"preprocessing but data.train has {x_train.shape[1]}.")
    history = [h for h in json.loads(train.attrs.get("history", "[]"))]
    n_neurons = x_train.shape[1]
    held_out = held_out_positions(cfg.get("evaluation", {}).get("held_out_neurons", "auto"),
                                  n_neurons, _is_neural(train))
    if held_out.size:
        which = (f"every {_ordinal(held_out[1] - held_out[0])} from the first"
                 if _every(held_out)
                 else f"positions {held_out.tolist()}")
        echo(f"co-smoothing: {held_out.size} of {n_neurons} neurons ({which}) are held out of "
             "the fit and predicted from the model's latent states ([evaluation] "
             "held_out_neurons = 0 or --held-out-neurons 0 fits all)")
        history.append(f"held_out_neurons(positions={json.dumps(held_out.tolist())})")
    scale = _scale_text(x_train)
    zscore = opts["zscore"]
    standardise = zscore is True or (zscore == "auto" and unscaled(x_train))
    if standardise:
        if zscore == "auto":
            echo(f"note: the data is not on a unit scale ({scale}); each dimension is "
                 "standardised with the training part's mean and sd ([preprocess] zscore = "
                 "false fits the raw values)")
        z_train = preprocess.zscore(train)
        mean, sd = x_train.mean(0), x_train.std(0)
        x_train, x_test = (x_train - mean) / sd, (x_test - mean) / sd
        history.append(json.loads(z_train.attrs["history"])[-1].replace(
            "zscore(", "zscore(statistics=\"training part\", "))
    rate = float(train.attrs["rate"])
    recording = Recording(
        x_train, x_test, train["neuron"].values if "neuron" in train.coords
        else np.arange(n_neurons), held_out, rate, float(train["time"].values[0]),
        float(test["time"].values[0]), str(train.attrs.get("units", "a.u.")))
    if standardise:
        recording.zscore_mean, recording.zscore_sd = mean, sd
    if held_out.size:
        x_train, x_test = x_train[:, recording.held_in], x_test[:, recording.held_in]
    k = int(opts["pca"])
    if k:
        n = x_train.shape[1]
        if k > n:
            raise DynrnnValueError(
                f"[preprocess] pca = {k}: the data has only {n} dimensions (neurons) after "
                f"the earlier steps; choose pca <= {n}."
            )
        fitted = preprocess.pca(io.from_array(x_train, rate=float(train.attrs["rate"])), k)
        loadings = fitted["loadings"].values
        mu = x_train.mean(0)
        x_train, x_test = (x_train - mu) @ loadings.T, (x_test - mu) @ loadings.T
        recording.mean, recording.loadings = mu, loadings
        history.append(json.loads(fitted.attrs["history"])[-1])
        if standardise:
            sd = x_train.std(0)
            x_train, x_test = x_train / sd, x_test / sd
            recording.component_sd = sd
            history.append('zscore(components=true, statistics="training part")')
        explained = fitted.attrs["explained_variance_ratio"]
        echo(f"PCA: {k} components explain {100 * sum(explained):.1f} % of the variance")
    recorded = x_train
    if opts["denoise"]:
        x_train = _denoise(x_train, history, echo)
    step = int(opts["subsample"])
    if step > 1:
        x_train, x_test, recorded = x_train[::step], x_test[::step], recorded[::step]
        history.append(f"subsample(every={step})")
    if x_train.shape[0] <= seq_len:
        raise DynrnnValueError(
            f"data.train has {x_train.shape[0]} frames after preprocessing, not more than "
            f"[training] seq_len = {seq_len}."
        )
    time_units = train.attrs.get("time_units")
    dt = None if time_units == "steps" else step / float(train.attrs["rate"])
    attrs = {k: v for k, v in train.attrs.items() if k != "history"}
    test_attrs = {k: v for k, v in test.attrs.items() if k != "history"}
    attrs = dict(attrs, **test_attrs)
    # The recording measures (forecast against AR and persistence, co-smoothing) are for
    # recordings of neurons; simulated and shipped systems keep the reference protocol alone.
    return RunData(x_train, x_test, dt, attrs, history, standardise, scale,
                   recording if _is_neural(train) else None, recorded)


def _denoise(x: np.ndarray, history: list, echo) -> np.ndarray:
    """`[preprocess] denoise = true`: white observation noise found in the training part's
    spectrum (`dr.training`'s `white_noise` rule, as the automatic mode finds it) is filtered
    out of it by the zero-phase Wiener filter; the test part is left as recorded."""
    from ..training._reconstruct import analyse, wiener_denoise

    analysis = analyse(x)
    noisy = [analysis.channels[j] for j, v in enumerate(analysis.noise) if v > 0]
    if not noisy:
        echo("denoise: no white observation noise found in the training part; it is left as "
             "recorded")
        history.append("denoise(channels=[])")
        return x
    fraction = max(analysis.noise)
    echo(f"denoise: white observation noise of about {100 * fraction:.2g} % of the variance "
         f"in {len(noisy)} of {x.shape[1]} channels is filtered out of the training part "
         "(Wiener filter; the test part is left as recorded)")
    history.append(f"denoise(channels={json.dumps(noisy)}, "
                   f"largest_noise_fraction={fraction:.4g})")
    return wiener_denoise(x, noisy)


def _ordinal(k: int) -> str:
    k = int(k)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _every(positions: np.ndarray) -> bool:
    return positions.size > 1 and np.all(np.diff(positions) == positions[1] - positions[0]) \
        and positions[0] == 0
