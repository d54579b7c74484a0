"""Teacher forcing, defined once for every latent model.

`GTF` (generalized teacher forcing, constant or adaptive α) and `STF` (sparse teacher forcing)
describe how data drive a model's state during training; `forced_rollout` runs any latent model
(`dynrnn.models.AbstractLatentModel`) over a window under a scheme, and `infer_states` drives a
model with a whole series. Only the model contract is used (`init_state`, `step`, `observe`,
`forcing_signal`, `jacobian`), so a new family gets teacher forcing for free.
"""

from ._forcing import (
    ALPHA_METHODS as ALPHA_METHODS,
    GTF as GTF,
    STF as STF,
    AbstractTeacherForcing as AbstractTeacherForcing,
    forced_loss as forced_loss,
    forced_rollout as forced_rollout,
    gtf_blend as gtf_blend,
    optimal_alpha as optimal_alpha,
)
from ._infer import infer_states as infer_states
