"""Tools: neighbours, moments, kinetics, embeddings and cell-wise velocities."""

from .cell_velocities import cell_velocities as cell_velocities
from .reduce_dimension import reduceDimension as reduceDimension
