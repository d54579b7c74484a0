"""Models of dynamics.

Every model with a state (every latent family) follows the contract of `AbstractLatentModel`:
keyword sizes `obs`, `latent` and the family's own, `init_state`, `step`, `observe`,
`jacobian`, and one `rollout` through an engine (`dynrnn.engines`). Capabilities are abstract
classes (`AbstractStochasticModel`, `AbstractDiffraxModel`, `AbstractSolverStatsModel`,
`AbstractRegressionModel`).
`build(table, obs=..., key=...)` makes any family from a configuration table.
"""

import importlib as _importlib
import warnings as _warnings

from . import wirings as wirings
from ._base import (
    AbstractDiffraxModel as AbstractDiffraxModel,
    AbstractLatentModel as AbstractLatentModel,
    AbstractObservation as AbstractObservation,
    AbstractRegressionModel as AbstractRegressionModel,
    AbstractSolverStatsModel as AbstractSolverStatsModel,
    AbstractStochasticModel as AbstractStochasticModel,
)
from ._build import build as build, families as families
from ._diffeq import (
    AbstractNeuralDE as AbstractNeuralDE,
    LatentODE as LatentODE,
    MLPVectorField as MLPVectorField,
    NeuralODE as NeuralODE,
    NeuralSDE as NeuralSDE,
)
from ._esn import EchoStateNetwork as EchoStateNetwork
from ._fernn import (
    AbstractFrameRNN as AbstractFrameRNN,
    ConvDecoder as ConvDecoder,
    FlowEquivariantRNN as FlowEquivariantRNN,
    FrameRNN as FrameRNN,
    GridClassifierHead as GridClassifierHead,
    NextFramePredictor as NextFramePredictor,
)
from ._gru import GRU as GRU
from ._linear_ar import LinearAR as LinearAR
from ._liquid import (
    LTC as LTC,
    AbstractLiquidModel as AbstractLiquidModel,
    CfC as CfC,
    LiquidReadout as LiquidReadout,
)
from ._lssl import (
    LSSL as LSSL,
    DeepLSSL as DeepLSSL,
    discretize as discretize,
    hippo as hippo,
    krylov as krylov,
)
from ._observation import (
    Affine as Affine,
    CalciumObservation as CalciumObservation,
    Identity as Identity,
    LinearGaussian as LinearGaussian,
)
from ._plrnn import (
    ALRNN as ALRNN,
    PLRNN as PLRNN,
    AbstractPLRNN as AbstractPLRNN,
    DendPLRNN as DendPLRNN,
    ShallowPLRNN as ShallowPLRNN,
)


# Names that lived here in 0.1.0 and moved to the package where they belong.
_MOVED = {
    **{n: "dynrnn.calcium" for n in ("deconvolve", "naive_deconvolve", "estimate_gamma",
                                     "gamma_from_tau", "noise_sd", "calcium_filter")},
    **{n: "dynrnn.metrics" for n in ("forward_prediction_r2", "forward_predictions",
                                     "prediction_r2", "cosmoothing_r2", "fit_ar",
                                     "ar_predictor", "bootstrap_r2_difference")},
    **{n: "dynrnn.training" for n in ("PredictionLoss", "EarlyStopping", "ar_init",
                                      "latent_ode_loss")},
    "infer_states": "dynrnn.forcing",
}


def __getattr__(name):
    if name in _MOVED:
        where = _MOVED[name]
        _warnings.warn(
            f"dynrnn.models.{name} moved to {where}.{name}; the old name will be removed.",
            DeprecationWarning, stacklevel=2,
        )
        return getattr(_importlib.import_module(where), name)
    raise AttributeError(f"module 'dynrnn.models' has no attribute {name!r}")
