"""Preprocessing of recordings (`dr.io`): neuropil correction, dF/F, z-scoring, PCA, resampling,
delay embedding and time splits; each step is recorded in `attrs["history"]`."""

from ._steps import (
    delay_embed as delay_embed,
    dff as dff,
    neuropil_correct as neuropil_correct,
    pca as pca,
    resample as resample,
    split_time as split_time,
    zscore as zscore,
)
