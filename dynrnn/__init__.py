"""dynrnn: learning dynamical systems from time series, on JAX, Equinox, Diffrax and Optax.

```python
import dynrnn as dr
```
The packages follow the data: `systems`, `io`, `preprocess` and `calcium` bring data in;
`models` and `dsf` describe dynamics, `forcing` drives their states with data, `scan` and
`engines` execute recurrences; `metrics` judges models; `training` fits them; `plot` and `cli`
show them.
"""

import importlib.metadata as _metadata

from . import (
    calcium as calcium,
    datasets as datasets,
    dsf as dsf,
    engines as engines,
    forcing as forcing,
    interop as interop,
    io as io,
    metrics as metrics,
    models as models,
    plot as plot,
    preprocess as preprocess,
    regularizers as regularizers,
    scan as scan,
    systems as systems,
    tasks as tasks,
    training as training,
)
from ._errors import (
    CheckpointError as CheckpointError,
    DynrnnError as DynrnnError,
    TrainingDivergedError as TrainingDivergedError,
)
from .training import *  # noqa: F403  (fit, GTF, STF, evaluate, save, load, ...)


__version__ = _metadata.version("dynrnn")
