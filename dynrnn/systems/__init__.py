"""Continuous-time dynamical systems and their simulation.

```python
import dynrnn as dr

ds = dr.systems.simulate(dr.systems.Lorenz63(), n_steps=10_000, dt=0.01, transient=50.0)
ds.state  # (time, dim)
```

Every system is an Equinox module with `vector_field(t, y, args)` (the signature of
`diffrax.ODETerm`), parameters as fields, `dim`, a default `y0` on its attractor and, where
known, a reference Lyapunov spectrum. `get(name, **params)` builds one by (case-insensitive)
name; `names()` lists them.
"""

from ._base import AbstractSystem as AbstractSystem
from ._flows import (
    Aizawa as Aizawa,
    Arneodo as Arneodo,
    BurkeShaw as BurkeShaw,
    Chen as Chen,
    ChenLee as ChenLee,
    Chua as Chua,
    Dadras as Dadras,
    GenesioTesi as GenesioTesi,
    Halvorsen as Halvorsen,
    Lorenz63 as Lorenz63,
    Lorenz84 as Lorenz84,
    Lorenz96 as Lorenz96,
    NewtonLeipnik as NewtonLeipnik,
    NoseHoover as NoseHoover,
    RabinovichFabrikant as RabinovichFabrikant,
    Rossler as Rossler,
    Rucklidge as Rucklidge,
    ShimizuMorioka as ShimizuMorioka,
    SprottB as SprottB,
    SprottC as SprottC,
    SprottD as SprottD,
    SprottE as SprottE,
    Thomas as Thomas,
    get as get,
    names as names,
)
from ._simulate import simulate as simulate
