"""Trainable sequence mixers of every DSF family (Equinox modules, `layer(u) -> y` on
`(L, d_model)`), each computing its output through its DSF, and `SequenceModel`, the small
model that stacks them for `dr.compare` tasks."""

from ._layers import (
    GLA as GLA,
    LRU as LRU,
    MIXERS as MIXERS,
    RGLRU as RGLRU,
    S6 as S6,
    SSD as SSD,
    AbstractMixer as AbstractMixer,
    LinearAttention as LinearAttention,
    NormalizedAttention as NormalizedAttention,
    RetNet as RetNet,
    SequenceModel as SequenceModel,
    SoftmaxAttention as SoftmaxAttention,
    make_mixer as make_mixer,
    n_parameters as n_parameters,
    qLSTM as qLSTM,
)
