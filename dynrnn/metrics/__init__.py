"""Reconstruction measures: how well a model's dynamics match the data's.

```python
import dynrnn as dr

dr.metrics.state_space_divergence(x_test, x_gen)   # D_stsp, geometry of the attractor
dr.metrics.power_spectrum_distance(x_test, x_gen)  # D_H, temporal structure
dr.metrics.prediction_error(model, x_test, n=20)   # PE(n), short-term prediction
dr.metrics.lyapunov_spectrum(model, z0, n_steps=10_000)  # chaos (per step for maps)
```

Definitions follow the reference implementation of Hess et al. (2023, ICML), GTF-shPLRNN.
"""

from ._equivariance import (
    TranslationFlow as TranslationFlow,
    equivariance_error as equivariance_error,
)
from ._forecast import (
    BlockBootstrap as BlockBootstrap,
    ar_predictor as ar_predictor,
    bootstrap_r2_difference as bootstrap_r2_difference,
    cosmoothing_r2 as cosmoothing_r2,
    fit_ar as fit_ar,
    forward_prediction_r2 as forward_prediction_r2,
    forward_predictions as forward_predictions,
    prediction_r2 as prediction_r2,
    readout_predictions as readout_predictions,
)
from ._lyapunov import lyapunov_spectrum as lyapunov_spectrum, max_lyapunov as max_lyapunov
from ._prediction import prediction_error as prediction_error
from ._spectrum import power_spectrum_distance as power_spectrum_distance
from ._stsp import state_space_divergence as state_space_divergence
