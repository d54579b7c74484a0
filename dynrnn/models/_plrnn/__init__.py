"""Piecewise-linear recurrent neural networks (PLRNN, dendritic, shallow, almost-linear)."""

from .alrnn import ALRNN as ALRNN
from .base import AbstractPLRNN as AbstractPLRNN
from .dendritic import DendPLRNN as DendPLRNN
from .plrnn import PLRNN as PLRNN
from .shallow import ShallowPLRNN as ShallowPLRNN
