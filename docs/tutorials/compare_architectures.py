"""Compare architectures on reconstruction: which model family reconstructs a system best, and
at what cost?

Five families on the Rössler system simulated on the fly (noisy training trajectory, clean
test trajectory): the clipped shallow PLRNN and a GRU, both trained with adaptive generalized
teacher forcing, an S6 sequence model (a DSF mixer) trained on next-step prediction, and the
two baselines reviewers ask for, an echo state network (spectral radius and leak searched on
validation) and a linear AR model (order searched). Every gradient-trained family gets the same
number of updates and its learning rate from a small grid chosen on the validation part of the
training series; the seeds of one setting train as one vmapped ensemble. The table gives the
median and interquartile range over seeds of every measure on held-out test data.

    python docs/tutorials/compare_architectures.py [--small] [--out DIR]
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


args = options("compare_architectures", __doc__)
t0 = time.perf_counter()
small = args.small

# 1. The task: Rössler sampled 40 times per period (dt from its spectrum), 5 % observation
#    noise on the training trajectory, a clean test trajectory after a gap.
task = dr.tasks.Reconstruction.from_system(
    "Rossler", n_train=4_000 if small else 20_000, n_test=2_000 if small else 20_000,
    seq_len=32 if small else 64, n_windows=256 if small else 2_000)
print(f"Rössler: dt = {task.dt:.3f}, training {task.train_series().shape}, "
      f"validation {task.validation_series().shape}, test {task.test_series().shape}, "
      f"largest Lyapunov exponent {task.lyapunov}")

# 2. The models: family tables (as in a TOML [models.NAME] table); lists are searched.
models = {
    "shPLRNN": {"type": "ShallowPLRNN", "latent": 3, "hidden": 16 if small else 64,
                "clipped": True},
    "GRU": {"type": "GRU", "latent": 8 if small else 32},
    "S6": {"mixer": "s6", "d_state": 8},
    "ESN": {"type": "ESN", "latent": 50 if small else 300, "spectral_radius": [0.6, 1.0],
            "leak": [0.3, 1.0]},
    "AR": {"type": "AR", "order": [1, 4]},
}

# 3. Train and score: the same update budget for every family, seeds as one ensemble each.
ds = dr.compare(models, {"rossler": task}, n_steps=30 if small else 3_000,
                seeds=2 if small else 3, learning_rates=[1e-3, 5e-3], d_model=16,
                key=jr.key(0), callback=lambda m, t, row: print(f"  {m}: {row}"))
table = dr.training.to_markdown(ds)
print(table)
ds.to_netcdf(args.out / "compare.nc", engine="h5netcdf")
(args.out / "compare.md").write_text(table + "\n")
fig = dr.plot.compare(ds)
fig.savefig(args.out / "compare.png", dpi=90)
print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
