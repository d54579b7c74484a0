"""Fitting models, in parts that each do one thing:

- objectives (`Reconstruction`: teacher-forced reconstruction; `Supervised`;
  `CalciumReconstruction`: the fluorescence likelihood through a calcium observation), which
  prepare the data, draw batches and give the loss;
- the pure training step `trainer(objective, optimizer, static)` in Optax's `init`/`update`
  style, shared by `fit` and `fit_ensemble` (which `vmap`s it);
- the host loop with hooks (`Evaluation`, `EarlyStopping`, checkpoints, progress) behind
  `fit`;
- `evaluate` (on a recording also forward prediction and co-smoothing; `evaluation_markdown`
  prints them), `save`/`load`, `compare`;
- `reconstruct`: any series with the settings chosen from the data and a time budget.
"""

from ..forcing import GTF as GTF, STF as STF, AbstractTeacherForcing as AbstractTeacherForcing
from ..models._diffeq.latent_ode import latent_ode_loss as latent_ode_loss
from ._calcium import CalciumReconstruction as CalciumReconstruction
from ._callbacks import EarlyStopping as EarlyStopping
from ._checkpoint import load as load, save as save
from ._compare import compare as compare, to_markdown as to_markdown
from ._ensemble import EnsembleResult as EnsembleResult, fit_ensemble as fit_ensemble
from ._evaluate import evaluate as evaluate, generate as generate
from ._evaluate_recording import evaluation_markdown as evaluation_markdown
from ._fit import FitResult as FitResult, fit as fit
from ._hooks import Checkpointing as Checkpointing, Evaluation as Evaluation
from ._loop import AbstractHook as AbstractHook, Run as Run
from ._losses import PredictionLoss as PredictionLoss
from ._objective import (
    AbstractObjective as AbstractObjective,
    Reconstruction as Reconstruction,
    Supervised as Supervised,
)
from ._parallel import data_parallel as data_parallel, pmean_flat as pmean_flat
from ._reconstruct import (
    ReconstructionResult as ReconstructionResult,
    SeriesAnalysis as SeriesAnalysis,
    WorkerError as WorkerError,
    analyse as analyse,
    parse_budget as parse_budget,
    reconstruct as reconstruct,
)
from ._update import (
    Trainer as Trainer,
    TrainState as TrainState,
    cosine_adam as cosine_adam,
    default_optimizer as default_optimizer,
    scale_by_decay as scale_by_decay,
    set_learning_rate as set_learning_rate,
    trainer as trainer,
)
from ._warmstart import ar_init as ar_init


__all__ = [
    "AbstractTeacherForcing", "CalciumReconstruction", "EnsembleResult", "FitResult", "GTF",
    "STF", "compare", "data_parallel", "evaluate", "evaluation_markdown", "fit", "fit_ensemble",
    "generate", "load", "pmean_flat", "reconstruct", "save",
]
