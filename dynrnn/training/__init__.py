"""Fitting models: teacher forcing, `fit`, evaluation, checkpoints."""

from ._checkpoint import load as load, save as save
from ._compare import compare as compare, to_markdown as to_markdown
from ._ensemble import EnsembleResult as EnsembleResult, fit_ensemble as fit_ensemble
from ._evaluate import evaluate as evaluate, generate as generate
from ._fit import FitResult as FitResult, default_optimizer as default_optimizer, fit as fit
from ._forcing import (
    GTF as GTF,
    STF as STF,
    AbstractTeacherForcing as AbstractTeacherForcing,
    forced_loss as forced_loss,
    forced_rollout as forced_rollout,
    gtf_blend as gtf_blend,
    optimal_alpha as optimal_alpha,
)
from ._parallel import data_parallel as data_parallel, pmean_flat as pmean_flat


__all__ = [
    "AbstractTeacherForcing", "EnsembleResult", "FitResult", "GTF", "STF", "compare",
    "data_parallel", "evaluate", "fit", "fit_ensemble", "generate", "load", "pmean_flat", "save",
]
