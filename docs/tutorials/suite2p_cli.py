"""From a suite2p folder to an evaluated latent model with one command.

The tutorial writes a synthetic suite2p folder whose activity is driven by a known latent system
(`dr.io.synthetic_suite2p`: a Lorenz-63 trajectory → firing rates → Poisson spikes → calcium →
fluorescence with neuropil), runs

    dynrnn reconstruct --data FOLDER --rate 30

on it (here through `dynrnn.cli.main`, the same code as the shell command), shows the figures
it draws in principal components and prints the evaluation it writes: forward prediction
against AR and persistence baselines, and co-smoothing of the neurons held out of the fit. The
known latent gives the co-smoothing table a ceiling: the same read-out from the true Lorenz-63
state (each held-out cell's expected calcium given it).

    python docs/tutorials/suite2p_cli.py [--small] [--out DIR]
"""

import pathlib
import shutil
import sys
import tempfile
import time

import jax.random as jr
import matplotlib


matplotlib.use("Agg")  # a script that writes files; in a notebook keep your own backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

import dynrnn as dr  # noqa: E402
from dynrnn.cli import main  # noqa: E402


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import options  # noqa: E402


args = options("suite2p_cli", __doc__)
t0 = time.perf_counter()
work = pathlib.Path(tempfile.mkdtemp(prefix="dynrnn-suite2p-"))

# 1. A suite2p folder from a known latent system: 60 ROIs (80 % cells) over 3 000 frames at
# 30 Hz; ground_truth.npz beside it holds the Lorenz-63 latent that drove them. The cells fire
# at 5 Hz at the latent's centre: at the generator's default 0.5 Hz a cell spikes ~90 times in
# these 100 s, Poisson noise swamps the latent's modulation, and even the true latent explains
# ~3 % of a held-out cell's variance (nothing to co-smooth).
n_neurons, n_frames = (20, 1500) if args.small else (60, 3000)
FOLDER = dr.io.synthetic_suite2p(work / "suite2p", n_neurons=n_neurons, n_frames=n_frames,
                                 rate=30.0, base_rate=5.0, key=jr.key(0))

# 2. One command. `--rate 30` means ops.npy (a pickle) need not be opened. The command line
# keeps the cells (iscell.npy), subtracts 0.7 × neuropil, holds every 5th cell out of the fit
# for co-smoothing, splits off the last 20 % of the frames as the test part and chooses the
# model's settings within a time budget (default 3 minutes; `--budget`).
command = ["reconstruct", "--data", str(FOLDER), "--rate", "30", "--out", str(work / "run"),
           "--no-progress"]
if args.small:
    command += ["--budget", "15s"]
print("dynrnn " + " ".join(command))
t_cli = time.perf_counter()
assert main(command) == 0
t_cli = time.perf_counter() - t_cli
run = work / "run"

# 3. The figures of the run folder: test data and the model's free run on the test data's
# three leading principal components, and their power spectra.
for name in ("attractor.png", "power_spectra.png"):
    shutil.copy(run / name, args.out / name)

# 4. The evaluation tables (evaluation.md; the numbers are in evaluation.nc).
print("\n" + (run / "evaluation.md").read_text())
forecast = xr.open_dataset(run / "evaluation.nc", group="forecast", engine="h5netcdf")
print("1-step R²: " + ", ".join(f"{m} {float(forecast['r2'].sel(model=m, horizon=1)):.3f}"
                                for m in forecast["model"].values))
cosmoothing = xr.open_dataset(run / "evaluation.nc", group="cosmoothing", engine="h5netcdf")

# 5. The ceiling of co-smoothing, from the known latent: each held-out cell's expected calcium
# given the true Lorenz-63 state (its true firing rate filtered by the calcium decay, tau = 1 s),
# read out by the same ridge regression fitted on the training part. What it misses is the
# Poisson spiking and the fluorescence noise, which no latent state can predict.
rec = dr.io.open_recording(FOLDER, rate=30.0)
rec = dr.preprocess.neuropil_correct(rec.isel(neuron=np.flatnonzero(rec["iscell"].values)))
held = cosmoothing["neuron"].values
rates = np.load(FOLDER / "ground_truth.npz")["rates"][:, held]
rec["expected_calcium"] = (("time", "cell"),
                           lfilter([1.0], [1.0, -np.exp(-1 / 30.0)], rates / 30.0, axis=0))
train, test = dr.preprocess.split_time(rec, 0.8)  # the command line's split
truth = []
for i, roi in enumerate(held):
    y_tr, y_te = (part["activity"].sel(neuron=[roi]).values for part in (train, test))
    pred = dr.metrics.readout_predictions(train["expected_calcium"].values[:, [i]],
                                          test["expected_calcium"].values[:, [i]], y_tr)
    truth.append(1 - ((pred - y_te) ** 2).sum() / ((y_te - y_te.mean()) ** 2).sum())
truth = np.array(truth)
print(f"ceiling, each cell's expected calcium given the true latent: mean R² {truth.mean():.3f},"
      f" median {np.median(truth):.3f}")

fig, ax = plt.subplots(figsize=(7, 3.2))
width = 0.27
xs = np.arange(held.size)
for i, source in enumerate(cosmoothing["regressors"].values):
    ax.bar(xs + (i - 1) * width, cosmoothing["r2"].sel(regressors=source), width, label=source)
ax.bar(xs + width, truth, width, label="expected calcium given the true latent", color="0.6")
ax.axhline(0, color="k", lw=0.6)
ax.set(xticks=xs, xticklabels=[str(n) for n in held], xlabel="held-out ROI",
       ylabel="test R²", title="co-smoothing: held-out neurons predicted from ...")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
fig.savefig(args.out / "cosmoothing.png", dpi=90)
plt.close("all")
shutil.rmtree(work)
print(f"dynrnn reconstruct took {t_cli:.0f} s; the tutorial {time.perf_counter() - t0:.0f} s")
