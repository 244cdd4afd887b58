"""Estimators for conventional (splicing-only) single-cell RNA-seq."""

from .dynamical import Dynamical
from .dynamical_em import DynamicalEM
from .steady_state import METHODS, SteadyState

__all__ = ["METHODS", "Dynamical", "DynamicalEM", "SteadyState"]
