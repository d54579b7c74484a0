"""Neural differential equations on Diffrax: one implementation over Diffrax terms."""

from .base import AbstractNeuralDE as AbstractNeuralDE, MLPVectorField as MLPVectorField
from .latent_ode import LatentODE as LatentODE
from .neural_ode import NeuralODE as NeuralODE
from .neural_sde import NeuralSDE as NeuralSDE
