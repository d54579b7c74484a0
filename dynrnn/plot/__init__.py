"""Figures: reconstructions (attractors, spectra, training curves) and DSF maps."""

from ._reconstruction import (
    attractor as attractor,
    power_spectra as power_spectra,
    training_curves as training_curves,
)
