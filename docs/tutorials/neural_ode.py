"""A neural ODE with solver regularisation, on a damped nonlinear oscillator.

A `dr.models.NeuralODE` (an MLP vector field, adaptive Tsit5 steps between observations)
trained with generalized teacher forcing on the Rössler system, once plainly and once with the
solver-heuristic regulariser `dr.regularizers.SolverError` (Pal et al., ICML 2021), which
penalises the adaptive solver's own error estimates so that the learned field needs fewer
solver steps. The two are compared by the solver steps they take over the test interval and by
the reconstruction measures.

    python docs/tutorials/neural_ode.py [--small] [--out DIR]
"""

import pathlib
import sys
import time

import jax.numpy as jnp
import jax.random as jr
import matplotlib


matplotlib.use("Agg")

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
    """A neural ODE (latent 3, width 32) trained with GTF (α = 0.1), without and with
    `SolverError(1.0)`; prints the solver steps and field evaluations each needs over 400
    observation intervals, and its power-spectrum distance, and returns the regularised one."""
    steps = 20 if small else 2_000
    kw = dict(teacher_forcing=dr.GTF(0.1), n_steps=steps, batch_size=16,
              seq_len=10 if small else 50, key=jr.key(3), progress=not small,
              steps_per_call=10 if small else 50,
              optimizer=dr.training.default_optimizer(steps, 5e-3, 1e-4))
    models = {}
    for name, reg in (("plain", None), ("SolverError(1.0)", dr.regularizers.SolverError(1.0))):
        model = dr.models.NeuralODE(latent=3, width=32, dt=dt, key=jr.key(2))
        models[name] = dr.fit(model, x_train, regularizer=reg, **kw).model
        ts = jnp.arange(401) * dt
        _, stats = models[name].solve(models[name].init_state(jnp.asarray(x_test[0])), ts)
        d_h = dr.evaluate(models[name], x_test, lyapunov=False, prediction_steps=None)["D_H"]
        print(f"{name}: {int(stats['num_steps'])} solver steps, {int(stats['nfe'])} field "
              f"evaluations over {len(ts) - 1} intervals; D_H {d_h:.3f}")
    return models["SolverError(1.0)"]


model = fit_model(x_train, small=args.small)
measures = dr.evaluate(model, x_test, lyapunov_steps=500 if args.small else 5_000)
x_gen = measures.pop("generated")
print({k: round(float(v), 4) for k, v in measures.items()})

labels = ["x", "y", "z"]
fig = dr.plot.attractor(x_test, x_gen, labels=labels, units="z-score",
                        title="Rössler: test data and model")
fig.savefig(args.out / "attractor.png", dpi=90)
fig = dr.plot.power_spectra(x_test, x_gen, dt=dt, labels=labels)
fig.savefig(args.out / "power_spectra.png", dpi=90)
print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
