"""Regularisers from an adaptive solver's own heuristics (Pal et al., ICML 2021 and 2023):
`SolverError` (ERNODE), `Stiffness` (SRNODE) and `LocalSolverError` (the random-time variant).
See `dynrnn/regularizers/_solver.py` for the contract with models and `dr.fit`."""

from ._solver import (
    AbstractSolverRegularizer as AbstractSolverRegularizer,
    LocalSolverError as LocalSolverError,
    SolverError as SolverError,
    Stiffness as Stiffness,
    SumOfRegularizers as SumOfRegularizers,
)
