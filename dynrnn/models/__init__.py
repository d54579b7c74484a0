"""Models of dynamics: every model with a state shares the interface of
`AbstractLatentModel` (`init_state`, `step`, `observe`, `rollout`, `jacobian`)."""

from . import wirings as wirings
from ._base import (
    AbstractLatentModel as AbstractLatentModel,
    AbstractObservation as AbstractObservation,
)
from ._calcium import (
    CalciumObservation as CalciumObservation,
    LinearGaussian as LinearGaussian,
    ar_predictor as ar_predictor,
    calcium_filter as calcium_filter,
    cosmoothing_r2 as cosmoothing_r2,
    deconvolve as deconvolve,
    estimate_gamma as estimate_gamma,
    fit_ar as fit_ar,
    forward_prediction_r2 as forward_prediction_r2,
    forward_predictions as forward_predictions,
    gamma_from_tau as gamma_from_tau,
    infer_states as infer_states,
    naive_deconvolve as naive_deconvolve,
    noise_sd as noise_sd,
    prediction_r2 as prediction_r2,
)
from ._cfc import CfC as CfC
from ._fernn import (
    AbstractFrameRNN as AbstractFrameRNN,
    ConvDecoder as ConvDecoder,
    FlowEquivariantRNN as FlowEquivariantRNN,
    FrameRNN as FrameRNN,
    GridClassifierHead as GridClassifierHead,
    NextFramePredictor as NextFramePredictor,
)
from ._hippo import discretize as discretize, hippo as hippo, krylov as krylov
from ._latent_ode import LatentODE as LatentODE, latent_ode_loss as latent_ode_loss
from ._lssl import LSSL as LSSL, DeepLSSL as DeepLSSL
from ._ltc import (
    LTC as LTC,
    AbstractLiquidModel as AbstractLiquidModel,
    LiquidReadout as LiquidReadout,
)
from ._neural_ode import MLPVectorField as MLPVectorField, NeuralODE as NeuralODE
from ._neural_sde import NeuralSDE as NeuralSDE
from ._observation import Affine as Affine, Identity as Identity
from ._plrnn import (
    ALRNN as ALRNN,
    PLRNN as PLRNN,
    DendPLRNN as DendPLRNN,
    ShallowPLRNN as ShallowPLRNN,
)
from ._prediction import (
    EarlyStopping as EarlyStopping,
    PredictionLoss as PredictionLoss,
    ar_init as ar_init,
    bootstrap_r2_difference as bootstrap_r2_difference,
)
