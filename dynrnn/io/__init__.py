"""Neural recordings as `xr.Dataset`s on `("time", "neuron")`: readers for NetCDF4, NWB,
suite2p, CaImAn, CSV and NPY, and a writer for NetCDF4 and NWB (schema: `dr.io.from_array`)."""

from ._open import (
    detect_format as detect_format,
    open_recording as open_recording,
    save_recording as save_recording,
)
from ._recording import (
    MAIN as MAIN,
    from_array as from_array,
    history as history,
    validate as validate,
)
from ._synthetic import synthetic_suite2p as synthetic_suite2p
