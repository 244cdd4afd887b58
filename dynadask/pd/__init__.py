"""Predictions made with a vector field: cell fates and trajectories."""
