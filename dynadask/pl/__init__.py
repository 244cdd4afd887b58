"""Plotting: figures from results already in the AnnData (dynamo's ``dyn.pl`` names).

Plotting never runs an analysis: a figure that needs a key which is missing says which
function makes it.
"""

from .dynamics import phase_portraits as phase_portraits
from .scatters import scatters as scatters
from .vectors import cell_wise_vectors as cell_wise_vectors
from .vectors import grid_vectors as grid_vectors
from .vectors import streamline_plot as streamline_plot

__all__ = ["cell_wise_vectors", "grid_vectors", "phase_portraits", "scatters", "streamline_plot"]
