"""Estimators behind ``dyn.tl.dynamics``, usable on plain arrays."""

from . import csc, tsc

__all__ = ["csc", "tsc"]
