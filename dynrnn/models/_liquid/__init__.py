"""Liquid networks: LTC and CfC with ncps semantics, their wirings and shared pieces."""

from .base import (
    AbstractLiquidModel as AbstractLiquidModel,
    LiquidReadout as LiquidReadout,
    PiecewiseConstantInput as PiecewiseConstantInput,
)
from .cfc import CfC as CfC
from .ltc import LTC as LTC
