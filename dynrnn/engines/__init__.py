"""How a latent model's recurrence is evaluated over many steps.

`model.rollout(z0, n_steps, engine=...)` takes one of these objects:

- `Sequential()`: one `lax.scan` step after the other (every model, deterministic or not);
- `Deer(tol=..., max_iter=..., jacobian=...)`: all steps at once by parallel Newton iterations
  (`dynrnn.scan.deer`), for deterministic recurrences.
"""

from ._engines import (
    AbstractEngine as AbstractEngine,
    Deer as Deer,
    Sequential as Sequential,
)
