"""Predictions made with a vector field: cell fates and trajectories."""

from .fate import fate as fate
