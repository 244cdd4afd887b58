"""Estimators for conventional (splicing-only) single-cell RNA-seq."""

from .dynamical import Dynamical
from .steady_state import METHODS, SteadyState

__all__ = ["METHODS", "Dynamical", "SteadyState"]
