"""Reconstruct Lorenz-63 with generalized teacher forcing, and read the figures.

DRAFT: the data, the figures and the measures run now; the fitting call is a marked TODO until
the new fit API lands (issue 16). Until then the "model" panels show an independent trajectory
of the true system: what a perfect reconstruction would give, and so the floor of each measure.

    python docs/tutorials/lorenz63_reconstruction.py [--small] [--out DIR]
"""

import pathlib
import sys
import time

import jax.random as jr
import matplotlib


matplotlib.use("Agg")
import numpy as np  # noqa: E402

import dynrnn as dr  # noqa: E402


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import options  # noqa: E402


args = options("lorenz63_reconstruction", __doc__)
t0 = time.perf_counter()
n = 2_000 if args.small else 20_000

# 1. Data: the shipped sets (standardised, train with 5 % observation noise, clean test set).
train = dr.datasets.load("lorenz63_train")
test = dr.datasets.load("lorenz63_test")
dt = float(test.attrs["dt"])
x_train, x_test = train["state"].values[:n], test["state"].values[:n]
print(f"train {x_train.shape}, test {x_test.shape}, dt = {dt}")


def fit_model(x_train, *, small: bool):
    """TODO(issue 16): the fitting call goes here once the new fit API lands: a clipped
    shallow PLRNN (latent 3, hidden 100 or 20 with `small`) trained on `x_train` with adaptive
    generalized teacher forcing; return the fitted model. Returns None until then."""
    return None


model = fit_model(x_train, small=args.small)

if model is not None:
    measures = dr.evaluate(model, x_test, lyapunov_steps=1_000 if args.small else 10_000)
    print(measures)
    x_gen = np.asarray(model.generate(len(x_test)))  # TODO(issue 16): the generation call
else:
    # Stand-in for the model: the true system from another initial condition.
    ref = dr.systems.simulate(dr.systems.Lorenz63(), n_steps=n, dt=dt, transient=50.0,
                              y0=np.array([5.0, -3.0, 20.0]), standardize=True,
                              key=jr.key(1))
    x_gen = ref["state"].values
    print("fit step not written yet (TODO, issue 16): showing the true system instead")

# 2. Figures. The attractor panels share one scale; the spectra are in cycles per time unit
# because dt is known.
labels = ["x", "y", "z"]
fig = dr.plot.attractor(x_test, x_gen, labels=labels, units="z-score",
                        title="Lorenz-63: test data and model")
fig.savefig(args.out / "attractor.png", dpi=90)
fig = dr.plot.power_spectra(x_test, x_gen, dt=dt, labels=labels)
fig.savefig(args.out / "power_spectra.png", dpi=90)
print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
