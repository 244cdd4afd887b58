"""Predictions made with a vector field: cell fates and trajectories."""

from .fate import fate as fate
from .fate_bias import fate_bias as fate_bias
from .least_action import least_action as least_action
from .perturbation import perturbation as perturbation
from .state_graph import state_graph as state_graph
