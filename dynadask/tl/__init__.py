"""Tools: neighbours, moments, kinetics, embeddings, cell-wise velocities and their helpers."""

from ._locality import locality_order as locality_order
from .cell_velocities import cell_velocities as cell_velocities
from .confidence_cells import cell_wise_confidence as cell_wise_confidence
from .confidence_cells import cross_boundary_direction as cross_boundary_direction
from .confidence_genes import gene_wise_confidence as gene_wise_confidence
from .confident_velocities import confident_cell_velocities as confident_cell_velocities
from .conversion import scv_dyn_convertor as scv_dyn_convertor
from .dynamics import dynamics as dynamics
from .growth import cell_growth_rate as cell_growth_rate
from .growth import score_cells as score_cells
from .latent_time import latent_time as latent_time
from .markers import find_group_markers as find_group_markers
from .markers import top_n_markers as top_n_markers
from .markov import stationary_distribution as stationary_distribution
from .moment_helpers import calc_1nd_moment as calc_1nd_moment
from .moment_helpers import calc_2nd_moment as calc_2nd_moment
from .moments import moments as moments
from .neighbors import neighbors as neighbors
from .reduce_dimension import reduceDimension as reduceDimension
from .sampling import compute_smallest_distance as compute_smallest_distance
from .sampling import sample as sample
