"""Plotting: figures from results already in the AnnData (dynamo's ``dyn.pl`` names).

Plotting never runs an analysis: a figure that needs a key which is missing says which
function makes it.
"""

from .dimension_reduction import pca as pca
from .dimension_reduction import space as space
from .dimension_reduction import umap as umap
from .dynamics import phase_portraits as phase_portraits
from .energy import plot_energy as plot_energy
from .fate import fate as fate
from .fate import fate_bias as fate_bias
from .jacobian import jacobian as jacobian
from .jacobian import jacobian_heatmap as jacobian_heatmap
from .jacobian import sensitivity as sensitivity
from .jacobian import sensitivity_heatmap as sensitivity_heatmap
from .landscape import show_landscape as show_landscape
from .least_action import least_action as least_action
from .lic import line_integral_conv as line_integral_conv
from .pca_plots import biplot as biplot
from .pca_plots import feature_genes as feature_genes
from .pca_plots import loading as loading
from .pca_plots import variance_explained as variance_explained
from .preprocess import basic_stats as basic_stats
from .preprocess import exp_by_groups as exp_by_groups
from .preprocess import highest_frac_genes as highest_frac_genes
from .preprocess import show_fraction as show_fraction
from .scatters import scatters as scatters
from .state_graph import state_graph as state_graph
from .time_series import jacobian_kinetics as jacobian_kinetics
from .time_series import kinetic_curves as kinetic_curves
from .time_series import kinetic_heatmap as kinetic_heatmap
from .time_series import sensitivity_kinetics as sensitivity_kinetics
from .topography import plot_fixed_points as plot_fixed_points
from .topography import plot_nullclines as plot_nullclines
from .topography import plot_separatrix as plot_separatrix
from .topography import topography as topography
from .vector_calculus import acceleration as acceleration
from .vector_calculus import curl as curl
from .vector_calculus import curvature as curvature
from .vector_calculus import divergence as divergence
from .vector_calculus import speed as speed
from .vectors import cell_wise_vectors as cell_wise_vectors
from .vectors import grid_vectors as grid_vectors
from .vectors import streamline_plot as streamline_plot

stremline_plot = streamline_plot
"""dynamo's misspelt alias of :func:`streamline_plot`, used in its guide."""

__all__ = [
    "acceleration",
    "basic_stats",
    "biplot",
    "cell_wise_vectors",
    "curl",
    "curvature",
    "divergence",
    "exp_by_groups",
    "fate",
    "fate_bias",
    "feature_genes",
    "grid_vectors",
    "highest_frac_genes",
    "kinetic_curves",
    "kinetic_heatmap",
    "jacobian",
    "jacobian_heatmap",
    "jacobian_kinetics",
    "least_action",
    "line_integral_conv",
    "loading",
    "pca",
    "phase_portraits",
    "plot_energy",
    "plot_fixed_points",
    "plot_nullclines",
    "plot_separatrix",
    "scatters",
    "sensitivity",
    "sensitivity_heatmap",
    "sensitivity_kinetics",
    "show_fraction",
    "show_landscape",
    "space",
    "speed",
    "state_graph",
    "stremline_plot",
    "streamline_plot",
    "topography",
    "umap",
    "variance_explained",
]
