"""A neural ODE with solver regularisation, on a damped nonlinear oscillator.

DRAFT: the data and the figures run now; fitting `dr.models.NeuralODE` with a solver-heuristic
regulariser (`dr.regularizers.SolverError`) is a marked TODO until the new fit API lands
(issue 16). Until then the "model" panels show the true system from another initial condition.

    python docs/tutorials/neural_ode.py [--small] [--out DIR]
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


args = options("neural_ode", __doc__)
t0 = time.perf_counter()
n = 1_000 if args.small else 10_000
dt = 0.05

# 1. Data: the Rössler system, standardised, with a little observation noise.
data = dr.systems.simulate(dr.systems.Rossler(), n_steps=n, dt=dt, transient=100.0,
                           standardize=True, noise=0.02, key=jr.key(0))
x = data["state"].values
x_train, x_test = x[: n // 2], x[n // 2:]
print(f"train {x_train.shape}, test {x_test.shape}, dt = {dt}")


def fit_model(x_train, *, small: bool):
    """TODO(issue 16): the fitting call goes here once the new fit API lands: a
    `dr.models.NeuralODE` (obs 3, latent 3) trained on `x_train` with
    `dr.regularizers.SolverError` (and a run without it, to compare the number of solver
    steps); return the fitted model. Returns None until then."""
    return None


model = fit_model(x_train, small=args.small)
if model is not None:
    print(dr.evaluate(model, x_test, lyapunov_steps=500 if args.small else 5_000))
    x_gen = np.asarray(model.generate(len(x_test)))  # TODO(issue 16): the generation call
else:
    ref = dr.systems.simulate(dr.systems.Rossler(), n_steps=len(x_test), dt=dt,
                              transient=100.0, y0=np.array([2.0, -1.0, 0.5]),
                              standardize=True, key=jr.key(1))
    x_gen = ref["state"].values
    print("fit step not written yet (TODO, issue 16): showing the true system instead")

labels = ["x", "y", "z"]
fig = dr.plot.attractor(x_test, x_gen, labels=labels, units="z-score",
                        title="Rössler: test data and model")
fig.savefig(args.out / "attractor.png", dpi=90)
fig = dr.plot.power_spectra(x_test, x_gen, dt=dt, labels=labels)
fig.savefig(args.out / "power_spectra.png", dpi=90)
print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
