"""dynrnn.scan: the engines that evaluate recurrences.

- `linear(a, b, h0)`: linear recurrences `h_t = a_t h_{t-1} + b_t`, sequentially or as a parallel
  (associative) scan, with O(T D) reverse-mode memory.
"""

from ._linear import linear as linear
