"""Plotting: figures from results already in the AnnData (dynamo's ``dyn.pl`` names).

Plotting never runs an analysis: a figure that needs a key which is missing says which
function makes it.
"""

from .scatters import scatters as scatters

__all__ = ["scatters"]
