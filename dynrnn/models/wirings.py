"""Wirings of liquid networks (`LTC`, `CfC`): fully connected, random and neural circuit
policies, drawn exactly as `ncps.wirings` draws them for the same arguments and seeds."""

from ._liquid.wirings import (
    NCP as NCP,
    AbstractWiring as AbstractWiring,
    AutoNCP as AutoNCP,
    FullyConnected as FullyConnected,
    Random as Random,
    Wiring as Wiring,
)
