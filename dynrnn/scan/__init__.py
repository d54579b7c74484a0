"""dynrnn.scan: the engines that evaluate recurrences.

- `linear(a, b, h0)`: linear recurrences `h_t = a_t h_{t-1} + b_t`, sequentially or as a parallel
  (associative) scan, with O(T D) reverse-mode memory.
- `deer(step, h0, inputs)`: nonlinear recurrences `h_t = f(h_{t-1}, x_t)` by Newton's method on
  the whole trajectory (DEER, quasi-DEER, damped), with implicit-function-theorem gradients and
  a sequential fallback.
"""

from ._deer import (
    DeerInfo as DeerInfo,
    DeerNotConvergedWarning as DeerNotConvergedWarning,
    deer as deer,
)
from ._linear import linear as linear
