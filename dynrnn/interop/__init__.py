"""Interoperability with other libraries: `from_ncps` imports trained ncps (PyTorch) CfC and
LTC networks; torch and ncps are never imported by dynrnn itself."""

from ._ncps import from_ncps as from_ncps, wiring_from_ncps as wiring_from_ncps
