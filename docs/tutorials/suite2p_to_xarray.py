"""From a suite2p folder to a fitted latent model: read, correct, normalise, look, fit.

The tutorial makes a small synthetic suite2p folder with `dr.io.synthetic_suite2p` (so it runs
anywhere; point `FOLDER` at your own `suite2p/` output instead), reads it with
`dr.io.open_recording`, applies neuropil correction, dF/F and z-scoring from `dr.preprocess`,
saves the result as NetCDF and draws rasters of each stage; then it fits a clipped shallow
PLRNN with adaptive generalized teacher forcing to the first three principal components and
draws the model's free run against held-out data in those components. The command line does
the same in one step: `dynrnn reconstruct --data FOLDER --rate 30`.

    python docs/tutorials/suite2p_to_xarray.py [--small] [--out DIR]
"""

import pathlib
import sys
import time

import jax.random as jr
import matplotlib


matplotlib.use("Agg")  # a script that writes files; in a notebook keep your own backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import dynrnn as dr  # noqa: E402


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import options  # noqa: E402


args = options("suite2p_to_xarray", __doc__)
t0 = time.perf_counter()

# 1. A suite2p folder: plane0/ with F.npy, Fneu.npy, spks.npy, iscell.npy, ops.npy, stat.npy.
n_neurons, n_frames = (20, 1000) if args.small else (60, 3000)
FOLDER = dr.io.synthetic_suite2p(args.out / "suite2p", n_neurons=n_neurons, n_frames=n_frames,
                                 rate=30.0, key=jr.key(0))

# 2. Read it. ops.npy (the frame rate) is a pickle: we wrote it ourselves, so we allow it. For a
# folder you did not write, pass the frame rate instead: open_recording(FOLDER, rate=30.0).
raw = dr.io.open_recording(FOLDER, allow_pickle=True, cells_only=True)
print(raw)

# 3. Preprocess: every step returns a new recording and appends itself to attrs["history"].
corrected = dr.preprocess.neuropil_correct(raw, coefficient=0.7)
dff = dr.preprocess.dff(corrected, window_s=30.0, percentile=8.0)
z = dr.preprocess.zscore(dff)
print("history:", dr.io.history(z))

# 4. Save as NetCDF (reopen with dr.io.open_recording("recording.nc")).
dr.io.save_recording(z, args.out / "recording.nc")

# 5. Look: raw fluorescence, dF/F, and the z-scored activity ordered by the time of each cell's
# peak.
fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
dr.plot.raster(raw, ax=axes[0], title="raw fluorescence F (cells only)")
dr.plot.raster(dff, ax=axes[1], title="neuropil-corrected dF/F")
order = np.argsort(z["activity"].argmax("time").values)
dr.plot.raster(z, ax=axes[2], order=order, title="z-scored, ordered by peak time")
fig.tight_layout()
fig.savefig(args.out / "rasters.png", dpi=90)

# The ground truth that made the folder: how well does dF/F follow the true calcium?
truth = np.load(FOLDER / "ground_truth.npz")
calcium = truth["calcium"][:, truth["is_cell"]]
r = [np.corrcoef(dff["activity"].values[:, i], calcium[:, i])[0, 1]
     for i in range(calcium.shape[1])]
print(f"median correlation of dF/F with the true calcium: {np.median(r):.3f}")

fig, ax = plt.subplots(figsize=(9, 3))
i = int(np.argmax(calcium.std(0)))
t = dff["time"].values
ax.plot(t, dff["activity"].values[:, i], lw=0.8, label="dF/F (from the folder)")
ax.plot(t, truth["calcium"][:, truth["is_cell"]][:, i] * np.std(dff["activity"].values[:, i])
        / np.std(calcium[:, i]), lw=0.8, alpha=0.7, label="true calcium (scaled)")
ax.set(xlabel="time (s)", ylabel="dF/F", title=f"one cell (neuron {int(dff.neuron[i])})")
ax.legend(loc="upper right")
fig.tight_layout()
fig.savefig(args.out / "one_cell.png", dpi=90)

# 6. A latent dynamical model of the population: the first three principal components of the
# z-scored activity (standardised), the first 80 % for training, the rest held out.
pcs = dr.preprocess.pca(z, 3)
print("variance explained by 3 PCs:", np.round(pcs.attrs["explained_variance_ratio"], 3))
x = pcs["activity"].values
x = (x - x.mean(0)) / x.std(0)
cut = int(0.8 * len(x))
n_steps = 100 if args.small else 5_000
model = dr.models.ShallowPLRNN(latent=3, hidden=32 if args.small else 64, clipped=True,
                               key=jr.key(1))
result = dr.fit(model, x[:cut], n_steps=n_steps, seq_len=50, batch_size=16, key=jr.key(2),
                optimizer=dr.training.default_optimizer(n_steps, 5e-3, 1e-5),
                progress=not args.small)
measures = dr.evaluate(result.model, x[cut:], lyapunov=False, prediction_steps=5)
generated = measures.pop("generated")
print("held-out measures:", {k: round(float(v), 3) for k, v in measures.items()})
fig = dr.plot.attractor(x[cut:], generated, labels=["PC 1", "PC 2", "PC 3"], units="z-score",
                        title="held-out activity (PCs) and the model's free run")
fig.savefig(args.out / "latent_model.png", dpi=90)
fig = dr.plot.training_curves(result.history)
fig.savefig(args.out / "training.png", dpi=90)
print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
