"""Estimators for conventional (splicing-only) single-cell RNA-seq."""

from .steady_state import METHODS, SteadyState

__all__ = ["METHODS", "SteadyState"]
