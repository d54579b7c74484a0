"""Datasets that dynrnn generates itself and ships in `data/`.

```python
import dynrnn as dr

train = dr.datasets.load("lorenz63_train")   # xr.Dataset, state on ("time", "dim")
dr.datasets.names()
```

`python -m dynrnn.datasets build` regenerates them bit for bit (`--check` compares hashes);
`data/README.md` holds one card per set.
"""

from ._flowing_digits import FlowingDigits as FlowingDigits, flowing_digits as flowing_digits
from ._registry import (
    DatasetSpec as DatasetSpec,
    build as build,
    check as check,
    data_dir as data_dir,
    load as load,
    names as names,
)
