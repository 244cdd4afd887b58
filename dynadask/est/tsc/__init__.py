"""Estimators for time-resolved (metabolic-labelling) single-cell RNA-seq."""

from .labelling import FITTERS, Labelling, Strata

__all__ = ["FITTERS", "Labelling", "Strata"]
