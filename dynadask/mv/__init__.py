"""Animations of cell fates on a vector field."""
