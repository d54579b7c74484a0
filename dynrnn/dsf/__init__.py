"""The Dynamical Systems Framework (Sieber et al., NeurIPS 2024): attention, selective SSMs and
gated RNNs as one linear time-varying system `h_i = Λ_i h_{i−1} + B_i u_i`,
`y_i = C_i h_i + D_i u_i`, or one matrix `y = Φ u`.

- `DSF`: the per-step matrices; `apply(dsf, u, method=...)`; `materialize(dsf) -> Φ`.
- `from_*`: the DSF of each layer from its own per-step quantities.
"""

from . import layers as layers
from ._converters import (
    from_gla as from_gla,
    from_linear_attention as from_linear_attention,
    from_lru as from_lru,
    from_lssl as from_lssl,
    from_normalized_attention as from_normalized_attention,
    from_qlstm as from_qlstm,
    from_retnet as from_retnet,
    from_rglru as from_rglru,
    from_s6 as from_s6,
    from_softmax_attention as from_softmax_attention,
    from_ssd as from_ssd,
)
from ._dsf import DSF as DSF, apply as apply, materialize as materialize
