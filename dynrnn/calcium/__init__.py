"""Calcium imaging: the indicator kernel and spike inference.

The observation model that puts this kernel behind a latent model is
`dynrnn.models.CalciumObservation`; statistics of latent models fitted to recordings
(forward-prediction R², co-smoothing) are in `dynrnn.metrics`.
"""

from ._spikes import (
    calcium_filter as calcium_filter,
    deconvolve as deconvolve,
    estimate_gamma as estimate_gamma,
    gamma_from_tau as gamma_from_tau,
    naive_deconvolve as naive_deconvolve,
    noise_sd as noise_sd,
)
