"""dynrnn: learning dynamical systems from time series, on JAX, Equinox, Diffrax and Optax.

```python
import dynrnn as dr
```
The packages follow the data: `systems`, `io`, `preprocess` and `calcium` bring data in;
`models` and `dsf` describe dynamics, `forcing` drives their states with data, `scan` and
`engines` execute recurrences; `metrics` judges models; `training` fits them; `plot` and `cli`
show them.

The packages are imported on first use (PEP 562), so that `import dynrnn` and the command
line's `--help` do not pay for JAX until something needs it.
"""

import importlib as _importlib
import importlib.metadata as _metadata

from ._errors import (
    CheckpointError as CheckpointError,
    DynrnnError as DynrnnError,
    TrainingDivergedError as TrainingDivergedError,
)


_PACKAGES = (
    "calcium", "cli", "datasets", "dsf", "engines", "forcing", "interop", "io", "metrics",
    "models", "plot", "preprocess", "regularizers", "scan", "systems", "tasks", "training",
)
# The names `dr.training` also offers at the top level (`dr.fit`, `dr.GTF`, ...).
_FROM_TRAINING = (
    "AbstractTeacherForcing", "EnsembleResult", "FitResult", "GTF", "STF", "compare",
    "data_parallel", "evaluate", "fit", "fit_ensemble", "generate", "load", "pmean_flat",
    "reconstruct", "save",
)

__version__ = _metadata.version("dynrnn")


def __getattr__(name: str):
    if name in _PACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _FROM_TRAINING:
        return getattr(_importlib.import_module(f"{__name__}.training"), name)
    raise AttributeError(f"module 'dynrnn' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_PACKAGES, *_FROM_TRAINING})
