"""Figures: reconstructions (attractors, spectra, training curves), recordings (rasters) and DSF
maps, and comparisons of architectures.

Every function draws with matplotlib's object-oriented interface into the `ax`/`axes`/`fig`
it is given, or into a new figure of the session's backend, and returns the figure; the library
never selects a backend. Axes are labelled with units where they are known; data and model share
one scale; high-dimensional series are shown on named principal components.
"""

from ._compare import compare as compare
from ._phi import phi_heatmaps as phi_heatmaps
from ._reconstruction import attractor as attractor, power_spectra as power_spectra
from ._recording import raster as raster
from ._training import training_curves as training_curves
