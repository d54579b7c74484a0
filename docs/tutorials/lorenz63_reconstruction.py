"""Reconstruct Lorenz-63 with generalized teacher forcing, and read the figures.

A clipped shallow PLRNN trained with adaptive generalized teacher forcing (Hess et al., ICML
2023) on the shipped Lorenz-63 data, scored on the held-out test set by the state-space
divergence, the power-spectrum distance, the 20-step prediction error and the largest Lyapunov
exponent, and drawn against the data.

    python docs/tutorials/lorenz63_reconstruction.py [--small] [--out DIR]
"""

import pathlib
import sys
import time

import jax.random as jr
import matplotlib


matplotlib.use("Agg")

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
x_train = train["state"].values if not args.small else train["state"].values[:n]
x_test = test["state"].values[:n]
print(f"train {x_train.shape}, test {x_test.shape}, dt = {dt}")


def fit_model(x_train, *, small: bool):
    """A clipped shallow PLRNN (latent 3, hidden 100; 20 with `small`) trained with adaptive
    GTF, the learning rate decaying from 5e-3 to 1e-5 (the settings of `dynrnn reconstruct`)."""
    model = dr.models.ShallowPLRNN(latent=3, hidden=20 if small else 100, key=jr.key(1))
    steps = 300 if small else 30_000
    result = dr.fit(model, x_train, teacher_forcing=dr.GTF("adaptive", gamma=0.99),
                    n_steps=steps, batch_size=16, seq_len=50 if small else 200,
                    optimizer=dr.training.default_optimizer(steps, 5e-3, 1e-5),
                    key=jr.key(2), progress=not small, steps_per_call=50 if small else 250)
    print(f"trained {steps} updates in {result.wall_time:.0f} s, final forcing "
          f"alpha = {result.alpha:.3f}")
    return result.model


model = fit_model(x_train, small=args.small)
measures = dr.evaluate(model, x_test, lyapunov_steps=1_000 if args.small else 10_000)
x_gen = measures.pop("generated")  # the free-running model, aligned with the test set
print({k: round(float(v), 4) for k, v in measures.items()},
      f"(largest Lyapunov exponent per time unit: {measures['max_lyapunov'] / dt:.3f}; "
      "Lorenz-63: 0.906)")

# 2. Figures. The attractor panels share one scale; the spectra are in cycles per time unit
# because dt is known.
labels = ["x", "y", "z"]
fig = dr.plot.attractor(x_test, x_gen, labels=labels, units="z-score",
                        title="Lorenz-63: test data and model")
fig.savefig(args.out / "attractor.png", dpi=90)
fig = dr.plot.power_spectra(x_test, x_gen, dt=dt, labels=labels)
fig.savefig(args.out / "power_spectra.png", dpi=90)
print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
