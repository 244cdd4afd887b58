"""Tools: neighbours, moments, kinetics, embeddings and cell-wise velocities."""

from ._locality import locality_order as locality_order
from .cell_velocities import cell_velocities as cell_velocities
from .confidence_cells import cell_wise_confidence as cell_wise_confidence
from .confidence_cells import cross_boundary_direction as cross_boundary_direction
from .confidence_genes import gene_wise_confidence as gene_wise_confidence
from .dynamics import dynamics as dynamics
from .moments import moments as moments
from .neighbors import neighbors as neighbors
from .reduce_dimension import reduceDimension as reduceDimension
