"""Animations of cell fates on a vector field."""

from .fate import animate_fates as animate_fates
