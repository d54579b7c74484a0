"""Flow-equivariant recurrent networks over periodic grids (and their non-equivariant
baseline, decoders and heads)."""

from .fernn import (
    AbstractFrameRNN as AbstractFrameRNN,
    ConvDecoder as ConvDecoder,
    FlowEquivariantRNN as FlowEquivariantRNN,
    FrameRNN as FrameRNN,
    GridClassifierHead as GridClassifierHead,
    NextFramePredictor as NextFramePredictor,
)
