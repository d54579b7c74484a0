"""Figures: reconstructions (attractors, spectra, training curves) and DSF maps."""

from ._phi import phi_heatmaps as phi_heatmaps
from ._reconstruction import (
    attractor as attractor,
    power_spectra as power_spectra,
    training_curves as training_curves,
)
