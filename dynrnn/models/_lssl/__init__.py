"""Linear state-space layers with HiPPO matrices."""

from .hippo_matrices import discretize as discretize, hippo as hippo, krylov as krylov
from .lssl import LSSL as LSSL, DeepLSSL as DeepLSSL, LSSLReadout as LSSLReadout
