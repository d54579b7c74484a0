"""Datasets that dynrnn generates itself and ships inside the package, and the shipped TOML
recipes.

```python
import dynrnn as dr

train = dr.datasets.load("lorenz63_train")   # xr.Dataset, state on ("time", "dim")
dr.datasets.names()
dr.datasets.resolve_recipe("recipe:ecg_gtf")  # pathlib.Path of a shipped recipe
```

`python -m dynrnn.datasets build` regenerates them bit for bit (`--check` compares hashes)
into the package's data folder, or into `--out DIR` / `$DYNRNN_DATA_DIR`;
`dynrnn/datasets/data/README.md` holds one card per set. `dynrnn datasets list` prints them.
"""

from ._flowing_digits import FlowingDigits as FlowingDigits, flowing_digits as flowing_digits
from ._recipes import (
    is_recipe_spec as is_recipe_spec,
    recipe_dir as recipe_dir,
    recipes as recipes,
    resolve_recipe as resolve_recipe,
)
from ._registry import (
    DatasetSpec as DatasetSpec,
    build as build,
    build_dir as build_dir,
    check as check,
    data_dir as data_dir,
    load as load,
    names as names,
    package_data_dir as package_data_dir,
)
